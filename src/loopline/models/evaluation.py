"""Evaluation on held-out later data: a split by time, the checks a dataset must pass, and
the metrics that fit the task.

A model is trained on the earlier part of a dataset and judged on the later part, as it
will be used: on data from after it was built. A random split would let the model learn
from the future it is scored on. `evaluate` gives the metrics of the task: AUC, log loss,
accuracy and calibration for classification; RMSE and MAE for regression; NDCG@k for
ranking. `DataError` says what is wrong with a dataset a model cannot learn from.

>>> import pyarrow as pa
>>> table = pa.table({"at": [1, 2, 3, 4, 5], "x": [0.1, 0.9, 0.2, 0.8, 0.7], "y": [0, 1, 0, 1, 1]})
>>> train, test = split_by_time(table, "at", test_fraction=0.4)
>>> train["at"].to_pylist(), test["at"].to_pylist()
([1, 2, 3], [4, 5])
>>> evaluate("regression", [1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
{'rmse': 1.2909944487358056, 'mae': 1.0}
>>> evaluate("classification", [1] * 1000, [0.9] * 1000)
Traceback (most recent call last):
...
loopline.models.evaluation.DataError: all 1,000 labels are 1: a classifier needs both classes
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from loopline.models.trainers.protocol import Trainer

Task = Literal["classification", "regression", "ranking"]
TASKS: tuple[str, ...] = get_args(Task)
CALIBRATION_BINS = 10  # equal-width score bins for the expected calibration error
NDCG_AT = 10
_EPS = 1e-15  # log loss clips scores to [eps, 1 - eps]: one confident mistake is not +inf

__all__ = [
    "TASKS",
    "DataError",
    "Task",
    "check_features",
    "check_labels",
    "check_task",
    "evaluate",
    "evaluate_trainer",
    "expected_calibration_error",
    "is_categorical",
    "scoring_rows",
    "ndcg_at",
    "split_by_time",
]


class DataError(ValueError):
    """A dataset a model cannot be trained or evaluated on; the message says why and what to do."""


def check_task(task: str) -> Task:
    """`task` if it is one of `TASKS`, else a ValueError naming them."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    return task  # type: ignore[return-value]


def _count(n: int) -> str:
    return f"{n:,}"


def _label_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def check_labels(task: str, labels: Iterable[Any]) -> np.ndarray:
    """The labels as a float array, or a `DataError` if `task` cannot learn from them.

    Classification labels are 0 or 1 (false or true; 1 is the positive class) and both must
    occur; regression labels are numbers; ranking labels are relevance grades, 0 or more.

    >>> check_labels("classification", [True, False, True])
    array([1., 0., 1.])
    >>> check_labels("classification", [0, 2, 1])
    Traceback (most recent call last):
    ...
    loopline.models.evaluation.DataError: classification labels must be 0 or 1 (or false and true); found 2
    >>> check_labels("regression", [])
    Traceback (most recent call last):
    ...
    loopline.models.evaluation.DataError: the data is empty: there are no labelled rows
    """
    check_task(task)
    array = _numeric_array(labels)
    if array is None:  # not already numbers: look at each value
        values = _as_list(labels)
        array = np.asarray(
            [math.nan if v is None else v for v in values] if values else [], dtype=object
        )
        bad = next((v for v in values if v is not None and not _is_number(v)), None)
        if bad is not None:
            raise DataError(f"{task} labels must be numbers; found {type(bad).__name__} {bad!r}")
        array = array.astype(np.float64)
    if len(array) == 0:
        raise DataError("the data is empty: there are no labelled rows")
    missing = int(np.isnan(array).sum())
    if missing:
        raise DataError(
            f"{_count(missing)} of {_count(len(array))} labels are missing: "
            "drop those rows or give them a label"
        )
    if not np.isfinite(array).all():
        bad = array[~np.isfinite(array)][0]
        raise DataError(f"{task} labels must be finite numbers; found {bad}")
    if task == "classification":
        others = sorted(set(np.unique(array).tolist()) - {0.0, 1.0})
        if others:
            found = ", ".join(_label_text(v) for v in others[:5])
            raise DataError(
                f"classification labels must be 0 or 1 (or false and true); found {found}"
            )
        if array.min() == array.max():
            raise DataError(
                f"all {_count(len(array))} labels are {_label_text(array[0])}: "
                "a classifier needs both classes"
            )
    elif task == "ranking" and array.min() < 0:
        raise DataError(
            f"ranking labels are relevance grades and must be 0 or more; found {array.min():g}"
        )
    return array


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.number | np.bool_)


def _numeric_array(values: Any) -> np.ndarray | None:
    """`values` as a float array (NaN where missing) if they are typed as numbers, else None."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        kind = values.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            return values.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return None
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64).ravel()
    return None


def _as_list(values: Iterable[Any]) -> list[Any]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.to_pylist()
    if isinstance(values, np.ndarray):
        return values.ravel().tolist()
    return list(values)


_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
_CATEGORICAL = (pa.types.is_string, pa.types.is_large_string)
_USABLE = (*_NUMERIC, *_CATEGORICAL, pa.types.is_null)  # all missing: NaN


def is_categorical(kind: pa.DataType) -> bool:
    """Whether a column of type `kind` holds categories (strings) rather than numbers.

    >>> is_categorical(pa.string()), is_categorical(pa.float64())
    (True, False)
    """
    return any(is_type(kind) for is_type in _CATEGORICAL)


def check_features(table: pa.Table, features: Sequence[str]) -> None:
    """A `DataError` unless `table` has every declared feature as a number or string column.

    Numbers (int, float, bool) are read as they are; strings are categories
    (`loopline.models.trainers.encoding`, docs/decisions/0030).

    >>> table = pa.table({"a": [1.0], "city": ["Oslo"], "tags": [["x"]]})
    >>> check_features(table, ["a", "b", "c"])
    Traceback (most recent call last):
    ...
    loopline.models.evaluation.DataError: dataset lacks features: b, c; declared are a, b, c (the dataset has a, city, tags)
    >>> check_features(table, ["a", "city"])
    >>> check_features(table, ["a", "tags"])
    Traceback (most recent call last):
    ...
    loopline.models.evaluation.DataError: features must be numbers (int, float or bool) or strings (categories): 'tags' is list<item: string>; encode them as numbers or strings, or leave them out of the features
    """
    if not features:
        raise DataError("no features are declared: a model needs at least one feature")
    names = set(table.column_names)
    missing = [f for f in features if f not in names]
    if missing:
        raise DataError(
            f"dataset lacks features: {', '.join(missing)}; declared are {', '.join(features)} "
            f"(the dataset has {', '.join(table.column_names) or 'no columns'})"
        )
    wrong = [
        f"{f!r} is {table.schema.field(f).type}"
        for f in features
        if not any(is_type(table.schema.field(f).type) for is_type in _USABLE)
    ]
    if wrong:
        raise DataError(
            "features must be numbers (int, float or bool) or strings (categories): "
            f"{', '.join(wrong)}; encode them as numbers or strings, or leave them out of the "
            "features"
        )


def scoring_rows(table: pa.Table, features: Sequence[str]) -> Any:
    """What loopline gives a trainer's ``predict`` for the rows of `table`: a 2-D float array
    of the `features` in order when they are all numbers (as always), else the Table of
    those columns, since strings (categories) are no floats.

    >>> scoring_rows(pa.table({"x": [1, 2], "y": [0.5, None]}), ["y", "x"])
    array([[0.5, 1. ],
           [nan, 2. ]])
    >>> scoring_rows(pa.table({"x": [1], "city": ["Oslo"]}), ["city"]).column_names
    ['city']
    """
    names = list(features)
    if any(is_categorical(table.schema.field(name).type) for name in names):
        return table.select(names)
    if not names:
        return np.empty((table.num_rows, 0), dtype=np.float64)
    return np.column_stack(
        [table[name].cast(pa.float64()).to_numpy(zero_copy_only=False) for name in names]
    ).astype(np.float64, copy=False)


def _check_time_column(table: pa.Table, time_column: str) -> None:
    if time_column not in table.column_names:
        raise DataError(
            f"dataset has no time column {time_column!r}; its columns are "
            f"{', '.join(table.column_names) or 'none'}"
        )
    times = table[time_column]
    kind = times.type
    if not (
        pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
    ):
        raise DataError(
            f"time column {time_column!r} is {kind}: use a timestamp, a date or epoch numbers"
        )
    missing = times.null_count
    if pa.types.is_floating(kind):
        missing += pc.sum(pc.is_nan(times)).as_py() or 0
    if missing:
        raise DataError(
            f"time column {time_column!r} is missing in {_count(missing)} of "
            f"{_count(len(times))} rows: a row without a time cannot be put before or after "
            "the others; drop those rows"
        )


def split_by_time(
    table: pa.Table, time_column: str, test_fraction: float = 0.2
) -> tuple[pa.Table, pa.Table]:
    """`(train, test)`: the earlier rows of `table` and the later ones, each sorted by time.

    The cutoff is the time of the row that starts the last `test_fraction` of the rows (at
    least one); every row at or after the cutoff is a test row, every earlier row a training
    row. So rows that share the cutoff's time all go to the test part, and every training row
    is strictly earlier than every test row. Ties keep their input order. A `DataError` if
    either part would be empty (too few rows, or the earliest time is the cutoff).

    >>> table = pa.table({"day": [3, 1, 2, 4, 4, 5], "y": ["c", "a", "b", "d1", "d2", "e"]})
    >>> train, test = split_by_time(table, "day", test_fraction=0.4)
    >>> train["y"].to_pylist(), test["y"].to_pylist()
    (['a', 'b', 'c'], ['d1', 'd2', 'e'])
    >>> split_by_time(pa.table({"day": [7, 7]}), "day")
    Traceback (most recent call last):
    ...
    loopline.models.evaluation.DataError: all 2 rows are at or after the cutoff 7 (time column 'day'): there are no earlier rows to train on; use more data or a larger test_fraction
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), not {test_fraction}")
    _check_time_column(table, time_column)
    n = table.num_rows
    if n == 0:
        raise DataError("the data is empty: 0 rows to split into earlier and later parts")
    # One stable sort of the time column, then each part taken once from contiguous columns
    # (a table read in chunks takes rows far slower chunked; filtering a sorted copy is a
    # second pass over every column).
    order = pc.sort_indices(table[time_column])
    times = table[time_column].take(order)
    n_test = min(n, max(1, math.ceil(n * test_fraction)))
    cutoff = times[n - n_test]
    earlier = pc.sum(pc.less(times, cutoff)).as_py() or 0  # sorted: the first rows
    table = table.combine_chunks()
    train, test = table.take(order[:earlier]), table.take(order[earlier:])
    if train.num_rows == 0:
        raise DataError(
            f"all {_count(n)} rows are at or after the cutoff {cutoff} (time column "
            f"{time_column!r}): there are no earlier rows to train on; use more data or a "
            "larger test_fraction"
        )
    return train, test


def expected_calibration_error(
    y_true: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """The mean gap between the predicted probability and the observed rate, over equal-width
    score bins weighted by how many rows each holds (0 is perfectly calibrated).

    >>> expected_calibration_error(np.array([0, 1, 1, 1]), np.array([0.1, 0.1, 0.9, 0.9]))
    0.25
    """
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=scores, minlength=bins)
    observed = np.bincount(index, weights=y_true, minlength=bins)
    gap = np.abs(predicted - observed)  # per bin: count * |mean score - observed rate|
    return float(round(gap.sum() / counts.sum(), 12))


def ndcg_at(y_true: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int = NDCG_AT) -> float:
    """The mean NDCG@k over groups (queries), by scikit-learn's `ndcg_score` (gain = grade).

    A group of one item, or whose grades are all 0, has no ranking to get right and is left
    out; a `DataError` if no group is left.

    >>> round(ndcg_at(np.array([3, 2, 0]), np.array([0.1, 0.9, 0.5]), np.array([7, 7, 7])), 4)
    0.8212
    """
    from sklearn.metrics import ndcg_score

    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    ends = np.r_[starts[1:], len(order)]
    values = []
    for start, end in zip(starts, ends, strict=True):
        rows = order[start:end]
        if len(rows) < 2 or not y_true[rows].any():
            continue
        values.append(ndcg_score([y_true[rows]], [scores[rows]], k=k))
    if not values:
        raise DataError(
            f"no group can be ranked: NDCG needs a group (of {_count(len(starts))}) with at "
            "least two items and a label above 0"
        )
    return float(np.mean(values))


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values).ravel()


def evaluate(
    task: str,
    y_true: Any,
    scores: Any,
    groups: Any = None,
    *,
    k: int = NDCG_AT,
) -> dict[str, float]:
    """The metrics of `task` for `scores` against the true labels.

    - classification (scores are probabilities of the positive class): ``auc``,
      ``log_loss``, ``accuracy`` (at 0.5), ``brier``, and calibration: ``ece`` (see
      `expected_calibration_error`), ``mean_score`` against ``positive_rate``;
    - regression: ``rmse``, ``mae``;
    - ranking: ``ndcg@k`` over the `groups` (query ids, one per row; see `ndcg_at`).

    >>> metrics = evaluate("classification", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> metrics["auc"], metrics["accuracy"], metrics["positive_rate"]
    (0.75, 0.75, 0.5)
    >>> ranked = evaluate("ranking", [3, 2, 0, 1], [0.1, 0.9, 0.5, 0.2], groups=[1, 1, 1, 2])
    >>> {name: round(value, 4) for name, value in ranked.items()}  # group 2 has one item
    {'ndcg@10': 0.8212}
    """
    from sklearn import metrics

    check_task(task)
    truth = check_labels(task, _as_array(y_true))
    predicted = _as_array(scores).astype(np.float64)
    if len(predicted) != len(truth):
        raise DataError(f"{_count(len(predicted))} scores for {_count(len(truth))} labels")
    if not np.isfinite(predicted).all():
        raise DataError(
            f"scores must be finite numbers; found {predicted[~np.isfinite(predicted)][0]}"
        )
    if task == "classification":
        if predicted.min() < 0.0 or predicted.max() > 1.0:
            bad = predicted[(predicted < 0.0) | (predicted > 1.0)][0]
            raise DataError(
                f"classification scores must be probabilities between 0 and 1; found {bad:g}"
            )
        return {
            "auc": float(metrics.roc_auc_score(truth, predicted)),
            "log_loss": float(
                metrics.log_loss(truth, np.clip(predicted, _EPS, 1.0 - _EPS), labels=[0.0, 1.0])
            ),
            "accuracy": float(metrics.accuracy_score(truth, predicted >= 0.5)),
            "brier": float(metrics.brier_score_loss(truth, predicted)),
            "ece": expected_calibration_error(truth, predicted),
            "mean_score": float(predicted.mean()),
            "positive_rate": float(truth.mean()),
        }
    if task == "regression":
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
            "mae": float(metrics.mean_absolute_error(truth, predicted)),
        }
    if groups is None:
        raise DataError("ranking needs groups: the query id of every row")
    group_ids = _as_array(groups)
    if len(group_ids) != len(truth):
        raise DataError(f"{_count(len(group_ids))} group ids for {_count(len(truth))} labels")
    return {f"ndcg@{k}": ndcg_at(truth, predicted, group_ids, k=k)}


def evaluate_trainer(
    trainer: Trainer,
    table: pa.Table,
    *,
    label: str,
    time_column: str,
    features: Sequence[str] | None = None,
    groups: str | None = None,
    test_fraction: float = 0.2,
) -> dict[str, float]:
    """Fit `trainer` on the earlier part of `table`, and the metrics of its scores on the later.

    `features` default to every column but the label, time and group columns. The trainer is
    called as loopline calls every trainer: ``fit`` with a table of the feature columns and a
    label array (and ``groups=`` for ranking), ``predict`` with `scoring_rows` (a 2-D float array, or the Table when a feature holds
    strings), whose
    columns are the features in that order. It is left fitted on the earlier part.
    """
    names = (
        list(features)
        if features is not None
        else [c for c in table.column_names if c not in {label, time_column, groups}]
    )
    check_features(table, names)
    for column, role in ((label, "label"), (groups, "group")):
        if column is not None and column not in table.column_names:
            raise DataError(f"dataset has no {role} column {column!r}")
    train, test = split_by_time(table, time_column, test_fraction)
    fit_options: dict[str, Any] = {"features": names}
    if groups is not None:
        fit_options["groups"] = train[groups].to_numpy(zero_copy_only=False)
    trainer.fit(train.select(names), check_labels(trainer.task, train[label]), **fit_options)
    return evaluate(
        trainer.task,
        test[label],
        trainer.predict(scoring_rows(test, names)),
        test[groups] if groups is not None else None,
    )
