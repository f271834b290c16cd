"""Which modules of a model carry Fisher entries or LoRA adapters, and what their base weights are called.

A Fisher is keyed by the base model's own weight names (``model.layers.0.self_attn.q_proj.weight``),
whatever wraps the model later. peft renames things: a ``PeftModel`` puts the base model under
``base_model.model.`` and moves each targeted layer to ``<name>.base_layer``. ``base_modules`` and
``lora_layers`` undo that, so the same Fisher fits the plain, the quantized and the peft-wrapped model.

Weight layouts: ``nn.Linear`` (and bitsandbytes' ``Linear8bitLt``/``Linear4bit``) store W as
(out, in) and compute y = x Wᵀ; transformers' ``Conv1D`` (GPT-2) stores W as (in, out) and computes
y = x W. A Fisher entry always has the base weight's logical shape in its own layout (for a 4-bit
layer that is (out, in), not the packed storage shape).

No trl and no peft import here: LoRA layers are recognised by their attributes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "FisherError",
    "FisherFormatError",
    "FisherMismatchError",
    "Layout",
    "base_identity",
    "base_modules",
    "is_lora_layer",
    "lora_layers",
    "match_target_modules",
    "model_identity",
    "weight_layout",
    "weight_shape",
]

Layout = Literal["out_in", "in_out"]

# Sub-modules peft adds inside a LoRA layer: never base modules of their own.
_PEFT_PARTS = frozenset(
    {"base_layer", "lora_A", "lora_B", "lora_dropout", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector"}
)
_HASH_SAMPLES = 65_536  # values per weight that enter the content hash


class FisherError(ValueError):
    """A Fisher problem the user can fix: the message says what is wrong and what to do."""


class FisherFormatError(FisherError):
    """The file is not a usable e2wm Fisher (missing, not safetensors, fp16, NaN/inf or negative values)."""


class FisherMismatchError(FisherError):
    """The Fisher does not fit the model (missing entries, wrong shapes, another base model)."""


def _peft_inner(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (``PeftModel`` or a tuner such as ``LoraModel``)."""
    wrapper: Any = model
    classes = {cls.__name__ for cls in type(model).__mro__}
    if "PeftModel" in classes:
        return wrapper.base_model.model  # type: ignore[no-any-return]
    if "BaseTuner" in classes:
        return wrapper.model  # type: ignore[no-any-return]
    return model


def is_lora_layer(module: nn.Module) -> bool:
    """A peft LoRA layer (any of ``peft.tuners.lora`` Linear, bnb Linear8bitLt/Linear4bit, Embedding, Conv)."""
    return all(hasattr(module, attr) for attr in ("lora_A", "lora_B", "scaling", "active_adapters", "base_layer"))


def _base_of(module: Any) -> nn.Module:
    while is_lora_layer(module):
        module = module.base_layer
    return module


def base_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` for every module of the base model, under the base model's own names.

    A LoRA layer is reported as its base layer (the ``nn.Linear``, ``Conv1D`` or bnb layer it wraps).
    """
    for name, module in _peft_inner(model).named_modules():
        if _PEFT_PARTS.intersection(name.split(".")):
            continue
        yield name, _base_of(module)


def lora_layers(model: nn.Module) -> Iterator[tuple[str, Any]]:
    """``(base module name, LoRA layer)`` for every peft LoRA layer of ``model``."""
    for name, module in _peft_inner(model).named_modules():
        if is_lora_layer(module) and not _PEFT_PARTS.intersection(name.split(".")):
            yield name, module


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "nx")


def weight_layout(module: nn.Module) -> Layout:
    """``"out_in"`` for ``nn.Linear`` and its bnb subclasses, ``"in_out"`` for transformers' ``Conv1D``."""
    if _is_conv1d(module):
        return "in_out"
    if isinstance(module, nn.Linear):
        return "out_in"
    raise FisherError(
        f"{type(module).__name__} layers are not supported: a Fisher target must be a linear layer "
        "(nn.Linear, transformers Conv1D, or a bitsandbytes Linear8bitLt/Linear4bit)"
    )


def weight_shape(module: Any) -> tuple[int, int]:
    """The logical shape of the module's weight in its own layout (not a 4-bit packed storage shape)."""
    if _is_conv1d(module):
        return (int(module.nx), int(module.nf))
    if isinstance(module, nn.Linear):
        return (int(module.out_features), int(module.in_features))
    weight_layout(module)  # raises the readable error
    raise AssertionError("unreachable")


def match_target_modules(model: nn.Module, targets: Sequence[str]) -> dict[str, nn.Module]:
    """The modules named by ``targets``, as peft matches them: a name equal to a target or ending in ``.<target>``.

    Every target must match at least one module, and every match must be a linear layer.
    """
    if not targets:
        raise FisherError("target_modules is empty: name the LoRA target modules, e.g. q_proj,v_proj")
    modules = dict(base_modules(model))
    found: dict[str, nn.Module] = {}
    for target in targets:
        hits = {name: mod for name, mod in modules.items() if name == target or name.endswith("." + target)}
        if not hits:
            linear = sorted({name.rsplit(".", 1)[-1] for name, mod in modules.items() if _is_linear(mod)})
            raise FisherError(
                f"target module {target!r} matches no module of {type(_peft_inner(model)).__name__}; "
                f"its linear modules are: {', '.join(linear) or 'none'}"
            )
        for name, module in hits.items():
            weight_layout(module)
            found[name] = module
    return dict(sorted(found.items(), key=lambda item: _natural_key(item[0])))


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _natural_key(name: str) -> list[object]:
    # model.layers.2 before model.layers.10
    return [(0, int(part)) if part.isdigit() else (1, part) for part in name.split(".")]


def _is_quantized(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return weight is None or not weight.dtype.is_floating_point or hasattr(weight, "quant_state")


def _placement(weight: torch.Tensor) -> Literal["whole", "meta", "partitioned"]:
    """Whether this process holds the whole weight: not a meta placeholder, a ZeRO-3 partition or a DTensor shard."""
    if weight.is_meta:
        return "meta"  # e.g. FSDP's cpu_ram_efficient_loading: only process 0 reads the checkpoint
    ds_numel = getattr(weight, "ds_numel", None)  # DeepSpeed ZeRO-3 (zero3_init_flag): shape [0] outside forward
    if (ds_numel is not None and weight.numel() != ds_numel) or type(weight).__name__ == "DTensor":
        return "partitioned"
    return "whole"


def _whole_weight(weight: Any) -> Any:
    """A context giving the whole weight of a partitioned parameter (a collective: every process must enter it)."""
    import contextlib

    if type(weight).__name__ == "DTensor":
        return contextlib.nullcontext(weight.full_tensor())
    if getattr(weight, "ds_numel", None) is not None:
        import deepspeed  # present: the weight is one of its partitions

        @contextlib.contextmanager
        def gathered() -> Iterator[torch.Tensor]:
            with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
                yield weight

        return gathered()
    return contextlib.nullcontext(weight)


def _identity(
    model: nn.Module, module_names: Sequence[str], *, gather: bool = False
) -> tuple[dict[str, object], str | None]:
    """``model_identity`` and, when its content hash is None, why. ``gather``: hash partitioned weights whole,
    gathering one at a time (a collective: every process must call it, with the same names)."""
    inner = _peft_inner(model)
    config = getattr(inner, "config", None)
    modules: dict[str, Any] = dict(base_modules(model))
    digest: Any = hashlib.sha256()
    quantized, why = [], None
    for name in sorted(module_names):  # a Fisher file lists its weights in its own order
        module = modules[name]
        if _is_quantized(module):
            quantized.append(name)
            digest, why = None, why or "its weights are quantized (8-bit/4-bit)"
        if digest is None:
            continue
        placement = _placement(module.weight)
        if placement == "meta" or (placement == "partitioned" and not gather):
            where = "on the meta device (not loaded)" if placement == "meta" else "sharded between processes"
            digest, why = None, f"its weight {name!r} is {where} in this process"
            continue
        with _whole_weight(module.weight) as whole:
            weight = whole.detach()
            flat = weight.reshape(-1)
            step = max(1, flat.numel() // _HASH_SAMPLES)
            sample = flat[::step][:_HASH_SAMPLES].to(device="cpu", dtype=torch.bfloat16).view(torch.int16)
            digest.update(f"{name}:{tuple(weight.shape)}:".encode())
            digest.update(sample.numpy().tobytes())
    quant = getattr(config, "quantization_config", None)
    if quant is not None and not isinstance(quant, Mapping):
        quant = quant.to_dict() if hasattr(quant, "to_dict") else {}
    quant_kind = None
    if quantized or quant:
        quant = quant or {}
        quant_kind = "4bit" if quant.get("load_in_4bit") else "8bit" if quant.get("load_in_8bit") else "quantized"
    identity = {
        "base_model_name_or_path": getattr(config, "_name_or_path", None) or None,
        "base_revision": getattr(config, "_commit_hash", None),
        "base_architecture": getattr(config, "model_type", None) or type(inner).__name__,
        "base_content_hash": digest.hexdigest() if digest is not None else None,
        "base_quantization": quant_kind,
    }
    return identity, why


def model_identity(model: nn.Module, module_names: Sequence[str]) -> dict[str, object]:
    """What identifies the base model a Fisher belongs to.

    ``base_model_name_or_path`` and ``base_revision`` come from the model's config. ``base_content_hash``
    is a sha256 over the names, shapes and a strided sample (at most 65,536 values per weight) of the
    named modules' weights rounded to bfloat16, so the same checkpoint loaded in fp32 or bf16 hashes
    the same; it is ``None`` when any of these weights is quantized (8-bit or 4-bit), or is not whole in
    this process (meta, a ZeRO-3 partition, an FSDP shard: ``base_identity`` handles those).
    """
    return _identity(model, module_names)[0]


def base_identity(
    model: nn.Module, module_names: Sequence[str], *, across_processes: bool = False
) -> tuple[dict[str, object], str]:
    """``model_identity`` computed where the weights are whole, and a sentence saying where that was.

    ``across_processes`` (every process of the ``torch.distributed`` group must call it, with the same names):

    - every process holds ZeRO-3 partitions or FSDP shards: each weight is gathered whole in turn and hashed
      (every process gets the same hash);
    - otherwise process 0 computes it and broadcasts it. Process 0's weights are the ones that are trained:
      DDP copies them to every process, and FSDP's ``cpu_ram_efficient_loading`` loads only them (the other
      processes hold meta or empty placeholders until FSDP broadcasts process 0's).

    Raises ``FisherError`` when the weights cannot be hashed here (meta or partitioned in a single process, or
    processes that disagree on how they hold them): checking by name alone instead would be a silent downgrade.
    Quantized weights have no content hash (``None``): the caller checks the name, as for any quantized base.
    """
    import torch.distributed as dist

    names = list(module_names)
    grouped = across_processes and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not grouped:
        identity, why = _identity(model, names)
        where = "on this process's weights"
    else:
        world, rank = dist.get_world_size(), dist.get_rank()
        modules: dict[str, Any] = dict(base_modules(model))
        local = {_placement(modules[n].weight) for n in names if not _is_quantized(modules[n])}
        placements: list[Any] = [None] * world
        dist.all_gather_object(placements, sorted(local))
        if any("partitioned" in p for p in placements):  # ZeRO-3 (small weights may stay whole) or FSDP2
            if any(p != placements[0] or "meta" in p for p in placements):
                raise FisherError(
                    f"cannot check the Fisher's base model: the {world} processes hold the weights differently "
                    f"({', '.join(f'process {r}: {p}' for r, p in enumerate(placements))}); pass check_base=False "
                    "(fisher_check_base: false) if you know the Fisher belongs to this base"
                )
            identity, why = _identity(model, names, gather=True)
            where = f"on the whole weights, gathered one at a time from the shards of the {world} processes"
        else:
            payload: list[Any] = [_identity(model, names) if rank == 0 else None]
            dist.broadcast_object_list(payload, src=0)
            identity, why = payload[0]
            placeholders = [r for r, p in enumerate(placements) if "meta" in p]
            where = f"on process 0's weights, shared with all {world} processes (DDP and FSDP train process 0's)"
            if placeholders:
                where += (
                    f"; process(es) {', '.join(map(str, placeholders))} hold meta placeholders until FSDP loads them"
                )
    if identity["base_content_hash"] is None and why is not None and "quantized" not in why:
        raise FisherError(
            f"cannot check the Fisher's base model: {why}. Load the weights first; under FSDP or DeepSpeed ZeRO-3 "
            "call load_fisher(..., across_processes=True) on every process (EWCLoRATrainer does); or pass "
            "check_base=False (fisher_check_base: false) if you know the Fisher belongs to this base"
        )
    return identity, where if why is None else f"{where}; no content hash: {why}"
