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


def model_identity(model: nn.Module, module_names: Sequence[str]) -> dict[str, object]:
    """What identifies the base model a Fisher belongs to.

    ``base_model_name_or_path`` and ``base_revision`` come from the model's config. ``base_content_hash``
    is a sha256 over the names, shapes and a strided sample (at most 65,536 values per weight) of the
    named modules' weights rounded to bfloat16, so the same checkpoint loaded in fp32 or bf16 hashes
    the same; it is ``None`` when any of these weights is quantized (8-bit or 4-bit).
    """
    inner = _peft_inner(model)
    config = getattr(inner, "config", None)
    modules: dict[str, Any] = dict(base_modules(model))
    digest: Any = hashlib.sha256()
    quantized = []
    for name in sorted(module_names):  # a Fisher file lists its weights in its own order
        module = modules[name]
        if _is_quantized(module):
            quantized.append(name)
            digest = None
        if digest is None:
            continue
        weight = module.weight.detach()
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
    return {
        "base_model_name_or_path": getattr(config, "_name_or_path", None) or None,
        "base_revision": getattr(config, "_commit_hash", None),
        "base_architecture": getattr(config, "model_type", None) or type(inner).__name__,
        "base_content_hash": digest.hexdigest() if digest is not None else None,
        "base_quantization": quant_kind,
    }
