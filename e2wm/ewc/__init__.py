"""EWC for LoRA: the diagonal Fisher of the base model and the penalty λ·Σ F ⊙ (s·B·A)².

    fisher = load_fisher("fisher/", peft_model)          # or a Hub repo id; validated against the model
    loss = task_loss + lam * ewc_penalty(peft_model, fisher)

``estimate_fisher`` / ``build_fisher`` (what ``e2wm fisher`` runs) make the Fisher; ``ewc_penalty``
uses it. Pure torch at the core: nothing here imports trl.
"""

from e2wm.ewc.build import FisherBuild, build_fisher, load_base_model
from e2wm.ewc.fisher import (
    ESTIMATORS,
    NORMALISATIONS,
    Fisher,
    FisherAccumulator,
    FisherEstimate,
    estimate_fisher,
    load_fisher,
    normalise_fisher,
    push_fisher,
    save_fisher,
)
from e2wm.ewc.layers import FisherError, FisherFormatError, FisherMismatchError
from e2wm.ewc.penalty import DEFAULT_CHUNK_BYTES, ewc_penalty, lora_penalty
from e2wm.ewc.text import DocumentSourceError, TextSource, iter_documents

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ESTIMATORS",
    "NORMALISATIONS",
    "DocumentSourceError",
    "Fisher",
    "FisherAccumulator",
    "FisherBuild",
    "FisherError",
    "FisherEstimate",
    "FisherFormatError",
    "FisherMismatchError",
    "TextSource",
    "build_fisher",
    "estimate_fisher",
    "ewc_penalty",
    "iter_documents",
    "load_base_model",
    "load_fisher",
    "lora_penalty",
    "normalise_fisher",
    "push_fisher",
    "save_fisher",
]
