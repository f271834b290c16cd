"""The output folder of a collection: one run at a time, damaged chunks redone, failed writes explained."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

import e2wm.experience.collect as collect_module
import e2wm.locking as locking
from e2wm.cli import main
from e2wm.experience.collect import CollectConfig, collect, read_episodes
from e2wm.experience.exploration import ExplorationConfig
from e2wm.locking import LOCK_NAME, OutputFolderError, OutputLockedError, output_lock

SMALL = CollectConfig(
    "generated", plans=6, explorations=6, seed=3, chunk_size=4, exploration=ExplorationConfig(steps=12)
)


def files(folder):
    """Every file of the episodes and scenes folders: name -> bytes."""
    return {f"{sub}/{p.name}": p.read_bytes() for sub in ("episodes", "scenes") for p in (folder / sub).iterdir()}


def _wait_for_holder(folder, proc, seconds=60):
    """Until the process ``proc`` has written itself into the folder's lock file."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((folder / LOCK_NAME).read_text() or "{}").get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("the first run never took the lock")


# ---------------------------------------------------------------------- the lock itself
def test_a_held_folder_is_refused_at_once_naming_the_holder(tmp_path):
    with output_lock(tmp_path / "out", "e2wm collect --seed 1"):
        with pytest.raises(OutputLockedError) as refused, output_lock(tmp_path / "out", "e2wm collect --seed 2"):
            pass
        assert refused.value.holder["pid"] == os.getpid()
        message = str(refused.value)
        assert str(tmp_path / "out") in message and f"pid {os.getpid()}" in message
        assert "'e2wm collect --seed 1'" in message and "another folder" in message
        with output_lock(tmp_path / "other", "elsewhere"):  # other folders are independent
            pass
    with output_lock(tmp_path / "out", "again") as folder:  # released on exit
        assert folder == tmp_path / "out"
        assert json.loads((folder / LOCK_NAME).read_text())["command"] == "again"
    assert (tmp_path / "out" / LOCK_NAME).read_text() == "", "no holder is named once released"


def test_a_killed_holder_releases_the_folder(tmp_path):
    code = (
        "import sys, time; from e2wm.locking import output_lock\n"
        "with output_lock(sys.argv[1], 'sleeper'):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(OutputLockedError, match=f"pid {proc.pid} .*'sleeper'"), output_lock(tmp_path, "me"):
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with output_lock(tmp_path, "me"):  # the kernel dropped the dead run's lock: nothing stale to clean
        pass


def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locking.fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="does not support file locks"), output_lock(tmp_path, "me"):
        pass


def test_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "file" / "out"
    with pytest.raises(OutputFolderError, match=f"cannot write {folder}: a part of the path is a file, not a folder"):  # noqa: SIM117
        with output_lock(folder, "me"):
            pass


# ---------------------------------------------------------------------- two collections, one folder
def test_a_second_collection_into_a_busy_folder_fails_and_leaves_it_consistent(tmp_path, capsys):
    out = tmp_path / "run"
    first = ["collect", "--scenes", "generated", "--out", str(out), "--explorations", "24", "--chunk-size", "2",
             "--seed", "1", "--exploration-steps", "25", "--quiet"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "e2wm.cli", *first], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        _wait_for_holder(out, proc)
        proc.send_signal(signal.SIGSTOP)  # frozen while it holds the folder: no race with the checks below
        second = [*first[:-5], "--seed", "2", *first[-3:]]
        assert main(second) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another run (pid {proc.pid}" in err and "Traceback" not in err, err
        assert main(first) == 2, "the same arguments are refused too while the first runs"
    finally:
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=120) == 0
    manifest = json.loads((out / "collect.json").read_text())
    assert manifest["config"]["seed"] == 1
    episodes = read_episodes(out).to_pylist()
    assert len(episodes) == 24 and {e["seed"] for e in episodes} == {1}
    assert len({e["episode_id"] for e in episodes}) == 24


# ---------------------------------------------------------------------- damaged chunks
def test_damaged_chunks_are_redone_on_resume_and_equal_an_uninterrupted_run(tmp_path, caplog):
    out = tmp_path / "run"
    collect(SMALL, out, progress=False)
    clean = files(out)
    episodes, scenes = out / "episodes", out / "scenes"
    truncated = episodes / "plan-00001.parquet"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    overwritten = bytearray((episodes / "exploration-00000.parquet").read_bytes())
    overwritten[100] ^= 0xFF  # same size, other bytes
    (episodes / "exploration-00000.parquet").write_bytes(bytes(overwritten))
    (episodes / "plan-00000.done.json").unlink()  # killed between the chunk and its record
    record = json.loads((episodes / "exploration-00001.done.json").read_text())
    damaged_scene = scenes / f"{next(iter(record['scenes']))}.json.gz"
    damaged_scene.write_bytes(damaged_scene.read_bytes()[:10])
    with caplog.at_level(logging.WARNING):
        summary = collect(SMALL, out, progress=False)
    assert summary.chunks_redone == summary.chunks_written == 4 and summary.chunks_skipped == 0
    assert files(out) == clean, "the redone chunks are exactly those of an uninterrupted run"
    log = (out / "collect.log").read_text()
    for line in [
        "plan chunk 1 is redone: plan-00001.parquet is damaged",
        "exploration chunk 0 is redone: exploration-00000.parquet is damaged",
        "plan chunk 0 is redone: its file has no record",
        f"exploration chunk 1 is redone: its scene {damaged_scene.name} is damaged",
    ]:
        assert line in log and line in caplog.text, line
    again = collect(SMALL, out, progress=False)
    assert (again.chunks_skipped, again.chunks_written, again.chunks_redone) == (4, 0, 0)


def test_a_record_naming_other_rows_is_not_trusted(tmp_path):
    collect(SMALL, tmp_path, progress=False)
    path = tmp_path / "episodes" / "plan-00000.done.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "rows": 3}))
    summary = collect(SMALL, tmp_path, progress=False)
    assert summary.chunks_redone == 1 and json.loads(path.read_text())["rows"] == 4


# ---------------------------------------------------------------------- failed writes
@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "the disk is full: free some space"), (errno.EROFS, "the filesystem is read-only")],
)
def test_a_failed_chunk_write_is_a_one_line_error_and_leaves_no_half_chunk(tmp_path, monkeypatch, capsys, code, words):
    real = collect_module.atomic_write_bytes

    def failing(path, data):
        if str(path).endswith("exploration-00000.parquet"):
            raise OSError(code, os.strerror(code))
        real(path, data)

    monkeypatch.setattr(collect_module, "atomic_write_bytes", failing)
    out = tmp_path / "run"
    argv = ["collect", "--scenes", "generated", "--out", str(out), "--plans", "2", "--explorations", "2",
            "--chunk-size", "2", "--exploration-steps", "5", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out / 'episodes' / 'exploration-00000.parquet'}: {words}" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    chunks = {p.name.split(".")[0] for p in (out / "episodes").glob("*.parquet")}
    records = {p.name.split(".")[0] for p in (out / "episodes").glob("*.done.json")}
    assert chunks == records == {"plan-00000"}, "every chunk on disk is complete and recorded"
    with output_lock(out, "after"):  # the failed run let go of the folder
        pass


def test_a_read_only_output_folder_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        argv = ["collect", "--scenes", "generated", "--out", str(out), "--plans", "2", "--quiet"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"cannot write {out / LOCK_NAME}: permission denied" in err and "Traceback" not in err, err
    finally:
        out.chmod(0o700)
