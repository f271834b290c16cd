"""Train an EWC-LoRA adapter from a recipe: the entry of ``e2wm train``, ``accelerate launch -m e2wm.train``
and every training of ``e2wm pipeline`` (one parser, one builder of model, datasets and trainer).

    # offline, on a CPU, in about a minute (builds a tiny corpus and Fisher for e2wm:tiny on first use)
    e2wm train --config recipes/cpu_tiny_ewc_lora.yaml

    # the paper's GPT-Neo-1.3B run on one GPU, then on all GPUs of the machine (DDP)
    e2wm fisher --model EleutherAI/gpt-neo-1.3B --target-modules q_proj,v_proj --text pile.jsonl \\
        --num-docs 20000 --max-length 800 --out fisher/gpt-neo-1.3B
    e2wm train --config recipes/gpt_neo_1.3b_ewc_lora.yaml
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml -m e2wm.train \\
        --config recipes/gpt_neo_1.3b_ewc_lora.yaml --ewc_lambda 2 --learning_rate 8e-4

trl's CLI habits: ``--config recipe.yaml`` sets defaults, ``--field value`` overrides them; the fields are those
of ``TrainScriptArguments`` (data), ``EWCLoRAConfig`` (training, penalty, task weights) and trl's
``ModelConfig`` (model, LoRA, bitsandbytes), with e2wm's defaults for LoRA (``TRAIN_DEFAULTS``: the paper's
r = 8, alpha = 32, dropout 0.1 on q_proj/v_proj). ``--help`` lists them all. A recipe's keys and value types
are checked before anything is loaded: a misspelt key or a wrong type is one line naming the key.
``model_name_or_path`` takes what every e2wm command takes (a Hub id, a folder, ``e2wm:tiny``,
``e2wm:gemma-3-270m``). Tokens are never taken here (``hub_token``): they would be written into the run
folder; use ``HF_TOKEN`` or ``hf auth login``.
"""

from __future__ import annotations

import errno
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "TRAIN_DEFAULTS",
    "TrainScriptArguments",
    "build_parser",
    "build_trainer",
    "load_training_data",
    "main",
    "make_tiny_assets",
    "parse_config",
    "read_recipe",
]

#: e2wm's defaults where trl's ModelConfig has others (the paper's LoRA): the one default of each setting.
TRAIN_DEFAULTS: dict[str, Any] = {
    "use_peft": True,
    "lora_r": 8,
    "lora_alpha": 32,
    "lora_dropout": 0.1,
    "lora_target_modules": ["q_proj", "v_proj"],
}


@dataclass
class TrainScriptArguments:
    """The training data (and, for the offline recipe, where to build the tiny assets)."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Corpus: a local folder in the Hub layout (from `e2wm build`) or a Hub dataset id."},
    )
    dataset_config: list[str] | None = field(
        default=None,
        metadata={
            "help": "One config, or several that are concatenated (each keeps its `task` and `weight` columns), "
            "e.g. plan_generation activity_recognition counting object_path_tracking."
        },
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="validation", metadata={"help": "Split to evaluate on (when eval_strategy is not 'no')."}
    )
    max_train_examples: int | None = field(
        default=None,
        metadata={
            "help": "Train on at most this many examples: the training data shuffled with `seed`, then its first N "
            "(the same N examples for every run with the same seed)."
        },
    )
    peft_method: str = field(
        default="lora",
        metadata={
            "help": "lora (the EWC-LoRA adapters; trl's lora_* fields) or osf (peft's orthogonal subspace fine-tuning "
            "on lora_target_modules, a forgetting control of its own: no penalty with it).",
            "choices": ["lora", "osf"],
        },
    )
    osf_effective_rank: float | None = field(
        default=None,
        metadata={
            "help": "OSF: the preserved (frozen) top singular subspace per target weight, a rank or a fraction in "
            "(0, 1) of the smaller dimension; the rest is trained. Default: peft's (half)."
        },
    )
    replay_text: str | None = field(
        default=None,
        metadata={
            "help": "Replay: general text (.jsonl with 'text', or .txt) mixed into the training data, as rows whose "
            "whole text is the completion (task 'replay', weight 1); keep it disjoint from any perplexity text."
        },
    )
    replay_ratio: float = field(
        default=0.0,
        metadata={"help": "Replay rows per training row (0.25: one replay row for every four task rows)."},
    )
    tiny_assets: str | None = field(
        default=None,
        metadata={
            "help": "Build a small corpus of the four training tasks and the Fisher of the model in this folder when "
            "absent (corpus/, fisher/): the offline CPU recipe's assets. They test the pipeline, not quality."
        },
    )

    def __post_init__(self) -> None:
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"max_train_examples must be at least 1 (or unset), got {self.max_train_examples}")
        if self.peft_method not in ("lora", "osf"):
            raise ValueError(f"peft_method must be lora or osf, got {self.peft_method!r}")
        if self.osf_effective_rank is not None and self.osf_effective_rank <= 0:
            raise ValueError(
                f"osf_effective_rank must be > 0 (a rank, or a fraction in (0, 1)), got {self.osf_effective_rank}"
            )
        if not 0 <= self.replay_ratio <= 10:
            raise ValueError(
                f"replay_ratio must be between 0 and 10 (replay rows per task row), got {self.replay_ratio}"
            )
        if self.replay_ratio > 0 and not self.replay_text:
            raise ValueError("replay_ratio > 0 needs replay_text: a .jsonl or .txt file of general text")


def build_parser() -> Any:
    from trl import ModelConfig, TrlParser

    from e2wm.config import EWCLoRAConfig

    dataclasses: Any = (TrainScriptArguments, EWCLoRAConfig, ModelConfig)
    parser = TrlParser(dataclasses, prog="e2wm train")
    parser.set_defaults(**TRAIN_DEFAULTS)
    return parser


def _field_types() -> dict[str, Any]:
    """Every recipe key of ``e2wm train`` and its type (the three dataclasses' fields)."""
    import typing

    from trl import ModelConfig

    from e2wm.config import EWCLoRAConfig

    types: dict[str, Any] = {}
    for cls in (TrainScriptArguments, EWCLoRAConfig, ModelConfig):
        hints = typing.get_type_hints(cls)
        types.update({f.name: hints[f.name] for f in fields(cls) if f.init})
    return types


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A YAML recipe as a mapping, or a ``RecipeError`` naming the file and what is wrong with it."""
    import yaml

    from e2wm.arguments import RecipeError

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RecipeError(f"{path}: cannot read the recipe ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a text file (a recipe is YAML)") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping of field: value, got {type(data).__name__}")
    return data


def parse_config(
    config: Mapping[str, Any] | None = None,
    argv: Sequence[str] = (),
    *,
    where: str = "recipe",
    owned: Sequence[str] = (),
) -> tuple[Any, Any, Any]:
    """``(TrainScriptArguments, EWCLoRAConfig, ModelConfig)`` from a recipe mapping and ``--field value`` flags.

    The one parser of training settings: ``e2wm train --config``, ``accelerate launch -m e2wm.train`` and the
    pipeline's ``train:`` section all come here. Keys and value types are checked first (``RecipeError``
    naming the key, with the closest known key for a misspelt one); ``owned`` keys are set by the caller.
    """
    from e2wm.arguments import RecipeError, check_mapping

    values = check_mapping(_field_types(), dict(config or {}), where, owned=owned)
    env = values.pop("env", None)
    if env is not None:
        raise RecipeError(f"{where}: env is not supported; set environment variables before the command")
    parser = build_parser()
    leftover = parser.set_defaults_with_config(**values)
    if leftover:  # a key of the dataclasses that the parser has no flag for
        raise RecipeError(f"{where}: cannot set {' '.join(leftover[::2])} from a recipe")
    try:
        script_args, training_args, model_args = parser.parse_args_into_dataclasses(args=list(argv))
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: {err}") from None
    if training_args.hub_token:
        raise RecipeError(
            f"{where}: hub_token is not accepted (it would be written into the run folder and its checkpoints); "
            "use the HF_TOKEN environment variable or `hf auth login`"
        )
    if not model_args.model_name_or_path:
        raise RecipeError(f"{where}: model_name_or_path is required: a Hub model id, a local folder or e2wm:tiny")
    _check_counts(training_args, where)
    return script_args, training_args, model_args


def _check_counts(training_args: Any, where: str) -> None:
    """Values the Trainer accepts and then fails on mid-run (a DataLoader of batch size 0, a negative learning
    rate): refused here, before a model is loaded, naming the key."""
    import math

    from e2wm.arguments import RecipeError

    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        value = getattr(training_args, key)
        if value < 1:
            raise RecipeError(f"{where}: {key} must be at least 1, got {value}")
    rate = training_args.learning_rate
    if not math.isfinite(rate) or rate < 0:
        raise RecipeError(f"{where}: learning_rate must be a number ≥ 0, got {rate}")
    if training_args.max_steps <= 0 and not training_args.num_train_epochs > 0:
        raise RecipeError(
            f"{where}: num_train_epochs must be above 0 (got {training_args.num_train_epochs}), or set max_steps"
        )


def _split_config_flag(argv: Sequence[str]) -> tuple[dict[str, Any], list[str], str]:
    """``--config FILE`` (trl's habit) read as a recipe; the other flags returned as they are; and what errors
    name as the source of the settings (the recipe file, or the flags)."""
    from e2wm.arguments import RecipeError

    args = list(argv)
    if "--config" not in args:
        return {}, args, "flags"
    index = args.index("--config")
    if index + 1 >= len(args) or args[index + 1].startswith("--"):
        raise RecipeError("--config needs a recipe file: --config recipes/<recipe>.yaml")
    path = args[index + 1]
    del args[index : index + 2]
    return read_recipe(path), args, path


def load_training_data(args: TrainScriptArguments, split: str, seed: int = 0) -> Any:
    """One split of ``args.dataset_name``: one config, or several concatenated on their shared columns, then
    (for the training split) shuffled with ``seed`` and cut to ``args.max_train_examples``."""
    from datasets import concatenate_datasets

    from e2wm.tasks.corpus import load_corpus

    if not args.dataset_name:
        raise ValueError("dataset_name is required: a corpus folder (from `e2wm build`) or a Hub dataset id")
    configs: list[Any] = (
        [args.dataset_config] if isinstance(args.dataset_config, str) else args.dataset_config or [None]
    )
    parts = [load_corpus(args.dataset_name, config, split=split) for config in configs]
    if len(parts) == 1:
        data = parts[0]
    else:
        # Configs carry task-specific extras (counting's `surface`, MC rows' `choices`): keep what all share.
        shared = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
        parts = [p.select_columns(shared) for p in parts]
        data = concatenate_datasets([p.cast(parts[0].features) for p in parts])
    if args.max_train_examples and split == args.dataset_train_split:
        data = data.shuffle(seed=seed)
        data = data.select(range(min(args.max_train_examples, len(data))))
    if args.replay_ratio > 0 and split == args.dataset_train_split:
        data = _with_replay(data, args, seed)
    return data


def _with_replay(data: Any, args: TrainScriptArguments, seed: int) -> Any:
    """``data`` plus ``round(replay_ratio · len(data))`` rows of general text, shuffled in with ``seed``.

    A replay row's whole text is its completion (an empty prompt), so trl's completion-only loss trains on all of
    it: plain language modelling on general text, the classic replay control against forgetting."""
    from datasets import Dataset, concatenate_datasets

    from e2wm.evaluation.run import read_documents

    assert args.replay_text is not None
    documents = read_documents(args.replay_text)
    wanted = round(args.replay_ratio * len(data))
    if wanted > len(documents):
        raise ValueError(
            f"replay_text {args.replay_text} has {len(documents)} documents; replay_ratio {args.replay_ratio} of "
            f"{len(data)} training rows needs {wanted}"
        )
    columns: dict[str, list[Any]] = {name: [] for name in data.column_names}
    for text in documents[:wanted]:
        row = {"prompt": "", "completion": text, "task": "replay", "weight": 1.0}
        for name in columns:
            columns[name].append(row.get(name))  # the corpus's metadata columns: null for replay rows
    replay = Dataset.from_dict(columns, features=data.features)
    return concatenate_datasets([data, replay]).shuffle(seed=seed)


def build_trainer(script_args: Any, training_args: Any, model_args: Any, *, callbacks: Sequence[Any] = ()) -> Any:
    """The model (``e2wm.models.load_causal_lm``), the datasets and the ``EWCLoRATrainer``: the one builder."""
    from trl import get_quantization_config

    from e2wm.models import load_causal_lm
    from e2wm.trainer import EWCLoRATrainer

    if training_args.device.type == "cpu" and training_args.dataloader_pin_memory:
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator: torch warns every epoch on a CPU
    if script_args.tiny_assets:
        targets = model_args.lora_target_modules or TRAIN_DEFAULTS["lora_target_modules"]
        with training_args.main_process_first(desc="tiny assets"):  # one builder; the other ranks then reuse
            make_tiny_assets(script_args.tiny_assets, model_args.model_name_or_path, _names(targets))
    quantization = get_quantization_config(model_args)
    model, tokenizer = load_causal_lm(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        quantization=quantization,
        # a quantized model is placed where this process trains; any other stays where loaded (the Trainer or
        # FSDP/DeepSpeed place it)
        device=str(training_args.device) if quantization is not None else None,
        trust_remote_code=training_args.trust_remote_code,  # off unless the recipe sets it
        attn_implementation=model_args.attn_implementation,
        model_kwargs=training_args.model_init_kwargs,
        train=True,
    )
    train_dataset = load_training_data(script_args, script_args.dataset_train_split, seed=training_args.seed)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = load_training_data(script_args, script_args.dataset_test_split, seed=training_args.seed)
    return EWCLoRATrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config(script_args, training_args, model_args),
        dataset_name=script_args.dataset_name,
        callbacks=list(callbacks) or None,
    )


def peft_config(script_args: TrainScriptArguments, training_args: Any, model_args: Any) -> Any:
    """The peft config: trl's LoRA from ``model_args``, or peft's OSF (``peft_method: osf``) on the same targets."""
    from trl import get_peft_config

    if script_args.peft_method == "lora":
        return get_peft_config(model_args)
    if training_args.penalty != "none" and training_args.ewc_lambda > 0:
        raise ValueError(
            "peft_method osf is a forgetting control of its own: train it with penalty none (the EWC-LoRA penalty is "
            "defined on LoRA's B·A)"
        )
    from peft import OSFConfig

    rank = script_args.osf_effective_rank
    if rank is not None and rank >= 1:
        rank = int(rank)
    return OSFConfig(target_modules=_names(model_args.lora_target_modules), effective_rank=rank, task_type="CAUSAL_LM")


def _names(targets: Any) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse a recipe and flags, train, save the adapter with its card (and push it when ``push_to_hub``)."""
    from e2wm.arguments import RecipeError
    from e2wm.ewc import FisherError
    from e2wm.models import ModelLoadError, ModelUnavailableError

    output_dir: Path | None = None
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if "-h" in argv or "--help" in argv:
            build_parser().print_help()
            return 0
        recipe, flags, source = _split_config_flag(argv)
        script_args, training_args, model_args = parse_config(recipe, flags, where=source)
        _check_output_dir(Path(training_args.output_dir))
        _check_writable(Path(training_args.output_dir))
        output_dir = None if Path(training_args.output_dir).exists() else Path(training_args.output_dir)
        trainer = build_trainer(script_args, training_args, model_args)
    except (RecipeError, FisherError, ModelLoadError, ModelUnavailableError, ValueError, OSError) as err:
        # a recipe, a flag or a path to fix: one line, exit 2
        from e2wm.utils import describe_os_error

        if output_dir is not None and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # the Trainer made it before the error: a run that did not start leaves nothing
        message = describe_os_error(err) if isinstance(err, OSError) else str(err)
        print(f"e2wm train: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    except SystemExit as err:  # argparse's own usage errors (it has printed them)
        return 2 if err.code else 0

    from safetensors import SafetensorError

    try:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        if training_args.push_to_hub:
            trainer.push_to_hub(dataset_name=script_args.dataset_name)  # saves the adapter and card, then uploads
            trainer.accelerator.print(f"Adapter and card pushed to https://huggingface.co/{trainer.hub_model_id}")
        else:
            trainer.save_model(training_args.output_dir)
            trainer.accelerator.print(f"Adapter and card saved to {training_args.output_dir}")
    except (OSError, RuntimeError, SafetensorError) as err:
        # The disk filled up or became read-only while saving: torch.save says so as a RuntimeError, safetensors as
        # a SafetensorError. Any other such error is not the user's input: it keeps its traceback.
        out = Path(training_args.output_dir)
        if not isinstance(err, OSError) and not _disk_full(out):
            raise
        from e2wm.utils import describe_os_error, explain_write_error

        if isinstance(err, OSError) and not _disk_full(out):
            message = describe_os_error(err)
        else:
            message = explain_write_error(OSError(errno.ENOSPC, "No space left on device"), out)
        print(  # on a line of its own, after the progress bar's
            f"\ne2wm train: error: {message} (a checkpoint being saved in {out} may be incomplete: delete the newest "
            "checkpoint-* folder before resuming from it)",
            file=sys.stderr,
        )
        return 2
    return 0


def _disk_full(folder: Path) -> bool:
    """Whether the disk holding ``folder`` (or its nearest existing parent) has less than 16 MiB free."""
    import shutil

    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < 16 << 20
    except OSError:
        return False


_RUN_FILES = ("adapter_config.json", "training_args.bin", "trainer_state.json")


def _check_output_dir(folder: Path) -> None:
    """The Trainer writes README.md (the card), tokenizer files and checkpoints into ``output_dir``, replacing files
    of those names: a non-empty folder must be a training run's (an adapter, a checkpoint), not a user's."""
    from e2wm.arguments import RecipeError

    if not folder.is_dir():
        return
    entries = sorted(e.name for e in folder.iterdir())
    if entries and not any(e in _RUN_FILES or e.startswith("checkpoint-") for e in entries):
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise RecipeError(
            f"output_dir {folder} holds files ({shown}) and no training run (no adapter or checkpoint): training "
            "writes its card, tokenizer and checkpoints there, replacing files of those names; give a new or empty folder"
        )


def _check_writable(folder: Path) -> None:
    """Fail before the model is loaded, not at the first checkpoint, when ``output_dir`` cannot be written
    (an ``OSError`` naming ``folder``). Leaves no folder behind that was not there."""
    from e2wm.utils import atomic_write_bytes

    created = not folder.exists()
    probe = folder / ".e2wm-write-test"
    try:
        atomic_write_bytes(probe, b"")
        probe.unlink()
        if created:
            folder.rmdir()
    except OSError as err:
        filename = str(folder) if err.filename in (None, str(probe)) else err.filename
        raise OSError(err.errno, err.strerror, filename) from None


# ----------------------------------------------------------------------------- tiny assets (offline recipe)
_ACTIVITIES = {  # activity -> (items, plan)
    "wash dishes": (
        "plate, sink, faucet",
        "Walk to kitchen. Walk to sink. Grab plate. Put plate in sink. Switch on faucet.",
    ),
    "read a book": (
        "book, sofa",
        "Walk to living room. Walk to book. Grab book. Walk to sofa. Sit on sofa. Read book.",
    ),
    "make coffee": ("cup, coffee maker", "Walk to kitchen. Walk to coffee maker. Switch on coffee maker. Grab cup."),
    "go to sleep": ("bed, lamp", "Walk to bedroom. Walk to lamp. Switch off lamp. Walk to bed. Lie on bed."),
    "brush teeth": ("toothbrush, sink", "Walk to bathroom. Walk to sink. Grab toothbrush. Rinse toothbrush."),
    "work at home": ("computer, chair", "Walk to home office. Walk to chair. Sit on chair. Switch on computer."),
}
_ITEMS = ["cup", "plate", "book", "towel", "apple", "phone", "folder", "pillow", "remote control", "candle"]
_ROOMS = ["kitchen", "bedroom", "bathroom", "living room", "home office"]
_AGENTS = ["Alice", "Bob", "Carol"]


def _tiny_examples(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Prompt/completion rows of the four training tasks in the paper's formats, with ``task`` and ``weight``."""
    from e2wm.tasks.common import PAPER_WEIGHTS

    rows = []
    for _ in range(count):
        activity, (items, plan) = rng.choice(list(_ACTIVITIES.items()))
        surface, things = rng.choice(["table", "desk", "shelf"]), rng.sample(_ITEMS, rng.randint(0, 3))
        story = " ".join(f"{rng.choice(_AGENTS)} puts the {t} on the {surface}." for t in things) or "Nobody moves."
        listed = ", ".join(f"the {t}" for t in things)
        answer = {0: f" There is no item on the {surface}.", 1: f" There is one item on the {surface}. It is {listed}."}
        thing, rooms = rng.choice(_ITEMS), rng.sample(_ROOMS, rng.randint(2, 4))
        path = " ".join(f"{rng.choice(_AGENTS)} carries the {thing} to the {room}." for room in rooms)
        for task, prompt, completion in [
            ("plan_generation", f"Q: How to {activity}? Given items include {items}.\nA:", f" {plan}"),
            ("activity_recognition", f"Given a household activity plan as follows:\n{plan}\nQ: What is the name of the activity?\nA:", f" {activity}"),
            ("counting", f"Q: {story} How many items are there on the {surface}?\nA:", answer.get(len(things), f" There are {len(things)} items on the {surface}. They are {listed}.")),
            ("object_path_tracking", f"{path}\nQuestion: What is the order of the rooms where the {thing} appeared?\nAnswer:", " " + ", ".join(rooms)),
        ]:  # fmt: skip
            rows.append({"prompt": prompt, "completion": completion, "task": task, "weight": PAPER_WEIGHTS[task]})
    return rows


def make_tiny_assets(folder: str | Path, model: str, target_modules: Sequence[str], seed: int = 0) -> Path:
    """Build ``folder/{corpus,fisher}`` for ``model`` unless ``folder/READY`` exists: a corpus of the four
    training tasks (train/validation, parquet + card, one config per task) and the model's Fisher on its
    target modules. With ``model: e2wm:tiny`` this is the offline CPU recipe's whole set of assets."""
    from datasets import Dataset

    from e2wm.ewc import FisherArguments, build_fisher
    from e2wm.utils import atomic_write_text

    folder = Path(folder)
    if (folder / "READY").exists():
        return folder
    rng = random.Random(seed)
    splits = {"train": _tiny_examples(rng, 48), "validation": _tiny_examples(rng, 6)}
    configs = []
    for split, rows in splits.items():
        for task in sorted({row["task"] for row in rows}):
            path = f"{task}/{split}-00000-of-00001.parquet"
            (folder / "corpus" / task).mkdir(parents=True, exist_ok=True)
            Dataset.from_list([row for row in rows if row["task"] == task]).to_parquet(str(folder / "corpus" / path))
            configs.append((task, split, path))
    card = ["---", "configs:"]
    for task in sorted({c[0] for c in configs}):
        card += [f"- config_name: {task}", "  data_files:"]
        card += [f"  - split: {split}\n    path: {path}" for t, split, path in configs if t == task]
    atomic_write_text(folder / "corpus" / "README.md", "\n".join([*card, "---", "A tiny generated e2wm corpus.", ""]))

    texts = [row["prompt"] + row["completion"] for rows in splits.values() for row in rows]
    atomic_write_text(folder / "general.txt", "\n".join(texts) + "\n")
    args = FisherArguments(
        model=model, target_modules=list(target_modules), text=str(folder / "general.txt"), out=str(folder / "fisher"),
        num_docs=64, max_length=128, device="cpu", overwrite=True,
    )  # fmt: skip
    build_fisher(args, progress=False)
    atomic_write_text(folder / "READY", "corpus/ and fisher/ are complete\n")
    return folder


if __name__ == "__main__":
    sys.exit(main())
