"""Sharded, resumable, parallel collection of episodes into parquet shards.

The work is a fixed list of items: plans ``0..plans-1`` then explorations ``0..explorations-1``, cut
into chunks of ``chunk_size`` items. Every item depends only on the run's settings and its own index
(its random generator is seeded from ``(seed, kind, index)``), so the rows are identical whatever the
number of processes, and a chunk is the unit of work, of output and of resumption:

    OUT/collect.json                       # the settings (a resumed run must use the same ones)
    OUT/episodes/plan-00000.parquet        # chunk 0 of the plans, written atomically
    OUT/episodes/exploration-00003.parquet
    OUT/scenes/<scene_id>.json.gz          # each scene once, by content hash
    OUT/collect.log                        # timings and process ids (never in the rows)

``shard=(i, k)`` runs only the chunks whose global index is ``i`` modulo ``k``; the union of the
``k`` shard folders is exactly the folder one run writes. A killed run started again with the same
arguments skips the chunks it has written and redoes the rest: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from e2wm import __version__
from e2wm.experience.episode import EPISODE_SCHEMA, Episode
from e2wm.experience.exploration import ExplorationConfig, explore
from e2wm.experience.goals import Goal, goal_from_graphs, sample_goal
from e2wm.experience.mcts import MCTSConfig, plan
from e2wm.experience.sentences import line_to_sentence
from e2wm.utils import atomic_write_bytes
from e2wm.world import World
from e2wm.world.graph import read_graph_json
from e2wm.world.scenes import generate_scene, graph_files, load_robothow, scene_id

__all__ = ["CollectConfig", "CollectSummary", "CollectionError", "collect", "parse_shard", "read_episodes"]

SOURCES = ("generated", "robothow")


class CollectionError(ValueError):
    """Bad collection arguments or an output folder that belongs to another collection."""


@dataclass(frozen=True)
class CollectConfig:
    """What to collect. Everything here determines the rows; nothing else does."""

    scenes: str  # "generated", "robothow", or a folder of VirtualHome graphs
    plans: int = 0
    explorations: int = 0
    seed: int = 0
    chunk_size: int = 16
    max_characters: int = 3  # generated scenes get 1..max characters each
    goals_per_scene: int = 4  # generated and folder scenes
    explorations_per_scene: int = 4
    mcts: MCTSConfig = field(default_factory=MCTSConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)

    def __post_init__(self) -> None:
        for name in ("plans", "explorations"):
            if getattr(self, name) < 0:
                raise CollectionError(f"--{name} must be 0 or more, got {getattr(self, name)}")
        if self.plans + self.explorations == 0:
            raise CollectionError("nothing to collect: ask for --plans N and/or --explorations M")
        for name in ("chunk_size", "max_characters", "goals_per_scene", "explorations_per_scene"):
            if getattr(self, name) < 1:
                raise CollectionError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectConfig:
        data = dict(data)
        data["mcts"] = MCTSConfig(**data.get("mcts", {}))
        data["exploration"] = ExplorationConfig(**data.get("exploration", {}))
        return cls(**data)


@dataclass
class CollectSummary:
    episodes: int = 0
    successes: int = 0
    plans: int = 0
    plans_reached: int = 0
    explorations: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0
    seconds: float = 0.0


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` → ``(2, 8)``; a clear error for anything else."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CollectionError(f"--shard must look like I/K (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise CollectionError(f"--shard {text}: need 0 <= I < K")
    return index, count


# ---------------------------------------------------------------------- scenes
@dataclass
class _Scenes:
    """Scene access inside a worker process (RobotHow index and folder listing loaded once)."""

    config: CollectConfig
    _robothow: list[Any] | None = None
    _files: list[Path] | None = None

    def robothow(self) -> list[Any]:
        if self._robothow is None:
            self._robothow = load_robothow()
        return self._robothow

    def files(self) -> list[Path]:
        if self._files is None:
            self._files = graph_files(self.config.scenes)
        return self._files

    def for_item(self, kind: str, index: int) -> tuple[str, dict[str, Any], Any]:
        """(scene name, graph, RobotHow program or None) for a work item."""
        cfg = self.config
        per_scene = cfg.goals_per_scene if kind == "plan" else cfg.explorations_per_scene
        if cfg.scenes == "generated":
            scene_index = index // per_scene
            characters = 1 + random.Random(f"{cfg.seed}:characters:{scene_index}").randrange(cfg.max_characters)
            return f"generated-{cfg.seed}-{scene_index}", generate_scene(cfg.seed, scene_index, characters), None
        if cfg.scenes == "robothow":
            programs = self.robothow()
            program = programs[index % len(programs)]
            graphs = program.graphs()
            return program.id, graphs, program
        files = self.files()
        file = files[(index // per_scene) % len(files)]
        return file.name, read_graph_json(file), None


def _write_scene(out: Path, graph: dict[str, Any]) -> str:
    sid = scene_id(graph)
    path = out / "scenes" / f"{sid}.json.gz"
    if not path.exists():
        atomic_write_bytes(path, gzip.compress(json.dumps(graph).encode("utf-8"), compresslevel=3, mtime=0))
    return sid


# ---------------------------------------------------------------------- one episode
def _plan_episode(scenes: _Scenes, out: Path, index: int) -> Episode:
    cfg = scenes.config
    name, data, program = scenes.for_item("plan", index)
    rng = random.Random(f"{cfg.seed}:plan:{index}")
    graph = data["init_graph"] if program is not None else data
    world = World.from_dict(graph)
    goal: Goal | None
    if program is not None:
        goal = goal_from_graphs(program.title, data["init_graph"], data["final_graph"])
    else:
        goal = sample_goal(world, rng)
    episode = Episode(
        episode_id=f"plan-{cfg.scenes if cfg.scenes in SOURCES else 'folder'}-s{cfg.seed}-{index:06d}",
        kind="plan",
        scene_id=_write_scene(out, graph),
        scene_source=cfg.scenes if cfg.scenes in SOURCES else "folder",
        scene_name=name,
        seed=cfg.seed,
        settings={"mcts": cfg.mcts.to_dict()},
        human_program=[str(line) for line in program.lines] if program is not None else [],
    )
    if goal is None:
        episode.failure = "no achievable goal could be sampled in this scene"
        return episode
    episode.activity, episode.goal = goal.activity, goal.to_dict()
    episode.characters = [goal.character if goal.character is not None else world.character()]
    if not goal.facts:
        episode.failure = "empty goal: the program's final graph adds nothing a plan can achieve"
        return episode
    initial = world.copy()
    result = plan(world, goal, config=cfg.mcts, seed=rng.randrange(2**31))
    # Verification by re-execution from the initial graph; its diffs are the episode's.
    failure = result.failure
    for line in result.lines:
        step = initial.step(line)
        episode.actions.append(str(line))
        episode.sentences.append(line_to_sentence(line))
        episode.step_success.append(step.success)
        episode.step_diffs.append(step.diff.to_dict())
        if not step.success:
            failure = f"the plan does not re-execute: {line}: {step.reason}"
            break
    if failure is None and not goal.satisfied(initial):
        failure = "the plan re-executes but does not reach the goal"
    episode.success = failure is None
    episode.failure = failure
    return episode


def _exploration_episode(scenes: _Scenes, out: Path, index: int) -> Episode:
    cfg = scenes.config
    name, data, program = scenes.for_item("exploration", index)
    graph = data["init_graph"] if program is not None else data
    world = World.from_dict(graph)
    source = cfg.scenes if cfg.scenes in SOURCES else "folder"
    run = explore(world, cfg.exploration, random.Random(f"{cfg.seed}:exploration:{index}"))
    several = len(run.characters) > 1
    episode = Episode(
        episode_id=f"exploration-{source}-s{cfg.seed}-{index:06d}",
        kind="exploration",
        scene_id=_write_scene(out, graph),
        scene_source=source,
        scene_name=name,
        characters=run.characters,
        seed=cfg.seed,
        settings={"exploration": cfg.exploration.to_dict()},
    )
    for step in run.steps:
        line = step.line
        if several:
            line = replace(line, character=world.characters.index(step.character))
        episode.actions.append(str(line))
        episode.sentences.append(line_to_sentence(line))
        episode.step_success.append(step.success)
        episode.step_diffs.append(step.diff.to_dict())
    episode.tracks = {node: [loc.to_dict() for loc in locs] for node, locs in run.tracks.items()}
    episode.success = bool(run.steps) and all(episode.step_success)
    episode.failure = None if episode.success else "no valid action for the characters"
    return episode


def _run_chunk(
    config: dict[str, Any], out: str, kind: str, start: int, stop: int
) -> tuple[list[dict[str, Any]], float, int]:
    """Collect one chunk (in a worker process); rows, seconds, pid."""
    began = time.perf_counter()
    scenes = _Scenes(CollectConfig.from_dict(config))
    make = _plan_episode if kind == "plan" else _exploration_episode
    rows = [make(scenes, Path(out), index).to_row() for index in range(start, stop)]
    return rows, time.perf_counter() - began, os.getpid()


# ---------------------------------------------------------------------- the run
def _chunks(config: CollectConfig) -> list[tuple[str, int, int, int]]:
    """Every chunk of the run, in global order: (kind, chunk index, first item, end item)."""
    chunks = []
    for kind, total in (("plan", config.plans), ("exploration", config.explorations)):
        for chunk in range(math.ceil(total / config.chunk_size)):
            start = chunk * config.chunk_size
            chunks.append((kind, chunk, start, min(start + config.chunk_size, total)))
    return chunks


def _chunk_path(out: Path, kind: str, chunk: int) -> Path:
    return out / "episodes" / f"{kind}-{chunk:05d}.parquet"


def _check_manifest(out: Path, config: CollectConfig) -> None:
    manifest = out / "collect.json"
    wanted = {"e2wm_version": __version__, "config": config.to_dict()}
    if manifest.exists():
        try:
            existing = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            raise CollectionError(f"{manifest} is not valid JSON: remove it or choose another --out") from None
        if existing.get("config") != wanted["config"]:
            raise CollectionError(
                f"{out} holds a collection made with other settings ({manifest}); resume with the same "
                "arguments, or collect into another --out"
            )
        return
    atomic_write_bytes(manifest, json.dumps(wanted, indent=1, sort_keys=True).encode("utf-8"))


def _validate_source(config: CollectConfig) -> None:
    if config.scenes == "robothow":
        load_robothow()  # raises with "run e2wm scenes fetch robothow" when missing
    elif config.scenes != "generated":
        from e2wm.world.scenes import iter_scene_folder

        for _ in iter_scene_folder(config.scenes):  # every graph validated up front, errors name the file
            pass


def collect(
    config: CollectConfig,
    out: str | Path,
    num_proc: int = 1,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> CollectSummary:
    """Collect (or finish collecting) the episodes of ``config`` into ``out``."""
    if num_proc < 1:
        raise CollectionError(f"--num-proc must be at least 1, got {num_proc}")
    _validate_source(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, config)
    for stale in [*out.glob("episodes/.*.tmp"), *out.glob("scenes/.*.tmp")]:  # left by a killed run
        stale.unlink(missing_ok=True)
    mine = [c for g, c in enumerate(_chunks(config)) if g % shard[1] == shard[0]]
    todo = [c for c in mine if not _chunk_path(out, c[0], c[1]).exists()]
    summary = CollectSummary(chunks_skipped=len(mine) - len(todo))
    began = time.perf_counter()
    total = sum(stop - start for _, _, start, stop in todo)
    bar = tqdm(total=total, desc="collect", unit="episode", disable=not progress)
    log = (out / "collect.log").open("a", encoding="utf-8")
    payload = config.to_dict()
    try:
        for (kind, chunk, _, _), (rows, seconds, pid) in _execute(todo, payload, str(out), num_proc):
            table = pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            atomic_write_bytes(_chunk_path(out, kind, chunk), sink.getvalue().to_pybytes())
            log.write(
                f"{kind} chunk {chunk}: {len(rows)} episodes in {seconds:.2f} s (pid {pid}, shard {shard[0]}/{shard[1]})\n"
            )
            log.flush()
            summary.chunks_written += 1
            summary.episodes += len(rows)
            summary.successes += sum(row["success"] for row in rows)
            if kind == "plan":
                summary.plans += len(rows)
                summary.plans_reached += sum(row["success"] for row in rows)
            else:
                summary.explorations += len(rows)
            bar.update(len(rows))
            bar.set_postfix(success=f"{summary.successes / max(summary.episodes, 1):.0%}")
    finally:
        bar.close()
        log.close()
    summary.seconds = time.perf_counter() - began
    return summary


def _execute(
    todo: list[tuple[str, int, int, int]], payload: dict[str, Any], out: str, num_proc: int
) -> Iterator[tuple[tuple[str, int, int, int], tuple[list[dict[str, Any]], float, int]]]:
    """Run chunks in this process or in a pool, yielding each as it finishes."""
    if num_proc == 1 or len(todo) <= 1:
        for chunk in todo:
            yield chunk, _run_chunk(payload, out, chunk[0], chunk[2], chunk[3])
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_proc, mp_context=context) as pool:
        pending: dict[Future[Any], tuple[str, int, int, int]] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * num_proc:
                chunk = queue.pop(0)
                pending[pool.submit(_run_chunk, payload, out, chunk[0], chunk[2], chunk[3])] = chunk
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()


def read_episodes(folder: str | Path, kind: str | None = None) -> pa.Table:
    """All episodes of a collection folder (or of several merged ones) as one table, in id order."""
    folder = Path(folder)
    files = sorted((folder / "episodes").glob(f"{kind or '*'}-*.parquet"))
    if not files:
        raise CollectionError(f"{folder} holds no episodes (expected {folder / 'episodes'}/*.parquet)")
    table = pa.concat_tables([pq.read_table(f, schema=EPISODE_SCHEMA) for f in files])
    return table.sort_by("episode_id")


def read_scene(folder: str | Path, sid: str) -> dict[str, Any]:
    """The graph of a scene stored in a collection folder."""
    path = Path(folder) / "scenes" / f"{sid}.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data
