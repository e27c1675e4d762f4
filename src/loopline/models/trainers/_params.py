"""Trainer settings as JSON-able values, for the registry record."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def qualified_name(obj: Any) -> str:
    """``module.Class`` of a class, or of an instance's class."""
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def jsonable(value: Any) -> Any:
    """`value` with what JSON cannot hold replaced: classes and objects by their qualified
    name, tuples by lists, non-finite floats by their text.

    >>> jsonable({"C": 1.0, "solver": "lbfgs", "kind": int, "pair": (1, float("inf"))})
    {'C': 1.0, 'solver': 'lbfgs', 'kind': 'builtins.int', 'pair': [1, 'inf']}
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalars
        return jsonable(value.item())
    return qualified_name(value)
