"""Drift measures equal their references on the same bins: scipy here, Evidently in its own venv.

scipy is the reference for Jensen-Shannon (`scipy.spatial.distance.jensenshannon`)
and Wasserstein (`scipy.stats.wasserstein_distance`); PSI has no scipy function,
so it is checked as the symmetric relative entropy (`scipy.special.rel_entr`)
of the shares after Evidently's empty-bin rule. Evidently itself (0.7.23)
cannot be installed beside loopline: it needs pandas < 3, and it would bring
uvloop and fsspec into loopline's environment, which change how uvicorn and
the artifact store behave. So `test_equal_to_evidently` runs it in a virtualenv
of its own (`evidently_python`, made once and kept under ~/.cache).
"""

from __future__ import annotations

import json
import math
import os
import subprocess

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import wasserstein_distance

from loopline.models.profiles import profile_features
from loopline.monitor import (
    EPSILON,
    bin_points,
    coverage,
    feature_drift,
    jensen_shannon,
    psi,
    wasserstein,
)

EVIDENTLY = "evidently==0.7.23"


def evidently_filled(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares > 0].min()
    return np.where(shares == 0, smallest / 1e6 if smallest <= EPSILON else EPSILON, shares)


def reference_psi(expected: list[int], actual: list[int]) -> float:
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    seen = (e > 0) | (a > 0)
    p, q = evidently_filled(e[seen] / e.sum()), evidently_filled(a[seen] / a.sum())
    return float(np.sum(rel_entr(p, q) + rel_entr(q, p)))


pairs = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 10_000), min_size=n, max_size=n).filter(any),
        st.lists(st.integers(0, 10_000), min_size=n, max_size=n).filter(any),
    )
)


@settings(max_examples=300, deadline=None)
@given(pairs)
def test_equal_to_scipy_on_the_same_bins(counts):
    expected, actual = counts
    assert psi(expected, actual) == pytest.approx(reference_psi(expected, actual), abs=1e-6)
    assert jensen_shannon(expected, actual) == pytest.approx(
        jensenshannon(expected, actual), abs=1e-6
    )
    assert jensen_shannon(expected, actual, base=2) == pytest.approx(
        jensenshannon(expected, actual, base=2), abs=1e-6
    )
    points = np.cumsum(np.arange(1, len(expected) + 1) ** 1.5)  # increasing, uneven gaps
    assert wasserstein(points, expected, actual) == pytest.approx(
        wasserstein_distance(points, points, expected, actual), abs=1e-6
    )


def test_wasserstein_equals_scipy_on_the_samples_at_the_bin_points():
    rng = np.random.default_rng(3)
    (trained,) = profile_features(pa.table({"x": rng.normal(size=5000)}), ["x"])
    served = rng.normal(0.3, 1.2, size=2000)
    counts = trained.histogram.count(served)
    points = bin_points(trained.histogram)
    ours = wasserstein(points, trained.histogram.counts, counts)
    samples = wasserstein_distance(
        np.repeat(points, trained.histogram.counts), np.repeat(points, counts)
    )
    assert ours == pytest.approx(samples, abs=1e-9)
    assert 0.2 < ours < 0.5  # the mean moved by 0.3


def test_edges_empty_bins_one_bin_and_identical():
    assert psi([5, 5, 0], [5, 5, 0]) == 0.0  # a bin empty on both sides is left out
    assert jensen_shannon([3, 0, 7], [3, 0, 7]) == 0.0
    assert wasserstein([0, 1, 2], [3, 0, 7], [3, 0, 7]) == 0.0
    # all mass in one bin, each side a different one: JS at its maximum, PSI large but finite
    assert jensen_shannon([10, 0], [0, 10]) == pytest.approx(math.sqrt(math.log(2)))
    assert jensen_shannon([10, 0], [0, 10], base=2) == pytest.approx(1.0)
    assert psi([10, 0], [0, 10]) == pytest.approx(2 * (1 - EPSILON) * math.log(1 / EPSILON))
    assert wasserstein([0.0, 5.0], [10, 0], [0, 10]) == 5.0
    # a tiny share sets a tinier fill (Evidently's rule), so PSI grows instead of saturating
    assert psi([100_000, 1, 0], [100_000, 0, 1]) == pytest.approx(
        reference_psi([100_000, 1, 0], [100_000, 0, 1])
    )
    # no values on one side: nothing to compare
    assert all(math.isnan(f([0, 0], [1, 2])) for f in (psi, jensen_shannon))
    assert math.isnan(wasserstein([0, 1], [1, 2], [0, 0]))
    with pytest.raises(ValueError, match="same bins: 3 bins against 2"):
        psi([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        jensen_shannon([1, -1], [1, 1])
    with pytest.raises(ValueError, match="increasing"):
        wasserstein([1, 0], [1, 1], [1, 1])


def test_served_values_outside_training_land_in_the_end_bins_and_unseen_categories_in_other():
    table = pa.table({"x": [float(i) for i in range(100)], "city": ["oslo", "bergen"] * 50})
    x, city = profile_features(table, ["x", "city"])
    drifted = feature_drift(x, [-5.0, 150.0, 200.0, None, 50.0])
    assert drifted.counts[0] == 1 and drifted.counts[-1] == 2 and sum(drifted.counts) == 4
    assert drifted.coverage == 0.8 and drifted.mean == pytest.approx(98.75)
    assert drifted.psi > 0.25 and drifted.wasserstein > 0
    unseen = feature_drift(city, ["narvik", "narvik", "oslo"])
    assert unseen.counts == [0, 1, 2]  # bergen, oslo (ties by name), then other
    assert city.histogram.categories == ["bergen", "oslo"]
    assert unseen.psi == pytest.approx(reference_psi(city.histogram.counts, unseen.counts))
    assert unseen.wasserstein is None and unseen.mean is None
    assert jensen_shannon(city.histogram.counts, unseen.counts) == pytest.approx(
        jensenshannon(city.histogram.counts, unseen.counts)
    )


def test_coverage_is_the_share_neither_missing_nor_default():
    assert coverage([3, 0, None, float("nan"), 7], default=0) == 0.4
    assert coverage(np.array([0.0, 1.0, np.nan, 2.0]), default=0) == 0.5
    assert coverage(pa.array([None, "??", "oslo"]), default="??") == pytest.approx(1 / 3)
    assert coverage([1, 2], default=None) == 1.0
    assert coverage(pa.array([0, 4, None, 0]), default=0) == 0.25
    assert coverage([True, False, None, True], default=False) == 0.5
    assert math.isnan(coverage([]))


# -- Evidently, in a virtualenv of its own ----------------------------------------------------

EVIDENTLY_SCRIPT = """
import json, sys
import pandas as pd
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.core import ColumnType

out = []
for case in json.load(sys.stdin):
    # the samples are bin indices as categories, so Evidently bins exactly as the profile did
    ref, cur = pd.Series(case["expected"]), pd.Series(case["actual"])
    kind = ColumnType.Categorical
    ref_x, cur_x = pd.Series(case["expected_points"]), pd.Series(case["actual_points"])
    out.append({
        "psi": float(_psi(ref, cur, kind, 0.1)[0]),
        "js": float(_jensenshannon(ref, cur, kind, 0.1)[0]),
        "wasserstein_norm": float(_wasserstein_distance_norm(ref_x, cur_x, ColumnType.Numerical, 0.1)[0]),
    })
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="session")
def evidently_python() -> str:
    """A Python with Evidently, in a virtualenv apart from loopline's (scripts/test.sh makes it)."""
    python = os.environ.get("LOOPLINE_EVIDENTLY_PYTHON")
    assert python, (
        "LOOPLINE_EVIDENTLY_PYTHON is not set: run the tests with scripts/test.sh, or set it to "
        "the Python that `bash scripts/evidently-venv.sh` prints"
    )
    probe = "from importlib.metadata import version; print(version('evidently'))"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.strip()
    assert found == EVIDENTLY.split("==")[1], f"{python} has evidently {found or 'missing'}"
    return python


@pytest.mark.slow
def test_equal_to_evidently(evidently_python):
    rng = np.random.default_rng(5)
    cases, ours = [], []
    for i in range(40):
        (trained,) = profile_features(pa.table({"x": rng.normal(size=3000)}), ["x"])
        shift, scale = (0.0, 1.0) if i % 4 == 0 else (rng.normal(0, 1), rng.uniform(0.3, 3))
        served = rng.normal(shift, scale, size=int(rng.integers(50, 3000)))
        hist = trained.histogram
        expected, actual = hist.counts, hist.count(served)
        points = bin_points(hist)
        cases.append(
            {
                "expected": np.repeat(np.arange(len(expected)), expected).tolist(),
                "actual": np.repeat(np.arange(len(actual)), actual).tolist(),
                "expected_points": np.repeat(points, expected).tolist(),
                "actual_points": np.repeat(points, actual).tolist(),
            }
        )
        norm = max(float(np.std(np.repeat(points, expected))), 0.001)  # Evidently's norm
        ours.append(
            (
                psi(expected, actual),
                jensen_shannon(expected, actual),
                wasserstein(points, expected, actual) / norm,
            )
        )
    done = subprocess.run(
        [evidently_python, "-c", EVIDENTLY_SCRIPT],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout)
    for (p, j, w), reference in zip(ours, theirs, strict=True):
        assert p == pytest.approx(reference["psi"], abs=1e-6)
        assert j == pytest.approx(reference["js"], abs=1e-6)
        assert w == pytest.approx(reference["wasserstein_norm"], abs=1e-6)
    assert sum(p > 0.25 for p, _, _ in ours) > 10  # the shifted cases drift
