"""EWC for LoRA: the diagonal Fisher of the base model and the penalty λ·Σ F ⊙ (s·B·A)².

    fisher = load_fisher("fisher/", peft_model)          # or a Hub repo id; validated against the model
    loss = task_loss + lam * ewc_penalty(peft_model, fisher)

``estimate_fisher`` (``estimate.py``) and ``build_fisher`` (``build.py``, what ``e2wm fisher`` runs) make
the Fisher; ``artifact.py`` saves, loads and validates it; ``normalization.py`` scales it; ``penalty.py``
uses it. Pure torch at the core: nothing here imports trl.
"""

from e2wm.ewc.artifact import Fisher, load_fisher, read_fisher_metadata, save_fisher
from e2wm.ewc.build import FisherArguments, FisherBuild, build_fisher
from e2wm.ewc.estimate import ESTIMATORS, FisherAccumulator, FisherEstimate, estimate_fisher
from e2wm.ewc.layers import FisherError, FisherFormatError, FisherMismatchError
from e2wm.ewc.normalization import DEFAULT_NORMALIZATION, NORMALIZATIONS, fisher_statistics, normalize_fisher
from e2wm.ewc.penalty import (
    DEFAULT_CHUNK_BYTES,
    PenaltyReference,
    base_rewriting_adapters,
    ewc_penalty,
    layer_penalty,
    lora_penalty,
    penalty_reference,
    rewrites_base,
)
from e2wm.ewc.text import DocumentSourceError, TextSource, iter_documents

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_NORMALIZATION",
    "ESTIMATORS",
    "NORMALIZATIONS",
    "DocumentSourceError",
    "Fisher",
    "FisherAccumulator",
    "FisherArguments",
    "FisherBuild",
    "FisherError",
    "FisherEstimate",
    "FisherFormatError",
    "FisherMismatchError",
    "PenaltyReference",
    "TextSource",
    "base_rewriting_adapters",
    "build_fisher",
    "estimate_fisher",
    "ewc_penalty",
    "fisher_statistics",
    "iter_documents",
    "layer_penalty",
    "load_fisher",
    "lora_penalty",
    "normalize_fisher",
    "penalty_reference",
    "read_fisher_metadata",
    "rewrites_base",
    "save_fisher",
]
