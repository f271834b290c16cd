"""The EWC-LoRA penalty: P = Σ_layers Σ_active adapters Σ_ij F_ij · ΔW_ij², ΔW = s·B·A, exact and chunked.

For one LoRA layer with A: (r, d_in), B: (d_out, r) and scaling s (alpha/r, or alpha/√r with rsLoRA),
peft adds ΔW = s·B·A (an (out, in) matrix; the base weight gets ΔWᵀ for ``fan_in_fan_out`` layers such
as GPT-2's ``Conv1D``, whose Fisher is stored (in, out)). The penalty and its gradients are

    P      = s² Σ_ij F_ij (B A)_ij²
    ∂P/∂B  = 2 s² (F ⊙ BA) Aᵀ                     (d_out, r)
    ∂P/∂A  = 2 s² Bᵀ (F ⊙ BA)                     (r, d_in)

Naive autograd materialises BA, (BA)², F⊙(BA)² for every layer and keeps a full d_out×d_in tensor per
layer alive until backward (+8.4 GB for LLaMA-13B q,v in fp32). Here a custom autograd function walks
row-chunks of B (chunk × d_in floats under ``chunk_bytes``, in two reused buffers): each chunk of
D = BA is formed once and its share of P and of both gradients is taken at once. Backward only scales
the two small stored gradients (r·(d_in + d_out) floats per layer) by the incoming gradient, so F is
read once per step, not twice as a recomputing backward would. Everything is computed and accumulated
in fp32 (the total in fp64), whatever the adapter dtype (trl casts QLoRA adapters to bf16); fp64
adapters are computed in fp64. With ``fisher=None`` F is uniform and P = s² Σ (BᵀB) ⊙ (AAᵀ): the
L2-on-ΔW baseline, exact in O(r²(d_in + d_out)).

Pure torch: no trl, no peft import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from e2wm.ewc.layers import FisherMismatchError, lora_layers

__all__ = ["DEFAULT_CHUNK_BYTES", "ewc_penalty", "lora_penalty"]

DEFAULT_CHUNK_BYTES = 4 * 2**20  # fp32 bytes of one chunk of ΔW; two such buffers are alive at once


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    # fp32 for fp32/bf16/fp16 adapters; fp64 adapters (used to verify the math) stay fp64.
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


class _ChunkedPenalty(torch.autograd.Function):
    """P = s² Σ F ⊙ (BA)² over row-chunks of B; the gradients are taken in the same pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        lora_a: torch.Tensor,  # (r, d_in)
        lora_b: torch.Tensor,  # (d_out, r)
        fisher_rows: torch.Tensor,  # (d_out, d_in), possibly a transposed view
        scale_sq: float,
        chunk_rows: int,
        need_grad: bool,
    ) -> torch.Tensor:
        device = lora_a.device
        dtype = _compute_dtype(lora_a, lora_b)
        a = lora_a.detach().to(dtype)
        b = lora_b.detach().to(dtype)
        total = torch.zeros((), dtype=torch.float64, device=device)
        grad_a = torch.zeros_like(a) if need_grad else None
        grad_b = torch.empty_like(b) if need_grad else None
        # Two chunk buffers, reused for every chunk: no allocator traffic inside the loop.
        rows = min(chunk_rows, b.shape[0])
        delta_buf = torch.empty((rows, a.shape[1]), dtype=dtype, device=device)
        weighted_buf = torch.empty_like(delta_buf)
        for start in range(0, b.shape[0], chunk_rows):
            stop = min(start + chunk_rows, b.shape[0])
            b_chunk = b[start:stop]  # (c, r)
            delta = torch.mm(b_chunk, a, out=delta_buf[: stop - start])  # (c, d_in): rows of BA
            f_chunk = fisher_rows[start:stop].to(device=device, dtype=dtype, non_blocking=True)
            weighted = torch.mul(f_chunk, delta, out=weighted_buf[: stop - start])  # F ⊙ BA
            total += torch.dot(weighted.reshape(-1), delta.reshape(-1)).to(torch.float64)
            if need_grad:
                assert grad_a is not None and grad_b is not None
                torch.mm(weighted, a.T, out=grad_b[start:stop])  # (c, r)
                grad_a.addmm_(b_chunk.T, weighted)  # (r, d_in)
        if need_grad:
            assert grad_a is not None and grad_b is not None
            ctx.save_for_backward(grad_a.mul_(2 * scale_sq), grad_b.mul_(2 * scale_sq))
        ctx.dtypes = (lora_a.dtype, lora_b.dtype)
        return (total * scale_sq).to(dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        if not ctx.saved_tensors:
            raise RuntimeError("ewc_penalty was computed without gradients (under torch.no_grad or frozen adapters)")
        grad_a, grad_b = ctx.saved_tensors
        dtype_a, dtype_b = ctx.dtypes
        return (grad_a * grad_output).to(dtype_a), (grad_b * grad_output).to(dtype_b), None, None, None, None


def lora_penalty(
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    scaling: float,
    fisher: torch.Tensor | None = None,
    *,
    fan_in_fan_out: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    name: str = "this layer",
) -> torch.Tensor:
    """Σ_ij F_ij (s·B·A)_ij² for one adapter of one layer, a 0-dim fp32 tensor with gradients to A and B
    (fp64 only when the adapters are fp64).

    ``lora_a`` is (r, d_in), ``lora_b`` (d_out, r); ``fisher`` has the base weight's shape: (d_out, d_in),
    or (d_in, d_out) when ``fan_in_fan_out``; ``None`` means F = 1 everywhere. At most ``chunk_bytes`` of
    ΔW (fp32) exist at a time.
    """
    r, d_in = lora_a.shape
    d_out = lora_b.shape[0]
    if lora_b.shape[1] != r:
        raise ValueError(f"{name}: LoRA B has shape {tuple(lora_b.shape)}, expected ({d_out}, {r}) for A {(r, d_in)}")
    scale_sq = float(scaling) ** 2
    if fisher is None:
        # Σ (s BA)² = s² tr(Aᵀ BᵀB A) = s² Σ (BᵀB) ⊙ (AAᵀ): r×r matrices only.
        dtype = _compute_dtype(lora_a, lora_b)
        a, b = lora_a.to(dtype), lora_b.to(dtype)
        return scale_sq * ((b.T @ b) * (a @ a.T)).sum()
    expected = (d_in, d_out) if fan_in_fan_out else (d_out, d_in)
    if tuple(fisher.shape) != expected:
        raise FisherMismatchError(
            f"the Fisher entry for {name!r} has shape {tuple(fisher.shape)}, but the LoRA adapter needs {expected} "
            f"(A {tuple(lora_a.shape)}, B {tuple(lora_b.shape)}{', fan_in_fan_out' if fan_in_fan_out else ''})"
        )
    rows = fisher.T if fan_in_fan_out else fisher  # (d_out, d_in) view
    chunk_rows = max(1, chunk_bytes // (4 * d_in))
    need_grad = torch.is_grad_enabled() and (lora_a.requires_grad or lora_b.requires_grad)
    result: torch.Tensor = _ChunkedPenalty.apply(lora_a, lora_b, rows, scale_sq, chunk_rows, need_grad)
    return result


def ewc_penalty(
    model: nn.Module,
    fisher: Mapping[str, torch.Tensor] | None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """P = Σ over LoRA layers and active adapters of Σ F ⊙ ΔW², a 0-dim fp32 tensor (the loss adds λ·P)
    with gradients to every active LoRA A and B.

    ``model`` is a peft model (``PeftModel``, a ``LoraModel`` or a model with injected LoRA layers);
    ``fisher`` maps the base model's weight names (``model.layers.0.self_attn.q_proj.weight``) to
    tensors of the base weight's shape, e.g. from ``load_fisher``; extra entries are ignored, a missing
    one raises ``FisherMismatchError``. ``fisher=None`` is a uniform F (L2 on ΔW). Layers whose adapters
    are disabled contribute nothing. DoRA and other LoRA variants, and LoRA on embeddings or
    convolutions, raise ``NotImplementedError``.
    """
    total: torch.Tensor | None = None
    found = False
    for name, layer in lora_layers(model):
        found = True
        if getattr(layer, "disable_adapters", False):
            continue
        key = f"{name}.weight"
        for adapter in layer.active_adapters:
            if adapter in getattr(layer, "lora_embedding_A", {}):
                raise NotImplementedError(f"{name}: the EWC penalty supports LoRA on linear layers, not embeddings")
            if adapter not in layer.lora_A:
                continue  # this adapter does not target this layer
            variant = getattr(layer, "lora_variant", {}).get(adapter)
            if variant is not None or getattr(layer, "use_dora", {}).get(adapter, False):
                kind = "DoRA" if getattr(layer, "use_dora", {}).get(adapter, False) else type(variant).__name__
                raise NotImplementedError(
                    f"{name} (adapter {adapter!r}) is a {kind} layer: the EWC penalty is defined for plain LoRA, "
                    "ΔW = s·B·A; train it without the variant"
                )
            lora_a, lora_b = layer.lora_A[adapter], layer.lora_B[adapter]
            if not (isinstance(lora_a, nn.Linear) and isinstance(lora_b, nn.Linear)):
                raise NotImplementedError(
                    f"{name}: the EWC penalty supports LoRA on linear layers, not {type(lora_a).__name__}"
                )
            entry = None
            if fisher is not None:
                entry = fisher.get(key)
                if entry is None:
                    raise FisherMismatchError(f"Fisher has no entry for {key!r} (a LoRA layer of this model)")
            term = lora_penalty(
                lora_a.weight,
                lora_b.weight,
                layer.scaling[adapter],
                entry,
                fan_in_fan_out=bool(getattr(layer, "fan_in_fan_out", False)),
                chunk_bytes=chunk_bytes,
                name=key,
            )
            total = term if total is None else total + term
    if not found:
        raise ValueError("ewc_penalty: the model has no LoRA layer (wrap it with peft's get_peft_model first)")
    if total is None:
        device = next(model.parameters()).device
        return torch.zeros((), dtype=torch.float32, device=device)
    return total
