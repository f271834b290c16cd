"""Load a model (and adapter) and run the evaluation suite: what ``e2wm eval`` and the pipeline call."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2wm.evaluation.suite import PlanContext, evaluate_model
from e2wm.evaluation.tasks import EvalTask, tasks_from_corpus, tasks_from_files
from e2wm.experience.goals import Goal

__all__ = ["EvalConfig", "load_model", "plan_context_from_corpus", "run_evaluation"]


@dataclass
class EvalConfig:
    model: str
    out: str
    adapter: str | None = None
    label: str | None = None
    tasks: list[str] = field(default_factory=list)
    task_files: list[str] = field(default_factory=list)
    corpus: str = "e2wm/experiences"
    split: str = "test"
    limit: int | None = None
    batch_size: int = 8
    num_beams: int = 1
    max_new_tokens: int = 64
    metrics: dict[str, str] = field(default_factory=dict)
    perplexity_documents: list[str] = field(default_factory=list)
    perplexity_max_length: int = 800
    dtype: str = "float32"
    trust_remote_code: bool = False
    device: str | None = None
    progress: bool = True


def load_model(
    model: str,
    adapter: str | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    device: str | None = None,
) -> tuple[Any, Any]:
    """A causal LM (Hub id or folder) with an optional peft adapter, in eval mode, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    loaded: Any = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    if adapter:
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(loaded, adapter)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return loaded.to(device).eval(), tokenizer


def plan_context_from_corpus(corpus: str, split: str) -> PlanContext | None:
    """Scene graphs and goals of the corpus's evaluation plans (its ``scenes`` and ``episodes`` configs)."""
    from datasets import get_dataset_config_names

    from e2wm.tasks.corpus import load_corpus

    names = get_dataset_config_names(corpus)
    if "scenes" not in names or "episodes" not in names:
        return None
    scenes = {}
    for rows in load_corpus(corpus, "scenes").values():
        scenes.update({r["scene_id"]: r["graph"] for r in rows})
    goals = {}
    for rows in load_corpus(corpus, "episodes").values():
        goals.update({r["episode_id"]: r["goal"] for r in rows if r["goal"]})
    cache: dict[str, dict[str, Any]] = {}

    def context(scene_id: str, episode_id: str) -> tuple[dict[str, Any], Goal] | None:
        if scene_id not in scenes or episode_id not in goals:
            return None
        if scene_id not in cache:
            cache[scene_id] = json.loads(scenes[scene_id])
        return cache[scene_id], Goal.from_dict(json.loads(goals[episode_id]))

    return context


def _tasks(config: EvalConfig) -> list[EvalTask]:
    tasks: list[EvalTask] = []
    if config.tasks:
        tasks += tasks_from_corpus(config.corpus, config.tasks, config.split, config.limit)
    if config.task_files:
        tasks += tasks_from_files(config.task_files, config.metrics, config.limit)
    return tasks


def run_evaluation(
    config: EvalConfig,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    on_task: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate one model (+ adapter) on the configured tasks; returns its results. ``on_task(name)`` is
    called as each task starts."""
    tasks = _tasks(config)
    if not tasks and not config.perplexity_documents:
        raise ValueError("nothing to evaluate: give --tasks, --task-files, or perplexity documents")
    model, tokenizer = model_and_tokenizer or load_model(
        config.model, config.adapter, config.dtype, config.trust_remote_code, config.device
    )
    context = plan_context_from_corpus(config.corpus, config.split) if config.tasks else None
    label = config.label or (Path(config.adapter).name if config.adapter else "base")
    info = {"model": config.model, "adapter": config.adapter}
    return evaluate_model(
        model,
        tokenizer,
        tasks,
        config.out,
        label,
        batch_size=config.batch_size,
        num_beams=config.num_beams,
        max_new_tokens=config.max_new_tokens,
        perplexity_documents=config.perplexity_documents or None,
        perplexity_max_length=config.perplexity_max_length,
        plan_context=context,
        info=info,
        progress=config.progress,
        on_task=on_task,
    )


def read_documents(path: str | Path, field_name: str = "text") -> list[str]:
    """Documents from a ``.jsonl`` file (``text`` field) or a ``.txt`` file (one per line)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        return [json.loads(line)[field_name] for line in lines if line.strip()]
    return [line for line in lines if line.strip()]


def parse_metrics(pairs: Sequence[str]) -> dict[str, str]:
    """``["counting=accuracy_normalised"]`` → ``{"counting": "accuracy_normalised"}``."""
    out = {}
    for pair in pairs:
        stem, sep, metric = pair.partition("=")
        if not sep or not stem or not metric:
            raise ValueError(f"--metric expects STEM=METRIC, got {pair!r}")
        out[stem] = metric
    return out
