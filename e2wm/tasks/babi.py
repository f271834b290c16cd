"""A reader for the original bAbI text format, for users who have those files.

A bAbI file holds stories of numbered lines; the numbering restarts at 1 for a new story. A question
line has three tab-separated fields after its number: the question, the answer, and the numbers of
the supporting facts::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? \tbathroom\t1

Each question becomes a prompt/completion example whose prompt is the story so far (statements only)
and the question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BabiFormatError", "parse_babi", "read_babi"]


class BabiFormatError(ValueError):
    """A line of a bAbI file is malformed (the message names the file and line)."""


def parse_babi(text: str, task: str = "babi", source: str = "<text>") -> list[dict[str, Any]]:
    """Examples (``prompt``, ``completion``, ``question``, ``answer``, ``story``, ``supporting_facts``,
    ``task``) from the text of a bAbI file."""
    examples: list[dict[str, Any]] = []
    story: dict[int, str] = {}
    last = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\n")
        if not line.strip():
            continue
        head, _, rest = line.partition(" ")
        if not head.isdigit() or not rest.strip():
            raise BabiFormatError(f"{source}:{number}: expected '<number> <text>', got {line!r}")
        index = int(head)
        if index <= last and index != 1:
            raise BabiFormatError(f"{source}:{number}: line number {index} follows {last} (a new story starts at 1)")
        if index == 1:
            story = {}
        last = index
        if "\t" in rest:
            fields = rest.split("\t")
            if len(fields) < 2 or not fields[1].strip():
                raise BabiFormatError(f"{source}:{number}: a question line needs '<question>\\t<answer>[\\t<facts>]'")
            question, answer = fields[0].strip(), fields[1].strip()
            try:
                facts = [int(f) for f in fields[2].split()] if len(fields) > 2 else []
            except ValueError:
                raise BabiFormatError(
                    f"{source}:{number}: supporting facts must be line numbers, got {fields[2]!r}"
                ) from None
            missing = [f for f in facts if f not in story]
            if missing:
                raise BabiFormatError(
                    f"{source}:{number}: supporting fact(s) {missing} are not statements of this story"
                )
            text_so_far = " ".join(story[k] for k in sorted(story))
            examples.append(
                {
                    "prompt": f"{text_so_far}\nQuestion: {question}\nAnswer:",
                    "completion": f" {answer}",
                    "question": question,
                    "answer": answer,
                    "story": text_so_far,
                    "supporting_facts": [story[f] for f in facts],
                    "task": task,
                }
            )
        else:
            story[index] = rest.strip()
    return examples


def read_babi(path: str | Path, task: str | None = None) -> list[dict[str, Any]]:
    """Read a bAbI ``.txt`` file; the task is named after the file's stem unless given."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise BabiFormatError(f"{path}: cannot read the file ({err.strerror})") from None
    return parse_babi(text, task or path.stem, str(path))
