"""e2wm: teach language models embodied knowledge from a world model, without making them forget.

The E2WM method (Xiang et al., NeurIPS 2023, arXiv 2305.10626) as a Hugging Face-native toolkit.

``from e2wm import EWCLoRAConfig, EWCLoRATrainer`` imports trl on first use only: ``import e2wm`` and the
world/experience commands stay free of torch and trl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["EWCLoRAConfig", "EWCLoRATrainer", "__version__"]

if TYPE_CHECKING:
    from e2wm.config import EWCLoRAConfig
    from e2wm.trainer import EWCLoRATrainer

_LAZY = {"EWCLoRAConfig": "e2wm.config", "EWCLoRATrainer": "e2wm.trainer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'e2wm' has no attribute {name!r}")
