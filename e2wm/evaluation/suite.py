"""Run evaluation tasks (and perplexity) on a model, one task at a time, resumable.

Each finished task is written to ``OUT/<label>/<task>.json``: metric, value, n, settings, the
per-example scores with the example ids (``per_example``, what the report's paired intervals resample),
the predictions, and the settings that determine the result (``provenance``,
:mod:`e2wm.evaluation.provenance`). An evaluation started again reuses a task's file only when its
provenance is the current one (an interrupted run resumes; another model, adapter, corpus, cap or
number of demonstrations recomputes, and a warning says why). All results of a label are gathered in
``OUT/<label>/results.json``.

Under ``accelerate launch`` each process scores every n-th example of a task and the shares are
gathered (:class:`~e2wm.evaluation.distributed.Processes`); only the main process writes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from e2wm.evaluation.distributed import Processes
from e2wm.evaluation.generation import generate_answers
from e2wm.evaluation.metrics import path_score, rouge_l_scores
from e2wm.evaluation.perplexity import Perplexity, perplexity
from e2wm.evaluation.plans import execute_plan
from e2wm.evaluation.provenance import differences, perplexity_provenance, task_provenance
from e2wm.evaluation.scoring import choose
from e2wm.evaluation.tasks import EvalTask
from e2wm.experience.goals import Goal
from e2wm.utils import atomic_write_text

__all__ = ["PlanContext", "evaluate_model", "run_task"]

logger = logging.getLogger(__name__)

#: Looks up (scene graph, goal) for an example's scene and episode ids, for plans executed in the world.
PlanContext = Callable[[str, str], tuple[dict[str, Any], Goal] | None]


def _score_share(
    model: Any,
    tokenizer: Any,
    task: EvalTask,
    examples: list[dict[str, Any]],
    batch_size: int,
    num_beams: int,
    max_new_tokens: int,
    plan_context: PlanContext | None,
) -> list[dict[str, Any]]:
    """One record per example: ``id``, ``prediction``, ``score`` (and, for plans that can be executed in
    their scene, ``plan_executable`` and ``plan_reached``)."""
    if not examples:
        return []
    if task.kind == "multiple_choice":
        scoring = "calibrated" if task.metric == "accuracy_calibrated" else "normalised"
        picks = choose(
            model, tokenizer, [e["prompt"] for e in examples], [e["choices"] for e in examples], scoring, batch_size
        )
        predictions = [e["choices"][p] for e, p in zip(examples, picks, strict=True)]
        scores = [float(p == e["answer"]) for p, e in zip(predictions, examples, strict=True)]
        return [
            {"id": e.get("id"), "prediction": p, "score": s}
            for e, p, s in zip(examples, predictions, scores, strict=True)
        ]
    predictions = generate_answers(
        model,
        tokenizer,
        [e["prompt"] for e in examples],
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        batch_size=batch_size,
    )
    references = [e["reference"] for e in examples]
    if task.metric == "rouge_l":
        scores = rouge_l_scores(predictions, references)
    elif task.metric == "path_score":
        scores = [path_score(p, r) for p, r in zip(predictions, references, strict=True)]
    else:
        scores = [float(p.strip().lower() == r.strip().lower()) for p, r in zip(predictions, references, strict=True)]
    records = []
    for example, prediction, score in zip(examples, predictions, scores, strict=True):
        record: dict[str, Any] = {"id": example.get("id"), "prediction": prediction, "score": float(score)}
        if task.metric == "rouge_l" and plan_context is not None:
            context = plan_context(example.get("scene_id", ""), example.get("episode_id", ""))
            if context is not None:
                run = execute_plan(prediction, context[0], context[1])
                record.update(plan_executable=float(run.executable), plan_reached=float(run.reached))
        records.append(record)
    return records


def _eai_per_example(result: dict[str, Any]) -> dict[str, list[Any]]:
    """EAI's per-task records as per-example scores on the tasks EAI's evaluator scores: ``score`` its success
    (0/1), ``seen_activities`` / ``unseen_activities`` the same split by whether the task's activity was trained
    on (None on the other side, or when unknown), ``e2wm_success`` e2wm's own verdict on the same plan."""
    scored = [r for r in result.get("predictions", []) if r.get("eai", {}).get("scored")]
    success = [float(r["eai"]["success"]) for r in scored]
    seen = [r.get("activity_seen") for r in scored]
    return {
        "id": [r["id"] for r in scored],
        "score": success,
        "seen_activities": [s if flag is True else None for s, flag in zip(success, seen, strict=True)],
        "unseen_activities": [s if flag is False else None for s, flag in zip(success, seen, strict=True)],
        "e2wm_success": [float(r.get("e2wm", {}).get("success", False)) for r in scored],
    }


def run_task(
    model: Any,
    tokenizer: Any,
    task: EvalTask,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int = 64,
    plan_context: PlanContext | None = None,
    processes: Processes | None = None,
) -> dict[str, Any]:
    """One task's result: ``{"metric", "value", "n", "settings", "extra", "per_example", "predictions"}``.

    ``value`` is the mean of the per-example scores (``per_example["score"]``, with ``per_example["id"]``)."""
    if task.kind == "eai_action_sequencing":  # its own answers, scorer and records (e2wm.evaluation.eai_suite)
        from e2wm.evaluation.eai_suite import run_eai_task

        result = run_eai_task(model, tokenizer, task, batch_size, num_beams)
        result.setdefault("per_example", _eai_per_example(result))
        return result
    processes = processes or Processes()
    examples = task.examples
    if not examples:
        raise ValueError(f"task {task.name} has no examples")
    records = processes.gather(
        _score_share(
            model,
            tokenizer,
            task,
            processes.share(examples),
            batch_size,
            num_beams,
            max_new_tokens,
            plan_context,
        )
    )
    per_example: dict[str, list[Any]] = {"id": [r["id"] for r in records], "score": [r["score"] for r in records]}
    extra: dict[str, float] = {}
    executed = [r for r in records if "plan_executable" in r]
    if executed:
        per_example["plan_executable"] = [r.get("plan_executable") for r in records]
        per_example["plan_reached"] = [r.get("plan_reached") for r in records]
        extra = {
            "plan_executable": sum(r["plan_executable"] for r in executed) / len(executed),
            "plan_reached": sum(r["plan_reached"] for r in executed) / len(executed),
            "plans_executed": float(len(executed)),
        }
    settings = {**task.settings, "source": task.source, "kind": task.kind, "batch_size": batch_size}
    if task.kind == "generation":
        settings.update(num_beams=num_beams, max_new_tokens=max_new_tokens)
    return {
        "metric": task.metric,
        "value": sum(per_example["score"]) / len(records),
        "n": len(records),
        "settings": settings,
        "extra": extra,
        "per_example": per_example,
        "predictions": [{"id": r["id"], "prediction": r["prediction"]} for r in records],
    }


def _perplexity(
    model: Any, tokenizer: Any, documents: Sequence[str], max_length: int, batch_size: int, processes: Processes
) -> Perplexity:
    """Perplexity over every scorable document (two tokens or more), each scored by one process."""
    scorable = [d for d in documents if len(tokenizer(d)["input_ids"][:max_length]) >= 2]
    if not scorable:
        raise ValueError("no perplexity document has two tokens or more to score")
    share = processes.share(scorable)
    mine = (
        perplexity(model, tokenizer, share, max_length=max_length, batch_size=batch_size).per_document if share else ()
    )
    per_document = processes.gather(list(mine))
    total, count = sum(n for n, _ in per_document), sum(t for _, t in per_document)
    return Perplexity(total / count, count, len(per_document), tuple(per_document))


def _reusable(path: Path, provenance: dict[str, Any]) -> str | None:
    """None when ``path`` holds a result with this provenance, else why it must be (re)computed."""
    if not path.exists():
        return "absent"
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("provenance")
    except (OSError, ValueError, AttributeError):
        return "unreadable"
    changed = differences(stored, provenance)
    return "; ".join(changed) if changed else None


def evaluate_model(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[EvalTask],
    out: str | Path,
    label: str,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int = 64,
    perplexity_documents: Sequence[str] | None = None,
    perplexity_max_length: int = 800,
    plan_context: PlanContext | None = None,
    info: dict[str, Any] | None = None,
    progress: bool = True,
    on_task: Callable[[str], None] | None = None,
    processes: Processes | None = None,
) -> dict[str, Any]:
    """Run every task whose result is absent or stale for ``label``; returns (and writes) ``results.json``'s
    content. ``info``: what identifies the model (``model``, ``adapter``, their weight fingerprints, dtype:
    :func:`~e2wm.evaluation.provenance.model_provenance`), recorded with every result and compared on
    reuse. ``on_task(name)`` is called as each task starts (a caller's own progress display)."""
    processes = processes or Processes.current()
    folder = Path(out) / label
    if processes.is_main:
        folder.mkdir(parents=True, exist_ok=True)
    names = [t.name for t in tasks] + (["perplexity"] if perplexity_documents else [])
    bar = tqdm(total=len(names), desc=f"evaluate {label}", unit="task", disable=not progress or not processes.is_main)
    results: dict[str, Any] = {}

    def due(name: str, provenance: dict[str, Any]) -> bool:
        path = folder / f"{name}.json"
        reason = processes.broadcast(_reusable(path, provenance) if processes.is_main else None)
        if reason not in (None, "absent") and processes.is_main:
            logger.warning("%s/%s: recomputing %s: %s", label, name, path, reason)
        if reason is not None and on_task and processes.is_main:
            on_task(name)
        return reason is not None

    def keep(name: str, result: dict[str, Any] | None) -> None:
        if processes.is_main:
            path = folder / f"{name}.json"
            if result is not None:
                atomic_write_text(path, json.dumps(result, indent=1))
            results[name] = {k: v for k, v in json.loads(path.read_text()).items() if k != "predictions"}
        bar.update(1)

    for task in tasks:
        generation = (
            {"num_beams": num_beams, "max_new_tokens": max_new_tokens} if task.kind != "multiple_choice" else None
        )
        provenance = task_provenance(task, info, generation)
        result = None
        if due(task.name, provenance):
            began = time.perf_counter()
            result = run_task(model, tokenizer, task, batch_size, num_beams, max_new_tokens, plan_context, processes)
            result["seconds"] = round(time.perf_counter() - began, 2)
            result["provenance"] = provenance
        keep(task.name, result)
    if perplexity_documents:
        provenance = perplexity_provenance(list(perplexity_documents), perplexity_max_length, info)
        result = None
        if due("perplexity", provenance):
            began = time.perf_counter()
            ppl = _perplexity(model, tokenizer, perplexity_documents, perplexity_max_length, batch_size, processes)
            result = {
                "metric": "perplexity",
                "value": ppl.perplexity,
                "n": ppl.documents,
                "settings": {"max_length": perplexity_max_length, "tokens": ppl.tokens},
                "extra": {"nll": ppl.nll, "perplexity_e": ppl.perplexity, "perplexity_2": ppl.perplexity_base2},
                "per_document": {"nll": [n for n, _ in ppl.per_document], "tokens": [t for _, t in ppl.per_document]},
                "seconds": round(time.perf_counter() - began, 2),
                "provenance": provenance,
            }
        keep("perplexity", result)
    bar.close()
    summary: dict[str, Any] = {}
    if processes.is_main:
        summary = {"label": label, **(info or {}), "processes": processes.count, "tasks": results}
        atomic_write_text(folder / "results.json", json.dumps(summary, indent=1))
    return processes.broadcast(summary)
