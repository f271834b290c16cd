"""The bootstrap: intervals cover the truth at about the nominal rate, pairing narrows them, all seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from e2wm.evaluation.stats import (
    aggregate_interval,
    difference_interval,
    mean_interval,
    normalised_change,
    perplexity_change_interval,
    perplexity_interval,
    resample_indices,
)


def _coverage_bounds(repetitions: int, nominal: float = 0.95) -> tuple[float, float]:
    """Where the observed coverage of a correct 95% procedure falls with probability ~0.998 (3.1 σ)."""
    sd = math.sqrt(nominal * (1 - nominal) / repetitions)
    return nominal - 3.1 * sd, nominal + 3.1 * sd


def test_score_intervals_cover_a_bernoulli_mean_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    p, n, repetitions = 0.3, 120, 400
    covered = 0
    for rep in range(repetitions):
        sample = (rng.random(n) < p).astype(float)
        interval = mean_interval(sample, f"task-{rep}", resamples=1000)
        covered += interval.low <= p <= interval.high
    low, high = _coverage_bounds(repetitions)
    assert low <= covered / repetitions <= high, covered / repetitions


def test_paired_difference_intervals_cover_the_true_difference():
    rng = np.random.default_rng(2)
    n, repetitions = 150, 300
    covered = 0
    for rep in range(repetitions):
        ability = rng.random(n)  # per-example difficulty shared by both models: positively correlated scores
        base = (rng.random(n) < 0.2 + 0.5 * ability).astype(float)
        adapted = (rng.random(n) < 0.3 + 0.5 * ability).astype(float)  # true difference +0.1
        covered += difference_interval(adapted, base, f"t{rep}", resamples=1000).includes(0.1)
    low, high = _coverage_bounds(repetitions)
    assert low <= covered / repetitions <= high, covered / repetitions


def test_pairing_narrows_the_interval_on_correlated_scores():
    rng = np.random.default_rng(3)
    base = rng.random(200)
    adapted = np.clip(base + rng.normal(0.05, 0.05, 200), 0, 1)
    paired = difference_interval(adapted, base, "rouge")
    unpaired = difference_interval(adapted, base, "rouge", paired=False)
    assert paired.estimate == pytest.approx(unpaired.estimate)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)
    assert paired.paired and not unpaired.paired
    assert not paired.includes(0.0), "a consistent +0.05 on 200 examples is not 'no difference'"


def test_the_same_seed_and_task_give_the_same_resamples_for_every_model():
    first, again = resample_indices(50, "counting_qa", 100, seed=0), resample_indices(50, "counting_qa", 100, seed=0)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, resample_indices(50, "housework_qa", 100, seed=0)), "tasks are independent"
    assert not np.array_equal(first, resample_indices(50, "counting_qa", 100, seed=1))
    scores = np.arange(50) % 3 == 0
    assert mean_interval(scores, "counting_qa") == mean_interval(scores, "counting_qa")


def test_perplexity_is_token_weighted_and_resamples_documents():
    documents = [(20.0, 10), (3.0, 1), (40.0, 20), (12.0, 6)]
    interval = perplexity_interval(documents, resamples=500)
    assert interval.estimate == pytest.approx(math.exp(75 / 37)) and interval.n == 4
    assert interval.low <= interval.estimate <= interval.high
    # a model whose every document costs 10% more NLL: perplexity rises by e^(0.1 * NLL) − 1 on every resample
    worse = [(nll * 1.1, tokens) for nll, tokens in documents]
    change = perplexity_change_interval(worse, documents, resamples=500)
    assert change.estimate == pytest.approx(math.exp(0.1 * 75 / 37) - 1)
    assert change.low > 0 and change.low < change.estimate < change.high
    with pytest.raises(ValueError, match="same documents"):
        perplexity_change_interval(documents[:3], documents)


def test_normalised_change_and_the_aggregate():
    assert normalised_change(0.75, 0.5) == pytest.approx(0.5)  # half the distance to the ceiling
    assert normalised_change(0.25, 0.5) == pytest.approx(-0.5)  # half the base's score lost
    assert normalised_change(0.9, 1.0) == pytest.approx(-0.1) and normalised_change(1.0, 1.0) == 0
    assert normalised_change(0.3, 0.0) == pytest.approx(0.3) and normalised_change(0.0, 0.0) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        normalised_change(1.5, 0.5)
    base = {"a": [0, 1, 0, 1] * 10, "b": [0.2] * 40}
    same = aggregate_interval({name: (scores, scores) for name, scores in base.items()})
    assert (same.estimate, same.low, same.high, same.n) == (0.0, 0.0, 0.0, 2)
    better = aggregate_interval({"a": ([1, 1, 0, 1] * 10, base["a"]), "b": ([0.6] * 40, base["b"])})
    assert better.estimate == pytest.approx((0.5 + 0.5) / 2)
    assert 0 < better.low <= better.estimate <= better.high <= 1
