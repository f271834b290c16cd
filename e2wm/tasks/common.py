"""What every task shares: the example row, task settings, deterministic splits, names and few-shot prompts.

Every example is a trl prompt/completion row plus metadata:

* ``prompt``, ``completion`` (the completion starts with a space: ``" Walk to kitchen. Grab plate."``);
* ``task`` (the config name), ``weight`` (the task's loss weight), ``episode_id``, ``scene_id``;
* ``example_id`` (unique, deterministic), ``question`` (the prompt without its demonstrations),
  ``story`` (the narrated story of story tasks, else ""), ``demo_ids`` (the examples shown as
  demonstrations: from the same split for training configs, from the train split, the demonstration
  pool, for evaluation configs);
* multiple-choice rows also carry ``choices`` and ``answer`` (one of the choices).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EAI_PROGRAM_IDS",
    "HOLDOUT_PRESETS",
    "PAPER_WEIGHTS",
    "SPLITS",
    "Example",
    "TaskConfig",
    "activity_split",
    "join_words",
    "names_for",
    "robothow_program_id",
    "scene_split",
    "stable_fraction",
    "with_demos",
]

#: The paper's loss weights for the training tasks.
PAPER_WEIGHTS = {"plan_generation": 1.0, "activity_recognition": 0.7, "counting": 1.0, "object_path_tracking": 1.0}
SPLITS = ("train", "validation", "test")
#: The RobotHow programs of the Embodied Agent Interface benchmark's VirtualHome action sequencing
#: (Li et al., NeurIPS 2024; ``virtualhome_eval/resources/virtualhome/id2task.json`` in the eai-eval
#: 1.0.5 wheel): 342 of the 518 programs e2wm collects from, named as EAI names them.
EAI_PROGRAM_IDS = frozenset(
    """
3_1 6_1 7_1 11_1 12_2 15_2 16_2 21_2 23_1 26_1 27_2 31_1 38_1 46_1 57_1 59_1 60_1 70_1 71_2 74_1
80_1 84_1 85_2 86_1 87_2 91_2 93_1 93_2 96_1 98_1 99_2 101_2 102_1 113_1 113_2 115_2 117_1 120_1
124_1 125_2 134_1 137_1 137_2 149_1 150_2 152_2 153_2 154_1 154_2 156_1 158_1 160_1 161_1 163_1
170_1 171_2 173_1 175_2 176_1 180_1 180_2 181_1 181_2 183_2 188_1 190_1 192_1 195_1 196_2 197_2
198_1 201_1 201_2 203_2 204_2 205_1 208_2 211_1 214_1 220_2 221_2 222_1 223_2 225_2 229_1 231_2
232_1 232_2 234_1 241_1 241_2 242_1 244_2 258_2 259_1 263_1 264_1 265_2 268_1 269_2 279_2 286_2
287_1 287_2 291_1 292_1 297_1 297_2 298_2 299_1 300_1 305_2 307_2 310_1 310_2 311_1 313_2 317_2
321_1 323_2 327_2 329_1 331_2 332_2 339_1 341_1 342_2 343_2 345_1 349_1 352_1 360_1 363_2 368_1
373_1 377_2 379_2 381_1 383_1 383_2 384_1 385_2 387_1 388_1 388_2 390_2 392_1 392_2 394_2 397_1
403_1 406_2 407_1 409_2 411_1 415_1 416_1 417_1 417_2 419_1 419_2 429_1 429_2 430_1 430_2 431_1
432_1 433_1 436_1 437_1 437_2 438_1 440_1 442_1 442_2 443_2 445_1 446_2 447_2 449_1 451_1 453_2
454_2 455_1 456_2 459_1 462_2 463_2 469_2 473_1 474_2 475_2 478_1 479_2 481_2 482_2 484_1 487_1
488_2 490_1 491_2 496_1 497_1 499_1 502_1 503_1 503_2 504_2 508_2 509_2 510_1 511_1 517_1 528_1
532_1 540_1 544_1 548_2 549_2 553_1 553_2 562_1 563_1 567_2 570_1 580_1 585_1 589_1 594_2 595_1
600_1 601_2 604_2 609_2 612_1 616_1 617_2 622_1 624_2 627_1 628_1 650_2 657_1 660_1 662_1 670_2
672_1 674_2 684_2 688_1 688_2 689_1 693_2 696_1 699_1 703_2 705_1 708_1 710_1 710_2 715_2 718_1
719_2 721_2 729_2 737_1 737_2 741_1 742_1 746_1 750_2 755_2 757_2 762_2 764_2 772_1 773_1 780_1
783_1 787_1 787_2 788_1 793_2 795_1 798_2 803_2 805_1 806_1 812_1 813_2 814_1 815_2 819_1 821_1
824_1 826_1 835_2 837_2 850_1 850_2 856_1 856_2 861_2 864_2 874_1 874_2 875_1 878_2 896_2 897_2
910_1 910_2 911_1 928_2 932_2 941_2 953_1 954_2 960_2 961_1 962_1 963_2 974_1 975_2 976_1 976_2
986_2 988_1 995_2 996_2 1003_2 1004_2 1027_2 1035_1 1049_1 1057_1 1064_1 1068_1 1070_1 1073_1 1083_2
1088_1
""".split()  # noqa: SIM905 - 342 ids read better as text than as a 342-line literal
)
#: Named hold-outs for :attr:`TaskConfig.holdout_programs`.
HOLDOUT_PRESETS: dict[str, frozenset[str]] = {"eai": EAI_PROGRAM_IDS}
_PROGRAM_ID = re.compile(r"^(?:file)?(\d+_\d+)$")
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
    holdout_programs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "RobotHow programs kept out of every training config: program ids (27_2 or file27_2) "
            "or a preset (eai: the 342 programs of EAI's VirtualHome action sequencing)"
        },
    )
    """RobotHow programs kept out of every training config and demonstration: program ids (``"27_2"``
    or ``"file27_2"``) and preset names (:data:`HOLDOUT_PRESETS`; ``"eai"``: EAI's 342 programs); a
    single string is one entry. Their episodes (plans and explorations) go to the test split of the
    evaluation configs only."""

    def __post_init__(self) -> None:
        if self.style not in ("e2wm", "paper"):
            raise ValueError(f"TaskConfig.style must be 'e2wm' or 'paper', got {self.style!r}")
        holdout = [self.holdout_programs] if isinstance(self.holdout_programs, str) else list(self.holdout_programs)
        for entry in holdout:
            if not isinstance(entry, str) or not (entry in HOLDOUT_PRESETS or _PROGRAM_ID.match(entry)):
                raise ValueError(
                    f"TaskConfig.holdout_programs: {entry!r} is neither a RobotHow program id (e.g. '27_2' or "
                    f"'file27_2') nor a preset ({', '.join(HOLDOUT_PRESETS)})"
                )
        object.__setattr__(self, "holdout_programs", holdout)
        for name in ("validation_fraction", "test_fraction", "unseen_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"TaskConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("TaskConfig.validation_fraction + test_fraction must leave room for training")

    def weight(self, task: str) -> float:
        return self.weights.get(task, 1.0)

    def held_out_programs(self) -> frozenset[str]:
        """The held-out RobotHow program ids, as the RobotHow cache names them (``file27_2``)."""
        ids = [p for entry in self.holdout_programs for p in HOLDOUT_PRESETS.get(entry, [entry])]
        return frozenset(f"file{_PROGRAM_ID.match(p).group(1)}" for p in ids)  # type: ignore[union-attr]

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


def robothow_program_id(scene_source: str, scene_name: str) -> str | None:
    """The RobotHow program an episode comes from (``file27_2``), or None for other scenes.

    Episodes of RobotHow scenes are named after their program (:class:`~e2wm.experience.episode.Episode`
    ``scene_name``), plans and explorations alike."""
    return scene_name if scene_source == "robothow" and _PROGRAM_ID.match(scene_name) else None


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


def with_demos(
    examples: list[Example], count: int, rng: random.Random, pool: list[Example] | None = None
) -> list[Example]:
    """Give each example ``count`` demonstrations drawn from ``pool``, by default the *other* examples of the
    same list (the caller passes one split at a time, so demonstrations never cross splits); an evaluation
    config passes its training pool, so its prompts never show a validation or test example."""
    pool = examples if pool is None else pool
    if count <= 0 or len(pool) < 2:
        return examples
    for example in examples:
        chosen: list[Example] = []
        tries = 0
        while len(chosen) < min(count, len(pool) - 1) and tries < 20 * count:
            tries += 1
            other = pool[rng.randrange(len(pool))]
            if other is not example and other.question != example.question and all(other is not c for c in chosen):
                chosen.append(other)
        example.demos = chosen
    return examples
