"""What every task shares: the example row, task settings, deterministic splits, names and few-shot prompts.

Every example is a trl prompt/completion row plus metadata:

* ``prompt``, ``completion`` (the completion starts with a space: ``" Walk to kitchen. Grab plate."``);
* ``task`` (the config name), ``weight`` (the task's loss weight), ``episode_id``, ``scene_id``;
* ``example_id`` (unique, deterministic), ``question`` (the prompt without its demonstrations),
  ``story`` (the narrated story of story tasks, else ""), ``demo_ids`` (the examples shown as
  demonstrations: always from the same split);
* multiple-choice rows also carry ``choices`` and ``answer`` (one of the choices).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PAPER_WEIGHTS",
    "SPLITS",
    "Example",
    "TaskConfig",
    "activity_split",
    "join_words",
    "names_for",
    "scene_split",
    "stable_fraction",
    "with_demos",
]

#: The paper's loss weights for the training tasks.
PAPER_WEIGHTS = {"plan_generation": 1.0, "activity_recognition": 0.7, "counting": 1.0, "object_path_tracking": 1.0}
SPLITS = ("train", "validation", "test")
CHARACTER_NAMES = ("Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack")


@dataclass(frozen=True)
class TaskConfig:
    """How examples are written: the prompt style, demonstrations, splits and weights."""

    style: str = "e2wm"  # "e2wm" (varied phrasing) or "paper" (the paper's prompt shapes)
    seed: int = 0
    demos: dict[str, int] = field(
        default_factory=lambda: {"plan_generation": 2, "counting": 4, "counting_qa": 4}
    )  # the paper: 2 for plans, 4 for counting; 0 where not listed
    weights: dict[str, float] = field(default_factory=lambda: dict(PAPER_WEIGHTS))
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    unseen_fraction: float = 0.2  # of activities, held out of every training split

    def __post_init__(self) -> None:
        if self.style not in ("e2wm", "paper"):
            raise ValueError(f"TaskConfig.style must be 'e2wm' or 'paper', got {self.style!r}")
        for name in ("validation_fraction", "test_fraction", "unseen_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"TaskConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("TaskConfig.validation_fraction + test_fraction must leave room for training")

    def weight(self, task: str) -> float:
        return self.weights.get(task, 1.0)

    def demo_count(self, task: str) -> int:
        return self.demos.get(task, 0)


@dataclass(eq=False)
class Example:
    """One row before it is written (see the module docstring)."""

    task: str
    question: str
    completion: str
    episode_id: str
    scene_id: str
    example_id: str
    weight: float = 1.0
    story: str = ""
    header: str = ""  # printed once before the demonstrations (the counting instruction)
    choices: list[str] | None = None
    answer: str | None = None
    demos: list[Example] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        shots = "".join(f"{demo.question}{demo.completion}\n\n" for demo in self.demos)
        return f"{self.header}{shots}{self.question}"

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "prompt": self.prompt,
            "completion": self.completion,
            "task": self.task,
            "weight": self.weight,
            "episode_id": self.episode_id,
            "scene_id": self.scene_id,
            "example_id": self.example_id,
            "question": self.question,
            "story": self.story,
            "demo_ids": [demo.example_id for demo in self.demos],
        }
        if self.choices is not None:
            row["choices"] = list(self.choices)
            row["answer"] = self.answer
        row.update(self.extra)
        return row


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (not on Python's hash seed)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def scene_split(scene_id: str, config: TaskConfig) -> str:
    """train / validation / test, decided by the scene alone (all of a scene's examples go together)."""
    x = stable_fraction("scene", config.seed, scene_id)
    if x < config.test_fraction:
        return "test"
    if x < config.test_fraction + config.validation_fraction:
        return "validation"
    return "train"


def activity_split(activities: Sequence[str], config: TaskConfig) -> set[str]:
    """The activities held out of training (the "unseen" ones): a fixed fraction, by a stable hash."""
    ordered = sorted(set(activities), key=lambda a: stable_fraction("activity", config.seed, a.lower()))
    count = round(len(ordered) * config.unseen_fraction)
    if config.unseen_fraction > 0 and len(ordered) > 1:
        count = max(count, 1)
    return set(ordered[:count])


def join_words(items: Sequence[str], conjunction: str = "and") -> str:
    """``["a", "b", "c"]`` → ``"a, b, and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} {conjunction} {items[1]}"
    return ", ".join(items[:-1]) + f", {conjunction} {items[-1]}"


def names_for(count: int, rng: random.Random) -> list[str]:
    """Distinct first names for the characters of a story."""
    return rng.sample(CHARACTER_NAMES, count)


def with_demos(examples: list[Example], count: int, rng: random.Random) -> list[Example]:
    """Give each example ``count`` demonstrations drawn from the *other* examples of the same list
    (the caller passes one split at a time, so demonstrations never cross splits)."""
    if count <= 0 or len(examples) < 2:
        return examples
    for _index, example in enumerate(examples):
        chosen: list[Example] = []
        tries = 0
        while len(chosen) < min(count, len(examples) - 1) and tries < 20 * count:
            tries += 1
            other = examples[rng.randrange(len(examples))]
            if other is not example and other.question != example.question and all(other is not c for c in chosen):
                chosen.append(other)
        example.demos = chosen
    return examples
