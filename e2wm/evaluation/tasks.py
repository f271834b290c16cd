"""Evaluation tasks: from the corpus's evaluation configs, the paper's released files, or bAbI files.

An :class:`EvalTask` is a name, a kind (``multiple_choice`` or ``generation``), a metric, and its
examples (``prompt`` plus ``choices``/``answer`` or ``reference``). Metrics follow the paper:

* multiple choice: accuracy, with *calibrated* scoring for housework QA (and its negation) and
  activity inference, *length-normalised* scoring for the others;
* plan generation: Rouge-L (and, when the scene and goal are known, plans executed in the world);
* object path tracking: the longest common contiguous run of rooms;
* bAbI and other short answers: exact match.

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

__all__ = ["CORPUS_TASKS", "EvalFileError", "EvalTask", "metric_for", "tasks_from_corpus", "tasks_from_files"]

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


def tasks_from_corpus(
    corpus: str, names: Sequence[str], split: str = "test", limit: int | None = None
) -> list[EvalTask]:
    """Evaluation tasks from the corpus (a local folder or a Hub id) and its configs ``names``."""
    from e2wm.tasks.corpus import load_corpus

    tasks = []
    for name in names:
        if name not in CORPUS_TASKS:
            raise ValueError(f"unknown evaluation task {name!r}; the corpus has: {', '.join(CORPUS_TASKS)}")
        data = load_corpus(corpus, name)
        if split not in data:
            raise ValueError(f"{corpus}: config {name!r} has no {split!r} split (it has {', '.join(data)})")
        rows = data[split].to_list()[:limit]
        metric = CORPUS_TASKS[name]
        kind = "multiple_choice" if metric.startswith("accuracy") else "generation"
        examples = []
        for row in rows:
            example = {
                "prompt": row["prompt"],
                "id": row["example_id"],
                "episode_id": row["episode_id"],
                "scene_id": row["scene_id"],
            }
            if kind == "multiple_choice":
                example.update(choices=row["choices"], answer=row["answer"])
            else:
                example["reference"] = row["completion"].strip()
            examples.append(example)
        tasks.append(
            EvalTask(
                name,
                kind,
                metric,
                examples,
                source=f"{corpus}:{name}/{split}",
                settings={"split": split, "limit": limit},
            )
        )
    return tasks


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
    paths: Sequence[str | Path], metrics: dict[str, str] | None = None, limit: int | None = None
) -> list[EvalTask]:
    """Tasks from the paper's JSON Lines files or bAbI ``.txt`` files (``metrics``: stem -> metric)."""
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
            tasks.append(
                EvalTask(name, "generation", metrics.get(name, "exact_match"), examples[:limit], source=str(path))
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
        tasks.append(EvalTask(name, kind, metric, examples[:limit], source=str(path)))
    return tasks
