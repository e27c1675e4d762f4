"""Feature columns as the online processor would read them: defaults and derived features.

A missing value takes its feature's declared default; a derived feature is
its declared Python function of the row's other features (its default when
the function raises), run in dependency order, exactly as online.

Arrow columns have one type, a feature's values need not: a string default
of a numeric feature (or a derived feature returning floats or a string)
gives a dense union column, whose `to_pylist` is the values online returns.

>>> typed_column("f", [1.5, None, "no clicks"]).type
DenseUnionType(dense_union<float: double=0, str: string=1>)
>>> typed_column("f", [1.5, None, "no clicks"]).to_pylist()
[1.5, None, 'no clicks']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopline.features.declarations import (
    Aggregations,
    DeclarationError,
    Derived,
    FeatureSet,
    Table,
)


def derived_order(
    feature_set: FeatureSet, groups: list[Aggregations], tables: list[Table]
) -> list[Derived]:
    """The derived features computable from the features of `groups` and `tables`, each
    after the derived features it reads."""
    by_name = {d.name: d for d in feature_set.derived}
    available = {f.name for g in groups for f in g.features}
    available |= {f.name for t in tables for f in t.features}
    ordered: list[Derived] = []
    done: dict[str, bool] = {}  # name -> computable

    def visit(d: Derived, path: tuple[str, ...]) -> bool:
        if d.name in done:
            return done[d.name]
        if d.name in path:
            cycle = " -> ".join((*path[path.index(d.name) :], d.name))
            raise DeclarationError(f"derived features depend on each other in a cycle: {cycle}")
        computable = True
        for name in d.inputs:
            if name in by_name:
                computable = visit(by_name[name], (*path, d.name)) and computable
            else:
                computable = computable and name in available
        done[d.name] = computable
        if computable:
            ordered.append(d)
        return computable

    for d in feature_set.derived:
        visit(d, ())
    return ordered


def with_default(column: pa.ChunkedArray, name: str, default: Any) -> pa.ChunkedArray:
    """`column` with its nulls (missing values) replaced by `default`."""
    if default is None or column.null_count == 0:
        return column
    if _holds(column.type, default):
        return pc.fill_null(column, pa.scalar(default, type=column.type))
    filled = [default if v is None else v for v in column.to_pylist()]
    return pa.chunked_array([typed_column(name, filled)])


def canonical(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` in one chunk whose bytes depend on its values only: DuckDB leaves whatever
    its memory held under a null, which would make equal builds differ in bytes."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.null_count == 0:
        return pa.chunked_array([array], column.type)
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = pc.fill_null(array, pa.scalar(0, kind)).to_numpy()
        mask = pc.is_null(array).to_numpy(zero_copy_only=False)
        return pa.chunked_array([pa.array(values, type=kind, mask=mask)])
    return pa.chunked_array([pa.array(array.to_pylist(), type=kind)])


def _holds(kind: pa.DataType, value: Any) -> bool:
    """Whether a column of `kind` holds `value` as itself (an int stays an int, ...)."""
    if isinstance(value, bool):
        return pa.types.is_boolean(kind)
    if isinstance(value, int):
        return pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if isinstance(value, float):
        return pa.types.is_floating(kind)
    if isinstance(value, str):
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)
    return False


@dataclass
class BuildReport:
    """What a build filled in silently: per feature, the rows that got its default because
    nothing was known (`defaulted`), and per derived feature the rows whose function raised
    (`derived_errors`, also defaulted) with the first error (`first_errors`)."""

    defaulted: dict[str, int] = field(default_factory=dict)
    derived_errors: dict[str, int] = field(default_factory=dict)
    first_errors: dict[str, str] = field(default_factory=dict)


def run_derived(
    derived: list[Derived],
    values: dict[str, pa.ChunkedArray],
    rows: int,
    report: BuildReport | None = None,
) -> dict[str, pa.ChunkedArray]:
    """The column of each derived feature, computed row by row from `values`; rows whose
    function raises take the default, counted in `report`."""
    python: dict[str, list[Any]] = {}
    out: dict[str, pa.ChunkedArray] = {}
    for d in derived:
        inputs = []
        for name in d.inputs:
            if name not in python:
                python[name] = values[name].to_pylist()
            inputs.append(python[name])
        fn, default = d.fn, d.default
        results = []
        failed = 0
        for args in zip(*inputs, strict=True) if inputs else [()] * rows:
            try:
                results.append(fn(*args))
            except Exception as exc:
                if not failed and report is not None:
                    report.first_errors[d.name] = f"{type(exc).__name__}: {exc}"
                failed += 1
                results.append(default)
        if report is not None:
            report.derived_errors[d.name] = failed
            report.defaulted[d.name] = failed
        python[d.name] = results
        out[d.name] = pa.chunked_array([typed_column(d.name, results)])
    return out


def typed_column(feature: str, values: list[Any]) -> pa.Array:
    """`values` as one arrow array: of their type, or a dense union of their types."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    kinds: dict[type, int] = {}
    members: list[list[Any]] = []
    type_ids: list[int] = []
    offsets: list[int] = []
    for value in values:
        kind = type(value) if value is not None else next(iter(kinds), type(None))
        if kind not in kinds:
            kinds[kind] = len(members)
            members.append([])
        member = kinds[kind]
        type_ids.append(member)
        offsets.append(len(members[member]))
        members[member].append(value)
    try:
        children = [pa.array(m) for m in members]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        raise DeclarationError(
            f"feature {feature!r} has values arrow cannot hold ({error}); give it a default "
            "of the type of its values"
        ) from None
    return pa.UnionArray.from_dense(
        pa.array(type_ids, pa.int8()),
        pa.array(offsets, pa.int32()),
        children,
        [k.__name__ for k in kinds],
    )
