"""The built-in trainers: they learn a known signal, round-trip through their artifacts, train
deterministically, learn online where they can, and refuse data and artifacts they cannot use."""

from __future__ import annotations

import copy
import json
import os
import pickle

import numpy as np
import pyarrow as pa
import pytest
from river import linear_model as river_linear
from river import preprocessing as river_preprocessing
from river import tree as river_tree
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from loopline.models.evaluation import DataError, evaluate, evaluate_trainer, split_by_time
from loopline.models.trainers import (
    FORMATS,
    LightGBMTrainer,
    LoadError,
    OnlineSklearnTrainer,
    OnlineTrainer,
    RiverTrainer,
    SklearnTrainer,
    Trainer,
    load_trainer,
)

FEATURES = ["x1", "x2", "noise"]


def dataset(task: str, n: int = 2000, seed: int = 7) -> pa.Table:
    """Rows in time order with a known signal in x1 and x2; `noise` carries none.

    Classification: P(label = 1) is logistic in 2*x1 - x2. Regression: 3*x1 - 2*x2 plus
    noise. Ranking: queries of 10 items graded 0-3 by the same score.
    """
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=(3, n))
    signal = 2.0 * x1 - x2
    columns = {"at": np.arange(n) * 1000, "x1": x1, "x2": x2, "noise": noise}
    if task == "classification":
        columns["label"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-signal))).astype(np.int64)
    elif task == "regression":
        columns["label"] = 3.0 * x1 - 2.0 * x2 + rng.normal(scale=0.5, size=n)
    else:
        noisy = signal + rng.normal(scale=0.5, size=n)
        columns["label"] = np.digitize(noisy, [-1.0, 0.5, 2.0]).astype(np.int64)
        columns["query"] = np.arange(n) // 10
    return pa.table(columns)


def sklearn_classifier() -> SklearnTrainer:
    return SklearnTrainer(make_pipeline(StandardScaler(), LogisticRegression()))


def river_classifier() -> RiverTrainer:
    return RiverTrainer(river_preprocessing.StandardScaler() | river_linear.LogisticRegression())


CLASSIFIERS = {
    "sklearn-pipeline": sklearn_classifier,
    "sklearn-forest": lambda: SklearnTrainer(RandomForestClassifier(50, min_samples_leaf=20)),
    "lightgbm": lambda: LightGBMTrainer({"num_leaves": 8}, num_boost_round=50),
    "river": river_classifier,
}
REGRESSORS = {
    "sklearn": lambda: SklearnTrainer(Ridge(), task="regression"),
    "lightgbm": lambda: LightGBMTrainer({"num_leaves": 8}, task="regression"),
    "river": lambda: RiverTrainer(
        river_preprocessing.StandardScaler() | river_linear.LinearRegression()
    ),
}
RANKERS = {
    "sklearn": lambda: SklearnTrainer(Ridge(), task="ranking"),
    "lightgbm": lambda: LightGBMTrainer({"num_leaves": 8}, task="ranking"),
    "river": lambda: RiverTrainer(river_linear.LinearRegression(), task="ranking"),
}
ALL = {
    **{f"classification-{k}": v for k, v in CLASSIFIERS.items()},
    **{f"regression-{k}": v for k, v in REGRESSORS.items()},
    **{f"ranking-{k}": v for k, v in RANKERS.items()},
}


def fitted(make, task: str | None = None):
    trainer = make()
    table = dataset(task or trainer.task)
    trainer.fit(
        table, "label", features=FEATURES, groups="query" if "query" in table.column_names else None
    )
    return trainer, table


# --- they learn the signal ----------------------------------------------------------------


@pytest.mark.parametrize("make", CLASSIFIERS.values(), ids=CLASSIFIERS.keys())
def test_classifiers_beat_the_base_rate_on_later_data(make):
    table = dataset("classification")
    trainer = make()
    metrics = evaluate_trainer(trainer, table, label="label", time_column="at", features=FEATURES)
    train, test = split_by_time(table, "at")
    base_rate = np.full(test.num_rows, np.mean(train["label"].to_numpy()))
    baseline = evaluate("classification", test["label"], base_rate)
    assert metrics["auc"] > 0.8 > baseline["auc"]
    assert metrics["log_loss"] < baseline["log_loss"] - 0.1
    assert metrics["accuracy"] > 0.7
    assert metrics["ece"] < 0.1


@pytest.mark.parametrize("make", REGRESSORS.values(), ids=REGRESSORS.keys())
def test_regressors_beat_the_mean_on_later_data(make):
    table = dataset("regression")
    metrics = evaluate_trainer(make(), table, label="label", time_column="at", features=FEATURES)
    train, test = split_by_time(table, "at")
    mean = np.full(test.num_rows, np.mean(train["label"].to_numpy()))
    baseline = evaluate("regression", test["label"], mean)
    assert metrics["rmse"] < baseline["rmse"] / 2
    assert metrics["mae"] < baseline["mae"] / 2


@pytest.mark.parametrize("make", RANKERS.values(), ids=RANKERS.keys())
def test_rankers_beat_a_random_order_on_later_data(make):
    table = dataset("ranking")
    metrics = evaluate_trainer(
        make(), table, label="label", time_column="at", features=FEATURES, groups="query"
    )
    _, test = split_by_time(table, "at")
    shuffled = np.random.default_rng(0).random(test.num_rows)
    baseline = evaluate("ranking", test["label"], shuffled, groups=test["query"])
    assert metrics["ndcg@10"] > 0.9 > baseline["ndcg@10"] + 0.1


# --- artifacts ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_save_and_load_give_identical_predictions(make):
    trainer, table = fitted(make)
    data, format = trainer.save()
    assert isinstance(data, bytes) and FORMATS[format] is type(trainer)
    loaded = load_trainer(data, format)
    assert type(loaded) is type(trainer) and loaded.task == trainer.task
    rows = table.select(FEATURES).slice(0, 200)
    assert loaded.predict(rows).tobytes() == trainer.predict(rows).tobytes()
    dicts = rows.to_pylist()
    assert loaded.predict(dicts).tobytes() == trainer.predict(rows).tobytes()
    assert json.loads(json.dumps(loaded.params()))["task"] == trainer.task


@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_every_built_in_trainer_follows_the_protocol(make):
    trainer = make()
    assert isinstance(trainer, Trainer)
    assert isinstance(trainer, OnlineTrainer) == isinstance(trainer, RiverTrainer)
    assert isinstance(json.loads(json.dumps(trainer.params())), dict)


def test_lightgbm_saves_its_own_text_format():
    trainer, _ = fitted(CLASSIFIERS["lightgbm"])
    data, format = trainer.save()
    assert format == "lightgbm"
    text = data.decode("utf-8")
    assert "objective=binary" in text and "feature_names=x1 x2 noise" in text
    loaded = LightGBMTrainer.load(data)
    assert loaded.features == ("x1", "x2", "noise") and loaded.num_boost_round == 50


@pytest.mark.parametrize(
    "make",
    [
        sklearn_classifier,
        lambda: SklearnTrainer(RandomForestClassifier(30, max_features=1)),  # random_state unset
        lambda: LightGBMTrainer(
            {"bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.7}
        ),
    ],
    ids=["sklearn-pipeline", "sklearn-forest", "lightgbm-bagging"],
)
def test_training_twice_gives_identical_predictions(make):
    runs = []
    for _ in range(2):
        trainer, table = fitted(make)
        data, format = trainer.save()
        runs.append(load_trainer(data, format).predict(table.select(FEATURES)).tobytes())
    assert runs[0] == runs[1]


def test_lightgbm_training_twice_gives_identical_artifacts():
    first, _ = fitted(CLASSIFIERS["lightgbm"])
    second, _ = fitted(CLASSIFIERS["lightgbm"])
    assert first.save() == second.save()


def test_skops_refuses_a_function_it_does_not_trust():
    trainer = SklearnTrainer(make_pipeline(FunctionTransformer(os.system), LogisticRegression()))
    trainer.features = ("x",)
    data, format = trainer.save()
    with pytest.raises(LoadError, match=r"not trusted: posix.system; if you wrote them"):
        load_trainer(data, format)


def test_skops_refuses_numpy_functions_that_read_pickles():
    trainer = SklearnTrainer(make_pipeline(FunctionTransformer(np.load), LogisticRegression()))
    trainer.features = ("x",)
    with pytest.raises(LoadError, match=r"not trusted: numpy\S*\.load;"):
        load_trainer(*trainer.save())


def _double(x):
    return x * 2


def test_skops_loads_a_function_the_caller_trusts():
    pipeline = make_pipeline(FunctionTransformer(_double), LogisticRegression())
    trainer = SklearnTrainer(pipeline)
    table = dataset("classification", n=300)
    trainer.fit(table, "label", features=FEATURES)
    data, format = trainer.save()
    name = f"{_double.__module__}._double"
    with pytest.raises(LoadError, match=name):
        SklearnTrainer.load(data, format)
    loaded = SklearnTrainer.load(data, format, trusted=[name])
    rows = table.select(FEATURES)
    assert loaded.predict(rows).tobytes() == trainer.predict(rows).tobytes()


def test_sklearn_classes_outside_the_default_list_are_trusted():
    trainer, table = fitted(CLASSIFIERS["sklearn-forest"])  # holds sklearn.tree._tree.Tree
    loaded = load_trainer(*trainer.save())
    assert loaded.predict(table.slice(0, 5)).tolist() == trainer.predict(table.slice(0, 5)).tolist()


def test_artifacts_in_the_wrong_format_are_refused():
    with pytest.raises(LoadError, match="not a LightGBM text model"):
        load_trainer(b"\x00\x01 not a model", "lightgbm")
    with pytest.raises(LoadError, match="not a skops artifact"):
        load_trainer(b"not a zip file", "skops")
    with pytest.raises(LoadError, match="SklearnTrainer loads the 'skops' format, not 'pickle'"):
        SklearnTrainer.load(b"", "pickle")
    with pytest.raises(LoadError, match="no trainer loads the format 'onnx'"):
        load_trainer(b"", "onnx")


# --- online learning ----------------------------------------------------------------------


def test_river_learns_one_example_at_a_time():
    trainer = river_classifier()
    assert isinstance(trainer, OnlineTrainer)
    table = dataset("classification", n=3000)
    rows, labels = table.select(FEATURES).to_pylist(), table["label"].to_pylist()
    scores = []
    for row, label in zip(rows, labels, strict=True):  # predict, then learn: progressive
        scores.append(trainer.predict([row])[0])
        trainer.learn_one(row, label)
    early = evaluate("classification", labels[:300], scores[:300])
    late = evaluate("classification", labels[-1000:], scores[-1000:])
    assert late["log_loss"] < early["log_loss"] - 0.05
    assert late["auc"] > 0.8
    # The stream goes on after a round trip through the artifact.
    loaded = RiverTrainer.load(*trainer.save())
    loaded.learn_one(rows[0], labels[0])
    trainer.learn_one(rows[0], labels[0])
    assert loaded.predict(rows[:50]).tobytes() == trainer.predict(rows[:50]).tobytes()


def test_river_fit_starts_afresh_and_handles_missing_values():
    trainer = RiverTrainer(river_tree.HoeffdingTreeClassifier())
    table = dataset("classification", n=500)
    trainer.fit(table, "label", features=FEATURES)
    once = trainer.predict(table.slice(0, 20))
    trainer.fit(table, "label", features=FEATURES)
    assert trainer.predict(table.slice(0, 20)).tobytes() == once.tobytes()
    scores = trainer.predict([{"x1": 1.0, "x2": None, "noise": float("nan")}])
    assert 0.0 <= scores[0] <= 1.0


def test_sklearn_learns_online_with_partial_fit():
    trainer = SklearnTrainer(SGDClassifier(loss="log_loss"))
    assert isinstance(trainer, OnlineTrainer) and isinstance(trainer, OnlineSklearnTrainer)
    for row, label in zip(*_rows_and_labels(2000), strict=True):
        trainer.learn_one(row, label)
    table = dataset("classification", seed=8)
    metrics = evaluate("classification", table["label"], trainer.predict(table.select(FEATURES)))
    assert metrics["auc"] > 0.8
    offline = SklearnTrainer(LogisticRegression())
    assert not isinstance(offline, OnlineTrainer) and not hasattr(offline, "learn_one")
    with pytest.raises(TypeError, match="LogisticRegression does not learn online"):
        OnlineSklearnTrainer(LogisticRegression())


def test_sklearn_trainers_keep_their_kind_when_copied():
    for estimator in (SGDClassifier(loss="log_loss"), LogisticRegression()):
        trainer = SklearnTrainer(estimator)
        for again in (copy.deepcopy(trainer), pickle.loads(pickle.dumps(trainer))):
            assert type(again) is type(trainer) and type(again.estimator) is type(estimator)


def test_an_online_sklearn_model_learns_on_after_a_round_trip_through_its_artifact():
    trainer = SklearnTrainer(SGDClassifier(loss="log_loss"))
    rows, labels = _rows_and_labels(500)
    for row, label in zip(rows, labels, strict=True):
        trainer.learn_one(row, label)
    loaded = load_trainer(*trainer.save())
    assert isinstance(loaded, OnlineTrainer)  # so `train --online` can go on from it
    loaded.learn_one(rows[0], labels[0])
    trainer.learn_one(rows[0], labels[0])
    assert loaded.predict(rows[:50]).tobytes() == trainer.predict(rows[:50]).tobytes()


def _rows_and_labels(n: int):
    table = dataset("classification", n=n)
    return table.select(FEATURES).to_pylist(), table["label"].to_pylist()


# --- data a trainer cannot use ------------------------------------------------------------


@pytest.mark.parametrize("make", CLASSIFIERS.values(), ids=CLASSIFIERS.keys())
def test_trainers_say_what_is_wrong_with_the_data(make):
    table = dataset("classification", n=1000)
    with pytest.raises(DataError) as error:
        make().fit(table, np.ones(1000, dtype=np.int64), features=FEATURES)
    assert str(error.value) == "all 1,000 labels are 1: a classifier needs both classes"
    with pytest.raises(DataError, match=r"^the data is empty: 0 rows to learn from$"):
        make().fit(table.slice(0, 0), "label", features=FEATURES)
    with pytest.raises(DataError) as error:
        make().fit(table, "label", features=["x1", "clicks", "age"])
    assert str(error.value).startswith(
        "dataset lacks features: clicks, age; declared are x1, clicks, age"
    )
    with_tags = table.append_column("tags", pa.array([["new"]] * 1000))
    with pytest.raises(DataError, match=r"'tags' is list<item: string>; encode them as numbers"):
        make().fit(with_tags, "label", features=["x1", "tags"])
    with pytest.raises(DataError, match=r"^1,001 labels for 1,000 rows$"):
        make().fit(table, np.r_[table["label"].to_numpy(), 1], features=FEATURES)


def test_predict_says_what_a_row_lacks():
    trainer, _ = fitted(CLASSIFIERS["lightgbm"])
    with pytest.raises(
        DataError, match=r"^row 1 lacks features: noise; declared are x1, x2, noise$"
    ):
        trainer.predict([{"x1": 0, "x2": 0, "noise": 0}, {"x1": 0, "x2": 0}])
    with pytest.raises(DataError, match=r"row 0 feature 'x2' is str 'high'"):
        trainer.predict([{"x1": 0, "x2": "high", "noise": 0}])
    with pytest.raises(DataError, match=r"the array has 2 columns but 3 features are declared"):
        trainer.predict(np.zeros((1, 2)))
    # A missing value is NaN, which LightGBM routes like the training data's missing values.
    assert np.isfinite(trainer.predict([{"x1": None, "x2": 0.5, "noise": 0.0}])).all()
    assert trainer.predict([]).shape == (0,)


def test_a_two_dimensional_array_needs_feature_names():
    with pytest.raises(DataError, match=r"a 2-D array needs features=\[...\]: the names of its 3"):
        sklearn_classifier().fit(np.zeros((4, 3)), [0, 1, 0, 1])


def test_lightgbm_ranking_needs_groups_and_objectives_must_fit_the_task():
    table = dataset("ranking", n=200)
    with pytest.raises(DataError, match="ranking needs groups="):
        LightGBMTrainer(task="ranking").fit(table, "label", features=FEATURES)
    with pytest.raises(ValueError, match="objective 'multiclass' is not supported"):
        LightGBMTrainer({"objective": "multiclass"})
    with pytest.raises(ValueError, match="'lambdarank' is a ranking objective, but the task is"):
        LightGBMTrainer({"objective": "lambdarank"}, task="regression")


def test_lightgbm_ranking_groups_need_not_be_contiguous():
    table = dataset("ranking", n=1000)
    shuffled = table.take(np.random.default_rng(3).permutation(1000))
    trainer = LightGBMTrainer({"num_leaves": 8}, task="ranking")
    trainer.fit(shuffled, "label", features=FEATURES, groups="query")
    scores = trainer.predict(table.select(FEATURES))
    assert evaluate("ranking", table["label"], scores, groups=table["query"])["ndcg@10"] > 0.9


def test_river_refuses_a_model_that_does_not_fit_the_task():
    with pytest.raises(ValueError, match="LinearRegression is a regression model, but the task is"):
        RiverTrainer(river_linear.LinearRegression(), task="classification")
    with pytest.raises(ValueError, match="StandardScaler is neither a River classifier"):
        RiverTrainer(river_preprocessing.StandardScaler())


def test_rows_of_plain_and_numpy_numbers_read_alike():
    """Plain numbers take numpy's one-pass path, numpy scalars the checked loop: same matrix."""
    from loopline.models.trainers.data import row_matrix

    plain = [{"a": 1, "b": None, "c": True}, {"a": 2.5, "b": -3, "c": False}]
    numpy = [
        {"a": np.int64(1), "b": None, "c": np.bool_(True)},
        {"a": np.float32(2.5), "b": np.int8(-3), "c": np.bool_(False)},
    ]
    expected = np.array([[1.0, np.nan, 1.0], [2.5, -3.0, 0.0]])
    for rows in (plain, numpy):
        np.testing.assert_array_equal(row_matrix(rows, ["a", "b", "c"]), expected)
    np.testing.assert_array_equal(row_matrix(plain, ["c", "a"]), expected[:, [2, 0]])
    with pytest.raises(DataError, match=r"row 1 feature 'a' is str '2.5'"):
        row_matrix([plain[0], {**plain[1], "a": "2.5"}], ["a", "b", "c"])
