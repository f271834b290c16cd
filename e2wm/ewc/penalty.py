"""The EWC-LoRA penalty: P = Σ_layers Σ_ij F_ij · (W − W*)_ij², each layer's total change from the base, exact.

EWC keeps the model near the weights W* at which the Fisher F was estimated (the base model). With LoRA a
layer's effective weight is its base weight plus its active adapters, so its change from W* is

    W − W* = Σ_k s_k B_k A_k  −  Σ_j s_j B⁰_j A⁰_j                                    (d_out, d_in)

- **k runs over the layer's active adapters** (A_k: (r_k, d_in), B_k: (d_out, r_k), s_k = alpha/r, or alpha/√r
  with rsLoRA). Several active adapters (a new adapter stacked on an earlier one, a frozen adapter plus a
  trainable one) are penalised on their *sum*: adapter by adapter, Σ_k F ⊙ (s_k B_k A_k)², would miss the cross
  terms 2 Σ_{k<l} F ⊙ (s_k B_k A_k) ⊙ (s_l B_l A_l). Disabled adapters (``disable_adapter()``) add nothing.
- **j runs over the adapters whose initialisation rewrote the base weight.** PiSSA (``pissa``,
  ``pissa_niter_<n>``), OLoRA, CorDA and LoRA-GA set B⁰, A⁰ from W* and store W* − s·B⁰A⁰ as the base, so that
  the model starts unchanged; its change is then s·(BA − B⁰A⁰), not s·BA. ``penalty_reference`` snapshots B⁰, A⁰
  right after peft created the adapters; pass it as ``ewc_penalty(..., reference=...)``. A model with such an
  adapter and no reference is refused, and so are LoftQ (W* minus its quantised base is full rank, not a low-rank
  product), rewriting inits on quantised base layers (re-quantisation moves the base by more than s·B⁰A⁰) and
  inits this module does not know. The inits come from the model's ``peft_config``.

**One product.** Both sums are B̂Â with B̂ = [s_1 B_1 | s_2 B_2 | … | −s_j B⁰_j] (d_out, R) and
Â = [A_1; A_2; …; A⁰_j] (R, d_in), R = Σ r. The penalty of a layer and its gradients are

    P      = Σ_ij F_ij (B̂Â)_ij²
    ∂P/∂B̂  = 2 (F ⊙ B̂Â) Âᵀ                        (d_out, R)
    ∂P/∂Â  = 2 B̂ᵀ (F ⊙ B̂Â)                        (R, d_in)

and autograd carries them back through the concatenation and the scalings to every A_k and B_k that requires a
gradient; frozen adapters and the snapshot get none.

**Chunked.** Naive autograd materialises B̂Â, (B̂Â)², F⊙(B̂Â)² for every layer and keeps a full d_out×d_in
tensor per layer alive until backward (+8.4 GB for LLaMA-13B q,v in fp32). Here a custom autograd function walks
row-chunks of B̂ (chunk × d_in floats under ``chunk_bytes``, in two reused buffers): each chunk of D = B̂Â is formed
once and its share of P and of both gradients is taken at once. Backward only scales the two small stored
gradients (R·(d_in + d_out) floats per layer) by the incoming gradient, so F is read once per step, not twice as a
recomputing backward would. Everything is computed and accumulated in fp32 (the total in fp64), whatever the
adapter dtype (trl casts QLoRA adapters to bf16); fp64 adapters are computed in fp64. With ``fisher=None`` F is
uniform and P = Σ (B̂ᵀB̂) ⊙ (ÂÂᵀ): the L2-on-ΔW baseline, exact in O(R²(d_in + d_out)).

peft adds ΔW to an (out, in) weight; ``fan_in_fan_out`` layers such as GPT-2's ``Conv1D`` store the weight, and
their Fisher, as (in, out): the Fisher is read transposed.

Pure torch: no trl, no peft import (peft's layers and configs are read by their attributes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from e2wm.ewc.layers import FisherMismatchError, lora_layers

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "Factor",
    "PenaltyReference",
    "base_rewriting_adapters",
    "ewc_penalty",
    "layer_penalty",
    "lora_penalty",
    "penalty_reference",
    "rewrites_base",
]

DEFAULT_CHUNK_BYTES = 4 * 2**20  # fp32 bytes of one chunk of ΔW; two such buffers are alive at once

Factor = tuple[torch.Tensor, torch.Tensor, float]  # (A (r, d_in), B (d_out, r), s): contributes s·B·A to ΔW

# peft's init_lora_weights values that leave the base weight as it was (B⁰ = 0, A⁰ = 0, or a change the model
# really makes: random/orthogonal B⁰A⁰ with an untouched base is a change from W*, penalised as such).
_KEEPS_BASE = frozenset({"gaussian", "eva", "orthogonal", "mica"})


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    # fp32 for fp32/bf16/fp16 adapters; fp64 adapters (used to verify the math) stay fp64.
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# ------------------------------------------------------------------------------------------- the chunked product
class _ChunkedPenalty(torch.autograd.Function):
    """P = Σ F ⊙ (B̂Â)² over row-chunks of B̂; the gradients are taken in the same pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        lora_a: torch.Tensor,  # Â: (R, d_in)
        lora_b: torch.Tensor,  # B̂: (d_out, R), scalings folded in
        fisher_rows: torch.Tensor,  # (d_out, d_in), possibly a transposed view
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
            b_chunk = b[start:stop]  # (c, R)
            delta = torch.mm(b_chunk, a, out=delta_buf[: stop - start])  # (c, d_in): rows of ΔW
            f_chunk = fisher_rows[start:stop].to(device=device, dtype=dtype, non_blocking=True)
            weighted = torch.mul(f_chunk, delta, out=weighted_buf[: stop - start])  # F ⊙ ΔW
            total += torch.dot(weighted.reshape(-1), delta.reshape(-1)).to(torch.float64)
            if need_grad:
                assert grad_a is not None and grad_b is not None
                torch.mm(weighted, a.T, out=grad_b[start:stop])  # (c, R)
                grad_a.addmm_(b_chunk.T, weighted)  # (R, d_in)
        if need_grad:
            assert grad_a is not None and grad_b is not None
            ctx.save_for_backward(grad_a.mul_(2), grad_b.mul_(2))
        ctx.dtypes = (lora_a.dtype, lora_b.dtype)
        return total.to(dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        if not ctx.saved_tensors:
            raise RuntimeError("ewc_penalty was computed without gradients (under torch.no_grad or frozen adapters)")
        grad_a, grad_b = ctx.saved_tensors
        dtype_a, dtype_b = ctx.dtypes
        return (grad_a * grad_output).to(dtype_a), (grad_b * grad_output).to(dtype_b), None, None, None


def layer_penalty(
    factors: Sequence[Factor],
    fisher: torch.Tensor | None = None,
    *,
    fan_in_fan_out: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    name: str = "this layer",
) -> torch.Tensor:
    """Σ_ij F_ij (Σ_k s_k·B_k·A_k)_ij² for one layer, a 0-dim fp32 tensor (fp64 only when a factor is fp64) with
    gradients to every A_k and B_k that requires one.

    ``factors`` are ``(A, B, s)`` with A (r_k, d_in), B (d_out, r_k) and a float s (negative for a subtracted
    block, e.g. a snapshot B⁰A⁰); ``fisher`` has the base weight's shape: (d_out, d_in), or (d_in, d_out) when
    ``fan_in_fan_out``; ``None`` means F = 1 everywhere. At most ``chunk_bytes`` of ΔW (fp32) exist at a time.
    """
    if not factors:
        raise ValueError(f"{name}: layer_penalty needs at least one (A, B, s) factor")
    d_in, d_out = factors[0][0].shape[1], factors[0][1].shape[0]
    for lora_a, lora_b, _ in factors:
        r = lora_a.shape[0]
        if lora_a.shape[1] != d_in or tuple(lora_b.shape) != (d_out, r):
            raise ValueError(
                f"{name}: LoRA factors A {tuple(lora_a.shape)}, B {tuple(lora_b.shape)} do not make a ({d_out}, {d_in}) "
                f"ΔW (A must be (r, {d_in}) and B ({d_out}, r))"
            )
    dtype = _compute_dtype(*(t for lora_a, lora_b, _ in factors for t in (lora_a, lora_b)))
    # Â (R, d_in) and B̂ (d_out, R) with the scalings folded into B̂: B̂Â = Σ_k s_k B_k A_k. cat and the scalar
    # product keep no tensor for backward; they route ∂P/∂Â, ∂P/∂B̂ back to each factor (and its dtype).
    a_hat = torch.cat([lora_a.to(dtype) for lora_a, _, _ in factors])
    b_hat = torch.cat([lora_b.to(dtype) * float(scaling) for _, lora_b, scaling in factors], dim=1)
    if fisher is None:
        # Σ (B̂Â)² = tr(Âᵀ B̂ᵀB̂ Â) = Σ (B̂ᵀB̂) ⊙ (ÂÂᵀ): R×R matrices only.
        return ((b_hat.T @ b_hat) * (a_hat @ a_hat.T)).sum()
    expected = (d_in, d_out) if fan_in_fan_out else (d_out, d_in)
    if tuple(fisher.shape) != expected:
        shapes = ", ".join(f"A {tuple(a.shape)}, B {tuple(b.shape)}" for a, b, _ in factors)
        raise FisherMismatchError(
            f"the Fisher entry for {name!r} has shape {tuple(fisher.shape)}, but the LoRA adapter needs {expected} "
            f"({shapes}{', fan_in_fan_out' if fan_in_fan_out else ''})"
        )
    rows = fisher.T if fan_in_fan_out else fisher  # (d_out, d_in) view
    chunk_rows = max(1, chunk_bytes // (4 * d_in))
    need_grad = torch.is_grad_enabled() and (a_hat.requires_grad or b_hat.requires_grad)
    result: torch.Tensor = _ChunkedPenalty.apply(a_hat, b_hat, rows, chunk_rows, need_grad)
    return result


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
    """Σ_ij F_ij (s·B·A)_ij² for a layer with one adapter: ``layer_penalty([(lora_a, lora_b, scaling)], ...)``."""
    return layer_penalty(
        [(lora_a, lora_b, scaling)], fisher, fan_in_fan_out=fan_in_fan_out, chunk_bytes=chunk_bytes, name=name
    )


# ------------------------------------------------------------------------------------- inits that rewrite the base
def rewrites_base(init: bool | str) -> bool:
    """Whether peft's ``init_lora_weights=init`` stores W* − s·B⁰A⁰ as the base weight (PiSSA, OLoRA, CorDA, LoRA-GA).

    Raises ``NotImplementedError`` for LoftQ and for values this module does not know: for those the penalty
    cannot tell the change from W*.
    """
    if isinstance(init, bool):  # True: A random, B = 0; False: both random; the base is untouched
        return False
    value = str(init).lower()
    if value in _KEEPS_BASE:
        return False
    if value.startswith(("pissa", "corda")) or value in {"olora", "lora_ga"}:
        return True
    if value == "loftq":
        raise NotImplementedError(
            "init_lora_weights='loftq' replaces the base weight by a quantised one: the change from the weights the "
            "Fisher was estimated at then includes the quantisation error, which is not a low-rank product, so the "
            "EWC penalty cannot be exact. Train with init_lora_weights=True (or 'pissa', 'olora') instead"
        )
    raise NotImplementedError(
        f"init_lora_weights={init!r} is not known to the EWC penalty, which cannot tell whether it rewrote the base "
        f"weights; use True, False, {', '.join(sorted(_KEEPS_BASE))}, 'pissa', 'pissa_niter_<n>', 'olora', "
        "'corda' or 'lora_ga'"
    )


def base_rewriting_adapters(model: nn.Module) -> dict[str, str]:
    """``{adapter: init_lora_weights}`` of the adapters whose initialisation rewrote the base weights.

    Read from the model's ``peft_config`` (a ``PeftModel``, a ``LoraModel`` and a model with injected adapters all
    have one); a model without it counts as plain LoRA.
    """
    configs = getattr(model, "peft_config", None)
    if not isinstance(configs, Mapping):
        return {}
    return {
        adapter: str(init)
        for adapter, config in configs.items()
        if rewrites_base(init := getattr(config, "init_lora_weights", True))
    }


def _is_quantized(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return weight is None or not weight.dtype.is_floating_point or hasattr(weight, "quant_state")


def _not_initial(init: str, lora_a: torch.Tensor, lora_b: torch.Tensor) -> str | None:
    """Which property of ``init``'s B⁰, A⁰ the factors lack (they were trained or loaded since), or None.

    PiSSA: B⁰ = V√Σ', A⁰ = √Σ'Uᵀ, so B⁰ᵀB⁰ = A⁰A⁰ᵀ = Σ' diagonal. CorDA: B⁰ = U√Σ', so B⁰ᵀB⁰ is diagonal.
    OLoRA: B⁰ = Q (orthonormal columns), A⁰ = R (upper trapezoidal). LoRA-GA: nothing to check.
    """
    a, b = lora_a.double(), lora_b.double()
    gram_a, gram_b = a @ a.T, b.T @ b  # (r, r)
    tol = 1e-4 if lora_a.dtype in (torch.float32, torch.float64) else 3e-2  # fp32 factors; bf16/fp16 round more

    def off_diagonal(gram: torch.Tensor) -> float:
        return float((gram - torch.diag(gram.diagonal())).abs().max() / gram.diagonal().abs().max().clamp_min(1e-30))

    if init.startswith("pissa"):
        if float((gram_b - gram_a).abs().max() / gram_a.abs().max().clamp_min(1e-30)) > tol:
            return "B⁰ᵀB⁰ = A⁰A⁰ᵀ"
        if off_diagonal(gram_a) > tol:
            return "A⁰A⁰ᵀ diagonal"
    elif init.startswith("corda"):
        if off_diagonal(gram_b) > tol:
            return "B⁰ᵀB⁰ diagonal"
    elif init == "olora":
        if float((gram_b - torch.eye(len(gram_b), dtype=gram_b.dtype, device=gram_b.device)).abs().max()) > tol:
            return "B⁰ᵀB⁰ = I"
        if float(torch.tril(a, -1).abs().max() / a.abs().max().clamp_min(1e-30)) > tol:
            return "A⁰ upper triangular"
    return None


class PenaltyReference:
    """s·B⁰, A⁰ of every adapter whose initialisation rewrote its layer's base weight (W_base = W* − s·B⁰A⁰).

    Built once by ``penalty_reference`` right after peft created the adapters; ``ewc_penalty(model, fisher,
    reference=...)`` subtracts Σ_j s_j B⁰_j A⁰_j from each layer's change. Empty (``inits == {}``) for plain LoRA.
    The snapshot is detached fp32 (fp64 for fp64 adapters): r·(d_in + d_out) values per adapter and layer, moved
    next to the adapters the first time they are used elsewhere. It is not saved with checkpoints: peft's init is
    deterministic given the base and trl's seed, so a resumed run rebuilds the same base and the same snapshot at
    construction, before the checkpoint's factors are loaded.
    """

    def __init__(self, factors: Mapping[str, Sequence[Factor]], inits: Mapping[str, str]) -> None:
        self.inits = dict(inits)  # adapter -> init_lora_weights
        self._factors = {name: list(entries) for name, entries in factors.items()}  # layer -> [(A⁰, B⁰, −s)]

    @property
    def layer_names(self) -> list[str]:
        return list(self._factors)

    def factors(self, name: str, device: torch.device | None = None) -> list[Factor]:
        """The subtracted blocks ``(A⁰, B⁰, −s)`` of layer ``name`` (``[]`` if none), on ``device``."""
        entries = self._factors.get(name)
        if not entries:
            return []
        if device is not None and entries[0][0].device != device:
            entries = [(a.to(device), b.to(device), s) for a, b, s in entries]
            self._factors[name] = entries  # moved once, not on every step
        return entries

    def __repr__(self) -> str:
        return f"PenaltyReference(inits={self.inits}, layers={len(self._factors)})"


def penalty_reference(model: nn.Module) -> PenaltyReference:
    """Snapshot B⁰, A⁰ of the adapters whose init rewrote the base weights, for ``ewc_penalty(reference=...)``.

    Call it right after peft created the adapters (``get_peft_model``, ``add_adapter``), before any training
    step or loading of adapter weights: the factors must still be the ones peft subtracted from the base. PiSSA,
    CorDA and OLoRA factors are checked for the structure of their init (a PiSSA adapter loaded with
    ``PeftModel.from_pretrained`` holds trained factors over a freshly rewritten base: refused); LoRA-GA's cannot
    be checked. Rewriting inits on quantised base layers raise ``NotImplementedError``.
    """
    inits = base_rewriting_adapters(model)
    factors: dict[str, list[Factor]] = {}
    for name, layer in lora_layers(model):
        for adapter, init in inits.items():
            if adapter not in layer.lora_A:
                continue  # this adapter does not target this layer
            if _is_quantized(layer.get_base_layer()):
                raise NotImplementedError(
                    f"{name}: adapter {adapter!r} (init_lora_weights={init!r}) rewrote a quantised base weight; "
                    "re-quantisation changes it by more than s·B⁰A⁰, so the EWC penalty cannot be exact. Initialise "
                    "on the unquantised model, or use init_lora_weights=True on the quantised one"
                )
            weight_a, weight_b = layer.lora_A[adapter].weight.detach(), layer.lora_B[adapter].weight.detach()
            dtype = _compute_dtype(weight_a, weight_b)
            lora_a, lora_b = weight_a.to(dtype, copy=True), weight_b.to(dtype, copy=True)
            lacking = _not_initial(init.lower(), weight_a, weight_b)
            if lacking is not None:
                raise ValueError(
                    f"{name}: adapter {adapter!r} (init_lora_weights={init!r}) no longer holds the factors peft "
                    f"subtracted from the base ({lacking} does not hold): build the reference right after peft created "
                    "the adapter, before training or loading its weights. A saved adapter of this kind is loaded over "
                    "a freshly rewritten base; convert it to plain LoRA first (peft's "
                    "path_initial_model_for_weight_conversion) and load that on the original base"
                )
            factors.setdefault(name, []).append((lora_a, lora_b, -float(layer.scaling[adapter])))
    return PenaltyReference(factors, inits)


# ------------------------------------------------------------------------------------------------- the model
def _active_factor(
    name: str, layer: Any, adapter: str, gather: Callable[[torch.Tensor], torch.Tensor]
) -> Factor | None:
    """``(A, B, s)`` of one active adapter of a LoRA layer, None if it does not target the layer; refuses variants."""
    if adapter in getattr(layer, "lora_embedding_A", {}):
        raise NotImplementedError(f"{name}: the EWC penalty supports LoRA on linear layers, not embeddings")
    if adapter not in layer.lora_A:
        return None
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
    return gather(lora_a.weight), gather(lora_b.weight), float(layer.scaling[adapter])


def _check_reference(model: nn.Module, reference: PenaltyReference | None) -> None:
    rewritten = base_rewriting_adapters(model)
    if reference is None and rewritten:
        adapter, init = next(iter(rewritten.items()))
        raise ValueError(
            f"adapter {adapter!r} was initialised with init_lora_weights={init!r}, which rewrote the base weights "
            "(W_base = W* − s·B⁰A⁰), so the change from the weights the Fisher was estimated at is s·(BA − B⁰A⁰), not "
            "s·BA: pass reference=penalty_reference(model), built right after peft created the adapter"
        )
    missing = sorted(set(rewritten) - set(reference.inits)) if reference is not None else []
    if missing:
        raise ValueError(
            f"adapter(s) {missing} rewrote the base weights after the penalty reference was built: build it again "
            "with penalty_reference(model) right after adding them"
        )


def ewc_penalty(
    model: nn.Module,
    fisher: Mapping[str, torch.Tensor] | None,
    *,
    reference: PenaltyReference | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """P = Σ_layers Σ F ⊙ (W − W*)², W − W* = Σ_active s·B·A − Σ_rewritten s·B⁰A⁰: a 0-dim fp32 tensor (the loss
    adds λ·P) with gradients to every active LoRA A and B that requires one.

    ``model`` is a peft model (``PeftModel``, a ``LoraModel`` or a model with injected LoRA layers); ``fisher`` maps
    the base model's weight names (``model.layers.0.self_attn.q_proj.weight``) to tensors of the base weight's shape,
    e.g. from ``load_fisher``; extra entries are ignored, a missing one raises ``FisherMismatchError``.
    ``fisher=None`` is a uniform F (L2 on ΔW). ``reference`` (from ``penalty_reference``) is required when an
    adapter's init rewrote the base weights (PiSSA, OLoRA, CorDA, LoRA-GA). ``gather`` maps each LoRA weight to the
    whole tensor, differentiably (FSDP2: ``DTensor.full_tensor``). DoRA and other LoRA variants, and LoRA on
    embeddings or convolutions, raise ``NotImplementedError``.
    """
    _check_reference(model, reference)
    take = gather if gather is not None else (lambda tensor: tensor)
    total: torch.Tensor | None = None
    seen: set[str] = set()
    for name, layer in lora_layers(model):
        seen.add(name)
        factors: list[Factor] = []
        if not getattr(layer, "disable_adapters", False):
            for adapter in layer.active_adapters:
                factor = _active_factor(name, layer, adapter, take)
                if factor is not None:
                    factors.append(factor)
        if reference is not None:
            # W_base already lacks s·B⁰A⁰ of rewriting adapters, active or not: their blocks enter with −s.
            factors += reference.factors(name, next(iter(layer.lora_A.values())).weight.device)
        if not factors:
            continue
        key = f"{name}.weight"
        entry = None
        if fisher is not None:
            entry = fisher.get(key)
            if entry is None:
                raise FisherMismatchError(f"Fisher has no entry for {key!r} (a LoRA layer of this model)")
        term = layer_penalty(
            factors,
            entry,
            fan_in_fan_out=bool(getattr(layer, "fan_in_fan_out", False)),
            chunk_bytes=chunk_bytes,
            name=key,
        )
        total = term if total is None else total + term
    if not seen:
        raise ValueError("ewc_penalty: the model has no LoRA layer (wrap it with peft's get_peft_model first)")
    if reference is not None and (unknown := sorted(set(reference.layer_names) - seen)):
        raise ValueError(
            f"the penalty reference names LoRA layers this model does not have ({', '.join(unknown[:3])}): it was "
            "built for another model; build it with penalty_reference(model) on this one"
        )
    if total is None:
        device = next(model.parameters()).device
        return torch.zeros((), dtype=torch.float32, device=device)
    return total
