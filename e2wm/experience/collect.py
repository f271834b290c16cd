"""Sharded, resumable, parallel collection of episodes into parquet shards.

The work is a fixed list of items: plans ``0..plans-1`` then explorations ``0..explorations-1``, cut
into chunks of ``chunk_size`` items. Every item depends only on the run's settings and its own index
(its random generator is seeded from ``(seed, kind, index)``), so the rows are identical whatever the
number of processes or machines, and a chunk is the unit of work, of output and of resumption:

    OUT/collect.json                       # the settings (a resumed run must use the same ones)
    OUT/episodes/plan-00000.parquet        # chunk 0 of the plans, written atomically
    OUT/episodes/plan-00000.done.json      # its record (rows, size, sha256, scenes), written after it
    OUT/episodes/exploration-00003.parquet
    OUT/scenes/<scene_id>.json.gz          # each scene once, by content hash
    OUT/collect.log                        # timings, process ids, redone chunks (never in the rows)
    OUT/.e2wm.lock                         # held by the running collection (e2wm.locking)

Workers (processes of this machine, or Ray tasks anywhere) only compute: they return a chunk's parquet
bytes and the scenes it needs, and this process writes every file. So workers need no access to OUT,
and the files are the same bytes whichever executed the chunks.

``shard=(i, k)`` runs only the chunks whose global index is ``i`` modulo ``k``; the union of the
``k`` shard folders is exactly the folder one run writes. A killed run started again with the same
arguments skips the chunks whose record matches their file and redoes the rest (a chunk without a
record, or damaged since, is redone and the log says so): nothing lost, nothing duplicated. One run
at a time per folder: a second one is refused (:class:`e2wm.locking.OutputLockedError`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import math
import multiprocessing
import os
import random
import socket
import time
from collections.abc import Callable, Generator, Iterator
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
from e2wm.locking import output_lock
from e2wm.utils import atomic_write_bytes, explain_write_error
from e2wm.world import World
from e2wm.world.graph import read_graph_json
from e2wm.world.scenes import generate_scene, graph_files, load_robothow, scene_id

__all__ = ["CollectConfig", "CollectSummary", "CollectionError", "collect", "parse_shard", "read_episodes"]

SOURCES = ("generated", "robothow")
INT64 = (-(2**63), 2**63 - 1)  # node ids and seeds are int64 columns of the episodes

logger = logging.getLogger(__name__)


class CollectionError(ValueError):
    """Bad collection arguments, bad scenes, or an output folder that cannot take this collection."""


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
        if not INT64[0] <= self.seed <= INT64[1]:
            raise CollectionError(f"--seed must fit in 64 bits (-2**63 to 2**63-1), got {self.seed}")

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
    chunks_redone: int = 0  # found damaged or unrecorded on resume, so done again (and counted in written)
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


@dataclass
class _SceneStore:
    """The scenes a chunk uses, gzipped for the writer unless it already holds them (``known``)."""

    known: frozenset[str]
    used: list[str] = field(default_factory=list)
    new: dict[str, bytes] = field(default_factory=dict)

    def add(self, graph: dict[str, Any]) -> str:
        sid = scene_id(graph)
        if sid not in self.used:
            self.used.append(sid)
            if sid not in self.known:
                self.new[sid] = gzip.compress(json.dumps(graph).encode("utf-8"), compresslevel=3, mtime=0)
        return sid


# ---------------------------------------------------------------------- one episode
def _plan_episode(scenes: _Scenes, store: _SceneStore, index: int) -> Episode:
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
        scene_id=store.add(graph),
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


def _exploration_episode(scenes: _Scenes, store: _SceneStore, index: int) -> Episode:
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
        scene_id=store.add(graph),
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


@dataclass
class _ChunkResult:
    """What a worker sends back: the chunk as parquet bytes and the scenes the writer lacks."""

    kind: str
    chunk: int
    parquet: bytes
    rows: int
    successes: int
    scenes_used: list[str]
    new_scenes: dict[str, bytes]  # scene id -> gzipped graph JSON
    seconds: float
    worker: str  # "pid 123 on host", for the log only
    version: str


def _run_chunk(
    config: dict[str, Any], kind: str, chunk: int, start: int, stop: int, known: frozenset[str]
) -> _ChunkResult:
    """Collect one chunk, in a worker process or a Ray task. Writes nothing."""
    began = time.perf_counter()
    scenes = _Scenes(CollectConfig.from_dict(config))
    store = _SceneStore(known)
    make = _plan_episode if kind == "plan" else _exploration_episode
    rows = [make(scenes, store, index).to_row() for index in range(start, stop)]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA), sink, compression="zstd")
    return _ChunkResult(
        kind=kind,
        chunk=chunk,
        parquet=sink.getvalue().to_pybytes(),
        rows=len(rows),
        successes=sum(row["success"] for row in rows),
        scenes_used=store.used,
        new_scenes=store.new,
        seconds=time.perf_counter() - began,
        worker=f"pid {os.getpid()} on {socket.gethostname()}",
        version=__version__,
    )


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


def _record_path(out: Path, kind: str, chunk: int) -> Path:
    return out / "episodes" / f"{kind}-{chunk:05d}.done.json"


def _scene_path(out: Path, sid: str) -> Path:
    return out / "scenes" / f"{sid}.json.gz"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write (full disk, read-only folder...) into a one-line CollectionError naming ``path``."""
    try:
        yield
    except OSError as err:
        raise CollectionError(explain_write_error(err, path)) from None


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
    with _writing(manifest):
        atomic_write_bytes(manifest, json.dumps(wanted, indent=1, sort_keys=True).encode("utf-8"))


class _Verifier:
    """Checks written chunks against their records before a resume trusts them.

    A chunk is done when its record exists, says the expected number of rows, and the file's size and
    sha256 match it, and every scene it names is on disk with the recorded sha256. ``digests`` ends up
    holding the scenes known good (verified through a record, or written by this run).
    """

    def __init__(self, out: Path):
        self.out = out
        self.digests: dict[str, str] = {}
        self._bad_scenes: dict[str, str] = {}

    def problem(self, kind: str, chunk: int, rows: int) -> str | None:
        """None when the chunk is done; else why it must be (re)done ("" when it was simply never written)."""
        path, record_path = _chunk_path(self.out, kind, chunk), _record_path(self.out, kind, chunk)
        if not path.exists() and not record_path.exists():
            return ""
        if not record_path.exists():
            return "its file has no record (the run stopped between the two, or an older e2wm wrote it)"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            size, digest, scenes = int(record["bytes"]), str(record["sha256"]), dict(record["scenes"])
            recorded_rows = int(record["rows"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"its record {record_path.name} is unreadable"
        if recorded_rows != rows:
            return f"its record says {recorded_rows} episodes, the chunk has {rows}"
        if not path.exists():
            return "its file is missing"
        data = path.read_bytes()
        if len(data) != size or _sha256(data) != digest:
            return (
                f"{path.name} is damaged ({len(data)} bytes, recorded {size}; sha256 differs): truncated or overwritten"
            )
        for sid, scene_digest in scenes.items():
            trouble = self._scene_problem(sid, str(scene_digest))
            if trouble:
                return trouble
        return None

    def _scene_problem(self, sid: str, digest: str) -> str:
        if sid in self.digests:
            return "" if self.digests[sid] == digest else f"scene {sid} differs from the one its record names"
        if sid not in self._bad_scenes:
            path = _scene_path(self.out, sid)
            if not path.exists():
                self._bad_scenes[sid] = f"its scene {path.name} is missing"
            elif _sha256(path.read_bytes()) != digest:
                self._bad_scenes[sid] = f"its scene {path.name} is damaged"
            else:
                self.digests[sid] = digest
                return ""
        return self._bad_scenes[sid]

    def remove_bad_scenes(self) -> None:
        """Bad scene files go, so that the chunks redone write them again."""
        for sid in self._bad_scenes:
            path = _scene_path(self.out, sid)
            with _writing(path):
                path.unlink(missing_ok=True)


def _store(out: Path, result: _ChunkResult, digests: dict[str, str]) -> None:
    """Write a chunk's new scenes, then the chunk, then its record (the record says the chunk is done)."""
    for sid, data in result.new_scenes.items():
        if sid not in digests:
            path = _scene_path(out, sid)
            with _writing(path):
                atomic_write_bytes(path, data)
            digests[sid] = _sha256(data)
    path = _chunk_path(out, result.kind, result.chunk)
    with _writing(path):
        atomic_write_bytes(path, result.parquet)
    record = {
        "file": path.name,
        "rows": result.rows,
        "bytes": len(result.parquet),
        "sha256": _sha256(result.parquet),
        "scenes": {sid: digests[sid] for sid in result.scenes_used},
    }
    record_path = _record_path(out, result.kind, result.chunk)
    with _writing(record_path):
        atomic_write_bytes(record_path, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))


def _validate_source(config: CollectConfig) -> None:
    if config.scenes == "robothow":
        load_robothow()  # raises with "run e2wm scenes fetch robothow" when missing
    elif config.scenes != "generated":
        from e2wm.world.scenes import iter_scene_folder

        for file, graph in iter_scene_folder(config.scenes):  # every graph validated up front, errors name the file
            for index, node in enumerate(graph["nodes"]):
                if not INT64[0] <= node["id"] <= INT64[1]:
                    raise CollectionError(
                        f"{file}: nodes[{index}]: node id {node['id']} does not fit in 64 bits (episodes store "
                        "ids as int64, -2**63 to 2**63-1): renumber that node and its edges"
                    )


def collect(
    config: CollectConfig,
    out: str | Path,
    num_proc: int = 1,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    ray_address: str | None = None,
) -> CollectSummary:
    """Collect (or finish collecting) the episodes of ``config`` into ``out``.

    ``num_proc`` worker processes on this machine; or, with ``ray_address``, Ray tasks (one CPU each)
    on a Ray cluster: ``"local"`` starts a Ray instance on this machine (``num_proc`` CPUs when above
    1, else all cores), ``"auto"`` joins the cluster this machine belongs to, ``"ray://host:10001"``
    or ``"host:6379"`` a remote one; a Ray already initialised by the caller is used as it is. Either
    way the files are the same bytes. Ray needs ``pip install "e2wm[ray]"``; its nodes need this e2wm
    version and the scenes (the RobotHow cache, or the ``--scenes`` folder at the same path).

    Raises :class:`CollectionError` for bad arguments or scenes, a folder made with other settings,
    or a failed write (full disk, read-only), and :class:`e2wm.locking.OutputLockedError` (both
    ``ValueError``) when another run is writing into ``out``.
    """
    if num_proc < 1:
        raise CollectionError(f"--num-proc must be at least 1, got {num_proc}")
    ray = _import_ray() if ray_address is not None else None
    _validate_source(config)
    out = Path(out)
    with output_lock(out, f"collect (scenes {config.scenes}, seed {config.seed}, shard {shard[0]}/{shard[1]})"):
        _check_manifest(out, config)
        for stale in [*out.glob("episodes/.*.tmp"), *out.glob("scenes/.*.tmp")]:  # left by a killed run
            with _writing(stale):
                stale.unlink(missing_ok=True)
        mine = [c for g, c in enumerate(_chunks(config)) if g % shard[1] == shard[0]]
        todo, redone, digests = _resume_point(out, mine)
        summary = CollectSummary(chunks_skipped=len(mine) - len(todo), chunks_redone=len(redone))
        for line in redone:
            _log(out, line)
        for line in redone[:5]:
            logger.warning("%s: %s", out, line)
        if len(redone) > 5:
            logger.warning("%s: and %d more chunks are redone (all listed in collect.log)", out, len(redone) - 5)

        def known() -> frozenset[str]:  # the scenes stored so far, sent with each chunk
            return frozenset(digests)

        began = time.perf_counter()
        payload = config.to_dict()
        if ray is not None:
            results = _execute_on_ray(ray, ray_address, todo, payload, known, num_proc)
        else:
            results = _execute(todo, payload, known, num_proc)
        episodes = sum(stop - start for _, _, start, stop in todo)
        bar = tqdm(total=episodes, desc="collect", unit="episode", disable=not progress)
        try:
            for result in results:
                if result.version != __version__:
                    raise CollectionError(
                        f"a worker ({result.worker}) runs e2wm {result.version}, this process e2wm {__version__}: "
                        "install the same e2wm on every node (rows must not depend on where they were made)"
                    )
                _store(out, result, digests)
                _log(
                    out,
                    f"{result.kind} chunk {result.chunk}: {result.rows} episodes in {result.seconds:.2f} s "
                    f"({result.worker}, shard {shard[0]}/{shard[1]})",
                )
                _count(summary, result)
                bar.update(result.rows)
                bar.set_postfix(success=f"{summary.successes / max(summary.episodes, 1):.0%}")
        finally:
            bar.close()
            results.close()  # stops the workers when a write failed part way
        summary.seconds = time.perf_counter() - began
    return summary


def _resume_point(
    out: Path, mine: list[tuple[str, int, int, int]]
) -> tuple[list[tuple[str, int, int, int]], list[str], dict[str, str]]:
    """The chunks still to do, why those already written must be redone, and the scenes known good.

    A bad chunk's record and file are removed (record first) before it is redone, and so are bad scenes.
    """
    verifier = _Verifier(out)
    todo, redone = [], []
    for kind, chunk, start, stop in mine:
        problem = verifier.problem(kind, chunk, stop - start)
        if problem is None:
            continue
        todo.append((kind, chunk, start, stop))
        if problem:
            redone.append(f"{kind} chunk {chunk} is redone: {problem}")
            for path in (_record_path(out, kind, chunk), _chunk_path(out, kind, chunk)):
                with _writing(path):
                    path.unlink(missing_ok=True)
    verifier.remove_bad_scenes()
    return todo, redone, verifier.digests


def _log(out: Path, line: str) -> None:
    path = out / "collect.log"
    with _writing(path), path.open("a", encoding="utf-8") as log:
        log.write(line + "\n")


def _count(summary: CollectSummary, result: _ChunkResult) -> None:
    summary.chunks_written += 1
    summary.episodes += result.rows
    summary.successes += result.successes
    if result.kind == "plan":
        summary.plans += result.rows
        summary.plans_reached += result.successes
    else:
        summary.explorations += result.rows


def _execute(
    todo: list[tuple[str, int, int, int]], payload: dict[str, Any], known: Callable[[], frozenset[str]], num_proc: int
) -> Generator[_ChunkResult, None, None]:
    """Run chunks in this process or in a pool, yielding each as it finishes."""
    if num_proc == 1 or len(todo) <= 1:
        for kind, chunk, start, stop in todo:
            yield _run_chunk(payload, kind, chunk, start, stop, known())
        return
    pool = ProcessPoolExecutor(max_workers=num_proc, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: set[Future[_ChunkResult]] = set()
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * num_proc:
                kind, chunk, start, stop = queue.pop(0)
                pending.add(pool.submit(_run_chunk, payload, kind, chunk, start, stop, known()))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(cancel_futures=True)


# ---------------------------------------------------------------------- Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CollectionError(
            'collecting on Ray needs the ray package: pip install "e2wm[ray]" (or pip install ray)'
        ) from None
    return ray


def _execute_on_ray(
    ray: Any,
    address: str | None,
    todo: list[tuple[str, int, int, int]],
    payload: dict[str, Any],
    known: Callable[[], frozenset[str]],
    num_proc: int,
) -> Generator[_ChunkResult, None, None]:
    """Run chunks as Ray tasks (retried when their worker dies), yielding each as it finishes.

    At most two tasks per cluster CPU are in flight, so finished chunks never pile up in the object
    store faster than this process writes them. A task that fails stops the submissions; the chunks
    already running still finish and are stored before the error is raised.
    """
    _check_reachable(address)
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        try:
            if address in ("", "local"):
                ray.init(num_cpus=num_proc if num_proc > 1 else None, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise CollectionError(_unreachable(address, str(err).splitlines()[0])) from None
        started = True
    pending: dict[Any, tuple[str, int, int, int]] = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=3)(_run_chunk)
        limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        queue = list(todo)
        failure: BaseException | None = None
        while pending or (queue and failure is None):
            while queue and failure is None and len(pending) < limit:
                kind, chunk, start, stop = item = queue.pop(0)
                pending[task.remote(payload, kind, chunk, start, stop, known())] = item
            done, _ = ray.wait(list(pending), num_returns=1)
            item = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as err:  # raised once the chunks already running are stored
                failure = failure or _ray_failure(ray, err, item)
                continue
            yield result
        if failure is not None:
            raise failure
    finally:
        if started:
            ray.shutdown()
        else:  # the caller's Ray lives on: stop what this collection left running (a write failed)
            for ref in pending:
                ray.cancel(ref)


def _unreachable(address: str | None, why: str) -> str:
    return (
        f"cannot connect to the Ray cluster at {address!r} ({why}): start one (`ray start --head`), pass its "
        "address (ray://HOST:10001 or HOST:6379), or use 'local'"
    )


def _check_reachable(address: str | None, seconds: float = 10.0) -> None:
    """Fail fast on a HOST:PORT nobody listens on (``ray.init`` would wait on it for minutes)."""
    if address in (None, "", "local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CollectionError(f"--ray {address!r}: give 'local', 'auto', ray://HOST:PORT or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as err:
        raise CollectionError(_unreachable(address, err.strerror or str(err))) from None


def _ray_failure(ray: Any, err: Exception, item: tuple[str, int, int, int]) -> BaseException:
    """A task's failure as the error to raise: readable for what a user can fix, the original otherwise."""
    from e2wm.world import GraphFormatError
    from e2wm.world.scenes import RobotHowUnavailableError

    what = f"{item[0]} chunk {item[1]}"
    cause = getattr(err, "cause", None)
    if isinstance(cause, (RobotHowUnavailableError, GraphFormatError)):
        return CollectionError(
            f"a Ray worker cannot read the scenes for {what}: {cause}. Every node needs them: run "
            "`e2wm scenes fetch robothow` on each node, or put the --scenes folder at the same path on every node"
        )
    if isinstance(cause, ModuleNotFoundError) or "No module named" in str(err):
        missing = getattr(cause, "name", None) or "e2wm"
        return CollectionError(
            f"the Ray workers cannot import {missing} ({what}): install e2wm {__version__} on every node of the cluster"
        )
    crashes = tuple(
        getattr(ray.exceptions, name)
        for name in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError")
        if hasattr(ray.exceptions, name)
    )
    if isinstance(err, crashes):
        return CollectionError(
            f"the Ray worker running {what} died on every try (out of memory?); the chunks stored so far are "
            "kept: run the same collection again to resume"
        )
    return err


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
