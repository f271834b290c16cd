"""Train an EWC-LoRA adapter from a recipe: the entry of ``e2wm train`` and ``accelerate launch -m e2wm.train``.

    # offline, on a CPU, in about a minute (builds a tiny random model, corpus and Fisher on first use)
    e2wm train --config recipes/cpu_tiny_ewc_lora.yaml

    # the paper's GPT-Neo-1.3B run on one GPU, then on all GPUs of the machine (DDP)
    e2wm fisher --model EleutherAI/gpt-neo-1.3B --target-modules q_proj,v_proj --text pile.jsonl \\
        --num-docs 20000 --max-length 800 --out fisher/gpt-neo-1.3B
    e2wm train --config recipes/gpt_neo_1.3b_ewc_lora.yaml
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml -m e2wm.train \\
        --config recipes/gpt_neo_1.3b_ewc_lora.yaml --ewc_lambda 2 --learning_rate 8e-4

trl's CLI habits: ``--config recipe.yaml`` sets defaults, ``--field value`` overrides them; the fields are those
of ``TrainScriptArguments`` (data), ``EWCLoRAConfig`` (training, penalty, task weights) and trl's
``ModelConfig`` (model, LoRA, bitsandbytes). ``--help`` lists them all.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainScriptArguments", "build_parser", "load_training_data", "main", "make_tiny_assets"]


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
    tiny_assets: str | None = field(
        default=None,
        metadata={
            "help": "Build a tiny random Llama, its tokenizer, a small corpus and its Fisher in this folder when "
            "absent (model/, corpus/, fisher/): the offline CPU recipe's assets. They test the pipeline, not quality."
        },
    )


def build_parser() -> Any:
    from trl import ModelConfig, TrlParser

    from e2wm.config import EWCLoRAConfig

    dataclasses: Any = (TrainScriptArguments, EWCLoRAConfig, ModelConfig)
    return TrlParser(dataclasses, prog="e2wm train")


def load_training_data(args: TrainScriptArguments, split: str) -> Any:
    """One split of ``args.dataset_name``: one config, or several concatenated on their shared columns."""
    from datasets import concatenate_datasets

    from e2wm.tasks.corpus import load_corpus

    if not args.dataset_name:
        raise ValueError("dataset_name is required: a corpus folder (from `e2wm build`) or a Hub dataset id")
    configs: list[Any] = (
        [args.dataset_config] if isinstance(args.dataset_config, str) else args.dataset_config or [None]
    )
    parts = [load_corpus(args.dataset_name, config, split=split) for config in configs]
    if len(parts) == 1:
        return parts[0]
    # Configs carry task-specific extras (counting's `surface`, MC rows' `choices`): keep what all share.
    shared = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
    parts = [p.select_columns(shared) for p in parts]
    return concatenate_datasets([p.cast(parts[0].features) for p in parts])


def load_model(model_args: Any, training_args: Any) -> tuple[Any, Any]:
    """The causal LM (8-bit/4-bit with bitsandbytes when asked, on this process's device) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import get_quantization_config

    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,  # off unless set
        "attn_implementation": model_args.attn_implementation,
        "dtype": dtype,
        **(training_args.model_init_kwargs or {}),
    }
    quantization = get_quantization_config(model_args)
    if quantization is not None:  # a quantized model cannot be moved later: load it where this process trains
        kwargs.update(quantization_config=quantization, device_map={"": training_args.device})
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    return model, tokenizer


def main(argv: Sequence[str] | None = None) -> int:
    """Parse a recipe and flags, train, save the adapter with its card (and push it when ``push_to_hub``)."""
    from trl import get_peft_config

    from e2wm.ewc import FisherError
    from e2wm.trainer import EWCLoRATrainer

    try:
        script_args, training_args, model_args = build_parser().parse_args_and_config(argv)
        if not model_args.model_name_or_path:
            raise ValueError("model_name_or_path is required: a Hub model id or a local model folder")
        if script_args.tiny_assets:
            targets = model_args.lora_target_modules or ["q_proj", "v_proj"]
            with training_args.main_process_first(desc="tiny assets"):  # one builder; the other ranks then reuse
                make_tiny_assets(script_args.tiny_assets, [targets] if isinstance(targets, str) else targets)
        model, tokenizer = load_model(model_args, training_args)
        train_dataset = load_training_data(script_args, script_args.dataset_train_split)
        eval_dataset = None
        if training_args.eval_strategy != "no":
            eval_dataset = load_training_data(script_args, script_args.dataset_test_split)
        trainer = EWCLoRATrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=get_peft_config(model_args),
            dataset_name=script_args.dataset_name,
        )
    except (FisherError, ValueError, OSError) as err:  # a recipe, a flag or a path to fix: one line, exit 2
        print(f"e2wm train: error: {err}", file=sys.stderr)
        return 2

    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)  # saves the adapter and card, then uploads
        trainer.accelerator.print(f"Adapter and card pushed to https://huggingface.co/{trainer.hub_model_id}")
    else:
        trainer.save_model(training_args.output_dir)
        trainer.accelerator.print(f"Adapter and card saved to {training_args.output_dir}")
    return 0


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


def make_tiny_assets(folder: str | Path, target_modules: Sequence[str], seed: int = 0) -> Path:
    """Build ``folder/{model,corpus,fisher}`` unless ``folder/READY`` exists: a random 2-layer Llama with a
    byte-level BPE tokenizer, a corpus of the four training tasks (train/validation, parquet + card, one
    config per task) and the model's Fisher on its target modules."""
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from e2wm.ewc import TextSource, build_fisher

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
    (folder / "corpus" / "README.md").write_text("\n".join([*card, "---", "A tiny generated e2wm corpus.", ""]))

    texts = [row["prompt"] + row["completion"] for rows in splits.values() for row in rows]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    special = ["<pad>", "<s>", "</s>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=512, special_tokens=special, initial_alphabet=alphabet, show_progress=False))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")  # fmt: skip
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")

    (folder / "general.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    build_fisher(
        str(folder / "model"),
        target_modules=list(target_modules),
        text=TextSource(str(folder / "general.txt")),
        out=folder / "fisher",
        num_docs=64,
        max_length=128,
        device="cpu",
        overwrite=True,
        progress=False,
    )
    (folder / "READY").write_text("model/, corpus/ and fisher/ are complete\n")
    return folder


if __name__ == "__main__":
    sys.exit(main())
