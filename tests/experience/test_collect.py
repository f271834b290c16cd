"""Collection: deterministic across processes, resumable after a kill, shardable, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from e2wm.cli import main
from e2wm.experience.collect import CollectConfig, CollectionError, collect, parse_shard, read_episodes, read_scene
from e2wm.experience.episode import Episode
from e2wm.experience.exploration import ExplorationConfig
from e2wm.experience.goals import Goal
from e2wm.world import World, parse_script_line

SMALL = CollectConfig(
    "generated", plans=6, explorations=6, seed=3, chunk_size=4, exploration=ExplorationConfig(steps=12)
)


def rows(folder):
    return read_episodes(folder).to_pylist()


def files(folder):
    """Every file of the episodes and scenes folders: name -> bytes."""
    return {f"{sub}/{p.name}": p.read_bytes() for sub in ("episodes", "scenes") for p in (folder / sub).iterdir()}


def test_rows_are_identical_whatever_the_number_of_processes(tmp_path):
    collect(SMALL, tmp_path / "one", num_proc=1, progress=False)
    collect(SMALL, tmp_path / "two", num_proc=2, progress=False)
    assert rows(tmp_path / "one") == rows(tmp_path / "two")
    assert files(tmp_path / "one") == files(tmp_path / "two"), "the same bytes, not only the same rows"
    assert sorted(p.name for p in (tmp_path / "one" / "episodes").glob("*.parquet")) == [
        "exploration-00000.parquet", "exploration-00001.parquet", "plan-00000.parquet", "plan-00001.parquet",
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "one" / "episodes").glob("*.done.json")) == [
        "exploration-00000.done.json", "exploration-00001.done.json", "plan-00000.done.json", "plan-00001.done.json",
    ], "each chunk has its record"  # fmt: skip


def test_episodes_are_complete_records(tmp_path):
    collect(SMALL, tmp_path, progress=False)
    episodes = [Episode.from_row(r) for r in rows(tmp_path)]
    assert len({e.episode_id for e in episodes}) == 12
    for episode in episodes:
        graph = read_scene(tmp_path, episode.scene_id)
        world = World.from_dict(graph)
        assert len(episode.actions) == len(episode.sentences) == len(episode.step_diffs) == len(episode.step_success)
        for action, diff in zip(episode.actions, episode.step_diffs, strict=True):
            result = world.step(parse_script_line(action))
            assert result.success and result.diff.to_dict() == diff
        if episode.kind == "plan":
            assert episode.success, episode.failure
            assert Goal.from_dict(episode.goal).satisfied(world), "plans re-execute to their goal"
            assert episode.activity and episode.sentences[0].endswith(".")
        else:
            assert episode.tracks and episode.success
            for node, track in episode.tracks.items():
                where = world.location_of(node)
                last = track[-1]
                assert (last["relation"], last["support"]) == ((where[0], where[1]) if where else (None, None))
                assert last["room"] == world.room_of(node)
    assert len(list((tmp_path / "scenes").iterdir())) == len({e.scene_id for e in episodes}), "each scene stored once"


def test_shard_union_equals_a_single_run(tmp_path):
    collect(SMALL, tmp_path / "all", progress=False)
    for index in range(3):
        collect(SMALL, tmp_path / f"shard{index}", shard=(index, 3), progress=False)
    merged = tmp_path / "merged"
    for index in range(3):
        for sub in ("episodes", "scenes"):
            for file in (tmp_path / f"shard{index}" / sub).iterdir():
                (merged / sub).mkdir(parents=True, exist_ok=True)
                (merged / sub / file.name).write_bytes(file.read_bytes())
    assert rows(merged) == rows(tmp_path / "all")
    assert {p.name for p in (merged / "scenes").iterdir()} == {p.name for p in (tmp_path / "all" / "scenes").iterdir()}


def test_a_killed_collection_resumes_without_loss_or_duplicates(tmp_path):
    args = ["collect", "--scenes", "generated", "--out", str(tmp_path / "run"), "--explorations", "160",
            "--chunk-size", "2", "--seed", "1", "--exploration-steps", "25", "--quiet"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "e2wm.cli", *args], env={**os.environ, "PYTHONPATH": os.getcwd()})
    episodes = tmp_path / "run" / "episodes"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(episodes.glob("*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(episodes.glob("*.parquet")))
    assert 3 <= written < 80, "the run was killed part way"
    assert main(args) == 0
    resumed = rows(tmp_path / "run")
    assert len(resumed) == 160 and len({r["episode_id"] for r in resumed}) == 160
    assert not list(episodes.glob(".*")), "no temporary file left behind"
    reference = CollectConfig(
        "generated", explorations=160, chunk_size=2, seed=1, exploration=ExplorationConfig(steps=25)
    )
    collect(reference, tmp_path / "clean", progress=False)
    assert resumed == rows(tmp_path / "clean")


def test_resuming_with_other_settings_is_refused(tmp_path):
    collect(SMALL, tmp_path, progress=False)
    with pytest.raises(CollectionError, match="made with other settings"):
        collect(CollectConfig("generated", plans=7, seed=3, chunk_size=4), tmp_path, progress=False)


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    with pytest.raises(CollectionError, match="nothing to collect"):
        CollectConfig("generated")
    with pytest.raises(CollectionError, match="must look like I/K"):
        parse_shard("1-4")
    with pytest.raises(CollectionError, match="need 0 <= I < K"):
        parse_shard("4/4")
    assert parse_shard("3/4") == (3, 4)
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "bad.json").write_text('{"nodes": [], "edges": [{"from_id": 1}]}')
    for argv, message in [
        (["--scenes", str(tmp_path / "graphs"), "--plans", "2"], "bad.json"),
        (["--scenes", str(tmp_path / "missing"), "--plans", "2"], "no such file or folder"),
        (["--scenes", "generated", "--plans", "-1"], "--plans must be 0 or more"),
        (["--scenes", "generated", "--plans", "2", "--shard", "x"], "must look like I/K"),
        (["--scenes", "generated", "--plans", "2", "--num-proc", "0"], "--num-proc must be at least 1"),
    ]:
        code = main(["collect", "--out", str(tmp_path / "out"), "--quiet", *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_ids_and_seeds_beyond_64_bits_are_refused_naming_the_input(tmp_path, capsys):
    from e2wm.world.scenes import generate_scene

    graph = generate_scene(9, 0)
    old = next(n["id"] for n in graph["nodes"] if n["category"] == "Characters")
    huge = 2**70
    position = next(i for i, n in enumerate(graph["nodes"]) if n["id"] == old)
    graph["nodes"][position]["id"] = huge
    for edge in graph["edges"]:
        for end in ("from_id", "to_id"):
            edge[end] = huge if edge[end] == old else edge[end]
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "home.json").write_text(json.dumps(graph))
    for argv, message in [
        (["--scenes", str(tmp_path / "graphs"), "--plans", "2"],
         f"home.json: nodes[{position}]: node id {huge} does not fit in 64 bits"),
        (["--scenes", "generated", "--plans", "2", "--seed", str(huge)], f"--seed must fit in 64 bits (-2**63 to 2**63-1), got {huge}"),
    ]:  # fmt: skip
        code = main(["collect", "--out", str(tmp_path / "out"), "--quiet", *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "episodes").exists(), "refused before anything is written"


def test_missing_robothow_cache_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "empty-cache"))
    code = main(["collect", "--scenes", "robothow", "--out", str(tmp_path / "out"), "--plans", "2", "--quiet"])
    assert code == 2 and "e2wm scenes fetch robothow" in capsys.readouterr().err


def test_folder_scenes_are_a_source(tmp_path):
    from e2wm.world.scenes import generate_scene

    (tmp_path / "graphs").mkdir()
    for index in range(2):
        (tmp_path / "graphs" / f"home{index}.json").write_text(json.dumps(generate_scene(9, index)))
    config = CollectConfig(str(tmp_path / "graphs"), plans=3, explorations=2, exploration=ExplorationConfig(steps=5))
    collect(config, tmp_path / "out", progress=False)
    found = rows(tmp_path / "out")
    assert {r["scene_source"] for r in found} == {"folder"} and {r["scene_name"] for r in found} <= {
        "home0.json",
        "home1.json",
    }
    assert all(r["success"] for r in found)
