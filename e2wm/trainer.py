"""``EWCLoRATrainer``: trl's ``SFTTrainer`` with the EWC-LoRA penalty and per-example task weights.

    from e2wm import EWCLoRAConfig, EWCLoRATrainer
    trainer = EWCLoRATrainer(model="EleutherAI/gpt-neo-1.3B", args=EWCLoRAConfig(..., fisher="fisher/"),
                             train_dataset=corpus, peft_config=LoraConfig(r=8, lora_alpha=32, ...))
    trainer.train(); trainer.save_model(); trainer.push_to_hub(dataset_name="e2wm/experiences")

Thin by design: the math lives in ``e2wm.ewc`` (``ewc_penalty``, ``load_fisher``); this file only wires it
into trl so that everything a trl user knows (YAML configs, ``accelerate launch``, QLoRA, checkpoints,
``push_to_hub``, generated cards) keeps working.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from trl import SFTTrainer

from e2wm.config import EWCLoRAConfig
from e2wm.ewc import Fisher, ewc_penalty, load_fisher, normalize_fisher
from e2wm.ewc.layers import lora_layers
from e2wm.ewc.normalization import global_mean
from e2wm.ewc.penalty import PenaltyReference, base_rewriting_adapters, penalty_reference, rewrites_base
from e2wm.hub import ARTIFACTS
from e2wm.models import keep_4bit_differentiable

__all__ = ["EWCLoRATrainer", "with_task_weights"]

# FSDP2 loading process 0's weights into meta placeholders trains the wrong shards before this (see _check_sharding).
MIN_ACCELERATE_FOR_META_LOADING = "1.16"

# What a push of the adapter uploads (never training_args.bin, checkpoints, optimizer or RNG states)
_ADAPTER_FILES: tuple[str, ...] = ARTIFACTS["adapter"][2]

_PAPER_CITATION = """\
@inproceedings{xiang2023language,
    title     = {{Language Models Meet World Models: Embodied Experiences Enhance Language Models}},
    author    = {Jiannan Xiang and Tianhua Tao and Yi Gu and Tianmin Shu and Zirui Wang and Zichao Yang and Zhiting Hu},
    booktitle = {Advances in Neural Information Processing Systems},
    volume    = {36},
    year      = {2023},
    eprint    = {2305.10626},
    archivePrefix = {arXiv}
}"""


# ------------------------------------------------------------------------------------------------ task weights
def with_task_weights(dataset: Any, task_weights: Mapping[str, float]) -> Any:
    """``dataset`` with its ``weight`` column set from ``task_weights`` by the ``task`` column.

    A task named in ``task_weights`` gets that weight; other rows keep their ``weight`` (1.0 when the
    column is missing). A dataset without a ``task`` column, or an empty ``task_weights``, is returned
    as is. Works on ``Dataset`` and ``IterableDataset`` (lazily).
    """
    columns = dataset.column_names or []
    if not task_weights or "task" not in columns:
        return dataset
    has_weight = "weight" in columns

    def weigh(row: dict[str, Any]) -> dict[str, float]:
        default = float(row["weight"]) if has_weight and row["weight"] is not None else 1.0
        return {"weight": float(task_weights.get(row["task"], default))}

    kwargs = {"desc": "Applying task weights"} if hasattr(dataset, "cache_files") else {}
    return dataset.map(weigh, **kwargs)


def _weights_are_uniform(dataset: Any) -> bool:
    """True when every ``weight`` is 1 (or there is no such column); an ``IterableDataset`` counts as weighted."""
    if "weight" not in (dataset.column_names or []):
        return True
    if not hasattr(dataset, "cache_files"):
        return False
    return all(float(w) == 1.0 for w in dataset["weight"])


@contextlib.contextmanager
def _labelled_positions_only(place: torch.device) -> Iterator[None]:
    """trl's fused LM head projecting only the positions that have a label, on a CPU too.

    trl 1.16 (``add_fused_lm_head``) scores only the labelled positions where Triton runs (CUDA, XPU) and every
    position elsewhere, so that XLA devices see one tile shape per batch. On a CPU that choice only costs: with
    a completion-only loss, most positions are prompt, and the projection onto a large vocabulary (Gemma's 262k)
    dominates the step (the quickstart's LoRA step: 15.6 → 3.5 s, ``bench/quickstart_time.py --compare lm_head``).
    The kernel itself takes any number of rows and the outputs are scattered back to the same places, so the
    numbers are the same; only trl's choice of rows changes, for this forward call and on a CPU only (a trl without
    that private switch keeps its own choice: slower, the same numbers).
    """
    import trl.trainer.utils as trl_utils

    chooser = getattr(trl_utils, "_use_triton", None)
    if place.type != "cpu" or chooser is None:
        yield
        return

    def labelled_only(device: torch.device) -> bool:  # trl's signature
        return device.type == "cpu" or bool(chooser(device))

    trl_utils._use_triton = labelled_only
    try:
        yield
    finally:
        trl_utils._use_triton = chooser


class _WeightedLogProbs:
    """Calls the model and multiplies each example's per-token log-probabilities by its weight.

    trl's loss is then Σ_i w_i Σ_t nll_it / num_items_in_batch, with everything else (token count, DDP
    factor, metrics) untouched. Only the fused-LM-head output (``log_probs``, (B, T-1)) can carry the weights, so
    the first call, the forward trl takes its loss from, must return it: a loss taken from the logits
    (``compute_loss_func``, label smoothing) or a forward that ignores ``fused_lm_head=True`` would drop the
    weights silently, and raises instead. Later calls (the logits trl recomputes for ``return_outputs``, after the
    loss) pass through.
    """

    def __init__(self, model: Any, weights: torch.Tensor) -> None:
        self.model, self.weights = model, weights
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outputs = self.model(*args, **kwargs)
        self.calls += 1
        log_probs = getattr(outputs, "log_probs", None)
        if log_probs is None and self.calls == 1:
            raise RuntimeError(
                f"task weights {self.weights.tolist()} cannot enter this loss: the forward pass trl takes the loss "
                "from returned no fused per-token log-probabilities (`log_probs`); trl computes the loss from the "
                "logits when a compute_loss_func or label smoothing is set, and a model forward that ignores "
                "fused_lm_head=True returns logits only. Set every task weight to 1 (task_weights, or the dataset's "
                "weight column), or drop compute_loss_func / label_smoothing_factor"
            )
        if log_probs is not None:
            if log_probs.shape[0] != self.weights.shape[0]:
                raise RuntimeError(
                    f"task weights: {self.weights.shape[0]} weights for a batch of {log_probs.shape[0]} rows "
                    "(padding-free or packed batches cannot carry per-example weights)"
                )
            weights = self.weights.to(device=log_probs.device, dtype=log_probs.dtype)
            outputs.log_probs = log_probs * weights.view(-1, *([1] * (log_probs.dim() - 1)))
        return outputs


class _CollateWithWeights:
    """Wraps trl's collator: the ``weight`` of each example travels as a (B,) float tensor beside the batch."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        weights = [example.get("weight") for example in examples]
        batch = self.collator([{k: v for k, v in example.items() if k != "weight"} for example in examples])
        if any(weight is not None for weight in weights):
            batch["weight"] = torch.tensor([1.0 if w is None else float(w) for w in weights], dtype=torch.float32)
        return batch


# ----------------------------------------------------------------------------------------------------- trainer
class EWCLoRATrainer(SFTTrainer):
    r"""trl's [`SFTTrainer`] for LoRA adapters with the EWC-LoRA penalty of E2WM (arXiv 2305.10626):

        loss = Σ_i w_i Σ_t nll_it / N  +  λ · P,     P = Σ_layers Σ F ⊙ (W − W*)²,  W − W* = Σ_active s·B·A − Σ s·B⁰A⁰

    - **The penalty once per optimizer step.** A and B do not change between the micro-batches of an
      optimizer step, so P and its gradient are computed once, on the step's first micro-batch, and added as
      λ·P (or λ·P·GA when `Trainer` is about to divide that loss by the GA steps; with trl's token-normalised
      loss it does not). P is identical on every rank and is *not* multiplied by the world size (trl multiplies
      only the token loss, to undo DDP's gradient averaging), so after DDP's averaging the step's gradient is
      ∇(task loss) + λ·∇P whatever the accumulation steps and the number of processes.
    - **Task weights.** Example i's token NLL is multiplied by w_i (its `weight` column, set from
      `args.task_weights` by its `task` column); the sum is still divided by trl's token count N, so with every
      weight 1 the loss is exactly trl's. Needs unpacked, padded batches (no packing, no padding-free).
    - **Fisher.** `args.fisher` (folder or Hub id) is loaded and validated against the model at construction
      (`FisherMismatchError` names what does not fit), normalised by `args.fisher_normalization`, and moved
      next to the adapters on the first step. `penalty="l2"` uses F = 1.
    - **Every LoRA setting.** P is on each layer's total change from the base weights W* the Fisher was estimated
      at: several active adapters (a frozen earlier one plus a new one) are summed before squaring, and inits that
      rewrite the base (PiSSA, OLoRA, CorDA, LoRA-GA: W_base = W* − s·B⁰A⁰) are measured from W*, with B⁰, A⁰
      snapshotted at construction (`penalty_reference`; a resumed run rebuilds the same ones). For those inits pass
      the base model with `peft_config` (the Fisher is checked against W* before peft rewrites it), not a PeftModel.
    - **Precision and sharding.** P is computed and accumulated in fp32 (bf16 QLoRA adapters, 8-bit or 4-bit
      bases), outside the forward pass (gradient checkpointing does not recompute it). FSDP2 shards are gathered
      with a differentiable `DTensor.full_tensor()`; under DeepSpeed ZeRO-3 the adapters must stay whole
      (below `stage3_param_persistence_threshold`, checked at construction); FSDP1 is refused.
    - **Logs** `ewc_penalty` (P), `ewc_task_loss` and `ewc_penalty_ratio` (λ·P / task loss).
    - **Model card** from trl's template (`_name`, `_tag_names`, `_paper`), extended with the base model, the
      dataset, the Fisher, λ and the LoRA settings; `save_model(dir)` leaves it next to the adapter, and
      `push_to_hub` uploads it with the adapter.

    Args: those of [`SFTTrainer`] (``args`` must be an [`EWCLoRAConfig`]), plus ``dataset_name``, the name of
    the training data for the card (a Hub id such as ``"e2wm/experiences"``, optionally with its configs).
    """

    hub_model_id: Any  # set by init_hf_repo (a repo id), as in transformers
    push_in_progress: Any

    # trl's card attributes (plain class attributes in trl: not ClassVar, or mypy refuses the override)
    _tag_names = ["trl", "sft", "e2wm", "ewc-lora"]  # noqa: RUF012
    _name = "EWC-LoRA"
    _paper = {  # noqa: RUF012
        "title": "Language Models Meet World Models: Embodied Experiences Enhance Language Models",
        "id": "2305.10626",
        "citation": _PAPER_CITATION,
    }

    args: EWCLoRAConfig
    model: Any  # the peft model (Trainer types it loosely)

    def __init__(
        self,
        model: Any,
        args: EWCLoRAConfig | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        *,
        dataset_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, EWCLoRAConfig):
            raise TypeError(
                f"EWCLoRATrainer needs args=EWCLoRAConfig(...), got {type(args).__name__}: the penalty, the Fisher "
                "and the task weights are configured there"
            )
        _check_hub_strategy(args)
        self.dataset_name = dataset_name
        weighted = False
        self._task_summary: list[dict[str, Any]] = []
        task_weights = args.task_weights if isinstance(args.task_weights, dict) else {}  # a dict after __post_init__
        if train_dataset is not None:
            train_dataset = with_task_weights(train_dataset, task_weights)
            weighted = not _weights_are_uniform(train_dataset)
            self._task_summary = _task_summary(train_dataset)
        if isinstance(eval_dataset, Mapping):
            eval_dataset = {k: with_task_weights(v, task_weights) for k, v in eval_dataset.items()}
        elif eval_dataset is not None:
            eval_dataset = with_task_weights(eval_dataset, task_weights)
        evals = list(eval_dataset.values()) if isinstance(eval_dataset, Mapping) else [eval_dataset]
        weighted = weighted or any(d is not None and not _weights_are_uniform(d) for d in evals)  # eval loss too
        if weighted:
            _check_weights_supported(args, kwargs)
        penalty_enabled = args.penalty != "none" and args.ewc_lambda > 0
        # PiSSA/OLoRA/... rewrite the base weights when trl wraps the model below: check the Fisher against them first.
        early_fisher = _fisher_before_peft(model, args, kwargs.get("peft_config")) if penalty_enabled else None

        super().__init__(
            model, args, data_collator, train_dataset, eval_dataset, processing_class, **kwargs
        )  # fmt: skip
        self.data_collator = _CollateWithWeights(self.data_collator)
        if self.args.device.type == "cpu":  # an evaluation (eval mode, no grad) must not end gradients through 4-bit
            keep_4bit_differentiable(self.model)  # layers for the steps after it (e2wm.models.keep_4bit_differentiable)

        self.penalty_enabled = penalty_enabled
        self.fisher: Fisher | None = None
        self.penalty_reference: PenaltyReference | None = None  # B⁰, A⁰ of inits that rewrote the base weights
        self._fisher_probe: tuple[str, Any] | None = None  # (key, its LoRA A module): where the Fisher must live
        self._penalty_step: int | None = None  # the global step whose penalty has been added
        if args.penalty == "l2" and args.fisher:
            warnings.warn("EWCLoRAConfig.fisher is ignored with penalty='l2' (F = 1)", stacklevel=2)
        if not self.penalty_enabled:
            return
        if not any(True for _ in lora_layers(self.model)):
            raise ValueError(
                "EWCLoRATrainer with a penalty needs a LoRA model: pass peft_config=LoraConfig(...) or a PeftModel "
                "(or set penalty='none' / ewc_lambda=0 for plain SFT)"
            )
        if args.penalty == "ewc":
            self.fisher = early_fisher if early_fisher is not None else _load_fisher(args, self.model)
        # The factors peft just initialised (nothing trained or loaded yet): what a rewriting init subtracted from the
        # base. A resumed run gets the same ones here (peft's init is deterministic given the base and trl's seed),
        # before train() loads the checkpoint's factors.
        self.penalty_reference = penalty_reference(self.model)
        self._check_sharding()
        with torch.no_grad():  # fail now, not at step 1: DoRA, LoRA on embeddings, a Fisher that does not fit
            self._penalty()

    # -------------------------------------------------------------------------------------------------- Fisher
    def _placed_fisher(self) -> Fisher | None:
        """The Fisher, each entry on the device of its layer's adapters (moved again only if the model moved)."""
        if self.fisher is None:
            return None
        if self._fisher_probe is not None:
            key, module = self._fisher_probe
            if self.fisher[key].device == module.weight.device:
                return self.fisher  # the common case, checked on one entry per step
        devices = {}
        for name, layer in lora_layers(self.model):
            if len(layer.lora_A) and f"{name}.weight" in self.fisher:
                module = next(iter(layer.lora_A.values()))
                devices[f"{name}.weight"] = module.weight.device
                self._fisher_probe = (f"{name}.weight", module)
        if any(device.type == "meta" for device in devices.values()):
            # This process holds meta placeholders until FSDP loads process 0's weights (cpu_ram_efficient_loading):
            # the penalty can only check shapes here, on a meta view; the Fisher itself stays where it is.
            self._fisher_probe = None
            return Fisher({key: t.to("meta") for key, t in self.fisher.items()}, self.fisher.metadata)
        tensors = {key: t.to(devices.get(key, t.device)) for key, t in self.fisher.items()}
        self.fisher = Fisher(tensors, self.fisher.metadata, self.fisher.base_check)
        return self.fisher

    # ------------------------------------------------------------------------------------------------- sharding
    def _check_sharding(self) -> None:
        """FSDP1 and partitioned ZeRO-3 adapters cannot carry a penalty computed outside the forward pass."""
        if self.is_fsdp_enabled and getattr(self.accelerator.state.fsdp_plugin, "fsdp_version", 1) == 1:
            raise NotImplementedError(
                "EWC-LoRA under FSDP1: outside the forward pass the LoRA weights are flattened shards, so the penalty "
                "cannot see them; use FSDP2 (fsdp_version: 2, as in accelerate_configs/fsdp.yaml)"
            )
        if self.is_fsdp_enabled and getattr(self.accelerator.state.fsdp_plugin, "cpu_ram_efficient_loading", False):
            import accelerate
            from packaging.version import Version

            if Version(accelerate.__version__) < Version(MIN_ACCELERATE_FOR_META_LOADING):
                # accelerate < 1.16 maps each original parameter to its shard by data pointer, and every meta
                # placeholder has the same one, so the optimizer of processes other than 0 updates the wrong
                # shards: measured here as LoRA weights 0.013 away from the one-process run after 2 steps.
                raise NotImplementedError(
                    f"FSDP2 with fsdp_cpu_ram_efficient_loading needs accelerate>={MIN_ACCELERATE_FOR_META_LOADING} "
                    f"(installed: {accelerate.__version__}, which trains other weights than one process from "
                    "meta placeholders); upgrade accelerate, or set fsdp_cpu_ram_efficient_loading: false"
                )
        if self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3:
            zero = self.accelerator.state.deepspeed_plugin.hf_ds_config.config.get("zero_optimization", {})
            threshold = zero.get("stage3_param_persistence_threshold", "auto")
            if threshold == "auto":  # transformers fills "auto" with 10 × hidden size
                threshold = 10 * int(getattr(self.model.config.get_text_config(), "hidden_size", 0) or 0)
            largest = max(p.numel() for n, p in self.model.named_parameters() if "lora_" in n)
            if largest >= int(threshold):
                raise ValueError(
                    f"DeepSpeed ZeRO-3 would partition the LoRA weights (the largest has {largest} values, "
                    f"stage3_param_persistence_threshold is {threshold}): set the threshold above {largest} so the "
                    "adapters stay whole for the penalty (accelerate_configs/deepspeed_zero3.json sets 1e6)"
                )

    def _penalty(self) -> torch.Tensor:
        """P, a 0-dim fp32 tensor with gradients to every active LoRA A and B that requires one."""
        # FSDP2: each rank holds shards (DTensors); full_tensor() all-gathers them, and its backward
        # reduce-scatters the penalty's gradient back to the shards.
        sharded = any(_is_dtensor(p) for n, p in self.model.named_parameters() if "lora_" in n)
        return ewc_penalty(
            self.model,
            self._placed_fisher(),
            reference=self.penalty_reference,
            chunk_bytes=self.args.penalty_chunk_bytes,
            gather=_full if sharded else None,
        )

    # ----------------------------------------------------------------------------------------------------- loss
    def train(self, *args: Any, **kwargs: Any) -> Any:
        self._penalty_step = None  # a new run (or a resumed one) counts its steps afresh
        return super().train(*args, **kwargs)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and "weight" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "weight"]  # keep it for the collator

    def _trainer_divides_by_ga(self, num_items_in_batch: Any) -> bool:
        # Mirrors transformers' Trainer.training_step: the loss counts as already scaled for gradient
        # accumulation when it was normalised by `num_items_in_batch` (trl's case for most models).
        if self.loss_is_scaled_for_ga is not None:
            return not self.loss_is_scaled_for_ga
        scaled = (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or self.compute_loss_func
        return not scaled

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        weights = inputs.pop("weight", None)
        if weights is not None and not bool((weights == 1).all()):
            model = _WeightedLogProbs(model, weights)
        penalty = None
        if self.penalty_enabled and self.model.training and self._penalty_step != self.state.global_step:
            # The first micro-batch of this optimizer step: λ·P is added once (see the class docstring). Computed
            # before the forward pass, so that its ΔW chunk buffers are freed before the activations peak.
            self._penalty_step = self.state.global_step
            penalty = self._penalty()
        with _labelled_positions_only(self.args.device):
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        if penalty is None:
            return result
        loss, outputs = result if return_outputs else (result, None)
        steps = self.current_gradient_accumulation_steps if self._trainer_divides_by_ga(num_items_in_batch) else 1
        loss = loss + (self.args.ewc_lambda * steps) * penalty
        self._metrics["train"]["ewc_penalty"].append(penalty.item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        metrics = self._metrics["train"]
        if self.model.training and "loss" in logs and metrics.get("ewc_penalty"):
            # `loss` is the mean total loss of the steps since the last log; P was added once per step.
            weighted = self.args.ewc_lambda * sum(metrics["ewc_penalty"]) / len(metrics["ewc_penalty"])
            task = logs["loss"] - weighted
            metrics["ewc_task_loss"] = [task]
            metrics["ewc_penalty_ratio"] = [weighted / task if task else float("inf")]
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------------ model card
    def create_model_card(  # type: ignore[override]  # trl's signature, not transformers'
        self,
        model_name: str | None = None,
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
    ) -> None:
        """trl's card (``_name``, ``_tag_names``, ``_paper``) in ``args.output_dir/README.md``, plus a section on
        the EWC-LoRA run (base model, dataset, Fisher, λ, LoRA settings) and peft's adapter metadata."""
        from huggingface_hub import ModelCard

        from e2wm._model_cards import render_card

        dataset_name = dataset_name or self.dataset_name
        super().create_model_card(model_name=model_name, dataset_name=_hub_id(dataset_name), tags=tags)
        if not self.is_world_process_zero():
            return
        path = Path(str(self.args.output_dir)) / "README.md"
        card = ModelCard.load(path)
        base = str(getattr(self.model.config, "_name_or_path", "") or "")
        card.text = card.text.replace("[None](https://huggingface.co/None)", f"`{base}`" if base else "a base model")
        card.text = card.text.replace('model="None"', f'model="{self.hub_model_id or self.args.output_dir}"')
        section = render_card("adapter_card.md.jinja", **self._card_context(base, dataset_name))
        anchor = "### Framework versions"
        card.text = (
            card.text.replace(anchor, section + "\n" + anchor, 1) if anchor in card.text else card.text + section
        )
        card.data.tags = sorted({*(card.data.tags or []), "e2wm", "ewc-lora", "lora"})
        if isinstance(card.data.datasets, str):
            card.data.datasets = [card.data.datasets]  # the Hub's metadata wants a list
        card.save(path)
        if hasattr(self.model, "create_or_update_model_card"):  # peft: library_name, pipeline tag, quantization
            self.model.create_or_update_model_card(self.args.output_dir)

    def _card_context(self, base: str, dataset_name: str | None) -> dict[str, Any]:
        peft_config = getattr(self.model, "peft_config", {}).get("default")
        meta = self.fisher.metadata if self.fisher is not None else {}
        config_quant: Any = getattr(self.model.config, "quantization_config", None)
        quant = config_quant.to_dict() if hasattr(config_quant, "to_dict") else config_quant or {}
        return {
            "base_model": base,
            "base_is_hub": _hub_id(base) is not None,
            "quantization": "4-bit" if quant.get("load_in_4bit") else "8-bit" if quant.get("load_in_8bit") else None,
            "dataset": dataset_name,
            "dataset_is_hub": _hub_id(dataset_name) is not None,
            "tasks": self._task_summary,
            "args": self.args,
            "penalty_enabled": self.penalty_enabled,
            "fisher_is_hub": bool(self.args.fisher and _hub_id(self.args.fisher)),
            "fisher_meta": meta,
            "lora": peft_config,
            "lora_targets": _targets(getattr(peft_config, "target_modules", None)),
            "adapter_repo": self.hub_model_id or self.args.output_dir,
            "scheduler": str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type)),
        }

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the adapter (trl/peft) and, next to it, the EWC-LoRA model card (not peft's placeholder)."""
        super().save_model(output_dir, _internal_call)
        if not self.is_world_process_zero():
            return
        _fix_permissions(Path(output_dir) if output_dir is not None else Path(str(self.args.output_dir)))
        default = Path(str(self.args.output_dir))
        name = self.args.hub_model_id.split("/")[-1] if self.args.hub_model_id else default.name
        self.create_model_card(model_name=name)
        target = Path(output_dir) if output_dir is not None else default
        if target.resolve() != default.resolve():
            shutil.copyfile(default / "README.md", target / "README.md")

    # ------------------------------------------------------------------------------------------------------ Hub
    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Create ``hub_model_id`` (or the output folder's name) on the Hub if needed, as transformers does; ``private``
        (default ``hub_private_repo``) is accepted on every supported transformers (5.18's method has no such
        argument) and has no effect on a repo that exists."""
        from huggingface_hub import HfApi

        if not self.is_world_process_zero():
            return
        repo_name = self.args.hub_model_id or Path(str(self.args.output_dir)).absolute().name
        token = token if token is not None else self.args.hub_token
        private = private if private is not None else self.args.hub_private_repo
        repo_id: Any = HfApi().create_repo(repo_name, token=token, private=private, exist_ok=True).repo_id
        self.hub_model_id = repo_id
        self.push_in_progress = None

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Save the adapter and its card, then upload the adapter's own files only (``e2wm.hub``'s list, what
        ``e2wm push adapter`` uploads).

        ``Trainer.push_to_hub`` uploads all of ``output_dir`` but the ``checkpoint-*`` folders, so
        ``training_args.bin`` (a pickle of the whole config) went up with the adapter; here nothing but the
        adapter's config, weights, card and tokenizer files does. Otherwise as trl's: the repo is
        ``hub_model_id`` (created if needed), ``kwargs`` go to the model card.
        """
        from huggingface_hub import HfApi

        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        model_name = kwargs.pop("model_name", None)
        if model_name is None and self.args.should_save:
            model_name = (self.args.hub_model_id or Path(str(self.args.output_dir)).name).split("/")[-1]
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        tags = getattr(self.model, "model_tags", None)
        if tags is not None:
            given = kwargs.get("tags") or []
            given = [given] if isinstance(given, str) else list(given)
            kwargs["tags"] = given + [tag for tag in tags if tag not in given]
        self.create_model_card(model_name=model_name, **kwargs)
        self._finish_current_push()
        upload: Any = HfApi().upload_folder  # run_as_future's overloads want a literal; blocking is a bool
        return upload(
            repo_id=self.hub_model_id,
            folder_path=str(self.args.output_dir),
            commit_message=commit_message,
            token=token,
            run_as_future=not blocking,
            allow_patterns=list(_ADAPTER_FILES),
            revision=revision if revision is not None else self.args.hub_revision,
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """The push of every save (``hub_strategy="every_save"``): the checkpoint's adapter weights and config copied
        to ``output_dir`` and uploaded, as transformers does, but only the adapter's files (transformers also uploads
        the ``training_args.bin`` it writes there). Checkpoints themselves are never pushed (``_check_hub_strategy``).
        """
        from huggingface_hub import HfApi
        from transformers.utils.hub import PushInProgress

        if not self.is_world_process_zero() or self.args.hub_strategy == "end":
            return
        if not self.args.hub_always_push and self.push_in_progress is not None and not self.push_in_progress.is_done():
            return
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        output_dir = Path(str(self.args.output_dir))
        for name in ("adapter_config.json", "adapter_model.safetensors"):  # the card stays output_dir's
            if (Path(checkpoint_folder) / name).is_file():
                shutil.copy(Path(checkpoint_folder) / name, output_dir / name)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(str(output_dir))
        step = (
            f"step {self.state.global_step}"
            if self.args.save_strategy == "steps"
            else f"epoch {int(self.state.epoch or 0)}"
        )
        job = HfApi().upload_folder(
            repo_id=self.hub_model_id,
            folder_path=str(output_dir),
            commit_message=f"Training in progress, {step}",
            token=self.args.hub_token,
            run_as_future=True,
            allow_patterns=list(_ADAPTER_FILES),
            revision=self.args.hub_revision,
        )
        if self.push_in_progress is None or self.push_in_progress.is_done():
            self.push_in_progress = PushInProgress([job])  # type: ignore[arg-type]  # a list, as transformers passes
        else:
            self.push_in_progress.jobs.append(job)


def _fix_permissions(folder: Path) -> None:
    """safetensors writes its files 0600: give them the permissions of any other file of the folder (the umask's),
    so that an adapter saved in a shared folder can be read by those who can read the rest."""
    from e2wm.utils import new_file_mode

    files = list(folder.glob("*.safetensors"))
    if files:
        mode = new_file_mode(folder)
        for file in files:
            os.chmod(file, mode)


def _check_hub_strategy(args: EWCLoRAConfig) -> None:
    """Checkpoints are never pushed: they hold optimizer and RNG states and ``training_args.bin``, a pickle."""
    strategy = str(getattr(args.hub_strategy, "value", args.hub_strategy))
    if args.push_to_hub and strategy in ("checkpoint", "all_checkpoints"):
        raise ValueError(
            f"hub_strategy={strategy!r} would upload checkpoints, with their optimizer and RNG states and "
            "training_args.bin (a pickle of the whole config); EWCLoRATrainer pushes the adapter only: use "
            "hub_strategy 'end' or 'every_save', and resume from local checkpoints"
        )


def _load_fisher(args: EWCLoRAConfig, model: Any) -> Fisher:
    """``args.fisher`` loaded and validated against ``model`` (on the CPU), normalised by ``args.fisher_normalization``."""
    assert args.fisher is not None
    fisher = load_fisher(
        args.fisher,
        model,
        revision=args.fisher_revision,
        check_base=args.fisher_check_base,
        device="cpu",  # moved next to the adapters on the first step, once the Trainer placed the model
        # several processes (DDP, FSDP, ZeRO-3): the base check hashes the weights where they are whole (gathered
        # shards, or process 0's when the others hold placeholders); every process gets the same verdict
        across_processes=args.world_size > 1,
    )
    method, metadata = args.fisher_normalization, fisher.metadata
    if method == "none" or metadata.get("normalization") == method:
        return fisher
    tensors, base_check = dict(fisher), fisher.base_check
    del fisher  # one tensor at a time below: the peak is the Fisher plus one tensor's temporaries
    scale = global_mean(tensors) if method == "global_mean" else None
    for key in list(tensors):  # kept in the stored dtype: a bf16 Fisher stays half the size (paper_int8 is exact)
        stored = tensors[key].dtype
        normalized = normalize_fisher({key: tensors[key]}, method, metadata.get("layouts"), scale=scale)
        tensors[key] = normalized[key].to(stored)
    return Fisher(tensors, {**metadata, "normalization": method}, base_check)


def _fisher_before_peft(model: Any, args: EWCLoRAConfig, peft_config: Any) -> Fisher | None:
    """The Fisher, checked against the original base weights, when peft is about to rewrite them; else None.

    PiSSA, OLoRA, CorDA and LoRA-GA store W* − s·B⁰A⁰ as the base weight when trl wraps the model; the Fisher's
    base check must see W*. A PeftModel whose init already rewrote its base is refused: neither W* nor B⁰, A⁰
    (its factors may have been trained or loaded since) can be recovered from it.
    """
    rewritten = {} if isinstance(model, str) else base_rewriting_adapters(model)
    if rewritten:
        adapter, init = next(iter(rewritten.items()))
        raise ValueError(
            f"the model's adapter {adapter!r} was initialised with init_lora_weights={init!r}, which rewrote its base "
            "weights: the trainer can no longer see the original weights (to check the Fisher) nor the factors peft "
            "subtracted from them (for the penalty). Pass the base model with "
            f"peft_config=LoraConfig(init_lora_weights={init!r}, ...) instead"
        )
    requested: bool | str = getattr(peft_config, "init_lora_weights", True) if peft_config is not None else True
    if not rewrites_base(requested) or args.penalty != "ewc":  # rewrites_base refuses LoftQ and unknown inits
        return None
    if isinstance(model, str):
        if args.fisher_check_base:
            raise ValueError(
                f"init_lora_weights={requested!r} rewrites the base weights when the trainer wraps the model, so the Fisher "
                f"must be checked against them before: load the model and pass it (model=AutoModelForCausalLM."
                f"from_pretrained({model!r})), or set fisher_check_base=False if the Fisher was estimated on it"
            )
        return None
    return _load_fisher(args, model)


def _check_weights_supported(args: EWCLoRAConfig, kwargs: Mapping[str, Any]) -> None:
    """Per-example weights scale trl's fused per-token log-probabilities of padded batches; refuse the rest."""
    problems = []
    if args.packing or args.padding_free:
        problems.append("packing/padding_free (packed rows mix examples; trl keeps only input_ids and labels)")
    if args.loss_type != "nll":
        problems.append(f"loss_type={args.loss_type!r}")
    if args.label_smoothing_factor > 0 or kwargs.get("compute_loss_func") is not None:
        problems.append("label smoothing or a compute_loss_func (they use the logits, not the fused log-probs)")
    if problems:
        raise ValueError(
            "task weights are not all 1, which is not supported with " + "; ".join(problems) + ". Set "
            "task_weights so every weight is 1 (e.g. '{\"activity_recognition\": 1.0}') or drop those options"
        )


def _task_summary(dataset: Any) -> list[dict[str, Any]]:
    """Rows and weights per task of an in-memory dataset with a ``task`` column (for the card)."""
    if "task" not in (dataset.column_names or []) or not hasattr(dataset, "cache_files"):
        return []
    tasks: dict[str, dict[str, Any]] = {}
    weights = dataset["weight"] if "weight" in dataset.column_names else [1.0] * len(dataset)
    for task, weight in zip(dataset["task"], weights, strict=True):
        entry = tasks.setdefault(task, {"task": task, "rows": 0, "weights": set()})
        entry["rows"] += 1
        entry["weights"].add(float(weight))
    return [{**e, "weights": sorted(e["weights"])} for e in tasks.values()]


def _targets(targets: Any) -> list[str]:
    if targets is None:
        return []
    return [targets] if isinstance(targets, str) else sorted(targets)


def _is_dtensor(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "DTensor"


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if _is_dtensor(tensor) else tensor  # type: ignore[attr-defined,no-any-return]


def _hub_id(name: str | None) -> str | None:
    """``name`` when it is a valid Hub repo id (``namespace/name``) and not a local path, else None: a local
    corpus, Fisher or model is named in the card as the path it is, never as a Hub link."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.count("/") != 1 or Path(name).expanduser().exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name
