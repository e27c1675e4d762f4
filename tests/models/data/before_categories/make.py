"""Writes the artifacts `test_categorical.py` loads: models trained by the code of before
categorical features (main at 8714197), and their scores.

Run once, with that code: ``PYTHONPATH=/path/to/old/src python make.py``. The files it
writes are committed; running it with newer code proves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from river import linear_model, preprocessing
from sklearn.linear_model import LogisticRegression

from loopline.models.trainers import LightGBMTrainer, RiverTrainer, SklearnTrainer

HERE = Path(__file__).parent
FEATURES = ["spend", "visits", "is_new"]


def data(n: int = 300, seed: int = 11) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    spend = rng.normal(size=n).round(3)
    visits = rng.integers(0, 20, n)
    is_new = rng.random(n) < 0.3
    label = ((spend + visits / 10 - is_new + rng.normal(scale=0.5, size=n)) > 0.8).astype(int)
    spend_with_gaps = [None if i % 17 == 0 else float(s) for i, s in enumerate(spend)]
    table = pa.table({"spend": spend_with_gaps, "visits": visits, "is_new": is_new})
    return table, label


def rows() -> list[dict]:
    """What a prediction service gives a model: dicts, with missing values as None."""
    table, _ = data(60, seed=12)
    return table.to_pylist()


def main() -> None:
    table, label = data()
    models = {
        "lightgbm": LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 5}, num_boost_round=10),
        "sklearn": SklearnTrainer(LogisticRegression()),
        "river": RiverTrainer(preprocessing.StandardScaler() | linear_model.LogisticRegression()),
    }
    scores = {}
    for name, trainer in models.items():
        fit_table = (
            table
            if name != "sklearn"
            else pa.table(
                {
                    n: pa.array(table[n].to_pylist()).fill_null(0.0) if n == "spend" else table[n]
                    for n in FEATURES
                }
            )
        )
        trainer.fit(fit_table, label, features=FEATURES)
        artifact, format = trainer.save()
        (HERE / f"{name}.{format}").write_bytes(artifact)
        given = (
            rows()
            if name != "sklearn"
            else [{**r, "spend": 0.0 if r["spend"] is None else r["spend"]} for r in rows()]
        )
        scores[name] = {"format": format, "scores": [s.hex() for s in trainer.predict(given)]}
    (HERE / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")


if __name__ == "__main__":
    main()
