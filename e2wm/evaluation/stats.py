"""Confidence intervals for evaluation results: a seeded, paired percentile bootstrap.

Every number the report shows comes with a 95% interval from the same procedure:

* **Resampling.** For a task with ``n`` examples, ``R`` resamples (default 2,000) each draw ``n`` example
  indices with replacement. The indices depend only on ``(seed, task name, n)``: every model evaluated
  on that task is resampled with the *same* indices, so a difference between two models is computed on
  the same resampled examples (a **paired** bootstrap). Tasks use independent streams.
* **A score.** The mean of the per-example scores (accuracy 0/1, Rouge-L, path score, exact match, a plan
  executed or not) on each resample; the interval is the 2.5th and 97.5th percentiles of the ``R`` means
  (the *percentile* interval), the estimate the mean on the examples themselves.
* **A difference against the base.** ``mean(s_i − b_i)`` on each resample of the examples both were
  evaluated on; an interval that contains 0 means the data do not show a difference at this level.
  Where two models were evaluated on different examples the difference is **unpaired** (each model
  resampled on its own stream) and marked as such.
* **Perplexity.** Documents are resampled (not tokens: tokens of one document are not independent); on
  each resample the token-weighted NLL ``Σ nll / Σ tokens`` over the drawn documents gives
  ``e^NLL``. The relative change against the base, ``e^(NLL − NLL_base) − 1``, is paired: both on the
  same drawn documents.
* **The aggregate.** Unlike metrics are never averaged raw. Each task's score ``s`` is compared with the
  base's ``b`` by the *normalised change* (Marx & Cummings, Am. J. Phys. 75, 2007):
  ``c = (s − b)/(1 − b)`` when ``s > b`` (the fraction of the base's distance to the ceiling gained),
  ``c = (s − b)/b`` when ``s < b`` (the fraction of the base's score lost), ``c = 0`` when ``s = b``.
  It lies in [−1, 1], never divides by zero (a base at the ceiling, ``b = 1``, can only lose: ``c = s − 1``;
  a base at 0 can only gain: ``c = s``), and the base's own aggregate is 0. The aggregate is the mean
  of ``c`` over the tasks; its interval resamples every task's examples at once (each task on its own
  stream, the same for every model) and recomputes the mean of ``c`` per resample.

Pure numpy; deterministic for a given seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "Interval",
    "aggregate_interval",
    "difference_interval",
    "mean_interval",
    "normalised_change",
    "perplexity_change_interval",
    "perplexity_interval",
    "resample_indices",
]

RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate, its percentile-bootstrap interval and the number of units resampled."""

    estimate: float
    low: float
    high: float
    n: int
    paired: bool = True

    def includes(self, value: float = 0.0) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float | int | bool]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n, "paired": self.paired}


def _stream(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def resample_indices(n: int, key: str, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``(resamples, n)`` indices drawn with replacement; the same for the same ``(seed, key, n)``."""
    if n < 1:
        raise ValueError(f"cannot resample {key!r}: it has no examples")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng([seed, _stream(key), n])
    return rng.integers(0, n, size=(resamples, n), dtype=np.int64)


def _interval(estimate: float, replicates: np.ndarray, n: int, confidence: float, paired: bool = True) -> Interval:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), n, paired)


def _scores(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what}: expected a non-empty list of per-example scores")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: per-example scores must be finite numbers")
    return array


def mean_interval(
    scores: Sequence[float], key: str, resamples: int = RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> Interval:
    """The mean score and its percentile interval (examples resampled on the stream ``key``)."""
    s = _scores(scores, key)
    means = s[resample_indices(s.size, key, resamples, seed)].mean(axis=1)
    return _interval(s.mean(), means, s.size, confidence)


def difference_interval(
    scores: Sequence[float],
    base: Sequence[float],
    key: str,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    paired: bool = True,
) -> Interval:
    """``mean(scores) − mean(base)`` and its interval.

    Paired (the default): ``scores[i]`` and ``base[i]`` are the same example; both are resampled with
    the same indices. Unpaired: the two lists are different examples, each resampled on its own stream
    (``key`` for ``scores``, ``key + "/base"`` for ``base``); ``n`` is then the smaller size."""
    s, b = _scores(scores, key), _scores(base, f"{key} (base)")
    if paired:
        if s.size != b.size:
            raise ValueError(f"{key}: a paired difference needs the same examples ({s.size} vs {b.size} scores)")
        index = resample_indices(s.size, key, resamples, seed)
        replicates = (s[index] - b[index]).mean(axis=1)
    else:
        replicates = s[resample_indices(s.size, key, resamples, seed)].mean(axis=1) - b[
            resample_indices(b.size, f"{key}/base", resamples, seed)
        ].mean(axis=1)
    return _interval(s.mean() - b.mean(), replicates, min(s.size, b.size), confidence, paired)


def _documents(per_document: Sequence[Sequence[float]], what: str) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(per_document, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise ValueError(f"{what}: expected (summed NLL, tokens) for each document")
    if np.any(array[:, 1] < 1):
        raise ValueError(f"{what}: every document needs at least one predicted token")
    return array[:, 0], array[:, 1]


def perplexity_interval(
    per_document: Sequence[Sequence[float]],
    key: str = "perplexity",
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """``e^NLL`` (token-weighted over the documents) and its interval, documents resampled.
    ``per_document``: ``(summed NLL in nats, predicted tokens)`` per document (``Perplexity.per_document``)."""
    nll, tokens = _documents(per_document, key)
    index = resample_indices(nll.size, key, resamples, seed)
    replicates = np.exp(nll[index].sum(axis=1) / tokens[index].sum(axis=1))
    return _interval(np.exp(nll.sum() / tokens.sum()), replicates, nll.size, confidence)


def perplexity_change_interval(
    per_document: Sequence[Sequence[float]],
    base: Sequence[Sequence[float]],
    key: str = "perplexity",
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The relative perplexity change against the base, ``ppl / ppl_base − 1``, paired by document."""
    nll, tokens = _documents(per_document, key)
    base_nll, base_tokens = _documents(base, f"{key} (base)")
    if nll.size != base_nll.size:
        raise ValueError(f"{key}: a paired change needs the same documents ({nll.size} vs {base_nll.size})")
    index = resample_indices(nll.size, key, resamples, seed)
    mine = nll[index].sum(axis=1) / tokens[index].sum(axis=1)
    theirs = base_nll[index].sum(axis=1) / base_tokens[index].sum(axis=1)
    estimate = np.exp(nll.sum() / tokens.sum() - base_nll.sum() / base_tokens.sum()) - 1
    return _interval(estimate, np.expm1(mine - theirs), nll.size, confidence)


def normalised_change(score: np.ndarray | float, base: np.ndarray | float) -> np.ndarray:
    """Marx & Cummings's normalised change of ``score`` against ``base`` (both in [0, 1]), elementwise:
    ``(s − b)/(1 − b)`` if ``s > b``, ``(s − b)/b`` if ``s < b``, 0 if equal."""
    s, b = np.asarray(score, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if np.any((s < 0) | (s > 1) | (b < 0) | (b > 1)):
        raise ValueError("the normalised change needs scores in [0, 1]")
    up = np.where(s > b, (s - b) / np.where(b < 1, 1 - b, 1.0), 0.0)
    down = np.where(s < b, (s - b) / np.where(b > 0, b, 1.0), 0.0)
    return up + down


def aggregate_interval(
    tasks: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The mean over tasks of the normalised change against the base, and its joint interval.

    ``tasks``: task name -> (this model's per-example scores, the base's on the same examples). Each
    task's examples are resampled on the task's own stream (the indices :func:`mean_interval` uses for
    it); ``n`` is the number of tasks."""
    if not tasks:
        raise ValueError("the aggregate needs at least one task")
    estimates, replicates = [], []
    for name, (scores, base) in tasks.items():
        s, b = _scores(scores, name), _scores(base, f"{name} (base)")
        if s.size != b.size:
            raise ValueError(f"{name}: the aggregate pairs examples ({s.size} vs {b.size} scores)")
        index = resample_indices(s.size, name, resamples, seed)
        estimates.append(float(normalised_change(s.mean(), b.mean())))
        replicates.append(normalised_change(s[index].mean(axis=1), b[index].mean(axis=1)))
    return _interval(float(np.mean(estimates)), np.mean(replicates, axis=0), len(tasks), confidence)
