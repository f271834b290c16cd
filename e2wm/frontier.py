"""The learning–forgetting frontier: ``e2wm frontier --recipe R.yaml --out RUN``.

One λ is one point. Following Biderman et al. (2024, "LoRA Learns Less and Forgets Less"), the frontier plots
learning (the embodied gain over the base, few-shot, y) against forgetting (the perplexity change on held-out
general text, x) for every way of limiting forgetting, trained on the same corpus, seed, steps and data order:

* ``lora``: plain LoRA (no control);
* ``ewc``: EWC-LoRA, λ·Σ F⊙ΔW², over a λ grid spanning orders of magnitude, for each Fisher normalization asked;
* ``l2``: the same penalty with F = 1 (L2 on ΔW), over the same grid;
* ``osf``: peft's orthogonal subspace fine-tuning (``peft.tuners.osf``), the library's own forgetting control;
* ``replay``: general text (disjoint from the held-out perplexity text) mixed into the training data at a ratio.

Every point is evaluated on the same tasks and the same held-out text (``evaluate``). The run reuses the
pipeline's stages (model, collection, corpus, Fisher, the base's evaluation) and its points: a point whose
settings equal the pipeline's ``lora`` or ``ewc_lora`` *is* that stage, so a frontier run in a pipeline's run
folder reuses what the pipeline trained and evaluated, and every point is cached and resumable by its fingerprint.

The recipe is a pipeline recipe with a ``frontier`` section (``FrontierConfig``); ``recipes/frontier_quickstart.yaml``.
The output, ``RUN/frontier/``: ``report.md`` (a table and the best setting within a perplexity budget),
``frontier.png``/``.svg`` (aggregate and per task, with intervals and the Pareto front), ``frontier.json``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from e2wm.arguments import RecipeError, from_mapping
from e2wm.pipeline import (
    _EVAL_KEYS,
    PIPELINE,
    PipelineError,
    Recipe,
    Stage,
    _Run,
    evaluate_label,
    general_text,
    run_stages,
    train_adapter,
    training_arguments,
)

__all__ = ["METHODS", "FrontierConfig", "FrontierPoint", "frontier_points", "frontier_stages", "run_frontier"]

METHODS = ("lora", "ewc", "l2", "osf", "replay")
_GRID = [0.01, 0.1, 1.0, 10.0, 100.0]


@dataclass
class FrontierConfig:
    """Which points the frontier trains, and the perplexity budget it picks the best setting within."""

    methods: list[str] = field(
        default_factory=lambda: list(METHODS), metadata={"help": "which of lora, ewc, l2, osf, replay to train"}
    )
    ewc_lambdas: list[float] = field(default_factory=lambda: list(_GRID), metadata={"help": "λ grid of EWC-LoRA"})
    normalizations: list[str] | None = field(
        default=None,
        metadata={"help": "Fisher normalizations to sweep λ for (EWC); default: the train section's"},
    )
    l2_lambdas: list[float] = field(default_factory=lambda: list(_GRID), metadata={"help": "λ grid of L2 on ΔW"})
    osf_effective_rank: float | None = field(
        default=None, metadata={"help": "OSF's preserved rank or fraction (default: peft's, half)"}
    )
    replay_ratios: list[float] = field(
        default_factory=lambda: [0.25], metadata={"help": "replay rows per training row"}
    )
    budget: float = field(default=2.0, metadata={"help": "perplexity budget: the largest increase allowed, in %"})

    def __post_init__(self) -> None:
        from e2wm.ewc import NORMALIZATIONS

        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f"frontier.methods must name some of {', '.join(METHODS)}, got {self.methods}")
        for name in ("ewc_lambdas", "l2_lambdas", "replay_ratios"):
            values = getattr(self, name)
            if any(v <= 0 for v in values):
                raise ValueError(
                    f"frontier.{name} must be positive numbers (plain LoRA is the lora method), got {values}"
                )
        bad = sorted(set(self.normalizations or ()) - set(NORMALIZATIONS))
        if bad:
            raise ValueError(f"frontier.normalizations: unknown {bad}; choose from {', '.join(NORMALIZATIONS)}")
        if self.budget < 0:
            raise ValueError(f"frontier.budget is a perplexity increase in %, ≥ 0; got {self.budget}")


@dataclass(frozen=True)
class FrontierPoint:
    """One trained setting: its ``label`` (its folder under adapters/ and eval/), ``method``, the setting shown
    (``"λ = 1, global_mean"``) and the training fields that differ from the recipe's (``variant``)."""

    label: str
    method: str
    setting: str
    variant: tuple[tuple[str, Any], ...]
    needs_fisher: bool = False


def _number(value: float) -> str:
    return f"{value:g}"


def frontier_config(recipe: Recipe) -> FrontierConfig:
    return from_mapping(FrontierConfig, recipe.frontier, f"{recipe.path}: frontier")


def frontier_points(recipe: Recipe, run_folder: str | Path) -> list[FrontierPoint]:
    """The points of the recipe's frontier. Plain LoRA, and the EWC point with the recipe's own λ and
    normalization, are the pipeline's ``lora`` and ``ewc_lora``."""
    config = frontier_config(recipe)
    out = Path(run_folder)
    fisher, replay = str(out / "fisher"), str(out / "general_text" / "replay.jsonl")
    _, pipeline_ewc, _ = training_arguments(recipe, "x", "m", "c", penalty="ewc", fisher=fisher)
    points = []
    variant: tuple[tuple[str, Any], ...]
    if "lora" in config.methods:
        points.append(FrontierPoint("lora", "lora", "no control", (("penalty", "none"), ("ewc_lambda", 0.0))))
    if "ewc" in config.methods:
        for norm in config.normalizations or [pipeline_ewc.fisher_normalization]:
            for lam in config.ewc_lambdas:
                same = lam == pipeline_ewc.ewc_lambda and norm == pipeline_ewc.fisher_normalization
                label = "ewc_lora" if same else f"ewc_{norm}_l{_number(lam)}"
                variant = (("penalty", "ewc"), ("fisher", fisher), ("ewc_lambda", lam), ("fisher_normalization", norm))
                points.append(FrontierPoint(label, "ewc", f"λ = {_number(lam)}, {norm}", variant, needs_fisher=True))
    if "l2" in config.methods:
        for lam in config.l2_lambdas:
            variant = (("penalty", "l2"), ("ewc_lambda", lam))
            points.append(FrontierPoint(f"l2_l{_number(lam)}", "l2", f"λ = {_number(lam)}", variant))
    if "osf" in config.methods:
        variant = (("penalty", "none"), ("ewc_lambda", 0.0), ("peft_method", "osf"),
                   ("osf_effective_rank", config.osf_effective_rank))  # fmt: skip
        shown = (
            "peft default rank" if config.osf_effective_rank is None else f"rank {_number(config.osf_effective_rank)}"
        )
        points.append(FrontierPoint("osf", "osf", shown, variant))
    if "replay" in config.methods:
        for ratio in config.replay_ratios:
            variant = (("penalty", "none"), ("ewc_lambda", 0.0), ("replay_text", replay), ("replay_ratio", ratio))
            points.append(FrontierPoint(f"replay_r{_number(ratio)}", "replay", f"ratio {_number(ratio)}", variant))
    return points


def frontier_stages(recipe: Recipe, run_folder: str | Path) -> tuple[tuple[Stage, ...], list[FrontierPoint]]:
    """The stages of a frontier run: the pipeline's up to the base's evaluation, then a training and an
    evaluation per point (the pipeline's own for ``lora`` and ``ewc_lora``), then the frontier report."""
    pipeline = {stage.name: stage for stage in PIPELINE}
    points = frontier_points(recipe, run_folder)
    stages = [pipeline[name] for name in ("model", "collect", "corpus", "fisher", "eval_base")]
    evals = ["eval_base"]
    for point in points:
        if point.label in ("lora", "ewc_lora"):
            stages += [pipeline[f"train_{point.label}"], pipeline[f"eval_{point.label}"]]
            evals.append(f"eval_{point.label}")
            continue
        # the Fisher stage also writes the replay pool (the general text between its documents and the held-out)
        reads_fisher = point.needs_fisher or dict(point.variant).get("replay_text")
        upstream = ("model", "corpus", "fisher") if reads_fisher else ("model", "corpus")
        train = Stage(
            f"train:{point.label}", ("seed", "train"), upstream, (f"adapters/{point.label}",), point.variant,
            run=functools.partial(_train_point, point=point),
        )  # fmt: skip
        evaluate = Stage(
            f"eval:{point.label}", _EVAL_KEYS, (train.name, "corpus"), (f"eval/{point.label}",),
            run=functools.partial(_evaluate_point, point=point),
        )  # fmt: skip
        stages += [train, evaluate]
        evals.append(evaluate.name)
    report = Stage(
        "frontier", ("name", "notes", "frontier"), tuple(evals), ("frontier",),
        run=functools.partial(_frontier_report, points=points),
    )  # fmt: skip
    return (*stages, report), points


def _train_point(run: _Run, point: FrontierPoint) -> None:
    general_text(run)  # the replay pool, also for run folders made before it existed
    train_adapter(run, point.label, dict(point.variant))


def _evaluate_point(run: _Run, point: FrontierPoint) -> None:
    evaluate_label(run, point.label, str(run.path("adapters", point.label)))


def _frontier_report(run: _Run, points: list[FrontierPoint]) -> None:
    from e2wm.evaluation.frontier import write_frontier_report

    report = write_frontier_report(
        run.path("frontier"),
        run.path("eval"),
        [{"label": p.label, "method": p.method, "setting": p.setting, "variant": dict(p.variant)} for p in points],
        budget=frontier_config(run.recipe).budget,
        title=f"e2wm frontier: {run.recipe.name}",
        notes=run.recipe.notes,
    )
    run.log(f"  frontier: {report}")


def check_frontier_recipe(recipe: Recipe) -> None:
    """Build every point's training settings once: a wrong value fails before the first stage."""
    try:
        for point in frontier_points(recipe, "placeholder"):
            training_arguments(recipe, "placeholder", "placeholder", "placeholder", **dict(point.variant))
    except (RecipeError, ValueError) as err:
        raise PipelineError(str(err)) from None


def run_frontier(
    recipe: Recipe, out: str | Path, log: Callable[[str], None] = tqdm.write, progress: bool = True
) -> Path:
    """Train and evaluate every point of the recipe's frontier in ``out`` (resuming); returns the report's path."""
    check_frontier_recipe(recipe)
    stages, _ = frontier_stages(recipe, out)
    run_stages(recipe, out, stages, log, progress, title="e2wm frontier")
    return Path(out) / "frontier" / "report.md"


def with_frontier(recipe: Recipe, out: str | Path, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """``stages`` (a pipeline's) followed by the frontier's own, for a pipeline recipe with a ``frontier`` section."""
    names = {stage.name for stage in stages}
    extra, _ = frontier_stages(recipe, out)
    return (*stages, *(stage for stage in extra if stage.name not in names))
