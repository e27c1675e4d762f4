"""Per-arm statistics: the metrics agree with scikit-learn, partitions add up, AUC is testable."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import log_loss, roc_auc_score

from loopline.experiments.arm_stats import BINS, ArmStats, estimate
from loopline.experiments.guardrails import compare

examples = st.lists(
    st.tuples(st.booleans(), st.integers(0, BINS - 1)), min_size=2, max_size=300
).filter(lambda xs: len({label for label, _ in xs}) == 2)


def _stats(xs) -> ArmStats:
    stats = ArmStats()
    for label, b in xs:
        stats.add(float(label), (b + 0.5) / BINS)  # one score per bin: ties are exact ties
    return stats


@given(examples)
def test_the_metrics_are_scikit_learns(xs) -> None:
    stats = _stats(xs)
    labels = [int(label) for label, _ in xs]
    scores = [(b + 0.5) / BINS for _, b in xs]
    assert estimate(stats, "auc")[0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert estimate(stats, "log_loss")[0] == pytest.approx(log_loss(labels, scores), rel=1e-9)
    assert estimate(stats, "acceptance_rate")[0] == pytest.approx(sum(labels) / len(labels))


@given(examples, examples)
def test_partitions_add_up(a, b) -> None:
    merged = _stats(a).merge(_stats(b))
    whole = _stats(a + b)
    assert (merged.n, merged.hits, merged.positives, merged.negatives) == (
        whole.n,
        whole.hits,
        whole.positives,
        whole.negatives,
    )
    for metric in ("mean_label", "log_loss", "auc"):
        assert estimate(merged, metric)[0] == pytest.approx(estimate(whole, metric)[0])


def _model(rng: random.Random, stats: ArmStats, skill: float) -> None:
    """One example scored by a model whose scores separate the labels by `skill`."""
    label = rng.random() < 0.3
    score = 1 / (1 + math.exp(-(rng.gauss(0, 1) + skill * (1 if label else -1))))
    stats.add(float(label), score)


def test_auc_peeked_every_100_examples_rarely_flags_an_a_a_pair() -> None:
    rng = random.Random(11)
    alarms = 0
    for _ in range(100):
        a, b = ArmStats(), ArmStats()
        for i in range(1, 3001):
            _model(rng, a if i % 2 else b, 0.5)
            if i % 100 == 0:
                c = compare("auc", "b", a, b)
                if c is not None and (c.low > 0 or c.high < 0):
                    alarms += 1
                    break
    print(f"AUC A/A, 100 pairs peeked every 100 examples up to 3,000: {alarms} flagged")
    assert alarms <= 5


def test_a_model_that_separates_better_wins_on_auc() -> None:
    rng = random.Random(12)
    control, treatment = ArmStats(), ArmStats()
    for _ in range(3000):
        _model(rng, control, 0.3)
        _model(rng, treatment, 0.8)
    c = compare("auc", "v2", control, treatment)
    assert c is not None and c.low > 0, c
