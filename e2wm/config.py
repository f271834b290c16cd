"""``EWCLoRAConfig``: trl's ``SFTConfig`` plus the EWC-LoRA penalty and the per-task loss weights.

    from e2wm import EWCLoRAConfig
    args = EWCLoRAConfig(output_dir="out", fisher="fisher/gpt-neo-1.3B", ewc_lambda=0.5)

The same dataclass feeds YAML recipes and ``--field value`` flags (``e2wm train``, trl's ``TrlParser``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig

from e2wm.ewc.normalization import DEFAULT_NORMALIZATION, NORMALIZATIONS
from e2wm.ewc.penalty import DEFAULT_CHUNK_BYTES
from e2wm.tasks.common import PAPER_WEIGHTS

__all__ = ["PENALTIES", "EWCLoRAConfig"]

PENALTIES = ("ewc", "l2", "none")


@dataclass
class EWCLoRAConfig(SFTConfig):
    r"""
    Configuration class for the [`EWCLoRATrainer`]: everything of trl's [`SFTConfig`], plus the EWC-LoRA penalty
    and per-task loss weights of E2WM (Xiang et al., NeurIPS 2023, arXiv 2305.10626). The training loss is

        L = Σ_i w_i Σ_t nll_it / N  +  λ · Σ_layers Σ F ⊙ (s·B·A)²

    where N is trl's token count of the optimizer step (`num_items_in_batch`), w_i the weight of example i,
    F the diagonal Fisher of the base model, and s·B·A the LoRA update of each target layer (s = alpha/r).

    Parameters:
        > Parameters that control the EWC-LoRA penalty

        ewc_lambda (`float`, *optional*, defaults to `0.5`):
            λ, the weight of the penalty; `0` turns it off (the trainer is then plain `SFTTrainer`). The paper's
            values (0.5 for GPT-Neo-1.3B, 2 for GPT-J-6B) assume `fisher_normalization="paper_int8"`.
        penalty (`str`, *optional*, defaults to `"ewc"`):
            `"ewc"`: Σ F ⊙ ΔW² with the Fisher of `fisher`; `"l2"`: Σ ΔW² (F = 1, no Fisher needed); `"none"`:
            no penalty (plain LoRA).
        fisher (`str`, *optional*):
            The Fisher artifact: a local folder (or `fisher.safetensors` file) written by `e2wm fisher`, or a Hub
            model repo id holding one. Required when `penalty="ewc"` and `ewc_lambda > 0`.
        fisher_revision (`str`, *optional*):
            Revision (branch, tag or commit) of a Hub Fisher.
        fisher_normalization (`str`, *optional*, defaults to `"global_mean"`):
            Applied to the Fisher when it is loaded: `"none"` (its real values), `"global_mean"` (every tensor
            divided by the mean of all entries: F averages 1 and layers keep their relative scale), `"mean"` /
            `"max"` (each tensor to mean 1 / max 1 on its own) or `"paper_int8"` (each row scaled to max 127 and
            rounded, what the paper's code trained with, so its λ values apply; it rounds most entries of a
            heavy-tailed Fisher to 0). See `e2wm.ewc.normalization`.
        fisher_check_base (`bool`, *optional*, defaults to `True`):
            Refuse a Fisher estimated for another base model (its content hash or name differs). Turn it off when
            the same weights are loaded under another name (a local copy of a Hub model, say).
        penalty_chunk_bytes (`int`, *optional*, defaults to `4194304`):
            Bytes of fp32 ΔW the penalty materialises at a time (two such buffers are alive at once).

        > Parameters that control the task weights

        task_weights (`dict[str, float]` or `str`, *optional*, defaults to the paper's weights):
            Loss weight per value of the dataset's `task` column: it overrides the `weight` column for the tasks
            it names and fills it (with 1.0, or the existing `weight`) for the others. Each example's token
            negative log-likelihood is multiplied by its weight; the sum is still divided by trl's token count,
            so with every weight 1 the loss is exactly trl's. Defaults to `{"plan_generation": 1.0,
            "activity_recognition": 0.7, "counting": 1.0, "object_path_tracking": 1.0}`; `{}` keeps the
            dataset's own `weight` column. A JSON string is accepted on the command line.
    """

    _VALID_DICT_FIELDS = [*SFTConfig._VALID_DICT_FIELDS, "task_weights"]  # noqa: RUF012 (trl's attribute)

    # Parameters that control the EWC-LoRA penalty
    ewc_lambda: float = field(
        default=0.5,
        metadata={
            "help": "λ, the weight of the EWC-LoRA penalty; 0 turns it off. The paper's values (0.5 for GPT-Neo-1.3B, "
            "2 for GPT-J-6B) assume fisher_normalization=paper_int8."
        },
    )
    penalty: str = field(
        default="ewc",
        metadata={
            "help": "'ewc': λ·Σ F⊙ΔW² with the Fisher of `fisher`; 'l2': λ·Σ ΔW² (no Fisher); 'none': plain LoRA.",
            "choices": list(PENALTIES),
        },
    )
    fisher: str | None = field(
        default=None,
        metadata={
            "help": "Fisher artifact: a local folder written by `e2wm fisher`, or a Hub repo id. Required when "
            "penalty=ewc and ewc_lambda > 0."
        },
    )
    fisher_revision: str | None = field(
        default=None, metadata={"help": "Revision (branch, tag or commit) of a Hub Fisher."}
    )
    fisher_normalization: str = field(
        default=DEFAULT_NORMALIZATION,
        metadata={
            "help": "Normalization applied to the Fisher at load: none, global_mean (F averages 1, layers keep their "
            "relative scale), mean, max (per tensor), or paper_int8 (rows to max 127, rounded: what the paper trained "
            "with).",
            "choices": list(NORMALIZATIONS),
        },
    )
    fisher_check_base: bool = field(
        default=True,
        metadata={"help": "Refuse a Fisher estimated for another base model (content hash or name)."},
    )
    penalty_chunk_bytes: int = field(
        default=DEFAULT_CHUNK_BYTES,
        metadata={"help": "Bytes of fp32 ΔW the penalty materialises at a time."},
    )

    # Parameters that control the task weights
    task_weights: dict[str, float] | str | None = field(
        default_factory=lambda: dict(PAPER_WEIGHTS),
        metadata={
            "help": "Loss weight per value of the `task` column (JSON on the command line); overrides the `weight` "
            "column for the tasks it names. Default: the paper's weights (activity_recognition 0.7, others 1.0). "
            "'{}' keeps the dataset's own weights."
        },
    )

    def __post_init__(self) -> None:
        # Checked before SFTConfig's own checks: a wrong EWC field should be the error a user sees first.
        self._check_ewc_fields()
        if self.hub_token:
            raise ValueError(
                "EWCLoRAConfig.hub_token is not accepted: the config is saved with the run (training_args.bin, every "
                "checkpoint), so the token would be written to disk; use the HF_TOKEN environment variable or "
                "`hf auth login`"
            )
        if self.bf16 is None and not self.fp16:
            # trl turns bf16 on by default, which fails on a machine without a bf16 accelerator: decide by the device
            self.bf16 = _bf16_available(self.use_cpu)
        super().__post_init__()

    def _check_ewc_fields(self) -> None:
        if isinstance(self.ewc_lambda, str):  # YAML gives "5e-1" as a string
            self.ewc_lambda = _number("ewc_lambda", self.ewc_lambda)
        if not math.isfinite(self.ewc_lambda) or self.ewc_lambda < 0:
            raise ValueError(
                f"EWCLoRAConfig.ewc_lambda must be a finite number ≥ 0 (0 turns the penalty off), got {self.ewc_lambda}"
            )
        if self.penalty not in PENALTIES:
            raise ValueError(
                f"EWCLoRAConfig.penalty must be one of {', '.join(map(repr, PENALTIES))}, got {self.penalty!r}"
            )
        if self.fisher_normalization not in NORMALIZATIONS:
            raise ValueError(
                f"EWCLoRAConfig.fisher_normalization must be one of {', '.join(map(repr, NORMALIZATIONS))}, "
                f"got {self.fisher_normalization!r}"
            )
        if self.penalty == "ewc" and self.ewc_lambda > 0 and not self.fisher:
            raise ValueError(
                "EWCLoRAConfig.fisher is required with penalty='ewc' and ewc_lambda > 0: set it to a Fisher folder or "
                "Hub repo id (make one with `e2wm fisher`), or use penalty='l2' (no Fisher) or ewc_lambda=0 (plain LoRA)"
            )
        if int(self.penalty_chunk_bytes) < 4096:
            raise ValueError(
                f"EWCLoRAConfig.penalty_chunk_bytes must be at least 4096 (default {DEFAULT_CHUNK_BYTES}), "
                f"got {self.penalty_chunk_bytes}"
            )
        self.task_weights = _parse_task_weights(self.task_weights)


def _bf16_available(use_cpu: bool) -> bool:
    import torch

    return not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"EWCLoRAConfig.{name} must be a number, got {value!r}") from None


def _parse_task_weights(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as err:
            raise ValueError(
                f"EWCLoRAConfig.task_weights must be a mapping task → weight, e.g. "
                f"'{{\"activity_recognition\": 0.7}}', got {value!r} ({err.msg})"
            ) from None
    if not isinstance(value, dict):
        raise ValueError(f"EWCLoRAConfig.task_weights must be a mapping task → weight, got {type(value).__name__}")
    weights = {}
    for task, weight in value.items():
        try:
            number = float(weight)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise ValueError(
                f"EWCLoRAConfig.task_weights[{task!r}] must be a finite number ≥ 0 (0 drops the task), got {weight!r}"
            )
        weights[str(task)] = number
    return weights
