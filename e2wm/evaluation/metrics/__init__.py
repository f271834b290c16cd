"""Metrics: Rouge-L as an ``evaluate`` module (loadable by path, offline) and the room-path score."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ROUGE_L_PATH", "path_score", "rouge_l", "rouge_l_scores"]

#: Folder of the Rouge-L ``evaluate`` module: ``evaluate.load(ROUGE_L_PATH)`` works offline.
ROUGE_L_PATH = str(Path(__file__).parent / "rouge_l")
_METRIC: Any = None


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean Rouge-L F-measure (through the ``evaluate`` module)."""
    global _METRIC
    if _METRIC is None:
        import evaluate

        _METRIC = evaluate.load(ROUGE_L_PATH)
    return float(_METRIC.compute(predictions=list(predictions), references=list(references))["rougeL"])


def rouge_l_scores(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """The Rouge-L F-measure of each prediction (the module's scorer; their mean is :func:`rouge_l`)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]


def path_score(prediction: str, reference: str) -> float:
    """Longest common contiguous run of the two room lists over the longer list's length (E2WM's
    object-path score): "kitchen, bedroom, bathroom" vs "kitchen, bedroom, office" → 2/3."""
    pred = [p.strip().lower() for p in prediction.split(",") if p.strip()]
    ref = [r.strip().lower() for r in reference.split(",") if r.strip()]
    if not pred or not ref:
        return 0.0
    best = 0
    for i in range(len(pred)):
        for j in range(len(ref)):
            k = 0
            while i + k < len(pred) and j + k < len(ref) and pred[i + k] == ref[j + k]:
                k += 1
            best = max(best, k)
    return best / max(len(pred), len(ref))
