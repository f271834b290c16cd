"""EAI action sequencing in the evaluation suite: the task, the model's answers, the result.

``e2wm eval --tasks eai_action_sequencing`` (EAI's prompts and JSON) or ``eai_action_sequencing_e2wm``
(e2wm's plan prompt): :func:`eai_eval_task` builds the task (``limit`` keeps the first N tasks, taking
activities in turn), :func:`run_eai_task` generates, scores with EAI's evaluator and in e2wm's world
(:func:`e2wm.evaluation.eai.score_answers`) and returns the suite's result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from e2wm.evaluation.eai import (
    MODES,
    e2wm_prompt,
    load_eai_tasks,
    score_answers,
    seen_activities,
    training_programs,
)
from e2wm.evaluation.eai_evaluator import EAI_HASH_SEED

__all__ = ["MAX_NEW_TOKENS", "eai_eval_task", "generate_eai_answers", "run_eai_task"]


def eai_eval_task(
    name: str,
    mode: str,
    corpus: str | None = None,
    limit: int | None = None,
    shots: int = 2,
    num_proc: int | None = None,
) -> Any:
    """The ``EvalTask`` (kind ``eai_action_sequencing``) of EAI's tasks in ``mode``; with a ``corpus``,
    each example says whether its activity (and its program) was in that corpus's training plans.
    ``num_proc`` processes run EAI's evaluator (default: up to 8 CPU cores). The task's settings
    ``max_new_tokens`` (default :data:`MAX_NEW_TOKENS` of the mode) bounds each answer."""
    from e2wm.evaluation.tasks import EvalTask

    if mode not in MODES:
        raise ValueError(f"unknown EAI prompt mode {mode!r}; use one of {', '.join(MODES)}")
    tasks = load_eai_tasks(limit)
    seen: tuple[set[str], set[str]] | None = None
    note = None
    if corpus is not None:
        try:
            seen = seen_activities(corpus), training_programs(corpus)
        except (FileNotFoundError, ValueError) as err:
            note = str(err)
    examples = [
        {
            "id": t.id,
            "activity": t.activity,
            "prompt": t.prompt if mode == "eai" else e2wm_prompt(t, shots),
            "activity_seen": None if seen is None else t.activity in seen[0],
            "program_in_training": None if seen is None else f"file{t.id}" in seen[1],
        }
        for t in tasks
    ]
    num_proc = num_proc or min(8, os.cpu_count() or 1)
    settings: dict[str, Any] = {
        "mode": mode,
        "limit": limit,
        "eai_eval": "1.0.5",
        "num_proc": num_proc,
        "hash_seed": EAI_HASH_SEED,
    }
    if mode == "e2wm":
        settings["shots"] = shots
    if corpus is not None:
        settings["seen_from"] = corpus if note is None else None
        if note:
            settings["seen_unknown"] = note
    return EvalTask(
        name, "eai_action_sequencing", "eai_success_rate", examples, source="eai-eval 1.0.5", settings=settings
    )


#: Tokens a model may write per answer: EAI's JSON is longer than e2wm's sentences.
MAX_NEW_TOKENS = {"eai": 512, "e2wm": 256}


def generate_eai_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    mode: str,
    num_beams: int = 1,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
) -> list[str]:
    """The model's answers: e2wm's plan is one line (:func:`generate_answers`); EAI's JSON spans lines
    and ends with the first ``}``. ``max_new_tokens`` defaults to :data:`MAX_NEW_TOKENS` of the mode."""
    from e2wm.evaluation.generation import generate_answers

    budget = max_new_tokens or MAX_NEW_TOKENS[mode]
    if mode == "eai":  # a JSON object over several lines, up to and including its "}"
        return generate_answers(model, tokenizer, prompts, budget, num_beams, batch_size, stop="}", keep_stop=True)
    return generate_answers(model, tokenizer, prompts, budget, num_beams, batch_size)  # one line of sentences


def run_eai_task(model: Any, tokenizer: Any, task: Any, batch_size: int = 8, num_beams: int = 1) -> dict[str, Any]:
    """Generate, score with EAI's evaluator and in e2wm's world: the suite's result for the task
    (``metric``: EAI's success rate; ``extra``: executability, each error type, e2wm's verdicts;
    ``predictions``: one record per task)."""
    mode = task.settings["mode"]
    tasks = load_eai_tasks(ids=[e["id"] for e in task.examples])
    budget = task.settings.get("max_new_tokens") or MAX_NEW_TOKENS[mode]
    prompts = [e["prompt"] for e in task.examples]
    answers = generate_eai_answers(model, tokenizer, prompts, mode, num_beams, batch_size, budget)
    seen = {e["activity"]: e["activity_seen"] for e in task.examples if e["activity_seen"] is not None}
    programs = {f"file{e['id']}" for e in task.examples if e["program_in_training"]}
    known = any(e["activity_seen"] is not None for e in task.examples)
    scored = score_answers(
        tasks,
        answers,
        mode,
        activity_seen=seen if known else None,
        program_seen=programs if known else None,
        num_proc=task.settings.get("num_proc", 1),
        hash_seed=task.settings.get("hash_seed", EAI_HASH_SEED),
    )
    eai, mine = scored["eai"], scored["e2wm"]
    extra = {
        "eai_executability": eai["executability"],
        **{f"eai_{key}": eai[key] for key in ("parsing", "hallucination", "predicate_argument_number")},
        **{f"eai_{key}": eai[key] for key in ("wrong_order", "missing_step", "affordance_error", "additional_step")},
        "eai_left_out": float(eai["left_out"]),
        "e2wm_success_rate": mine["success_rate"],
        "e2wm_executability": mine["executability"],
        "verdicts_differ": float(scored["disagreements"]["count"]),
    }
    if known:
        for label, flag in (("seen", True), ("unseen", False)):
            group = [r for r in scored["records"] if r["eai"]["scored"] and r["activity_seen"] is flag]
            extra[f"eai_success_rate_{label}_activities"] = (
                sum(r["eai"]["success"] for r in group) / len(group) if group else None
            )
            extra[f"n_{label}_activities"] = float(len(group))
    settings = {**task.settings, "source": task.source, "kind": task.kind, "batch_size": batch_size,
                "num_beams": num_beams, "max_new_tokens": budget}  # fmt: skip
    return {
        "metric": task.metric,
        "value": eai["success_rate"] if eai["success_rate"] is not None else 0.0,
        "n": eai["n"],
        "settings": settings,
        "extra": extra,
        "eai_summary": scored["eai_summary"],
        "disagreements": scored["disagreements"],
        "eai_defects": scored["eai_defects"],
        "predictions": scored["records"],
    }
