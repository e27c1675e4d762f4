"""Training profiles: `loopline train` publishes one, signed, equal to pandas on the same rows.

Every test that trains runs on the embedded log and on the real Kafka broker,
through the CLI, with an application module written to a temporary directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.cli import cli
from loopline.log import TopicConfig
from loopline.models import HmacSigner, ModelRegistry, UntrustedModel
from loopline.models.profiles import (
    QUANTILES,
    Profile,
    ProfileError,
    Spread,
    predictions_profile,
    profile_features,
    read_profile,
)
from loopline.models.registry_records import ModelVersion, decode_record, version_key
from support import unique

SECRET = "the profile tests' signing secret"
DAY = 86_400_000

APP = """
from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

member = Entity("member", key="member_id")


def lightgbm():
    return LightGBMTrainer({{"num_leaves": 8, "min_data_in_leaf": 10}}, num_boost_round=20)


app = App(
    {app!r},
    features=FeatureSet([Aggregations({clicks!r}, member, Count.per_window("clicks", windows=["1h"]), "at")]),
    models=[Model({model!r}, trainer=lightgbm, entity="member",
                  features=["clicks_1h", "spend", "new", "visits"])],
)
"""


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", SECRET)


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--log", url, *args])


def examples(n: int) -> list[dict]:
    """Labelled examples: a count (default 0, many zeros), money with nulls, a flag, an int
    without a declared default, in time order but written shuffled."""
    rng = np.random.default_rng(7)
    t0 = (int(time.time() * 1000) - 3 * DAY) // 1000 * 1000
    out = []
    for i in range(n):
        clicks = int(rng.poisson(1.5))
        spend = None if rng.random() < 0.1 else round(float(rng.lognormal(3, 1)), 2)
        new = bool(rng.random() < 0.3)
        visits = int(rng.integers(0, 50))
        label = int(clicks + (spend or 0) / 40 + rng.normal() > 2.5)
        features = {"clicks_1h": clicks, "spend": spend, "new": new, "visits": visits}
        out.append({"features": features, "label": label, "at": t0 + i * 1000})
    order = rng.permutation(n)
    return [out[i] for i in order]


@pytest.fixture
def trained(log, log_url, tmp_path, monkeypatch):
    """`loopline train` run once on the examples; returns the version, the rows and names."""
    names = {"app": unique("shop"), "clicks": unique("clicks"), "model": unique("accept")}
    module = unique("profile_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(APP.format(**names))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    topic = unique("examples")
    log.create_topic(topic, TopicConfig(partitions=2))
    rows = examples(1000)
    producer = log.producer()
    for row in rows:
        producer.send(topic, json.dumps(row).encode())
    producer.flush()
    producer.close()
    result = run(log_url, "train", f"{module}:app", "--model", names["model"], "--labelled", topic)
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(log, signer=HmacSigner(SECRET))
    version = registry.latest(names["model"])
    yield version, rows, names, registry
    registry.close()


def frame(rows: list[dict]) -> pd.DataFrame:
    flat = [{**r["features"], "label": r["label"], "at": r["at"]} for r in rows]
    return pd.DataFrame(flat).sort_values("at", kind="stable").reset_index(drop=True)


def pandas_histogram(column: pd.Series, edges: list[float]) -> list[int]:
    """The counts of the profile's bins, by comparisons in pandas: below, inner (the last
    closed), above."""
    values = column.dropna().astype(float)
    inner = [int(((values >= lo) & (values < hi)).sum()) for lo, hi in itertools.pairwise(edges)]
    inner[-1] += int((values == edges[-1]).sum())
    return [int((values < edges[0]).sum()), *inner, int((values > edges[-1]).sum())]


def test_train_publishes_a_profile_equal_to_pandas_on_the_training_rows(trained):
    version, rows, _, registry = trained
    profile = read_profile(version, registry.verifier)
    cutoff = version.manifest["split"]["cutoff"]
    df = frame(rows)
    train, test = df[df["at"] < cutoff], df[df["at"] >= cutoff]
    assert profile.rows == len(train) == version.manifest["split"]["train_rows"]
    defaults = {"clicks_1h": 0.0, "spend": None, "new": None, "visits": None}
    for name, kind in (
        ("clicks_1h", "number"),
        ("spend", "number"),
        ("new", "bool"),
        ("visits", "number"),
    ):
        feature = profile.feature(name)
        column = train[name].astype(float)
        nulls = int(column.isna().sum())
        default = defaults[name]
        hits = int((column == default).sum()) if default is not None else 0
        assert (feature.kind, feature.count, feature.nulls, feature.defaults) == (
            kind,
            len(train),
            nulls,
            hits,
        ), name
        assert feature.default == default
        assert feature.coverage == pytest.approx(
            (len(train) - nulls - hits) / len(train), abs=1e-12
        )
        assert feature.mean == pytest.approx(column.mean(), rel=1e-9)
        assert feature.std == pytest.approx(column.std(), rel=1e-9)
        assert (feature.min, feature.max) == (column.min(), column.max())
        expected = [column.quantile(q) for q in QUANTILES]
        assert [v for _, v in feature.quantiles] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        edges = feature.histogram.edges
        if kind == "bool":
            assert edges == [0.0, 0.5, 1.0]
        else:
            deciles = column.quantile(np.linspace(0, 1, 11)).unique()
            assert edges == pytest.approx(list(deciles), rel=1e-9, abs=1e-12)
        assert feature.histogram.counts == pandas_histogram(column, edges), name
        assert (
            feature.histogram.count(train[name].to_numpy(dtype=float)) == feature.histogram.counts
        )
        assert feature.histogram.counts[0] == feature.histogram.counts[-1] == 0
    assert 0.0 < profile.feature("clicks_1h").coverage < 0.9  # Poisson(1.5): ~22% zeros
    predictions = profile.predictions
    assert predictions.task == "classification" and predictions.rows == len(test)
    assert sum(predictions.histogram.counts) == len(test)
    assert predictions.label.mean == pytest.approx(test["label"].mean(), rel=1e-12)
    chunks = np.array_split(test["label"].to_numpy(dtype=float), 10)
    assert predictions.label.chunk_means == pytest.approx([c.mean() for c in chunks], rel=1e-12)
    low, high = predictions.score.interval(100)
    assert low < predictions.score.mean < high


def test_the_profile_is_signed_with_the_version(trained, log):
    version, _, names, registry = trained
    record = version.to_record()
    record["profile"]["features"][0]["mean"] += 1.0  # a baseline that hides a drift
    key = version_key(names["model"], version.version, version.artifact_id)
    producer = log.producer()
    producer.send(registry.topic, json.dumps(record).encode(), key.encode())
    producer.flush()
    producer.close()
    reader = ModelRegistry(log, signer=HmacSigner(SECRET))
    tampered = reader.version(names["model"], version.version)
    assert tampered.profile["features"][0]["mean"] == record["profile"]["features"][0]["mean"]
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        read_profile(tampered, reader.verifier)
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        reader.load_artifact(tampered)
    stripped = dataclasses.replace(version, profile=None)  # dropping it breaks the signature too
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        read_profile(stripped, reader.verifier)
    reader.close()


def test_models_show_prints_the_profile(trained, log_url):
    version, _, names, _ = trained
    shown = run(log_url, "models", "show", names["model"], "--profile", "--verify")
    assert shown.exit_code == 0, shown.output
    lines = [line.split("\t") for line in shown.stdout.splitlines()]
    by_name = {line[0]: line for line in lines}
    profile = Profile.from_dict(version.profile)
    clicks = profile.feature("clicks_1h")
    assert by_name["clicks_1h"][1:6] == [
        "number",
        str(clicks.count),
        "0.0%",
        f"{clicks.default_rate:.1%}",
        f"{clicks.coverage:.1%}",
    ]
    assert by_name["spend"][3] == f"{profile.feature('spend').null_rate:.1%}"
    assert by_name["score"][1] == f"{profile.predictions.score.mean:.4g}"
    assert by_name["label"][1] == f"{profile.predictions.label.mean:.4g}"
    as_json = json.loads(run(log_url, "models", "show", names["model"]).stdout)
    assert as_json["profile"] == version.profile


def test_versions_without_a_profile_keep_loading_and_say_so(log, log_url):
    registry = ModelRegistry(log, signer=HmacSigner(SECRET))
    name = unique("old")
    old = registry.publish(
        name, b"model", format="bytes", trainer="test", features=[("x", "float")]
    )
    assert old.profile is None and "profile" not in old.signed_fields()
    assert registry.load_artifact(registry.version(name, 1)) == b"model"
    assert read_profile(old, registry.verifier) is None
    shown = run(log_url, "models", "show", name, "--profile")
    assert shown.exit_code == 1 and "has no training profile" in shown.output
    registry.close()


# A version record written and signed by loopline before profiles (main at d36d860).
OLD_RECORD = (
    '{"kind": "version", "name": "churn", "version": 1, "created_at": 1714564800000, '
    '"format": "bytes", "trainer": "test", "params": {"depth": 3}, "features": '
    '[["clicks_1h", "int"]], "metrics": {"auc": 0.7}, "manifest": null, "code_version": "abc", '
    '"sha256": "0000000000000000000000000000000000000000000000000000000000000000", "size": 3, '
    '"published_by": "ann@host", "artifact_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", '
    '"storage": {"chunks": 0, "artifact_time": 0}, "signature": {"algorithm": "hmac-sha256", '
    '"key_id": "4f464f523d084685", "value": "dxqeZR+Ax3hQo/+9/pur3qs/4C6+IyaHguEhBot51j0="}}'
)


def test_a_version_signed_before_profiles_still_verifies():
    old = ModelVersion.from_record(decode_record(OLD_RECORD.encode()))
    verifier = HmacSigner("an old version signing secret").verifier()
    assert old.profile is None
    assert read_profile(old, verifier) is None  # verified, and no profile
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        read_profile(dataclasses.replace(old, profile={"schema": 1}), verifier)


# -- without a log ---------------------------------------------------------------------------


def test_categories_keep_the_top_values_and_an_other_share():
    column = pa.array(["oslo"] * 5 + ["bergen"] * 3 + ["tromso", "alta", None, "??"])
    table = pa.table({"city": column})
    (city,) = profile_features(table, ["city"], {"city": "??"}, top=2)
    assert (city.kind, city.count, city.nulls, city.defaults) == ("category", 12, 1, 1)
    assert city.coverage == pytest.approx(10 / 12)
    assert city.histogram.categories == ["oslo", "bergen"]
    assert city.shares() == [("oslo", 5 / 11), ("bergen", 3 / 11), ("(other)", 3 / 11)]
    counts = pd.Series(column.to_pylist()).value_counts()
    assert city.histogram.counts[:2] == [counts["oslo"], counts["bergen"]]
    assert city.histogram.count(pa.array(["bergen", "narvik", None])) == [0, 1, 1]


def test_edge_columns_all_missing_constant_and_infinite():
    table = pa.table(
        {
            "none": pa.nulls(4, pa.float64()),
            "same": [3.0, 3.0, 3.0, 3.0],
            "wild": [1.0, float("inf"), 2.0, float("nan")],
        }
    )
    none, same, wild = profile_features(table, ["none", "same", "wild"])
    assert (none.nulls, none.coverage, none.mean, none.histogram.counts) == (4, 0.0, None, [0])
    assert same.histogram.edges == [3.0, 3.0] and same.histogram.counts == [0, 4, 0]
    assert same.histogram.count([2.0, 3.0, 4.0]) == [1, 1, 1]
    assert wild.nulls == 1 and wild.histogram.counts[-1] == 1  # inf: above the finite range
    assert wild.mean is None and wild.max is None  # not JSON numbers
    assert (
        Profile.from_dict(Profile(rows=4, features=[none, same, wild]).to_dict()).features[1]
        == same
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-5, 5), st.floats(-1e6, 1e6)), min_size=1))
def test_served_values_are_binned_as_the_training_values_were(values):
    (feature,) = profile_features(pa.table({"x": pa.array(values, pa.float64())}), ["x"])
    assert feature.histogram.count(values) == feature.histogram.counts
    assert sum(feature.histogram.counts) == feature.count - feature.nulls


def test_a_newer_profile_schema_is_refused_with_what_to_do():
    with pytest.raises(ProfileError, match="schema 2, newer than the 1 this loopline reads"):
        Profile.from_dict({"schema": 2, "rows": 1, "features": []})
    with pytest.raises(ProfileError, match="not a training profile"):
        Profile.from_dict({"rows": "many", "features": []})


def test_spread_interval_widens_when_the_mean_moved_over_time():
    steady = predictions_profile("classification", np.full(1000, 0.3), np.tile([0, 1], 500))
    moving = np.repeat(np.linspace(0.1, 0.5, 10), 100)
    drifting = predictions_profile("classification", moving, np.tile([0, 1], 500))
    assert steady.score.between() == 0.0
    assert steady.score.interval(100) == pytest.approx((0.3, 0.3), abs=1e-12)
    low, high = drifting.score.interval(10_000)
    assert drifting.score.between() > 0 and low < 0.2 and high > 0.4
    unscored = predictions_profile("regression", np.array([1.0, np.nan, np.inf, 3.0]), np.ones(4))
    assert unscored.rows == 2 and unscored.score.mean == 2.0
    assert Profile.from_dict(Profile(rows=4, features=[], predictions=unscored).to_dict())
    spread = Spread(mean=0.5, std=0.5, rows=100, chunk_means=[0.5], chunk_rows=[100])
    with pytest.raises(ValueError, match="at least 1 row"):
        spread.interval(0)
