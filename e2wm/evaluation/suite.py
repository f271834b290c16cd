"""Run evaluation tasks (and perplexity) on a model, one task at a time, resumable.

Each finished task is written to ``OUT/<label>/<task>.json`` (metric, value, n, settings and the
predictions); an interrupted evaluation started again skips the tasks already written. All results
of a label are gathered in ``OUT/<label>/results.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from e2wm.evaluation.generation import generate_answers
from e2wm.evaluation.metrics import path_score, rouge_l
from e2wm.evaluation.perplexity import perplexity
from e2wm.evaluation.plans import execute_plan
from e2wm.evaluation.scoring import choose
from e2wm.evaluation.tasks import EvalTask
from e2wm.experience.goals import Goal
from e2wm.utils import atomic_write_text

__all__ = ["PlanContext", "evaluate_model", "run_task"]

#: Looks up (scene graph, goal) for an example's scene and episode ids, for plans executed in the world.
PlanContext = Callable[[str, str], tuple[dict[str, Any], Goal] | None]


def run_task(
    model: Any,
    tokenizer: Any,
    task: EvalTask,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int = 64,
    plan_context: PlanContext | None = None,
) -> dict[str, Any]:
    """One task's result: ``{"metric", "value", "n", "settings", "extra", "predictions"}``."""
    examples = task.examples
    if not examples:
        raise ValueError(f"task {task.name} has no examples")
    extra: dict[str, float] = {}
    if task.kind == "multiple_choice":
        scoring = "calibrated" if task.metric == "accuracy_calibrated" else "normalised"
        picks = choose(
            model, tokenizer, [e["prompt"] for e in examples], [e["choices"] for e in examples], scoring, batch_size
        )
        predictions = [e["choices"][p] for e, p in zip(examples, picks, strict=True)]
        value = sum(p == e["answer"] for p, e in zip(predictions, examples, strict=True)) / len(examples)
    else:
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
            value = rouge_l(predictions, references)
        elif task.metric == "path_score":
            value = sum(path_score(p, r) for p, r in zip(predictions, references, strict=True)) / len(examples)
        else:
            value = sum(
                p.strip().lower() == r.strip().lower() for p, r in zip(predictions, references, strict=True)
            ) / len(examples)
        if task.metric == "rouge_l" and plan_context is not None:
            runs = []
            for prediction, example in zip(predictions, examples, strict=True):
                context = plan_context(example.get("scene_id", ""), example.get("episode_id", ""))
                if context is not None:
                    runs.append(execute_plan(prediction, context[0], context[1]))
            if runs:
                extra = {
                    "plan_executable": sum(r.executable for r in runs) / len(runs),
                    "plan_reached": sum(r.reached for r in runs) / len(runs),
                    "plans_executed": float(len(runs)),
                }
    settings = {**task.settings, "source": task.source, "kind": task.kind, "batch_size": batch_size}
    if task.kind == "generation":
        settings.update(num_beams=num_beams, max_new_tokens=max_new_tokens)
    return {
        "metric": task.metric,
        "value": value,
        "n": len(examples),
        "settings": settings,
        "extra": extra,
        "predictions": [{"id": e.get("id"), "prediction": p} for e, p in zip(examples, predictions, strict=True)],
    }


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
) -> dict[str, Any]:
    """Run every task not done yet for ``label``; returns (and writes) ``results.json``'s content.
    ``on_task(name)`` is called as each task starts (a caller's own progress display)."""
    folder = Path(out) / label
    folder.mkdir(parents=True, exist_ok=True)
    names = [t.name for t in tasks] + (["perplexity"] if perplexity_documents else [])
    bar = tqdm(total=len(names), desc=f"evaluate {label}", unit="task", disable=not progress)
    results: dict[str, Any] = {}
    for task in tasks:
        path = folder / f"{task.name}.json"
        if not path.exists():
            if on_task:
                on_task(task.name)
            began = time.perf_counter()
            result = run_task(model, tokenizer, task, batch_size, num_beams, max_new_tokens, plan_context)
            result["seconds"] = round(time.perf_counter() - began, 2)
            atomic_write_text(path, json.dumps(result, indent=1))
        results[task.name] = {k: v for k, v in json.loads(path.read_text()).items() if k != "predictions"}
        bar.update(1)
    if perplexity_documents:
        path = folder / "perplexity.json"
        if not path.exists():
            if on_task:
                on_task("perplexity")
            ppl = perplexity(
                model, tokenizer, perplexity_documents, max_length=perplexity_max_length, batch_size=batch_size
            )
            result = {
                "metric": "perplexity",
                "value": ppl.perplexity,
                "n": ppl.documents,
                "settings": {"max_length": perplexity_max_length, "tokens": ppl.tokens},
                "extra": {"nll": ppl.nll, "perplexity_e": ppl.perplexity, "perplexity_2": ppl.perplexity_base2},
            }
            atomic_write_text(path, json.dumps(result, indent=1))
        results["perplexity"] = json.loads(path.read_text())
        bar.update(1)
    bar.close()
    summary = {"label": label, **(info or {}), "tasks": results}
    atomic_write_text(folder / "results.json", json.dumps(summary, indent=1))
    return summary
