"""Few-shot prompts for the corpus's evaluation configs: demonstrations from training data only.

The corpus's ``question`` column is an example's prompt without demonstrations; a k-shot prompt is
``header + Σ (demonstration question + answer + "\\n\\n") + question``, the shape the corpus writes
(``header``: the counting instruction, recovered from the row's own prompt).

**Pools.** Demonstrations come from the *train* split only, never from validation or test:

* ``plan_generation_*`` ← ``plan_generation``/train (the training plans: the same question format);
* ``object_path_tracking`` ← its own train split (a training config);
* the multiple-choice configs (``counting_qa``, ``object_location_qa``, ``activity_recognition_qa``,
  ``housework_qa``, ``negation_housework_qa``, ``activity_inference_qa``) ← their own ``train`` split,
  which the corpus builder writes as a demonstration pool only: the same formats built from the
  episodes of the training split that the training configs use (``counting_qa``/train asks the
  ``counting`` training stories, ``object_location_qa``/train the ``object_path_tracking`` ones,
  ``activity_recognition_qa`` and the housework formats the training plans). Nothing trains on them.

**Choice.** For each example, ``k`` demonstrations are drawn from the pool by a random generator
seeded with ``(seed, task, example id)``: the same prompt for every model compared, never chosen by a
model. A pool row is never shown with an example that has the same question, nor, for tasks built
from plans, with an example of the same activity (the demonstration would give the answer away); the
activities come from the corpus's ``episodes`` config.

**k.** The paper's: 2 for plan generation, 4 for counting; 2 for every other task (the number the
paper used for its other generation task; enough to show the answer's shape, short enough for long
story prompts). Zero-shot prompts (``k = 0``) are the question alone, with its header.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from e2wm.tasks.corpus import demonstration_pool

__all__ = [
    "DEFAULT_SHOTS",
    "PLAN_TASKS",
    "demonstration_pool",
    "few_shot_prompt",
    "header_of",
    "parse_shots",
    "pick_demonstrations",
]

#: Demonstrations per prompt, by evaluation config (the headline evaluation).
DEFAULT_SHOTS: dict[str, int] = {
    "housework_qa": 2,
    "negation_housework_qa": 2,
    "activity_inference_qa": 2,
    "activity_recognition_qa": 2,
    "counting_qa": 4,
    "object_location_qa": 2,
    "plan_generation_vanilla_seen": 2,
    "plan_generation_vanilla_unseen": 2,
    "plan_generation_confusing_seen": 2,
    "plan_generation_confusing_unseen": 2,
    "object_path_tracking": 2,
}
#: Configs built from planned episodes: a demonstration never shares the example's activity.
PLAN_TASKS = frozenset(
    {"housework_qa", "negation_housework_qa", "activity_inference_qa", "activity_recognition_qa"}
    | {t for t in DEFAULT_SHOTS if t.startswith("plan_generation_")}
)


def parse_shots(items: Sequence[str], tasks: Sequence[str]) -> dict[str, int]:
    """``k`` per task from ``--shots`` items: ``K`` (every task) or ``TASK=K``; the rest :data:`DEFAULT_SHOTS`."""
    shots = {task: DEFAULT_SHOTS.get(task, 2) for task in tasks}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            k = int(value)
        except ValueError:
            k = -1
        if k < 0:
            raise ValueError(f"--shots expects K or TASK=K with K a whole number ≥ 0, got {item!r}")
        if not sep:
            shots = dict.fromkeys(shots, k)
        elif name not in DEFAULT_SHOTS:
            raise ValueError(f"--shots {item!r}: {name!r} is not an evaluation config of the corpus")
        elif name in shots:
            shots[name] = k
    return shots


def header_of(row: Mapping[str, Any], rows_by_id: Mapping[str, Mapping[str, Any]]) -> str:
    """The text the corpus put before an example's demonstrations (the counting instruction; else "").

    The row's prompt is ``header + demonstrations + question``; the demonstrations are looked up by
    ``demo_ids`` in ``rows_by_id``."""
    prompt, question = row["prompt"], row["question"]
    if not prompt.endswith(question):
        raise ValueError(f"example {row['example_id']}: its prompt does not end with its question")
    body = prompt[: len(prompt) - len(question)]
    missing = [d for d in row.get("demo_ids") or [] if d not in rows_by_id]
    if missing:
        raise ValueError(f"example {row['example_id']}: its demonstration {missing[0]} is not in the corpus")
    shots = "".join(f"{rows_by_id[d]['question']}{rows_by_id[d]['completion']}\n\n" for d in row.get("demo_ids") or [])
    if not body.endswith(shots):
        raise ValueError(
            f"example {row['example_id']}: its prompt does not hold its demonstrations as the corpus writes them"
        )
    return body[: len(body) - len(shots)]


def pick_demonstrations(
    row: Mapping[str, Any],
    pool: Sequence[Mapping[str, Any]],
    k: int,
    task: str,
    seed: int = 0,
    activity_of: Mapping[str, str] | None = None,
) -> list[Mapping[str, Any]]:
    """``k`` pool rows for ``row``, by a generator seeded with ``(seed, task, example id)``; never one with the
    same question, nor (``activity_of``: episode id -> activity, for plan tasks) the same activity."""
    if k <= 0:
        return []
    activity = activity_of.get(row["episode_id"]) if activity_of is not None else None
    rng = random.Random(f"{seed}:{task}:{row['example_id']}")
    chosen: list[Mapping[str, Any]] = []
    for index in rng.sample(range(len(pool)), len(pool)):
        candidate = pool[index]
        if candidate["question"] == row["question"]:
            continue
        if activity is not None and activity_of is not None and activity_of.get(candidate["episode_id"]) == activity:
            continue
        chosen.append(candidate)
        if len(chosen) == k:
            break
    if len(chosen) < k:
        raise ValueError(
            f"{task}: only {len(chosen)} of the {len(pool)} training examples can be shown with "
            f"{row['example_id']} ({k} demonstrations asked): ask for fewer with --shots {task}=N"
        )
    return chosen


def few_shot_prompt(header: str, demonstrations: Sequence[Mapping[str, Any]], question: str) -> str:
    """``header + Σ (question + completion + "\\n\\n") + question``: the corpus's prompt shape."""
    shots = "".join(f"{d['question']}{d['completion']}\n\n" for d in demonstrations)
    return f"{header}{shots}{question}"
