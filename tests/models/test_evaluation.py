"""Evaluation: the split by time, the checks on data, and metrics against hand-computed values."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.models.evaluation import (
    DataError,
    check_features,
    check_labels,
    evaluate,
    evaluate_trainer,
    expected_calibration_error,
    split_by_time,
)
from loopline.models.trainers import OnlineTrainer, Trainer, load_trainer

# --- split_by_time ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=60),
    test_fraction=st.floats(min_value=0.01, max_value=0.99),
)
def test_split_puts_every_test_row_after_every_train_row(times, test_fraction):
    table = pa.table({"at": times, "id": list(range(len(times)))})
    n = len(times)
    n_test = max(1, math.ceil(n * test_fraction))
    cutoff = sorted(times)[n - n_test]
    try:
        train, test = split_by_time(table, "at", test_fraction)
    except DataError as error:
        # Only when the earliest time is the cutoff: every row would be a test row.
        assert cutoff == min(times)
        assert "no earlier rows to train on" in str(error)
        return
    train_times, test_times = train["at"].to_pylist(), test["at"].to_pylist()
    assert train.num_rows + test.num_rows == n
    assert sorted(train["id"].to_pylist() + test["id"].to_pylist()) == list(range(n))
    assert max(train_times) < min(test_times)
    assert test.num_rows >= n_test
    assert test_times == [t for t in sorted(times) if t >= cutoff]
    assert train_times == sorted(train_times) and test_times == sorted(test_times)


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.integers(min_value=0, max_value=5), min_size=2, max_size=40))
def test_split_sends_tied_rows_to_one_side_keeping_their_order(times):
    table = pa.table({"at": times, "id": list(range(len(times)))})
    try:
        train, test = split_by_time(table, "at", 0.3)
    except DataError:
        return
    for part in (train, test):
        rows = part.to_pylist()
        for earlier, later in itertools.pairwise(rows):
            if earlier["at"] == later["at"]:
                assert earlier["id"] < later["id"]
    assert not set(train["at"].to_pylist()) & set(test["at"].to_pylist())


def test_split_accepts_timestamps_and_rejects_unusable_time_columns():
    start = datetime(2024, 5, 1, tzinfo=UTC)
    table = pa.table({"at": [start + timedelta(days=d) for d in (4, 0, 3, 1, 2)]})
    train, test = split_by_time(table, "at", 0.4)
    assert [t.day for t in train["at"].to_pylist()] == [1, 2, 3]
    assert [t.day for t in test["at"].to_pylist()] == [4, 5]

    with pytest.raises(DataError, match=r"dataset has no time column 'when'; its columns are at"):
        split_by_time(table, "when")
    with pytest.raises(DataError, match=r"time column 'at' is string"):
        split_by_time(pa.table({"at": ["2024-05-01"]}), "at")
    with pytest.raises(DataError, match=r"time column 'at' is missing in 1 of 3 rows"):
        split_by_time(pa.table({"at": [1.0, float("nan"), 3.0]}), "at")
    with pytest.raises(DataError, match=r"the data is empty"):
        split_by_time(pa.table({"at": pa.array([], pa.int64())}), "at")
    with pytest.raises(ValueError, match=r"test_fraction must be between 0 and 1"):
        split_by_time(table, "at", 1.0)


# --- metrics against values computed by hand ---------------------------------------------


def test_classification_metrics_by_hand():
    metrics = evaluate("classification", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    # 4 positive-negative pairs; only (0.35, 0.4) is ordered wrongly.
    assert metrics["auc"] == 0.75
    assert metrics["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    )
    assert metrics["accuracy"] == 0.75  # 0.35 falls below the 0.5 threshold
    assert metrics["brier"] == pytest.approx((0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4)
    # Each score is alone in its bin: the error is the mean |score - label|.
    assert metrics["ece"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)
    assert metrics["mean_score"] == pytest.approx(0.4125)
    assert metrics["positive_rate"] == 0.5
    json.dumps(metrics)  # the registry record holds them as JSON


def test_calibration_error_of_a_calibrated_and_an_overconfident_model():
    labels = np.array([0, 1] * 50)
    assert expected_calibration_error(labels, np.full(100, 0.5)) == 0.0
    assert expected_calibration_error(labels, np.full(100, 0.9)) == pytest.approx(0.4)
    # A score of exactly 1 goes to the last bin.
    assert expected_calibration_error(np.array([1, 1]), np.array([1.0, 0.95])) == 0.025


def test_a_confident_mistake_gives_a_finite_log_loss():
    metrics = evaluate("classification", [0, 1], [1.0, 1.0])
    assert math.isfinite(metrics["log_loss"]) and metrics["log_loss"] > 10


def test_regression_metrics_by_hand():
    metrics = evaluate("regression", [1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    assert metrics == {"rmse": pytest.approx(math.sqrt(5 / 3)), "mae": 1.0}


def test_ndcg_by_hand():
    # Ranked by score: grades 2, 0, 3. DCG = 2/log2(2) + 0 + 3/log2(4) = 3.5;
    # ideal 3, 2, 0: IDCG = 3 + 2/log2(3).
    one_group = 3.5 / (3 + 2 / math.log2(3))
    metrics = evaluate("ranking", [3, 2, 0], [0.1, 0.9, 0.5], groups=["q", "q", "q"])
    assert metrics == {"ndcg@10": pytest.approx(one_group)}
    # A perfect second group; a group of one and a group without relevant items are left out.
    metrics = evaluate(
        "ranking",
        [3, 2, 0, 1, 0, 2, 0, 0],
        [0.1, 0.9, 0.5, 0.7, 0.2, 0.4, 0.3, 0.6],
        groups=[1, 1, 1, 2, 2, 3, 4, 4],
    )
    assert metrics == {"ndcg@10": pytest.approx((one_group + 1.0) / 2)}
    # @k counts only the top k: the best item ranked third is outside the top 2.
    top2 = evaluate("ranking", [3, 2, 0], [0.1, 0.9, 0.5], groups=[1, 1, 1], k=2)
    assert top2 == {"ndcg@2": pytest.approx(2 / (3 + 2 / math.log2(3)))}


def test_ranking_needs_groups_with_something_to_rank():
    with pytest.raises(DataError, match=r"ranking needs groups"):
        evaluate("ranking", [1, 0], [0.3, 0.2])
    with pytest.raises(DataError, match=r"no group can be ranked"):
        evaluate("ranking", [1, 0, 0], [0.3, 0.2, 0.1], groups=[1, 2, 2])


def test_evaluate_rejects_scores_that_do_not_fit():
    with pytest.raises(DataError, match=r"3 scores for 2 labels"):
        evaluate("classification", [0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match=r"probabilities between 0 and 1; found 1.5"):
        evaluate("classification", [0, 1], [0.1, 1.5])
    with pytest.raises(DataError, match=r"scores must be finite numbers; found nan"):
        evaluate("regression", [0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match=r"unknown task 'clustering'"):
        evaluate("clustering", [0, 1], [0.1, 0.2])


# --- the checks on data -------------------------------------------------------------------


def test_label_errors_say_what_is_wrong():
    with pytest.raises(DataError) as error:
        check_labels("classification", np.ones(1000, dtype=np.int64))
    assert str(error.value) == "all 1,000 labels are 1: a classifier needs both classes"
    with pytest.raises(DataError, match=r"^all 3 labels are 0: a classifier needs both classes$"):
        check_labels("classification", pa.chunked_array([[False, False], [False]]))
    with pytest.raises(DataError, match=r"^the data is empty: there are no labelled rows$"):
        check_labels("classification", [])
    with pytest.raises(DataError, match=r"^1 of 3 labels are missing"):
        check_labels("regression", [1.0, None, 2.0])
    with pytest.raises(DataError, match=r"must be 0 or 1 .*; found 2, 7"):
        check_labels("classification", [0, 1, 2, 7])
    with pytest.raises(DataError, match=r"regression labels must be numbers; found str 'high'"):
        check_labels("regression", [1.0, "high"])
    with pytest.raises(DataError, match=r"must be 0 or more; found -1"):
        check_labels("ranking", [0, 2, -1])
    assert check_labels("ranking", [0, 3]).tolist() == [0.0, 3.0]


def test_feature_errors_name_the_columns():
    table = pa.table({"x": [1.0], "y": [2], "city": ["Oslo"], "at": [datetime(2024, 1, 1)]})
    with pytest.raises(DataError) as error:
        check_features(table, ["x", "y", "z", "w"])
    assert str(error.value) == (
        "dataset lacks features: z, w; declared are x, y, z, w (the dataset has x, y, city, at)"
    )
    with pytest.raises(DataError) as error:
        check_features(table, ["x", "city", "at"])
    assert "'at' is timestamp[us];" in str(error.value)  # strings are categories (0030)
    with pytest.raises(DataError, match=r"no features are declared"):
        check_features(table, [])
    check_features(table, ["x", "y"])


# --- a user's own trainer -----------------------------------------------------------------


class SignOfFirstFeature:
    """A hand-written trainer: the probability is a logistic curve of the first feature,
    whose direction it learns from the data. It follows the protocol and nothing else."""

    name = "sign-of-first-feature"
    task = "classification"

    def __init__(self, direction: float = 1.0) -> None:
        self.direction = direction

    def fit(self, X, y, *, features=None, groups=None) -> None:
        first = np.asarray(X.column(0) if isinstance(X, pa.Table) else X[:, 0], np.float64)
        y = np.asarray(y, np.float64)
        self.direction = 1.0 if first[y == 1].mean() >= first[y == 0].mean() else -1.0

    def predict(self, rows) -> np.ndarray:
        first = np.asarray(rows, np.float64)[:, 0]
        return 1.0 / (1.0 + np.exp(-self.direction * first))

    def save(self) -> tuple[bytes, str]:
        return json.dumps({"direction": self.direction}).encode(), "json"

    @classmethod
    def load(cls, data: bytes, format: str) -> SignOfFirstFeature:
        assert format == "json"
        return cls(json.loads(data)["direction"])

    def params(self) -> dict:
        return {}


def _signal_table(n: int = 1000, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(2.0 * x))).astype(np.int64)  # falls with x
    return pa.table({"at": np.arange(n), "x": x, "noise": rng.normal(size=n), "label": y})


def test_a_hand_written_trainer_works_with_the_evaluation_code():
    trainer = SignOfFirstFeature()
    assert isinstance(trainer, Trainer) and not isinstance(trainer, OnlineTrainer)
    metrics = evaluate_trainer(trainer, _signal_table(), label="label", time_column="at")
    assert trainer.direction == -1.0
    assert metrics["auc"] > 0.75
    again = load_trainer(*trainer.save(), trainer_class=SignOfFirstFeature)
    assert again.direction == -1.0


def test_evaluate_trainer_says_what_the_dataset_lacks():
    table = _signal_table(50)
    with pytest.raises(DataError, match=r"^dataset lacks features: clicks; declared are x, clicks"):
        evaluate_trainer(
            SignOfFirstFeature(), table, label="label", time_column="at", features=["x", "clicks"]
        )
    with pytest.raises(DataError, match=r"dataset has no label column 'clicked'"):
        evaluate_trainer(SignOfFirstFeature(), table, label="clicked", time_column="at")
    one_class = table.set_column(3, "label", pa.array(np.ones(50, dtype=np.int64)))
    with pytest.raises(DataError, match=r"^all 40 labels are 1: a classifier needs both classes$"):
        evaluate_trainer(SignOfFirstFeature(), one_class, label="label", time_column="at")
