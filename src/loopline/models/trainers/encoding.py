"""How a model reads feature values: numbers as they are, strings as categories.

An `Encoding` is learned from the training data (`Encoding.learn`) and saved with the model
(docs/decisions/0030). It is the one function that turns feature values into a model's
input, in training and in serving alike, so the two cannot disagree: `matrix` gives the
same floats for a pyarrow Table (a dataset), a 2-D array and dicts of feature values (what
the prediction service reads from the online features).

A string column is categorical. Its categories are its distinct values in the training
data, sorted, and a category's code is its place in that list. A missing value (None) and
a category the training data never held are both missing (NaN), as LightGBM treats them:
they go to the side of a split that holds no category of the split's ("the other side").
A value that is not a string in a categorical feature is no category the model knows, so
it is missing too. Numeric features are exactly what `row_matrix` makes of them, so a
model without categories scores as it did before categories existed.

>>> import pyarrow as pa
>>> table = pa.table({"spend": [3.0, None, 1.0], "country": ["NO", "DE", None]})
>>> encoding = Encoding.learn(table, ["spend", "country"])
>>> encoding.categories
{'country': ('DE', 'NO')}
>>> encoding.matrix(table)
array([[ 3.,  1.],
       [nan,  0.],
       [ 1., nan]])
>>> encoding.matrix([{"spend": 2.0, "country": "FR"}, {"spend": 0, "country": "NO"}])
array([[ 2., nan],
       [ 0.,  1.]])
>>> encoding.onehot(encoding.matrix([{"spend": 2.0, "country": "NO"}, {"spend": 2.0, "country": "FR"}]))
array([[2., 0., 1.],
       [2., 0., 0.]])
>>> Encoding.from_dict(encoding.to_dict()) == encoding
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopline.models.evaluation import DataError, check_features, is_categorical
from loopline.models.trainers.data import row_matrix, training_input

__all__ = ["Encoding"]


class Encoding:
    """The features of a model in input order, and the categories of its categorical ones.

    `categories` maps each categorical feature to its categories; a category's code is its
    index there. A feature not in `categories` is numeric.
    """

    def __init__(
        self, features: Sequence[str], categories: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.features: tuple[str, ...] = tuple(features)
        given = dict(categories or {})
        unknown = [name for name in given if name not in self.features]
        if unknown:
            raise ValueError(
                f"categories of features the model does not read: {', '.join(unknown)} "
                f"(its features are {', '.join(self.features)})"
            )
        # in feature order, so that equal encodings are equal whatever order they came in
        self.categories: dict[str, tuple[str, ...]] = {
            name: tuple(given[name]) for name in self.features if name in given
        }
        self._codes = {
            name: {category: code for code, category in enumerate(values)}
            for name, values in self.categories.items()
        }

    # -- learning and saving -------------------------------------------------------------

    @classmethod
    def learn(
        cls, X: Any, features: Sequence[str] | None = None, *, exclude: Iterable[str | None] = ()
    ) -> Encoding:
        """The encoding of training data `X`: a pyarrow Table (`features` default to its
        columns not in `exclude`) or a 2-D array (`features` name its columns; a column
        holding a string is categorical). A `DataError` if there are no rows, a declared
        feature is missing, or a feature is neither numbers nor strings.

        >>> import numpy as np
        >>> Encoding.learn(np.array([[1.0, "b"], [2.0, "a"]], dtype=object), ["x", "k"])
        Encoding(features=('x', 'k'), categories={'k': ('a', 'b')})
        """
        data, names = training_input(X, features, exclude=exclude)
        if isinstance(data, pa.Table):
            return cls(
                names,
                {
                    name: _distinct(data[name])
                    for name in names
                    if is_categorical(data.schema.field(name).type)
                },
            )
        array = data
        categories = {}
        if array.dtype.kind in "OUS":
            for j, name in enumerate(names):
                column = array[:, j].tolist()
                if any(isinstance(value, str) for value in column):
                    categories[name] = tuple(sorted({v for v in column if isinstance(v, str)}))
        return cls(names, categories)

    def to_dict(self) -> dict[str, Any]:
        """The encoding as plain data (lists and strings), to save with a model."""
        return {
            "features": list(self.features),
            "categories": {name: list(values) for name, values in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Encoding:
        """The encoding `to_dict` gave `data`."""
        return cls(data["features"], data.get("categories") or {})

    # -- the model's input ---------------------------------------------------------------

    def matrix(self, rows: Any) -> np.ndarray:
        """The float matrix of `rows`, one column per feature in order: numbers as they are,
        categories as their codes, missing values and unknown categories as NaN.

        `rows` is a sequence of dicts of feature values, a 2-D array whose columns are the
        features, or a pyarrow Table that has them. No rows is fine.
        """
        if not self.categories:
            return row_matrix(rows, self.features)
        if isinstance(rows, pa.Table):
            check_features(rows, self.features)
            return self._table(rows)
        if isinstance(rows, np.ndarray):
            if rows.ndim != 2 or rows.shape[1] != len(self.features):
                raise DataError(
                    f"rows must be a 2-D array of {len(self.features)} columns "
                    f"({', '.join(self.features)}); got an array of shape {rows.shape}"
                )
            rows = [dict(zip(self.features, row, strict=True)) for row in rows.tolist()]
        numeric = [name for name in self.features if name not in self.categories]
        matrix = np.empty((len(rows), len(self.features)), dtype=np.float64)
        if numeric:
            for j, column in zip(
                self._numeric_positions(), row_matrix(rows, numeric).T, strict=True
            ):
                matrix[:, j] = column
        for j, name in enumerate(self.features):
            codes = self._codes.get(name)
            if codes is None:
                continue
            for i, row in enumerate(rows):
                value = _value(row, i, name, self.features)
                code = codes.get(value) if isinstance(value, str) else None
                matrix[i, j] = math.nan if code is None else code
        return matrix

    def onehot(self, matrix: np.ndarray) -> np.ndarray:
        """`matrix` (from `matrix`) with each categorical column replaced by one 0/1 column per
        category, in place; a missing or unknown category is all zeros. For models that need
        numbers with a meaning (a linear model), as scikit-learn's ``OneHotEncoder`` with
        ``handle_unknown="ignore"`` does."""
        if not self.categories:
            return matrix
        parts = []
        for j, name in enumerate(self.features):
            column = matrix[:, j : j + 1]
            values = self.categories.get(name)
            if values is None:
                parts.append(column)
            else:  # NaN equals no code, so a missing category sets no column
                parts.append((column == np.arange(len(values))).astype(np.float64))
        return np.hstack(parts) if parts else matrix

    def _table(self, table: pa.Table) -> np.ndarray:
        columns = []
        for name in self.features:
            column = table[name]
            values = self.categories.get(name)
            if values is None:
                if is_categorical(column.type):
                    raise DataError(
                        f"feature {name!r} is a number to this model, but the rows hold "
                        f"{column.type}: give it numbers, or train the model again"
                    )
                columns.append(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
                continue
            if not is_categorical(column.type):
                columns.append(np.full(len(column), math.nan))  # no value is a category
                continue
            codes = pc.index_in(column, value_set=pa.array(values, pa.string()))
            columns.append(codes.cast(pa.float64()).to_numpy(zero_copy_only=False))
        if not columns:
            return np.empty((table.num_rows, 0), dtype=np.float64)
        return np.column_stack(columns).astype(np.float64, copy=False)

    def _numeric_positions(self) -> list[int]:
        return [j for j, name in enumerate(self.features) if name not in self.categories]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Encoding):
            return NotImplemented
        return (self.features, self.categories) == (other.features, other.categories)

    def __hash__(self) -> int:
        return hash((self.features, tuple(self.categories.items())))

    def __repr__(self) -> str:
        return f"Encoding(features={self.features!r}, categories={self.categories!r})"


def _value(row: Any, i: int, name: str, features: tuple[str, ...]) -> Any:
    """Feature `name` of row `i`, or the `DataError` `row_matrix` gives a row without it."""
    if not isinstance(row, Mapping):
        raise DataError(
            f"row {i} is {type(row).__name__}: rows are dicts of feature values or a 2-D array"
        )
    if name not in row:
        missing = [n for n in features if n not in row]
        raise DataError(
            f"row {i} lacks features: {', '.join(missing)}; declared are {', '.join(features)}"
        )
    return row[name]


def _distinct(column: pa.ChunkedArray) -> tuple[str, ...]:
    """The distinct strings of `column`, sorted by code point (as Python sorts them)."""
    return tuple(sorted(v for v in pc.unique(column).to_pylist() if v is not None))
