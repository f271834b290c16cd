"""What the training tests and the launched DDP script share: datasets, configs, LoRA weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.tiny import sample_documents

TARGETS = ["q_proj", "v_proj"]
TASKS = ["plan_generation", "activity_recognition", "counting", "object_path_tracking"]


def prompt_completion(count: int, seed: int = 0, *, tasks: bool = False, metadata: bool = False) -> Any:
    """``count`` prompt/completion rows (the first sentence of a household story ⇒ the rest).

    ``tasks`` adds the corpus' ``task`` and ``weight`` columns (cycling through the four training tasks,
    weight 1.0: the trainer's ``task_weights`` decide); ``metadata`` adds every other corpus column.
    """
    from datasets import Dataset

    rows = []
    for i, doc in enumerate(sample_documents(count, seed=seed, min_sentences=2, max_sentences=4)):
        first, _, rest = doc.partition(". ")
        row: dict[str, Any] = {"prompt": first + ".", "completion": " " + rest}
        if tasks:
            row.update(task=TASKS[i % len(TASKS)], weight=1.0)
        if metadata:
            row.update(
                episode_id=f"ep{i}", scene_id=f"scene{i % 3}", example_id=f"ex{i}", question=first, story=doc,
                demo_ids=[f"ex{(i + 1) % count}"], choices=["0", "1", "2"], answer="1",
            )  # fmt: skip
        rows.append(row)
    return Dataset.from_list(rows)


def lora_config(*, random_b: bool = False, dropout: float = 0.0) -> Any:
    """r=4 LoRA on q_proj/v_proj. ``random_b``: B starts non-zero (peft's init_lora_weights=False), so that
    ΔW ≠ 0 and the penalty has a gradient from the first step."""
    from peft import LoraConfig

    return LoraConfig(
        r=4, lora_alpha=8, lora_dropout=dropout, target_modules=TARGETS, init_lora_weights=not random_b
    )  # fmt: skip


def training_config(output_dir: str | Path, **overrides: Any) -> Any:
    """An ``EWCLoRAConfig`` for tiny CPU runs: deterministic order, no checkpoints, no reports."""
    from e2wm import EWCLoRAConfig

    return EWCLoRAConfig(**config_fields(output_dir, **overrides))


def config_fields(output_dir: str | Path, **overrides: Any) -> dict[str, Any]:
    """The fields of ``training_config`` (trl's ``SFTConfig`` accepts those that are not EWC fields)."""
    fields: dict[str, Any] = {
        "output_dir": str(output_dir),
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "max_steps": 1,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "train_sampling_strategy": "sequential",
        "max_length": 64,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    fields.update(overrides)
    return fields


def load_model(folder: str | Path, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs), AutoTokenizer.from_pretrained(str(folder))


def lora_weights(model: Any) -> dict[str, torch.Tensor]:
    """Every LoRA A and B of ``model``, as fp32 copies on the CPU."""
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if "lora_" in n}
