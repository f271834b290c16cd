"""VirtualHome script lines: parsing and formatting.

A script line names a verb and zero, one or two graph nodes::

    [Walk] <kitchen> (11)
    [PutBack] <plate> (54) <kitchentable> (226)
    [STANDUP]
    <char1> [Grab] <cup> (12)            # multi-character scripts address character 1
    [GRAB] <water_glass> (1.1000)        # RobotHow "executable program" ids: script id . node id

The number in parentheses is a graph node id (RobotHow's ``(1.1000)`` keeps its script id so that a
line formats back exactly as it was read). Verbs are case-insensitive on input and written in
VirtualHome's CamelCase (``[PutBack]``) unless the line was read in RobotHow's upper case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from e2wm.world.verbs import VERBS, canonical_verb

__all__ = [
    "Program",
    "ScriptArg",
    "ScriptLine",
    "ScriptParseError",
    "format_script",
    "parse_script",
    "parse_script_line",
    "read_script",
]

_LINE = re.compile(
    r"^(?:<char(?P<char>\d+)>\s*)?\[(?P<verb>[A-Za-z_]+)\](?P<args>.*)$",
)
_ARG = re.compile(r"\s*<(?P<name>[^<>]+?)>\s*\((?P<script>\d+\.)?(?P<id>\d+)\)")


class ScriptParseError(ValueError):
    """A script line (or file) is not valid VirtualHome script syntax.

    ``source`` and ``line_number`` say where; the message says what is wrong.
    """

    def __init__(self, message: str, *, source: str | None = None, line_number: int | None = None):
        self.source = source
        self.line_number = line_number
        where = ""
        if source is not None:
            where = f"{source}:"
        if line_number is not None:
            where += f"{line_number}: " if where else f"line {line_number}: "
        elif where:
            where += " "
        super().__init__(where + message)


@dataclass(frozen=True)
class ScriptArg:
    """One ``<class_name> (id)`` argument of a script line."""

    class_name: str
    node_id: int
    script_id: int | None = None  # RobotHow's "1" in (1.417); kept for exact round trips

    def __str__(self) -> str:
        ident = f"{self.script_id}.{self.node_id}" if self.script_id is not None else str(self.node_id)
        return f"<{self.class_name}> ({ident})"


@dataclass(frozen=True)
class ScriptLine:
    """A parsed script line: ``verb`` is canonical (``"PutBack"``), ``character`` an index or None."""

    verb: str
    args: tuple[ScriptArg, ...] = ()
    character: int | None = None
    upper: bool = False  # written as [PUTBACK] (RobotHow) rather than [PutBack]

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(a.node_id for a in self.args)

    def __str__(self) -> str:
        verb = self.verb.upper() if self.upper else self.verb
        text = f"[{verb}]" + "".join(f" {a}" for a in self.args)
        if self.character is not None:
            text = f"<char{self.character}> " + text
        return text

    @classmethod
    def make(cls, verb: str, *args: tuple[str, int], character: int | None = None) -> ScriptLine:
        """Build a line from ``(class_name, node_id)`` pairs, e.g. ``make("Grab", ("cup", 12))``."""
        name = canonical_verb(verb)
        if name is None:
            raise ScriptParseError(f"unknown verb {verb!r}; known verbs: {', '.join(VERBS)}")
        line = cls(name, tuple(ScriptArg(c, int(i)) for c, i in args), character)
        _check_arity(line, str(line))
        return line


@dataclass(frozen=True)
class Program:
    """A RobotHow program: the activity title, a description and the script."""

    title: str
    description: str
    lines: tuple[ScriptLine, ...]


def _check_arity(line: ScriptLine, text: str) -> None:
    arity = VERBS[line.verb].arity
    if len(line.args) != arity:
        want = {0: "no object", 1: "one object", 2: "two objects"}[arity]
        raise ScriptParseError(f"[{line.verb}] takes {want}, got {len(line.args)} in {text.strip()!r}")


def parse_script_line(text: str) -> ScriptLine:
    """Parse one script line; raise :class:`ScriptParseError` naming what is wrong."""
    stripped = text.strip()
    match = _LINE.match(stripped)
    if match is None:
        raise ScriptParseError(f"not a script line: {stripped!r} (expected e.g. '[Grab] <cup> (12)')")
    raw_verb = match.group("verb")
    verb = canonical_verb(raw_verb)
    if verb is None:
        raise ScriptParseError(f"unknown verb [{raw_verb}] in {stripped!r}; known verbs: {', '.join(VERBS)}")
    rest = match.group("args")
    args = []
    pos = 0
    while pos < len(rest):
        if not rest[pos:].strip():
            break
        arg = _ARG.match(rest, pos)
        if arg is None:
            raise ScriptParseError(
                f"cannot read the object at {rest[pos:].strip()!r} in {stripped!r} (expected '<class_name> (id)')"
            )
        script_id = arg.group("script")
        args.append(
            ScriptArg(
                arg.group("name").strip().lower().replace(" ", "_"),
                int(arg.group("id")),
                int(script_id[:-1]) if script_id else None,
            )
        )
        pos = arg.end()
    char = match.group("char")
    line = ScriptLine(
        verb,
        tuple(args),
        int(char) if char is not None else None,
        upper=raw_verb.isupper() and raw_verb != verb,
    )
    _check_arity(line, stripped)
    return line


def parse_script(text: str, source: str | None = None) -> list[ScriptLine]:
    """Parse a script: one line per step; blank lines and ``#`` comments are skipped."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            lines.append(parse_script_line(raw))
        except ScriptParseError as err:
            raise ScriptParseError(str(err), source=source, line_number=number) from None
    return lines


def parse_program(text: str, source: str | None = None) -> Program:
    """Parse a RobotHow program file: title, description, a blank line, then script lines."""
    raw_lines = text.splitlines()
    if len(raw_lines) < 2:
        raise ScriptParseError("a program file starts with a title line and a description line", source=source)
    title, description = raw_lines[0].strip(), raw_lines[1].strip()
    body = "\n".join([""] * 2 + raw_lines[2:])  # keep line numbers right in errors
    return Program(title, description, tuple(parse_script(body, source)))


def _looks_like_script_line(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("[") or stripped.startswith("<char")


def read_script(path: str | Path) -> Program:
    """Read a script file, or a RobotHow program file (title and description before the script).

    A plain script file has an empty title and description.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a UTF-8 byte order mark is fine
    except OSError as err:
        raise ScriptParseError(f"cannot read the script: {err.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise ScriptParseError("the script is not UTF-8 text", source=str(path)) from None
    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    if first and not _looks_like_script_line(first):
        raw = text.splitlines()
        # RobotHow shape: title, description, then the script after a blank line.
        if len(raw) >= 3 and not _looks_like_script_line(raw[0]) and not _looks_like_script_line(raw[1]):
            return parse_program(text, str(path))
    return Program("", "", tuple(parse_script(text, str(path))))


def format_script(lines: list[ScriptLine] | tuple[ScriptLine, ...]) -> str:
    """Write script lines one per line (the inverse of :func:`parse_script`)."""
    return "".join(f"{line}\n" for line in lines)
