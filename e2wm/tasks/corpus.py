"""From episodes to the ``e2wm/experiences`` corpus: examples per task, splits without leaks, parquet
per config, and a dataset card whose YAML lets ``load_dataset(CORPUS, "counting")`` work.

Splits are decided by scene (a stable hash of the scene id: all of a scene's examples go to the same
split) and, for the "unseen" evaluation variants, by activity: a fixed fraction of activities is
held out of every training split. RobotHow programs can be held out by id (``TaskConfig.holdout_programs``,
e.g. the preset ``"eai"``: the Embodied Agent Interface benchmark's 342 programs): their episodes reach
no training config, only the test split of the evaluation configs. Few-shot demonstrations of a training
config come from the same config and split; those of an evaluation config from its train split (or
``plan_generation``'s), which holds the evaluation format built from training episodes only: a
demonstration pool that nothing trains on, so no prompt ever shows a validation or test example.

Then the leak check: no validation or test question (a prompt without its demonstrations), story,
or question-and-answer pair may appear in any training split, where demonstrations count as training
text, and no example of a training config (nor any of its demonstrations) may come from a held-out
program. Examples that would repeat training text verbatim (the same activity in two near-identical
scenes, a short story told twice) are removed from validation and test before the check, and the
card reports how many; the check itself then fails loudly on any remaining leak.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from e2wm import __version__
from e2wm.experience.collect import read_episodes, read_scene
from e2wm.experience.episode import Episode
from e2wm.locking import LOCK_NAME, output_lock
from e2wm.tasks.common import (
    HOLDOUT_PRESETS,
    SPLITS,
    Example,
    TaskConfig,
    activity_split,
    robothow_program_id,
    scene_split,
    with_demos,
)
from e2wm.tasks.plans import activity_recognition, plan_facts, plan_generation, plan_qa
from e2wm.tasks.stories import tell
from e2wm.tasks.story_tasks import counting, object_path
from e2wm.utils import explain_write_error, make_new_dir, replace_folder

__all__ = [
    "CORPUS_MARKER",
    "EVALUATION_CONFIGS",
    "TRAINING_CONFIGS",
    "CorpusError",
    "CorpusSummary",
    "LeakError",
    "build_corpus",
    "build_examples",
    "check_leaks",
    "check_output_folder",
    "demonstration_pool",
    "load_corpus",
]

TRAINING_CONFIGS = ("plan_generation", "activity_recognition", "counting", "object_path_tracking")
EVALUATION_CONFIGS = (
    "housework_qa",
    "negation_housework_qa",
    "activity_inference_qa",
    "activity_recognition_qa",
    "counting_qa",
    "object_location_qa",
    "plan_generation_vanilla_seen",
    "plan_generation_vanilla_unseen",
    "plan_generation_confusing_seen",
    "plan_generation_confusing_unseen",
)
_MULTIPLE_CHOICE = {c for c in EVALUATION_CONFIGS if c.endswith("_qa")}
#: The file that marks a folder as a corpus e2wm built (``e2wm build`` replaces only such folders).
CORPUS_MARKER = "e2wm_corpus.json"

_BASE_FIELDS = [
    ("prompt", pa.string()),
    ("completion", pa.string()),
    ("task", pa.string()),
    ("weight", pa.float64()),
    ("episode_id", pa.string()),
    ("scene_id", pa.string()),
    ("example_id", pa.string()),
    ("question", pa.string()),
    ("story", pa.string()),
    ("demo_ids", pa.list_(pa.string())),
]
_MC_FIELDS = [("choices", pa.list_(pa.string())), ("answer", pa.string())]


def demonstration_pool(config: str) -> str:
    """The config whose train split holds an evaluation config's demonstrations: ``plan_generation`` for
    the plan-generation variants (the same question format), else the config itself (its train split: the
    evaluation format built from training episodes, a demonstration pool that nothing trains on)."""
    return "plan_generation" if config.startswith("plan_generation_") else config


class CorpusError(ValueError):
    """The episodes cannot make a corpus (empty, unreadable, nothing usable)."""


class LeakError(RuntimeError):
    """Evaluation text appears in training: the corpus is not written."""


@dataclass
class CorpusSummary:
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    removed_overlaps: int = 0
    removed_duplicates: int = 0
    unseen_activities: list[str] = field(default_factory=list)
    episodes: int = 0
    held_out: dict[str, str] = field(default_factory=dict)  # episode id -> held-out RobotHow program
    training_activities: list[str] = field(default_factory=list)  # of the plans in training configs
    training_programs: list[str] = field(default_factory=list)  # RobotHow programs in training configs


Examples = dict[str, dict[str, list[Example]]]


def load_corpus(corpus: str | Path, config: str | None = None, split: str | None = None) -> Any:
    """``datasets.load_dataset(corpus, config, split=split)``, safe for local folders.

    datasets (5.2) caches a local folder's configs under a key made of the folder's name and its card's
    YAML, not of the files: two corpora built into folders of the same name, or one folder rebuilt, load
    the first build's rows. A local corpus is therefore read as its parquet files (``config/split-*``),
    which datasets caches by path and modification time; another local folder is prepared afresh. Hub
    ids go to ``load_dataset`` unchanged (their cache is keyed by the commit)."""
    from datasets import load_dataset

    path = Path(corpus)
    if not path.is_dir():
        return load_dataset(str(corpus), config, split=split)
    files: dict[str, list[str]] = {}
    for file in sorted((path / config).glob("*.parquet")) if config else []:
        files.setdefault(file.name.split("-", 1)[0], []).append(str(file))
    if not files:
        return load_dataset(str(path), config, split=split, download_mode="force_redownload")
    if split is not None and split not in files:
        raise ValueError(f"{path}: config {config!r} has no {split!r} split (it has {', '.join(files)})")
    return load_dataset("parquet", data_files={split: files[split]} if split else files, split=split)


def _split_of(episode: Episode, unseen: set[str], config: TaskConfig) -> str:
    if episode.activity and episode.activity in unseen:
        return "unseen"
    return scene_split(episode.scene_id, config)


def _held_out(episodes: Sequence[Episode], config: TaskConfig) -> dict[str, str]:
    """Episode id -> RobotHow program, for the episodes of the programs ``config`` holds out."""
    programs = config.held_out_programs()
    out = {}
    for episode in episodes:
        program = robothow_program_id(episode.scene_source, episode.scene_name)
        if program is not None and program in programs:
            out[episode.episode_id] = program
    return out


Folders = str | Path | Sequence[str | Path]


def _folders(episodes_dirs: Folders) -> list[Path]:
    folders = [Path(p) for p in ([episodes_dirs] if isinstance(episodes_dirs, (str, Path)) else episodes_dirs)]
    if not folders:
        raise CorpusError("no episodes folder given")
    return folders


def _read_all(folders: list[Path]) -> tuple[pa.Table, list[Path]]:
    """Episodes of every folder as one table, and the folder each row came from (for its scene)."""
    tables, origin = [], []
    for folder in folders:
        try:
            table = read_episodes(folder)
        except (OSError, ValueError, pa.ArrowException) as err:
            raise CorpusError(f"cannot read episodes from {folder}: {err}") from None
        tables.append(table)
        origin += [folder] * table.num_rows
    table = pa.concat_tables(tables)
    ids = table.column("episode_id").to_pylist()
    if len(set(ids)) != len(ids):
        raise CorpusError("the episodes folders share episode ids: pass each collection once")
    return table, origin


def build_examples(episodes_dirs: Folders, config: TaskConfig, progress: bool = True) -> tuple[Examples, CorpusSummary]:
    """Every example of every config and split (demonstrations included, not yet leak-checked)."""
    table, origin = _read_all(_folders(episodes_dirs))
    rows = [(r, folder) for r, folder in zip(table.to_pylist(), origin, strict=True) if r["success"]]
    if not rows:
        raise CorpusError(
            f"{', '.join(str(f) for f in _folders(episodes_dirs))}: no successful episode to build tasks from"
        )
    episodes = [Episode.from_row(r) for r, _ in rows]
    folder_of = {r["episode_id"]: folder for r, folder in rows}
    plans = [e for e in episodes if e.kind == "plan"]
    unseen = activity_split([e.activity for e in plans], config)
    held_out = _held_out(episodes, config)
    activities = sorted({e.activity for e in plans})
    out: Examples = defaultdict(lambda: defaultdict(list))
    scenes: dict[str, dict[str, Any]] = {}

    def scene(episode: Episode) -> dict[str, Any]:
        if episode.scene_id not in scenes:
            scenes[episode.scene_id] = _read_scene(folder_of[episode.episode_id], episode.scene_id)
        return scenes[episode.scene_id]

    # Plans: facts first (the housework QA needs which items every activity uses).
    facts = {}
    for episode in tqdm(plans, desc="plan facts", unit="episode", disable=not progress):
        facts[episode.episode_id] = plan_facts(
            episode, scene(episode), random.Random(f"{config.seed}:facts:{episode.episode_id}")
        )
    items_by_activity: dict[str, set[str]] = defaultdict(set)
    for episode in plans:
        items_by_activity[episode.activity].update(facts[episode.episode_id].items)
    all_items = sorted({item for items in items_by_activity.values() for item in items})
    for episode in plans:
        rng = random.Random(f"{config.seed}:plan:{episode.episode_id}")
        info, split = facts[episode.episode_id], _split_of(episode, unseen, config)
        seen = "unseen" if split == "unseen" else "seen"
        held = episode.episode_id in held_out
        eval_split = "test" if split == "unseen" or held else split
        if split != "unseen" and not held:
            out["plan_generation"][split].append(plan_generation("plan_generation", episode, info, config, rng))
            out["activity_recognition"][split].append(
                activity_recognition("activity_recognition", episode, info, config, rng)
            )
        if eval_split != "train":
            for variant, confusing in (("vanilla", False), ("confusing", True)):
                task = f"plan_generation_{variant}_{seen}"
                example = plan_generation(task, episode, info, config, rng, confusing=confusing)
                example.weight = 1.0
                out[task][eval_split].append(example)
        # the multiple-choice formats; in the train split (training episodes only) a demonstration pool
        for example in plan_qa(episode, info, scene(episode), config, rng, activities, items_by_activity, all_items):
            out[example.task][eval_split].append(example)

    room_names = sorted(
        {"kitchen", "living room", "bedroom", "bathroom", "dining room", "home office", "hallway", "garage"}
    )
    explorations = [e for e in episodes if e.kind == "exploration"]
    for episode in tqdm(explorations, desc="stories", unit="episode", disable=not progress):
        rng = random.Random(f"{config.seed}:story:{episode.episode_id}")
        held = episode.episode_id in held_out
        split = "test" if held else scene_split(episode.scene_id, config)
        story = tell(episode, scene(episode), rng)
        made = counting(story, config, rng)
        if made is not None:
            train, qa = made
            if not held:
                out["counting"][split].append(train)
            if qa is not None:  # train split: the demonstration pool of counting_qa (the training stories)
                out["counting_qa"][split].append(qa)
        if len(story.episode.characters) >= 2:
            made = object_path(story, config, rng, room_names)
            if made is not None:
                train, qa = made
                if not held:
                    out["object_path_tracking"][split].append(train)
                if qa is not None:  # train split: the demonstration pool of object_location_qa
                    out["object_location_qa"][split].append(qa)

    summary = CorpusSummary(unseen_activities=sorted(unseen), episodes=len(episodes), held_out=held_out)
    by_id = {e.episode_id: e for e in plans}
    trained = [
        by_id[x.episode_id]
        for name in ("plan_generation", "activity_recognition")
        for x in out.get(name, {}).get("train", [])
    ]
    summary.training_activities = sorted({e.activity for e in trained if e.activity})
    summary.training_programs = sorted(
        {p for e in trained if (p := robothow_program_id(e.scene_source, e.scene_name)) is not None}
    )
    summary.removed_overlaps = _remove_overlaps(out)
    summary.removed_duplicates = _dedupe_evaluation(out)
    for name, splits in out.items():
        for split, examples in splits.items():
            task = "plan_generation" if name.startswith("plan_generation") else name  # evaluation plans too
            # evaluation configs show demonstrations from their training pool, never a validation or test example
            pool = out.get(demonstration_pool(name), {}).get("train", []) if name in EVALUATION_CONFIGS else None
            rng = random.Random(f"{config.seed}:demos:{name}:{split}")
            with_demos(examples, config.demo_count(task), rng, pool=pool)
    return {k: dict(v) for k, v in out.items()}, summary


def _train_texts(examples: Examples) -> tuple[set[str], set[str], set[str]]:
    questions, stories, pairs = set(), set(), set()
    for name in TRAINING_CONFIGS:
        for example in examples.get(name, {}).get("train", []):
            for item in (example, *example.demos):
                questions.add(item.question)
                pairs.add(item.question + item.completion)
                if item.story:
                    stories.add(item.story)
    return questions, stories, pairs


def _remove_overlaps(examples: Examples) -> int:
    """Drop evaluation examples whose question or story is verbatim training text; how many."""
    questions, stories, _ = _train_texts(examples)
    removed = 0
    for splits in examples.values():
        for split in [s for s in splits if s != "train"]:
            kept = [e for e in splits[split] if e.question not in questions and not (e.story and e.story in stories)]
            removed += len(splits[split]) - len(kept)
            splits[split] = kept
    return removed


def _dedupe_evaluation(examples: Examples) -> int:
    """Keep one of identical evaluation examples (the same program planned with several seeds)."""
    removed = 0
    for splits in examples.values():
        for split in [s for s in splits if s != "train"]:
            seen: set[str] = set()
            kept = []
            for example in splits[split]:
                key = example.question + example.completion
                if key not in seen:
                    seen.add(key)
                    kept.append(example)
            removed += len(splits[split]) - len(kept)
            splits[split] = kept
    return removed


def check_leaks(examples: Examples, held_out: dict[str, str] | None = None) -> list[str]:
    """Every way evaluation text leaks into training (empty when there is none).

    A validation or test example leaks when its question, its story, or its question with its answer
    is training text (training examples and their demonstrations), or when one of its demonstrations is
    not where it may come from: the same config and split for a training config, the demonstration pool
    (:func:`demonstration_pool`'s train split) for an evaluation config. An evaluation config's train
    split (its pool) may hold only examples of episodes a training config trains on. ``held_out``
    (episode id -> RobotHow program) names the episodes of held-out programs: an example of a training
    config (any split) or of any train split, or any demonstration, from such an episode is a leak too.
    """
    questions, stories, pairs = _train_texts(examples)
    problems = []
    held_out = held_out or {}
    trained = {e.episode_id for name in TRAINING_CONFIGS for e in examples.get(name, {}).get("train", [])}
    for name, splits in examples.items():
        for split, rows in splits.items():
            for example in rows:
                checked = (example, *example.demos) if name in TRAINING_CONFIGS or split == "train" else example.demos
                for item in checked:
                    if item.episode_id in held_out:
                        what = "its demonstration " if item is not example else ""
                        problems.append(
                            f"{name}/{split} {example.example_id}: {what}{item.example_id} comes from held-out "
                            f"RobotHow program {held_out[item.episode_id]}"
                        )
                if name not in TRAINING_CONFIGS and split == "train" and example.episode_id not in trained:
                    problems.append(
                        f"{name}/train {example.example_id}: a demonstration-pool example from an episode that no "
                        "training config trains on"
                    )
    for name, splits in examples.items():
        pool = None
        if name not in TRAINING_CONFIGS:
            pool = demonstration_pool(name)
            pool_ids = {e.example_id for e in examples.get(pool, {}).get("train", [])}
        for split, rows in splits.items():
            ids = {e.example_id for e in rows} if pool is None else pool_ids
            for example in rows:
                for demo in example.demos:
                    if demo.example_id not in ids:
                        where = "from another split" if pool is None else f"not from its pool {pool}/train"
                        problems.append(
                            f"{name}/{split} {example.example_id}: demonstration {demo.example_id} is {where}"
                        )
                if split == "train":
                    continue
                if example.question in questions:
                    problems.append(f"{name}/{split} {example.example_id}: its question is training text")
                elif example.story and example.story in stories:
                    problems.append(f"{name}/{split} {example.example_id}: its story is a training story")
                elif example.question + example.completion in pairs:
                    problems.append(f"{name}/{split} {example.example_id}: its question and answer are training text")
    return problems


_EXTRA_FIELDS = {
    "counting": [("surface", pa.int64())],
    "counting_qa": [("surface", pa.int64())],
    "object_path_tracking": [("object", pa.int64())],
    "object_location_qa": [("object", pa.int64())],
}


def _schema(name: str) -> pa.Schema:
    """The columns of a config: the base fields, the multiple-choice ones, and the node a story task
    asks about (``surface`` for counting, ``object`` for path tracking and location)."""
    return pa.schema(_BASE_FIELDS + (_MC_FIELDS if name in _MULTIPLE_CHOICE else []) + _EXTRA_FIELDS.get(name, []))


def _read_scene(folder: Path, sid: str) -> dict[str, Any]:
    """A collection's scene graph, or a ``CorpusError`` naming the missing or damaged file."""
    try:
        return read_scene(folder, sid)
    except (OSError, EOFError, ValueError) as err:  # missing, truncated gzip, bad JSON
        path = folder / "scenes" / f"{sid}.json.gz"
        what = "is missing" if isinstance(err, FileNotFoundError) else f"is damaged ({type(err).__name__})"
        raise CorpusError(
            f"{path} {what}: the collection {folder} is incomplete; collect it again (e2wm collect) into a new folder"
        ) from None


def _write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def _inside(path: Path, folder: Path) -> bool:
    return folder in path.parents


def check_output_folder(out: str | Path, episodes_dirs: Folders = ()) -> None:
    """Refuse an ``out`` that building a corpus there would destroy something e2wm did not write.

    ``out`` may be missing, empty, or a corpus e2wm built (``e2wm_corpus.json`` and only what ``build``
    writes: ``README.md`` and folders of parquet files). It must not be, contain or be inside one of the
    ``episodes_dirs`` (the collections being read), and the episodes folders must be collections, not
    corpora. Raises ``CorpusError`` naming the folder and the fix.
    """
    out = Path(out)
    folders = [Path(p) for p in ([episodes_dirs] if isinstance(episodes_dirs, (str, Path)) else episodes_dirs)]
    target = out.resolve()
    for folder in folders:
        source = folder.resolve()
        if target == source:
            raise CorpusError(
                f"--out {out} is the episodes folder {folder}: building there would replace the episodes; "
                "choose another --out"
            )
        if _inside(source, target):
            raise CorpusError(
                f"--out {out} contains the episodes folder {folder}: replacing it would delete the episodes; "
                "choose another --out"
            )
        if _inside(target, source):
            raise CorpusError(f"--out {out} is inside the episodes folder {folder}: choose a folder outside it")
        if (folder / CORPUS_MARKER).is_file():
            raise CorpusError(
                f"{folder} is an e2wm corpus ({CORPUS_MARKER}), not a collection: give --episodes the folders "
                "that `e2wm collect` wrote"
            )
    if out.is_symlink():
        raise CorpusError(f"--out {out} is a symbolic link: give the folder itself (a rebuild replaces the folder)")
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out} is a file: give a folder for the corpus")
    if not out.is_dir():
        return
    entries = sorted(e for e in out.iterdir() if e.name != LOCK_NAME)
    if not entries:
        return
    if not (out / CORPUS_MARKER).is_file():
        raise CorpusError(
            f"--out {out} holds files ({_listed(entries)}) and is not an e2wm corpus (no {CORPUS_MARKER}): e2wm "
            "build replaces only a corpus it built; choose a new or empty folder"
        )
    foreign = [e for e in entries if not _written_by_build(e)]
    if foreign:
        raise CorpusError(
            f"--out {out} is an e2wm corpus, but also holds {_listed(foreign)}, which e2wm build did not write "
            "(a rebuild replaces the whole folder): move them out, or choose another --out"
        )


def _written_by_build(entry: Path) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_file():
        return entry.name in ("README.md", CORPUS_MARKER)
    return entry.is_dir() and all(
        f.is_file() and not f.is_symlink() and f.suffix == ".parquet" for f in entry.iterdir()
    )


def _listed(entries: list[Path], shown: int = 3) -> str:
    names = [e.name + ("/" if e.is_dir() and not e.is_symlink() else "") for e in entries]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _remove_stale_staging(out: Path) -> None:
    """Folders a killed build left beside ``out`` (only called while holding ``out``'s lock)."""
    for pattern in (f".{out.name}.e2wm-new-*", f".{out.name}.e2wm-old-*"):
        for stale in out.parent.glob(pattern):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)


def _episode_splits(
    folders: list[Path], config: TaskConfig, unseen: set[str], held_out: set[str]
) -> dict[str, pa.Table]:
    table, _ = _read_all(folders)
    splits: dict[str, list[int]] = defaultdict(list)
    for index, (eid, sid, activity) in enumerate(
        zip(
            table.column("episode_id").to_pylist(),
            table.column("scene_id").to_pylist(),
            table.column("activity").to_pylist(),
            strict=True,
        )
    ):
        split = "test" if (activity and activity in unseen) or eid in held_out else scene_split(sid, config)
        splits[split].append(index)
    return {split: table.take(indices) for split, indices in splits.items()}


def _scene_tables(examples: Examples, folders: list[Path]) -> dict[str, pa.Table]:
    """The scenes of the evaluation plans (so generated plans can be executed in them), per split."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for name, splits in examples.items():
        if name.startswith("plan_generation_"):
            for split, rows in splits.items():
                wanted[split].update(e.scene_id for e in rows)
    tables = {}
    for split, ids in wanted.items():
        graphs = []
        for sid in sorted(ids):
            folder = next(f for f in folders if (f / "scenes" / f"{sid}.json.gz").exists())
            graphs.append({"scene_id": sid, "graph": json.dumps(_read_scene(folder, sid), separators=(",", ":"))})
        tables[split] = pa.Table.from_pylist(
            graphs, schema=pa.schema([("scene_id", pa.string()), ("graph", pa.string())])
        )
    return tables


def build_corpus(
    episodes_dirs: Folders,
    out: str | Path,
    config: TaskConfig | None = None,
    progress: bool = True,
    repo_id: str = "e2wm/experiences",
) -> CorpusSummary:
    """Build the corpus folder ``out`` from collection folders: ``out`` is the old corpus or the new one, never
    a mix, and nothing e2wm did not write is deleted.

    ``out`` must be missing, empty or a corpus e2wm built (:func:`check_output_folder`); it is locked for
    the run (``e2wm.locking.output_lock``: a second build into it stops at once). The new corpus is written
    into a folder beside ``out`` (``.<name>.e2wm-new-*``) and swapped in (``e2wm.utils.replace_folder``: the
    old corpus renamed away, the new one renamed in, the old one removed last). A failed or interrupted build
    leaves ``out`` as it was; the next build removes what a killed one left beside it.
    """
    config = config or TaskConfig()
    folders, out = _folders(episodes_dirs), Path(out)
    check_output_folder(out, folders)
    with output_lock(out, "e2wm build", remove_if_unused=True):
        check_output_folder(out, folders)  # again, now that no other build can change it
        _remove_stale_staging(out)
        examples, summary = build_examples(folders, config, progress)
        problems = check_leaks(examples, summary.held_out)
        if problems:
            shown = "\n  ".join(problems[:10])
            raise LeakError(f"{len(problems)} evaluation examples leak into training; nothing was written:\n  {shown}")
        try:
            staging = make_new_dir(out.parent, f".{out.name}.e2wm-new-")
        except OSError as err:
            raise CorpusError(explain_write_error(err, out)) from None
        try:
            _write_corpus(staging, out, examples, summary, config, folders, repo_id)
            replace_folder(staging, out)
        except BaseException as err:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(err, OSError):
                raise CorpusError(explain_write_error(err, out)) from None
            raise
    return summary


def _write_corpus(
    staging: Path,
    out: Path,
    examples: Examples,
    summary: CorpusSummary,
    config: TaskConfig,
    folders: list[Path],
    repo_id: str,
) -> None:
    """Every file of the corpus into ``staging`` (``out`` names it in the card and in errors)."""
    files: dict[str, dict[str, str]] = {}
    for name in [*TRAINING_CONFIGS, *EVALUATION_CONFIGS]:
        for split in [*SPLITS, "unseen"]:
            rows = [e.to_row() for e in examples.get(name, {}).get(split, [])]
            if not rows:
                continue
            relative = f"{name}/{split}-00000-of-00001.parquet"
            _write_table(staging / relative, pa.Table.from_pylist(rows, schema=_schema(name)))
            files.setdefault(name, {})[split] = relative
            summary.sizes.setdefault(name, {})[split] = len(rows)
    for split, table in _scene_tables(examples, folders).items():
        relative = f"scenes/{split}-00000-of-00001.parquet"
        _write_table(staging / relative, table)
        files.setdefault("scenes", {})[split] = relative
        summary.sizes.setdefault("scenes", {})[split] = table.num_rows
    for split, table in _episode_splits(folders, config, set(summary.unseen_activities), set(summary.held_out)).items():
        relative = f"episodes/{split}-00000-of-00001.parquet"
        _write_table(staging / relative, table)
        files.setdefault("episodes", {})[split] = relative
        summary.sizes.setdefault("episodes", {})[split] = table.num_rows
    (staging / "README.md").write_text(_card(files, summary, config, folders, repo_id), encoding="utf-8")
    record = {
        "e2wm_version": __version__,
        "task_config": _config_dict(config),
        "sizes": summary.sizes,
        "holdout": _holdout_record(config, summary),
        "training_activities": summary.training_activities,
        "training_programs": summary.training_programs,
    }
    (staging / CORPUS_MARKER).write_text(json.dumps(record, indent=1), encoding="utf-8")


def _holdout_record(config: TaskConfig, summary: CorpusSummary) -> dict[str, Any]:
    """What the corpus held out: the preset (if one was named), the programs, and their episodes."""
    presets = [entry for entry in config.holdout_programs if entry in HOLDOUT_PRESETS]
    return {
        "preset": ", ".join(presets) or None,
        "programs": sorted(config.held_out_programs()),
        "episodes": len(summary.held_out),
        "programs_found": len(set(summary.held_out.values())),
    }


def _config_dict(config: TaskConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)


def _collections(folders: list[Path]) -> list[dict[str, Any]]:
    manifests = [folder / "collect.json" for folder in folders if (folder / "collect.json").is_file()]
    found = []
    for manifest in manifests:
        try:
            found.append(json.loads(manifest.read_text(encoding="utf-8"))["config"])
        except (OSError, ValueError, KeyError):
            continue
    return found


def _card(
    files: dict[str, dict[str, str]], summary: CorpusSummary, config: TaskConfig, folders: list[Path], repo_id: str
) -> str:
    from e2wm._model_cards import render_card

    configs = [
        {
            "name": name,
            "default": name == "plan_generation",
            "splits": [{"split": s, "path": p} for s, p in splits.items()],
        }
        for name, splits in files.items()
    ]
    return render_card(
        "dataset_card.md.jinja",
        repo_id=repo_id,
        configs=configs,
        sizes=summary.sizes,
        training=[c for c in TRAINING_CONFIGS if c in files],
        evaluation=[c for c in EVALUATION_CONFIGS if c in files],
        removed_overlaps=summary.removed_overlaps,
        removed_duplicates=summary.removed_duplicates,
        unseen_activities=summary.unseen_activities,
        episodes=summary.episodes,
        collections=_collections(folders),
        task_config=_config_dict(config),
        holdout=_holdout_record(config, summary),
        version=__version__,
    )
