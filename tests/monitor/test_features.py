"""Counting served feature values: one value at a time and a column at once agree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.monitor.baselines import Baseline
from loopline.monitor.features import FeatureCounter, FeatureCounts


def test_without_a_profile_a_served_numeric_default_is_not_coverage() -> None:
    # A version published without a profile (or whose signature does not verify) is
    # counted against the features' declared defaults: 0.0 served for a default of 0.0
    # (or of 0) is the default, not a covered value.
    baseline = Baseline(None, {"price": 0.0, "orders": 0, "country": "??"})
    for name, values in {
        "price": [0.0, 0, 2.5, None],
        "orders": [0, 0.0, 3, None],
        "country": ["??", "fr", None, "??"],
    }.items():
        counts = FeatureCounts()
        for value in values:
            baseline.counter(name).add(counts, value)
        assert (counts.present, counts.covered) == (3, 1), name


def _profiled(kind: str, default):
    import pyarrow as pa

    from loopline.models.profiles import profile_features

    column = [0.5, 1.0, 2.0, 3.5, 0.0, 7.0] if kind == "number" else ["fr", "de", "??", "it"]
    return profile_features(pa.table({"v": column}), ["v"], {"v": default})[0]


values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.booleans(),
    st.sampled_from(["fr", "de", "??", "0.0", "xx"]),
)
columns = st.one_of(
    st.lists(values, max_size=30),  # any mix
    st.lists(st.one_of(st.none(), st.floats(-10, 10), st.integers(-3, 9)), max_size=30),
    st.lists(st.one_of(st.none(), st.sampled_from(["fr", "de", "??", "xx"])), max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["number", "category", None]),
    default=st.sampled_from([None, 0, 0.0, "??", 2**60]),
    column=columns,
    split=st.integers(0, 30),
)
def test_a_column_counts_as_its_values_one_by_one(kind, default, column, split) -> None:
    profile = None if kind is None else _profiled(kind, default)
    counter = FeatureCounter("v", profile, default)
    one_by_one, at_once = FeatureCounts(), FeatureCounts()
    for value in column:
        counter.add(one_by_one, value)
    for part in (column[:split], column[split:]):  # two batches: the same totals, exactly
        counter.add_column(at_once, counter.column(part))
    assert at_once == one_by_one
