"""String features are categories (docs/decisions/0030): one encoding for training and
serving, LightGBM's categoricals, scikit-learn's one-hot columns, River's own categories,
and models from before categories that score exactly as they did."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import compose, linear_model, preprocessing
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from loopline.models.evaluation import DataError
from loopline.models.trainers import (
    Encoding,
    LightGBMTrainer,
    RiverTrainer,
    SklearnTrainer,
    load_trainer,
)

BEFORE = Path(__file__).parent / "data" / "before_categories"
COUNTRIES = ["DE", "FR", "NL", "NO", "SE", "\u00e9ire"]
FEATURES = ["spend", "country", "page"]


def reference(row: dict[str, Any], features: list[str], categories: dict) -> list[float]:
    """The model's input for one row, the plainest way: a category's place in the sorted
    list of training categories; a number as a float; anything else NaN."""
    out = []
    for name in features:
        value = row[name]
        if name in categories:
            known = isinstance(value, str) and value in categories[name]
            out.append(float(categories[name].index(value)) if known else math.nan)
        else:
            out.append(math.nan if value is None else float(value))
    return out


words = st.sampled_from(["a", "b", "B", "\u00e9", "z", "ab", ""])
numbers = st.none() | st.integers(-5, 5) | st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(
    training=st.lists(st.tuples(numbers, st.none() | words, st.none() | words), min_size=1),
    served=st.lists(
        st.tuples(
            numbers,
            st.none() | words | st.sampled_from(["never seen", "Z"]),
            st.none() | words | st.integers(0, 3) | st.just(1.5),
        ),
        max_size=20,
    ),
)
def test_an_encoding_gives_the_reference_for_tables_dicts_and_arrays(training, served):
    names = ["x", "c", "d"]
    table = pa.table(
        {
            "x": pa.array([r[0] for r in training], pa.float64()),
            "c": pa.array([r[1] for r in training], pa.string()),
            "d": pa.array([r[2] for r in training], pa.string()),
        }
    )
    encoding = Encoding.learn(table, names)
    categories = {
        n: sorted({r[i] for r in training if r[i] is not None}) for i, n in ((1, "c"), (2, "d"))
    }
    assert encoding.categories == {n: tuple(v) for n, v in categories.items()}
    # the training rows, as a dataset and as a service gives them, encode alike
    expected = [reference(row, names, categories) for row in table.to_pylist()]
    np.testing.assert_array_equal(encoding.matrix(table), np.array(expected).reshape(-1, 3))
    np.testing.assert_array_equal(encoding.matrix(table.to_pylist()), encoding.matrix(table))
    # rows with unseen categories and values that are no strings: missing, in every shape
    rows = [dict(zip(names, r, strict=True)) for r in served]
    expected = np.array([reference(r, names, categories) for r in rows]).reshape(-1, 3)
    np.testing.assert_array_equal(encoding.matrix(rows), expected)
    as_array = np.array([list(r) for r in served] or np.empty((0, 3)), dtype=object)
    np.testing.assert_array_equal(encoding.matrix(as_array), expected)
    # one row at a time (serving) is the batch (evaluation), row by row
    for row, want in zip(rows, expected, strict=True):
        np.testing.assert_array_equal(encoding.matrix([row])[0], want)
    assert Encoding.from_dict(json.loads(json.dumps(encoding.to_dict()))) == encoding


def categorical_data(n: int, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    """Rows whose label follows the country (NO and SE are likely buyers) and the spend; the
    page is noise. Some countries and pages are missing."""
    rng = np.random.default_rng(seed)
    country = rng.choice(COUNTRIES, n).tolist()
    spend = rng.normal(size=n)
    likely = np.isin(country, ["NO", "SE"])
    label = ((2.5 * likely + spend + rng.normal(scale=0.5, size=n)) > 1.2).astype(int)
    for i in range(0, n, 13):
        country[i] = None
    page = [None if i % 7 == 0 else str(p) for i, p in enumerate(rng.choice(["feed", "jobs"], n))]
    return pa.table({"spend": spend, "country": country, "page": page}), label


def lightgbm() -> LightGBMTrainer:
    return LightGBMTrainer({"num_leaves": 8, "min_data_in_leaf": 10}, num_boost_round=30)


def with_country(rows: list[dict], country: Any) -> list[dict]:
    return [{**row, "country": country} for row in rows]


def test_lightgbm_learns_categories_and_scores_unseen_ones_as_missing():
    table, label = categorical_data(3000)
    trainer = lightgbm()
    trainer.fit(table.slice(0, 2400), label[:2400], features=FEATURES)
    test, rows = table.slice(2400), table.slice(2400).to_pylist()
    assert trainer.encoding.categories == {
        "country": tuple(sorted(COUNTRIES)),
        "page": ("feed", "jobs"),
    }
    scores = trainer.predict(rows)
    assert roc_auc_score(label[2400:], scores) > 0.85
    assert trainer.predict(test).tobytes() == scores.tobytes()  # a dataset scores as served
    unseen = trainer.predict(with_country(rows, "IS"))
    assert unseen.tobytes() == trainer.predict(with_country(rows, None)).tobytes()
    assert not np.array_equal(unseen, trainer.predict(with_country(rows, "NO")))
    # the categories travel in the model text; loaded, it scores the same
    data, format = trainer.save()
    again = load_trainer(data, format)
    assert again.encoding == trainer.encoding
    assert again.predict(rows).tobytes() == scores.tobytes()
    assert trainer.save() == again.save()


def test_lightgbm_itself_reads_the_categories_saved_in_the_model_text():
    import lightgbm as lgb
    import pandas as pd

    table, label = categorical_data(2000, seed=1)
    trainer = lightgbm()
    trainer.fit(table, label, features=FEATURES)
    booster = lgb.Booster(model_str=trainer.save()[0].decode())
    rows = [*table.slice(0, 200).to_pylist(), *with_country(table.slice(0, 50).to_pylist(), "IS")]
    frame = pd.DataFrame(rows).astype({"country": "category", "page": "category"})
    assert np.array_equal(booster.predict(frame), trainer.predict(rows))


def test_sklearn_one_hot_columns_come_from_an_encoder_saved_with_the_model():
    table, label = categorical_data(2000, seed=2)
    trainer = SklearnTrainer(LogisticRegression())
    trainer.fit(table, label, features=FEATURES)
    assert trainer.estimator.n_features_in_ == 1 + len(COUNTRIES) + 2
    rows = table.slice(1500).to_pylist()
    scores = trainer.predict(rows)
    assert roc_auc_score(label[1500:], scores) > 0.85
    again = SklearnTrainer.load(*trainer.save())
    assert again.encoding == trainer.encoding
    assert again.predict(table.slice(1500)).tobytes() == scores.tobytes()
    unseen = again.predict(with_country(rows, "IS"))
    assert unseen.tobytes() == again.predict(with_country(rows, None)).tobytes()
    assert not np.array_equal(unseen, again.predict(with_country(rows, "NO")))


def river_model() -> Any:
    """Strings one-hot (River's own encoder: a category never learned weighs nothing),
    numbers as they are; a missing feature is simply absent."""
    categories = compose.SelectType(str) | preprocessing.OneHotEncoder()
    numbers = compose.SelectType(float, int)
    return (categories + numbers) | linear_model.LogisticRegression()


def test_river_reads_categories_itself_one_row_as_in_a_batch():
    table, label = categorical_data(1500, seed=3)
    trainer = RiverTrainer(river_model())
    trainer.fit(table.slice(0, 1000), label[:1000], features=FEATURES)
    rows = table.slice(1000).to_pylist()
    scores = trainer.predict(rows)
    assert roc_auc_score(label[1000:], scores) > 0.85
    assert trainer.predict(table.slice(1000)).tobytes() == scores.tobytes()
    alone = [trainer.predict([row])[0] for row in rows[:50]]
    assert alone == scores[:50].tolist()
    unseen = trainer.predict(with_country(rows, "IS"))  # nothing learned of IS: as missing
    assert unseen.tobytes() == trainer.predict(with_country(rows, None)).tobytes()
    icelander = {"spend": 0.1, "country": "IS", "page": None}
    before = trainer.predict([icelander])[0]
    trainer.learn_one(icelander, 1)  # and learns of it online
    assert trainer.predict([icelander])[0] > before
    again = RiverTrainer.load(*trainer.save())
    assert again.predict(rows).tobytes() == trainer.predict(rows).tobytes()


def test_a_numeric_feature_given_a_string_is_refused_with_its_name():
    table, label = categorical_data(500, seed=4)
    trainer = lightgbm()
    trainer.fit(table, label, features=FEATURES)
    with pytest.raises(DataError, match=r"row 0 feature 'spend' is str 'lots'"):
        trainer.predict([{"spend": "lots", "country": "NO", "page": "feed"}])
    with pytest.raises(DataError, match=r"'spend' is a number to this model, but the rows hold"):
        trainer.predict(pa.table({"spend": ["lots"], "country": ["NO"], "page": ["feed"]}))
    with pytest.raises(DataError, match=r"row 0 lacks features: country"):
        trainer.predict([{"spend": 1.0, "page": "feed"}])


# -- models from before categories -------------------------------------------------------


def _before() -> Any:
    spec = importlib.util.spec_from_file_location("before_categories", BEFORE / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["lightgbm", "sklearn", "river"])
def test_a_model_trained_before_categories_scores_exactly_as_before(name):
    before = _before()
    recorded = json.loads((BEFORE / "scores.json").read_text())[name]
    trainer = load_trainer(
        (BEFORE / f"{name}.{recorded['format']}").read_bytes(), recorded["format"]
    )
    rows = before.rows()
    if name == "sklearn":  # it was fitted without gaps in spend
        rows = [{**r, "spend": 0.0 if r["spend"] is None else r["spend"]} for r in rows]
    assert [float(s).hex() for s in trainer.predict(rows)] == recorded["scores"]


def test_a_model_of_numbers_is_built_byte_for_byte_as_before():
    before = _before()
    table, label = before.data()
    trainer = LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 5}, num_boost_round=10)
    trainer.fit(table, label, features=before.FEATURES)
    assert trainer.save()[0] == (BEFORE / "lightgbm.lightgbm").read_bytes()
