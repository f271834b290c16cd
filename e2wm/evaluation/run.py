"""Load a model (and adapter) and run the evaluation suite: what ``e2wm eval`` and the pipeline call."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2wm.evaluation.distributed import Processes
from e2wm.evaluation.provenance import model_provenance
from e2wm.evaluation.suite import PlanContext, evaluate_model
from e2wm.evaluation.tasks import EvalTask, tasks_from_corpus, tasks_from_files
from e2wm.experience.goals import Goal
from e2wm.models import fast_dtype

__all__ = ["EvalConfig", "load_model", "parse_metrics", "plan_context_from_corpus", "read_documents", "run_evaluation"]


@dataclass
class EvalConfig:
    """What ``e2wm eval`` (and each evaluation of the pipeline) evaluates, on what, and where the results go."""

    model: str = field(metadata={"help": "base model: a Hub id, a local folder, or e2wm:tiny / e2wm:gemma-3-270m"})
    out: str = field(metadata={"help": "output folder: OUT/<label>/<task>.json and OUT/<label>/results.json"})
    adapter: str | None = field(default=None, metadata={"help": "a peft adapter (folder or Hub id) on the model"})
    label: str | None = field(
        default=None, metadata={"help": "name of this run in the results (default: the adapter's, or base)"}
    )
    tasks: list[str] = field(default_factory=list, metadata={"help": "evaluation configs of the corpus"})
    task_files: list[str] = field(
        default_factory=list, metadata={"help": "files: the paper's JSON Lines, or bAbI .txt"}
    )
    corpus: str = field(default="e2wm/experiences", metadata={"help": "corpus folder or Hub dataset id"})
    split: str = field(default="test", metadata={"help": "corpus split"})
    limit: int | None = field(default=None, metadata={"help": "at most N examples per generation task (default: all)"})
    mc_limit: int | None = field(
        default=None, metadata={"help": "at most N examples per multiple-choice task (default: all; scoring is cheap)"}
    )
    shots: list[str | int] = field(
        default_factory=list,
        metadata={
            "help": "demonstrations per prompt, from training data: K for every task or TASK=K (several allowed; "
            "default: 2 for plans, 4 for counting, 2 for the others)"
        },
    )
    zero_shot: bool = field(
        default=True, metadata={"help": "also evaluate each task without demonstrations, as <task>_zero_shot"}
    )
    demo_seed: int = field(
        default=0, metadata={"help": "seed of the demonstrations' choice (the same for every model)"}
    )
    batch_size: int = field(default=8, metadata={"help": "sequences per forward pass"})
    num_beams: int = field(default=1, metadata={"help": "1: greedy; the paper used 4 for plans"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest generated answer, in tokens"})
    metric: list[str] = field(
        default_factory=list, metadata={"help": "metric for a task file, as STEM=METRIC (several allowed)"}
    )
    perplexity_text: str | None = field(
        default=None, metadata={"help": "general text for perplexity: .jsonl with 'text', or .txt (one per line)"}
    )
    perplexity_max_length: int = field(default=800, metadata={"help": "truncate each document (the paper: 800)"})
    dtype: str = field(
        default="float32",
        metadata={
            "help": "model dtype; fast: bfloat16 where the device computes it natively (a GPU with bf16, a CPU with "
            "AVX512-BF16 or AMX), else float32",
            "choices": ["float32", "bfloat16", "float16", "fast"],
        },
    )
    quantization: str | None = field(
        default=None, metadata={"help": "load the model with bitsandbytes", "choices": ["8bit", "4bit"]}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "allow the model's own code (off by default)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1… (default: cuda when available)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    @property
    def shot_items(self) -> list[str]:
        """``shots`` as the flag's text (a recipe may write whole numbers; ``__post_init__`` converts them)."""
        return [str(s) for s in self.shots]

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_beams", "max_new_tokens", "perplexity_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.perplexity_max_length < 2:
            raise ValueError("--perplexity-max-length must be at least 2 (one predicted token)")
        for name in ("limit", "mc_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                flag = name.replace("_", "-")
                raise ValueError(f"--{flag} must be at least 1 (or unset for every example), got {getattr(self, name)}")
        from e2wm.evaluation.demonstrations import parse_shots

        # a recipe's `shots: [2]` is a list of whole numbers: read as the flag's text, "2"
        self.shots = [str(s) if isinstance(s, int) and not isinstance(s, bool) else s for s in self.shots]
        if not all(isinstance(s, str) for s in self.shots):
            raise ValueError(f"--shots expects K or TASK=K with K a whole number ≥ 0, got {self.shots!r}")
        parse_shots(self.shot_items, self.tasks)  # fail now on a malformed K or TASK=K
        parse_metrics(self.metric)  # fail now on a malformed STEM=METRIC
        check_task_names(self.tasks)

    @property
    def metrics(self) -> dict[str, str]:
        return parse_metrics(self.metric)


def load_model(config: EvalConfig, device: str | None = None) -> tuple[Any, Any]:
    """The model (+ adapter) of ``config`` in eval mode, and its tokenizer (``e2wm.models.load_causal_lm``),
    on ``config.device``, else ``device`` (a distributed rank's), else cuda when available."""
    from e2wm.models import load_causal_lm

    return load_causal_lm(
        config.model,
        adapter=config.adapter,
        dtype=fast_dtype(config.dtype, config.device or device),
        quantization=config.quantization,
        trust_remote_code=config.trust_remote_code,
        device=config.device or device or "auto",
    )


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


def known_tasks() -> list[str]:
    """Every task name ``--tasks`` accepts: the corpus's evaluation configs and EAI's benchmark tasks."""
    from e2wm.evaluation.tasks import CORPUS_TASKS, EAI_TASKS

    return [*CORPUS_TASKS, *EAI_TASKS]


def check_task_names(names: Sequence[str]) -> None:
    """Refuse unknown task names, suggesting the closest known one."""
    import difflib

    known = known_tasks()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known tasks: {', '.join(known)}"
            raise ValueError(f"unknown evaluation task {name!r}{hint}")


def _tasks(config: EvalConfig) -> list[EvalTask]:
    tasks: list[EvalTask] = []
    if config.tasks:
        tasks += tasks_from_corpus(
            config.corpus,
            config.tasks,
            config.split,
            config.limit,
            config.mc_limit,
            config.shot_items,
            config.zero_shot,
            config.demo_seed,
        )
    if config.task_files:
        tasks += tasks_from_files(config.task_files, config.metrics, config.limit, config.mc_limit)
    return tasks


def run_evaluation(
    config: EvalConfig,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    on_task: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate one model (+ adapter) on the configured tasks; returns its results. ``on_task(name)`` is
    called as each task starts. Under ``accelerate launch`` every process runs this; each scores a share
    of every task and the main process writes (:class:`~e2wm.evaluation.distributed.Processes`)."""
    processes = Processes.current()
    tasks = _tasks(config)
    if not tasks and not config.perplexity_text:
        raise ValueError("nothing to evaluate: give --tasks, --task-files, or perplexity documents")
    documents = read_documents(config.perplexity_text) if config.perplexity_text else []
    model, tokenizer = model_and_tokenizer or load_model(config, processes.device)
    from e2wm.evaluation.tasks import CORPUS_TASKS

    # plans executed in the world need the corpus's scenes; an EAI-only evaluation needs no corpus at all
    corpus_tasks = any(task in CORPUS_TASKS for task in config.tasks)
    context = plan_context_from_corpus(config.corpus, config.split) if corpus_tasks else None
    label = config.label or (Path(config.adapter).name if config.adapter else "base")
    # the dtype the model ran in ("fast" resolved on this machine): results in another dtype are recomputed
    dtype = fast_dtype(config.dtype, config.device or processes.device)
    info = model_provenance(config.model, config.adapter, dtype, config.quantization)
    return evaluate_model(
        model,
        tokenizer,
        tasks,
        config.out,
        label,
        batch_size=config.batch_size,
        num_beams=config.num_beams,
        max_new_tokens=config.max_new_tokens,
        perplexity_documents=documents or None,
        perplexity_max_length=config.perplexity_max_length,
        plan_context=context,
        info=info,
        progress=config.progress,
        on_task=on_task,
        processes=processes,
    )


def read_documents(path: str | Path, field_name: str = "text") -> list[str]:
    """Documents from a ``.jsonl`` file (``text`` field) or a ``.txt`` file (one per line), at least one; errors
    name the file and line (``e2wm.ewc.text.read_local_documents``, the reader ``e2wm fisher`` uses)."""
    from e2wm.ewc.text import read_local_documents

    documents = read_local_documents(path, field_name)
    if not documents:
        raise ValueError(f"{path}: holds no documents")
    return documents


def parse_metrics(pairs: Sequence[str]) -> dict[str, str]:
    """``["counting=accuracy_normalised"]`` → ``{"counting": "accuracy_normalised"}``."""
    out = {}
    for pair in pairs:
        stem, sep, metric = pair.partition("=")
        if not sep or not stem or not metric:
            raise ValueError(f"--metric expects STEM=METRIC, got {pair!r}")
        out[stem] = metric
    return out
