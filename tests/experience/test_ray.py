"""Collection on Ray: the same files as on this machine, retried when a worker dies, resumable."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

import pytest

from e2wm.experience.collect import CollectConfig, CollectionError, collect, read_episodes
from e2wm.experience.exploration import ExplorationConfig
from tests.conftest import require

SMALL = CollectConfig(
    "generated", plans=6, explorations=6, seed=3, chunk_size=4, exploration=ExplorationConfig(steps=12)
)
REPO = Path(__file__).resolve().parents[2]


def files(folder):
    """Every file of the episodes and scenes folders: name -> bytes."""
    return {f"{sub}/{p.name}": p.read_bytes() for sub in ("episodes", "scenes") for p in (folder / sub).iterdir()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """SMALL collected in this process, without Ray."""
    folder = tmp_path_factory.mktemp("local")
    collect(SMALL, folder, progress=False)
    return files(folder)


def _ray():
    """Ray, or skip (fail in CI: .ci/run installs the `ray` extra)."""
    try:
        import ray
    except ImportError:
        require('ray is not installed (pip install "e2wm[ray]")')
    return ray


@pytest.fixture(scope="module")
def faulty_ray(tmp_path_factory):
    """One local Ray for the module (starting one takes 15-30 s here), its workers running
    tests/experience/ray_faults.py; yields the folder of fault files, emptied before each test."""
    ray = _ray()
    faults = tmp_path_factory.mktemp("faults")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(REPO), "E2WM_TEST_RAY_FAULTS": str(faults)},
            "worker_process_setup_hook": "tests.experience.ray_faults.install",
        },
    )
    try:
        yield faults
    finally:
        ray.shutdown()


@pytest.fixture
def faults(faulty_ray):
    for fault in faulty_ray.iterdir():
        fault.unlink()
    return faulty_ray


def test_ray_writes_the_same_files_as_local_collection_and_retries_killed_workers(tmp_path, reference, faults, capsys):
    (faults / "exploration-5.kill").touch()  # the worker running exploration chunk 1 dies part way
    summary = collect(SMALL, tmp_path, ray_address="local", progress=True)
    assert [p.name for p in faults.iterdir()] == ["exploration-5.kill.fired"], "a worker was killed"
    assert files(tmp_path) == reference, "byte for byte: chunks, their records and the scenes"
    episodes = read_episodes(tmp_path).to_pylist()
    assert len({e["episode_id"] for e in episodes}) == len(episodes) == 12, "no loss, no duplicate"
    assert (summary.episodes, summary.chunks_written) == (12, 4)
    assert "12/12" in capsys.readouterr().err, "the progress bar counted every episode"
    log = (tmp_path / "collect.log").read_text().splitlines()
    assert len(log) == 4 and f"pid {os.getpid()} " not in "\n".join(log), "each chunk stored once, made by Ray workers"


def test_a_failed_task_keeps_the_other_chunks_and_a_rerun_finishes(tmp_path, reference, faults):
    from tests.experience.ray_faults import InjectedFault

    (faults / "plan-1.raise").touch()
    with pytest.raises(InjectedFault, match="injected fault in plan 1"):
        collect(SMALL, tmp_path, ray_address="local", progress=False)
    stored = sorted(p.name for p in (tmp_path / "episodes").glob("*.parquet"))
    assert stored == ["exploration-00000.parquet", "exploration-00001.parquet", "plan-00001.parquet"]
    summary = collect(SMALL, tmp_path, ray_address="local", progress=False)
    assert (summary.chunks_skipped, summary.chunks_written, summary.chunks_redone) == (3, 1, 0)
    assert files(tmp_path) == reference


def test_an_unreachable_cluster_is_a_clear_error(tmp_path):
    _ray()
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(CollectionError, match=f"cannot connect to the Ray cluster at 'ray://127.0.0.1:{port}'"):
        collect(SMALL, tmp_path, ray_address=f"ray://127.0.0.1:{port}", progress=False)
    with pytest.raises(CollectionError, match="give 'local', 'auto', ray://HOST:PORT or HOST:PORT"):
        collect(SMALL, tmp_path, ray_address="somewhere", progress=False)


def test_without_ray_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(CollectionError, match=r'needs the ray package: pip install "e2wm\[ray\]"'):
        collect(SMALL, tmp_path, ray_address="local", progress=False)
    assert not any(tmp_path.iterdir()), "refused before anything is written"
