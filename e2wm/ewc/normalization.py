"""Normalizations of a Fisher, and the statistics that show what each one does to it.

The penalty is λ·Σ F ⊙ ΔW², so λ only means something together with the scale of F. The options:

- ``none``: the estimate's real values (λ then depends on the model, the documents and their length);
- ``global_mean``: every tensor divided by one number, the mean of all entries of all target tensors:
  F's average is 1 and the relative scale *between* layers is kept (a layer the text depends on more is
  penalised more), so λ compares across models;
- ``mean`` / ``max``: each tensor scaled to mean 1 / max 1 on its own, which erases the relative scale
  between layers;
- ``paper_int8``: each row of the (out, in) matrix scaled so its maximum is 127, then rounded: what the
  paper's code trained with after loading its Fisher in 8-bit, so its λ values apply. For a heavy-tailed
  Fisher most entries fall under 0.5/127 of their row's maximum and round to 0 (go unpenalised);
  ``fisher_statistics`` reports that fraction (``int8_zero_fraction``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from e2wm.ewc.layers import FisherError, Layout

__all__ = ["DEFAULT_NORMALIZATION", "NORMALIZATIONS", "fisher_statistics", "global_mean", "normalize_fisher"]

NORMALIZATIONS = ("none", "global_mean", "mean", "max", "paper_int8")
#: The default of ``EWCLoRAConfig.fisher_normalization`` (chosen by measurement: bench/RESULTS.md, frontier).
DEFAULT_NORMALIZATION = "global_mean"


def _rows(tensor: torch.Tensor, layout: str | None) -> torch.Tensor:
    """The (out, in) view of a weight-shaped tensor (``in_out`` tensors, GPT-2's ``Conv1D``, are transposed)."""
    return tensor.T if layout == "in_out" else tensor


def _paper_int8(f: torch.Tensor, layout: str | None) -> torch.Tensor:
    rows = _rows(f, layout)
    peak = rows.amax(dim=1, keepdim=True)
    rows = torch.where(peak > 0, torch.round(rows * (127.0 / peak.clamp_min(1e-300))), 0.0)
    return _rows(rows, layout)


def global_mean(tensors: Mapping[str, torch.Tensor]) -> float:
    """The mean of every entry of every tensor (fp64 sums): what ``global_mean`` divides by."""
    total = sum(float(t.double().sum()) for t in tensors.values())
    count = sum(t.numel() for t in tensors.values())
    return total / count if count else 0.0


def normalize_fisher(
    tensors: Mapping[str, torch.Tensor],
    method: str,
    layouts: Mapping[str, Layout] | None = None,
    *,
    scale: float | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors normalized by ``method`` (see the module docstring), as fp32.

    ``scale`` (``global_mean`` only) is the global mean to divide by, when ``tensors`` is a part of the
    Fisher (one tensor at a time, to limit memory); by default it is computed from ``tensors``.
    ``paper_int8`` works on rows of the (out, in) matrix, so ``in_out`` tensors (per ``layouts``) are
    scaled along their columns. All-zero tensors and rows stay zero.
    """
    if method not in NORMALIZATIONS:
        raise FisherError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {method!r}")
    if method == "global_mean" and scale is None:
        scale = global_mean(tensors)
    result = {}
    for key, tensor in tensors.items():
        f = tensor.to(torch.float64)
        if method == "global_mean":
            f = f / scale if scale else f
        elif method == "mean":
            f = f / f.mean() if f.mean() > 0 else f
        elif method == "max":
            f = f / f.max() if f.max() > 0 else f
        elif method == "paper_int8":
            f = _paper_int8(f, (layouts or {}).get(key))
        result[key] = f.to(torch.float32).contiguous()
    return result


def fisher_statistics(
    tensors: Mapping[str, torch.Tensor], layouts: Mapping[str, Layout] | None = None
) -> dict[str, Any]:
    """Per tensor: ``mean``, ``max``, ``zero_fraction`` and ``int8_zero_fraction`` (entries ``paper_int8``
    rounds to 0); overall: ``global_mean`` and the two zero fractions over all entries. JSON-ready."""
    per_tensor: dict[str, dict[str, float]] = {}
    zeros = int8_zeros = count = 0
    for key, tensor in tensors.items():
        f = tensor.to(torch.float64)
        n = f.numel()
        z = int((f == 0).sum())
        zi = int((_paper_int8(f, (layouts or {}).get(key)) == 0).sum())
        per_tensor[key] = {
            "mean": float(f.mean()) if n else 0.0,
            "max": float(f.max()) if n else 0.0,
            "zero_fraction": z / n if n else 0.0,
            "int8_zero_fraction": zi / n if n else 0.0,
        }
        zeros, int8_zeros, count = zeros + z, int8_zeros + zi, count + n
    return {
        "global_mean": global_mean(tensors),
        "zero_fraction": zeros / count if count else 0.0,
        "int8_zero_fraction": int8_zeros / count if count else 0.0,
        "tensors": per_tensor,
    }
