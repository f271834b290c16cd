"""Evaluation tasks: from the corpus's evaluation configs, the paper's released files, or bAbI files.

An :class:`EvalTask` is a name, a kind (``multiple_choice`` or ``generation``), a metric, and its
examples (``prompt`` plus ``choices``/``answer`` or ``reference``). Metrics follow the paper:

* multiple choice: accuracy, with *calibrated* scoring for housework QA (and its negation) and
  activity inference, *length-normalised* scoring for the others;
* plan generation: Rouge-L (and, when the scene and goal are known, plans executed in the world);
* object path tracking: the longest common contiguous run of rooms;
* bAbI and other short answers: exact match.

Corpus tasks are evaluated few-shot (demonstrations from the training split,
:mod:`e2wm.evaluation.demonstrations`: the headline, named after the config) and zero-shot
(``<config>_zero_shot``). ``limit`` caps generation tasks, ``mc_limit`` multiple-choice tasks; each
task's ``settings`` record the cap, the split's size, the number of demonstrations and the variant.

The paper's files are JSON Lines (though named ``.json``): ``{"input", "ref"}`` for generation,
``{"input", "answer", "answer_list"}`` for multiple choice; the kind is inferred from the keys, the
task is named after the file's stem, and the metric is chosen by a flag or by the file name, as the
paper's scripts did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CORPUS_TASKS",
    "EAI_TASKS",
    "EvalFileError",
    "EvalTask",
    "metric_for",
    "tasks_from_corpus",
    "tasks_from_files",
]

#: Evaluation configs of the corpus and their metric.
CORPUS_TASKS: dict[str, str] = {
    "housework_qa": "accuracy_calibrated",
    "negation_housework_qa": "accuracy_calibrated",
    "activity_inference_qa": "accuracy_calibrated",
    "activity_recognition_qa": "accuracy_normalised",
    "counting_qa": "accuracy_normalised",
    "object_location_qa": "accuracy_normalised",
    "plan_generation_vanilla_seen": "rouge_l",
    "plan_generation_vanilla_unseen": "rouge_l",
    "plan_generation_confusing_seen": "rouge_l",
    "plan_generation_confusing_unseen": "rouge_l",
    "object_path_tracking": "path_score",
}
#: Tasks of the Embodied Agent Interface benchmark (e2wm.evaluation.eai), accepted beside the corpus's
#: configs: name -> prompt mode (EAI's prompt and JSON, or e2wm's plan prompt). Kind ``eai_action_sequencing``.
EAI_TASKS: dict[str, str] = {"eai_action_sequencing": "eai", "eai_action_sequencing_e2wm": "e2wm"}
METRICS = ("accuracy_calibrated", "accuracy_normalised", "rouge_l", "path_score", "exact_match")


class EvalFileError(ValueError):
    """An evaluation file is malformed (the message names the file and line)."""


@dataclass
class EvalTask:
    name: str
    kind: str  # "multiple_choice" or "generation"
    metric: str
    examples: list[dict[str, Any]]
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def metric_for(name: str, kind: str) -> str:
    """The paper's metric for a task named ``name`` (by its file name, as its scripts chose)."""
    lowered = name.lower()
    if kind == "multiple_choice":
        calibrated = any(key in lowered for key in ("housework", "negation", "inference"))
        return "accuracy_calibrated" if calibrated else "accuracy_normalised"
    if "plan" in lowered:
        return "rouge_l"
    if "track" in lowered or "path" in lowered:
        return "path_score"
    return "exact_match"


def _kind(metric: str) -> str:
    return "multiple_choice" if metric.startswith("accuracy") else "generation"


def tasks_from_corpus(
    corpus: str,
    names: Sequence[str],
    split: str = "test",
    limit: int | None = None,
    mc_limit: int | None = None,
    shots: Sequence[str] = (),
    zero_shot: bool = True,
    demo_seed: int = 0,
) -> list[EvalTask]:
    """Evaluation tasks from the corpus (a local folder or a Hub id) and its configs ``names``; the
    :data:`EAI_TASKS` come from the benchmark, marked seen or unseen by the corpus's training plans.

    ``limit`` caps generation tasks (the first N examples), ``mc_limit`` multiple-choice tasks (default:
    the whole split). Each config is evaluated with ``k`` demonstrations from training data
    (:mod:`e2wm.evaluation.demonstrations`; ``shots``: ``K`` or ``TASK=K`` items, default the paper's k)
    as the task named after the config (the headline), and, when ``zero_shot`` and ``k > 0``, without
    demonstrations too, as ``<config>_zero_shot``."""
    from e2wm.evaluation.demonstrations import parse_shots
    from e2wm.tasks.corpus import demonstration_pool, load_corpus

    unknown = [n for n in names if n not in CORPUS_TASKS and n not in EAI_TASKS]
    if unknown:
        raise ValueError(
            f"unknown evaluation task {unknown[0]!r}; the corpus has: {', '.join(CORPUS_TASKS)}; "
            f"EAI's: {', '.join(EAI_TASKS)}"
        )
    ks = parse_shots(shots, [n for n in names if n in CORPUS_TASKS])
    activities: dict[str, str] | None = None
    tasks = []
    for name in names:
        if name in EAI_TASKS:
            from e2wm.evaluation.eai_suite import eai_eval_task

            tasks.append(eai_eval_task(name, EAI_TASKS[name], corpus, limit))
            continue
        data = load_corpus(corpus, name)
        if split not in data:
            raise ValueError(f"{corpus}: config {name!r} has no {split!r} split (it has {', '.join(data)})")
        if split == "train":
            raise ValueError(
                f"{corpus}: the train split is training data (and the demonstrations' pool): evaluate on test or validation"
            )
        metric = CORPUS_TASKS[name]
        kind = _kind(metric)
        cap = mc_limit if kind == "multiple_choice" else limit
        every = data[split].to_list()
        rows = every[:cap]
        k = ks[name]
        pool, activities, header = _demonstrations(corpus, name, data, rows, k, activities)
        settings = {"config": name, "split": split, "cap": cap, "available": len(every), "demo_seed": demo_seed}
        variants = [(name, k, True)] + ([(f"{name}_zero_shot", 0, False)] if zero_shot and k > 0 else [])
        for task_name, shots_here, headline in variants:
            examples = [
                _corpus_example(row, kind, header[row["example_id"]], pool, shots_here, name, demo_seed, activities)
                for row in rows
            ]
            tasks.append(
                EvalTask(
                    task_name,
                    kind,
                    metric,
                    examples,
                    source=f"{corpus}:{name}/{split}",
                    settings={
                        **settings,
                        "shots": shots_here,
                        "headline": headline,
                        "demo_pool": f"{demonstration_pool(name)}/train" if shots_here else None,
                    },
                )
            )
    return tasks


def _demonstrations(
    corpus: str,
    name: str,
    data: Any,
    rows: list[dict[str, Any]],
    k: int,
    activities: dict[str, str] | None,
) -> tuple[list[dict[str, Any]], dict[str, str] | None, dict[str, str]]:
    """The pool of ``name`` (its training rows), the activities of plan episodes (loaded once), and each
    row's header (the text the corpus put before its demonstrations)."""
    from e2wm.evaluation.demonstrations import PLAN_TASKS, demonstration_pool, header_of
    from e2wm.tasks.corpus import load_corpus

    pool_name = demonstration_pool(name)
    pool_data = data if pool_name == name else load_corpus(corpus, pool_name)
    if k > 0 and "train" not in pool_data:
        raise ValueError(
            f"{corpus}: config {pool_name!r} has no train split to draw {name}'s demonstrations from (corpora "
            f"built before e2wm wrote demonstration pools lack it): rebuild the corpus with `e2wm build`, or "
            f"evaluate without demonstrations with --shots {name}=0"
        )
    pool = pool_data["train"].to_list() if "train" in pool_data else []
    by_id: dict[str, Any] = {}
    if any(row.get("demo_ids") for row in rows):  # the corpus's own demonstrations: look them up to cut them off
        by_id = {r["example_id"]: r for source in (pool_data, data) for part in source.values() for r in part}
    headers = {row["example_id"]: header_of(row, by_id) for row in rows}
    if k > 0 and name in PLAN_TASKS and activities is None:
        from datasets import get_dataset_config_names

        activities = {}
        if "episodes" in get_dataset_config_names(corpus):
            for episodes in load_corpus(corpus, "episodes").values():
                activities.update(zip(episodes["episode_id"], episodes["activity"], strict=True))
    return pool, activities, headers


def _corpus_example(
    row: dict[str, Any],
    kind: str,
    header: str,
    pool: list[dict[str, Any]],
    shots: int,
    task: str,
    seed: int,
    activities: dict[str, str] | None,
) -> dict[str, Any]:
    from e2wm.evaluation.demonstrations import PLAN_TASKS, few_shot_prompt, pick_demonstrations

    demos = pick_demonstrations(row, pool, shots, task, seed, activities if task in PLAN_TASKS else None)
    example = {
        "prompt": few_shot_prompt(header, demos, row["question"]),
        "id": row["example_id"],
        "episode_id": row["episode_id"],
        "scene_id": row["scene_id"],
        "demo_ids": [d["example_id"] for d in demos],
    }
    if kind == "multiple_choice":
        example.update(choices=row["choices"], answer=row["answer"])
    else:
        example["reference"] = row["completion"].strip()
    return example


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise EvalFileError(f"{path}: cannot read the file ({err.strerror})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise EvalFileError(f"{path}:{number}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict):
            raise EvalFileError(f"{path}:{number}: each line must be a JSON object")
        rows.append((number, row))
    if not rows:
        raise EvalFileError(f"{path}: the file holds no examples")
    return rows


def tasks_from_files(
    paths: Sequence[str | Path],
    metrics: dict[str, str] | None = None,
    limit: int | None = None,
    mc_limit: int | None = None,
) -> list[EvalTask]:
    """Tasks from the paper's JSON Lines files or bAbI ``.txt`` files (``metrics``: stem -> metric).
    ``limit`` caps generation tasks, ``mc_limit`` multiple-choice ones; the prompts are the files' own
    (the paper's already hold their demonstrations)."""
    from e2wm.tasks.babi import BabiFormatError, read_babi

    metrics = metrics or {}
    tasks = []
    for raw in paths:
        path = Path(raw)
        name = path.stem
        if path.suffix == ".txt":
            try:
                babi = read_babi(path)
            except BabiFormatError as err:
                raise EvalFileError(str(err)) from None
            examples = [
                {"prompt": e["prompt"], "reference": e["answer"], "id": f"{name}-{i}"} for i, e in enumerate(babi)
            ]
            settings = {"cap": limit, "available": len(examples), "shots": None, "headline": True}
            tasks.append(
                EvalTask(name, "generation", metrics.get(name, "exact_match"), examples[:limit], str(path), settings)
            )
            continue
        rows = _read_jsonl(path)
        first = rows[0][1]
        kind = "multiple_choice" if "answer_list" in first else "generation" if "ref" in first else None
        if kind is None:
            raise EvalFileError(
                f"{path}:{rows[0][0]}: expected 'input' with 'ref' (generation) or 'answer' and 'answer_list' (multiple choice)"
            )
        examples = []
        for number, row in rows:
            if not isinstance(row.get("input"), str):
                raise EvalFileError(f"{path}:{number}: 'input' must be a string")
            if kind == "generation":
                if not isinstance(row.get("ref"), str):
                    raise EvalFileError(f"{path}:{number}: a generation line needs a string 'ref'")
                examples.append({"prompt": row["input"], "reference": row["ref"], "id": f"{name}-{number}"})
            else:
                options, answer = row.get("answer_list"), row.get("answer")
                if not isinstance(options, list) or not all(isinstance(o, str) for o in options) or len(options) < 2:
                    raise EvalFileError(f"{path}:{number}: 'answer_list' must list two or more strings")
                if answer not in options:
                    raise EvalFileError(f"{path}:{number}: 'answer' {answer!r} is not in 'answer_list'")
                examples.append(
                    {"prompt": row["input"], "choices": options, "answer": answer, "id": f"{name}-{number}"}
                )
        metric = metrics.get(name) or metric_for(name, kind)
        if metric not in METRICS:
            raise EvalFileError(f"{path}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        cap = mc_limit if kind == "multiple_choice" else limit
        settings = {"cap": cap, "available": len(examples), "shots": None, "headline": True}
        tasks.append(EvalTask(name, kind, metric, examples[:cap], source=str(path), settings=settings))
    return tasks
