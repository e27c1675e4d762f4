"""Feature matrices and labels from what a trainer is given, with the checks every trainer needs.

The built-in trainers use these, and a user's trainer may too: the same input gives the same
float matrix (missing values are NaN) and the same `DataError` for data a model cannot use.

>>> import pyarrow as pa
>>> table = pa.table({"clicks": [3, None], "is_new": [True, False], "label": [1, 0]})
>>> matrix, names = feature_matrix(table, exclude=["label"])
>>> names
('clicks', 'is_new')
>>> matrix
array([[ 3.,  1.],
       [nan,  0.]])
>>> row_matrix([{"clicks": 5, "is_new": None}], names)
array([[ 5., nan]])
>>> row_matrix([{"clicks": 5}], names)
Traceback (most recent call last):
...
loopline.models.evaluation.DataError: row 0 lacks features: is_new; declared are clicks, is_new
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.models.evaluation import DataError, check_features, check_labels

__all__ = [
    "feature_matrix",
    "groups_of",
    "labels_of",
    "number_of",
    "one_label",
    "row_dicts",
    "row_matrix",
    "training_input",
]


def feature_matrix(
    X: Any, features: Sequence[str] | None = None, *, exclude: Iterable[str | None] = ()
) -> tuple[np.ndarray, tuple[str, ...]]:
    """`(matrix, names)`: a float matrix of `X`'s features and their names, in column order.

    `X` is a pyarrow Table (`features` default to its columns not in `exclude`) or a 2-D array
    (`features` name its columns). A `DataError` if there are no rows, a declared feature is
    missing or a feature is not numeric.
    """
    data, names = training_input(X, features, exclude=exclude)
    if isinstance(data, pa.Table):
        return _table_matrix(data, names), names
    return _array_matrix(data, names), names


def training_input(
    X: Any, features: Sequence[str] | None = None, *, exclude: Iterable[str | None] = ()
) -> tuple[pa.Table | np.ndarray, tuple[str, ...]]:
    """`(data, names)`: training data `X` checked, as a pyarrow Table or a 2-D array, and the
    names of its features. The checks and the defaults are `feature_matrix`'s, which reads
    the result; so does `Encoding.learn`, so both refuse the same data with the same words.

    >>> training_input([[1.0, 2.0]], ["a", "b"])
    (array([[1., 2.]]), ('a', 'b'))
    """
    if isinstance(X, pa.Table):
        skip = set(exclude)
        names = tuple(
            features if features is not None else [c for c in X.column_names if c not in skip]
        )
        if X.num_rows == 0:
            raise DataError("the data is empty: 0 rows to learn from")
        check_features(X, names)
        return X, names
    array = np.asarray(X)
    if array.ndim != 2:
        raise DataError(
            f"features must be a pyarrow Table or a 2-D array; got an array of shape {array.shape}"
        )
    if features is None:
        raise DataError(
            f"a 2-D array needs features=[...]: the names of its {array.shape[1]} columns"
        )
    names = tuple(features)
    if array.shape[0] == 0:
        raise DataError("the data is empty: 0 rows to learn from")
    _check_width(array, names)
    return array, names


def row_matrix(rows: Any, features: Sequence[str]) -> np.ndarray:
    """The float matrix of `rows` with one column per feature, in `features` order.

    `rows` is a sequence of dicts of feature values (None is a missing value), a 2-D array
    whose columns are `features`, or a pyarrow Table that has them. No rows is fine.
    """
    names = tuple(features)
    if isinstance(rows, pa.Table):
        check_features(rows, names)
        return _table_matrix(rows, names)
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2:
            raise DataError(f"rows must be a 2-D array; got an array of shape {rows.shape}")
        return _array_matrix(rows, names)
    try:  # the common case in one pass of numpy: dicts holding every feature, plain numbers
        flat = [row[name] for row in rows for name in names]
    except (KeyError, TypeError):
        flat = None  # the loop below says which row is wrong, and how
    if flat is not None and set(map(type, flat)) <= _PLAIN:
        return np.array(flat, dtype=np.float64).reshape(len(rows), len(names))
    matrix = np.empty((len(rows), len(names)), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataError(
                f"row {i} is {type(row).__name__}: rows are dicts of feature values or a 2-D array"
            )
        try:
            values = [row[name] for name in names]
        except KeyError:
            missing = [name for name in names if name not in row]
            raise DataError(
                f"row {i} lacks features: {', '.join(missing)}; declared are {', '.join(names)}"
            ) from None
        for j, value in enumerate(values):
            matrix[i, j] = number_of(value, i, names[j])
    return matrix


def row_dicts(rows: Any, features: Sequence[str]) -> list[dict[str, float]]:
    """`rows` as one dict of feature values per row, missing values (None, NaN) left out."""
    names = tuple(features)
    return [
        {name: value for name, value in zip(names, row.tolist(), strict=True) if value == value}
        for row in row_matrix(rows, names)
    ]


def labels_of(y: Any, X: Any, task: str) -> np.ndarray:
    """The labels `y` (or the column of Table `X` that `y` names) checked for `task`."""
    labels = _column(y, X, "label")
    checked = check_labels(task, labels)
    _same_length(checked, X, "labels")
    return checked


def one_label(task: str, label: Any) -> float:
    """One example's label checked for `task` (as `check_labels`, without needing both classes).

    >>> one_label("classification", True), one_label("regression", 2.5)
    (1.0, 2.5)
    """
    number = isinstance(label, bool | int | float | np.number | np.bool_)
    value = float(label) if number else math.nan
    if not math.isfinite(value):
        raise DataError(f"{task} labels must be finite numbers; found {label!r}")
    if task == "classification" and value not in (0.0, 1.0):
        raise DataError(
            f"classification labels must be 0 or 1 (or false and true); found {label!r}"
        )
    if task == "ranking" and value < 0:
        raise DataError(
            f"ranking labels are relevance grades and must be 0 or more; found {label!r}"
        )
    return value


def groups_of(groups: Any, X: Any) -> np.ndarray | None:
    """The group (query) id of every row: `groups` itself, or the column of `X` it names."""
    if groups is None:
        return None
    values = _column(groups, X, "group")
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    array = np.asarray(values).ravel()
    _same_length(array, X, "group ids")
    return array


def _column(value: Any, X: Any, role: str) -> Any:
    if not isinstance(value, str):
        return value
    if not isinstance(X, pa.Table) or value not in X.column_names:
        raise DataError(f"dataset has no {role} column {value!r}")
    return X[value]


def _same_length(values: np.ndarray, X: Any, what: str) -> None:
    rows = X.num_rows if isinstance(X, pa.Table) else len(X)
    if len(values) != rows:
        raise DataError(f"{len(values):,} {what} for {rows:,} rows")


def _table_matrix(table: pa.Table, names: tuple[str, ...]) -> np.ndarray:
    if not names:
        return np.empty((table.num_rows, 0), dtype=np.float64)
    columns = [table[name].cast(pa.float64()).to_numpy(zero_copy_only=False) for name in names]
    return np.column_stack(columns).astype(np.float64, copy=False)


def _check_width(array: np.ndarray, names: tuple[str, ...]) -> None:
    if array.shape[1] != len(names):
        raise DataError(
            f"the array has {array.shape[1]} columns but {len(names)} features are declared: "
            f"{', '.join(names)}"
        )


def _array_matrix(array: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    _check_width(array, names)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    matrix = np.empty(array.shape, dtype=np.float64)
    for (i, j), value in np.ndenumerate(array):
        matrix[i, j] = number_of(value, i, names[j])
    return matrix


_PLAIN = {int, float, bool, type(None)}  # numpy reads None as NaN


def number_of(value: Any, row: int, name: str) -> float:
    """Feature `name` of row `row` as a float (NaN when missing), or a `DataError` naming it.

    >>> number_of(True, 0, "is_new"), number_of(None, 0, "spend")
    (1.0, nan)
    """
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return float(value)
    raise DataError(
        f"row {row} feature {name!r} is {type(value).__name__} {value!r}: "
        "features must be numbers (int, float or bool)"
    )
