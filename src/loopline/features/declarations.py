"""Feature declarations: what a user writes once, computed online and offline alike.

The nouns are the architecture (docs/architecture.md)'s: an *entity* (who a feature is about, and its key
field), *aggregations* of a source topic per entity over tiled event-time
*windows* (one `Aggregation` per feature, of a kind of
`loopline.features.aggregations`: ``Sum("amount", window="1h")``), *tables*
(latest values of a table topic), and *derived* features (plain Python functions of other features). The exact meaning of
every value is docs/decisions/0008.

>>> from loopline.features.aggregations import Count, Distinct, Mean
>>> member = Entity("member", key="member_id")
>>> views = Aggregations(
...     source="profile_views",
...     entity=member,
...     time="at",
...     lateness="5m",
...     features=[
...         *Count.per_window("views", windows=["1h", "24h"]),
...         Mean("seconds", window="24h", name="dwell_24h"),
...         Distinct("viewer_id", window="7d", name="viewers_7d"),
...     ],
... )
>>> [f.name for f in views.features]
['views_1h', 'views_24h', 'dwell_24h', 'viewers_7d']
>>> views.features[0].window.start(7_200_000 + 90_000)  # a 1h window, 1m tiles
3720000
>>> profile = Table(source="profiles", entity=member,
...                 features=[TableFeature("country", field="country", default="??")])
>>> ratio = Derived("dwell_per_view", inputs=("dwell_24h", "views_24h"),
...                 fn=lambda dwell, views: dwell / views if views else 0.0)
>>> features = FeatureSet([views], tables=[profile], derived=[ratio])
>>> features.names()
['views_1h', 'views_24h', 'dwell_24h', 'viewers_7d', 'country', 'dwell_per_view']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopline.features.aggregations import Aggregation, Filter
from loopline.features.windows import DeclarationError, Window
from loopline.log import parse_duration

__all__ = [
    "Aggregation",
    "Aggregations",
    "DeclarationError",
    "Derived",
    "Entity",
    "FeatureSet",
    "Filter",
    "Table",
    "TableFeature",
    "Window",
]


@dataclass(frozen=True)
class Entity:
    """Who features are about, and the field of a record that holds its id."""

    name: str
    key: str


@dataclass(frozen=True)
class Aggregations:
    """Aggregated features of one source topic, per entity.

    `time` names the event-time field of the records (default: the log
    timestamp); `lateness` is how far behind the partition's watermark a record
    may arrive and still count; `key` is the field holding the entity id
    (default: the entity's key).
    """

    source: str
    entity: Entity
    features: Sequence[Aggregation]
    time: str | None = None
    lateness: int | str = 0
    key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        for feature in self.features:
            if not isinstance(feature, Aggregation):
                raise DeclarationError(
                    f"the features of Aggregations({self.source!r}, ...) must be aggregations "
                    f"such as Sum('amount', window='1h'), not {feature!r} "
                    "(a list of them needs a *: [*Count.per_window(...), ...])"
                )
        if isinstance(self.lateness, str):
            object.__setattr__(self, "lateness", parse_duration(self.lateness) or 0)

    @property
    def key_field(self) -> str:
        return self.key or self.entity.key


@dataclass(frozen=True)
class TableFeature:
    """The latest value of `field` in a table topic."""

    name: str
    field: str
    default: Any = None


@dataclass(frozen=True)
class Table:
    """Features read from a table topic: the latest value of fields per entity.

    Datasets read the value each instant saw, so the topic must keep every
    change: not compacted (decision 0008); `dataset build` refuses rows whose
    history compaction or retention removed.
    """

    source: str
    entity: Entity
    features: Sequence[TableFeature]
    key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))

    @property
    def key_field(self) -> str:
        return self.key or self.entity.key


@dataclass(frozen=True)
class Derived:
    """A feature computed by `fn` from other features of the same vector (in `inputs` order)."""

    name: str
    inputs: tuple[str, ...]
    fn: Callable[..., Any]
    default: Any = None


@dataclass(frozen=True)
class FeatureSet:
    """Every feature of an application, by name; names are unique."""

    aggregations: Sequence[Aggregations] = ()
    tables: Sequence[Table] = ()
    derived: Sequence[Derived] = ()
    _index: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("aggregations", "tables", "derived"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for feature in self._all():
            if feature.name in self._index:
                raise DeclarationError(f"two features are named {feature.name!r}")
            self._index[feature.name] = feature
        known = set(self._index)
        for d in self.derived:
            missing = [i for i in d.inputs if i not in known]
            if missing:
                raise DeclarationError(
                    f"derived feature {d.name!r} needs {', '.join(map(repr, missing))}, "
                    "which are not declared"
                )

    def _all(self) -> Iterable[Aggregation | TableFeature | Derived]:
        for group in self.aggregations:
            yield from group.features
        for table in self.tables:
            yield from table.features
        yield from self.derived

    def names(self) -> list[str]:
        return list(self._index)

    @property
    def sources(self) -> list[str]:
        """The topics the features are computed from (aggregations and tables), sorted."""
        return sorted({g.source for g in self.aggregations} | {t.source for t in self.tables})

    def __getitem__(self, name: str) -> Aggregation | TableFeature | Derived:
        try:
            return self._index[name]
        except KeyError:
            raise DeclarationError(
                f"no feature named {name!r}: declared are {', '.join(self._index)}"
            ) from None

    def fingerprint(self) -> str:
        """A hash of the declarations (for dataset manifests): changes when any feature does."""
        described = []
        for f in self._all():
            if isinstance(f, Aggregation):
                item = f.describe()
            else:
                item = {k: v for k, v in vars(f).items() if k not in ("where", "fn")}
                item["window"] = None
            for code_field in ("where", "fn"):
                fn = getattr(f, code_field, None)
                if fn is not None:
                    item[code_field] = _function_digest(fn)
            described.append(item)
        groups = [
            (g.source, g.entity.name, g.time, g.lateness, g.key_field) for g in self.aggregations
        ]
        tables = [(t.source, t.entity.name, t.key_field) for t in self.tables]
        blob = json.dumps([described, groups, tables], sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()


_PLAIN = (int, float, str, bytes, bool, type(None))


def _function_digest(fn: Callable[..., Any]) -> str:
    """What a filter or derived function computes, as text stable across processes.

    Its bytecode, constants, names and the plain values it closes over: so
    ``lambda v: v["x"] > 60`` and ``> 90`` differ, while nothing that changes
    from one process to the next (addresses) takes part.
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    cells = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())]
    closed = [repr(v) if isinstance(v, _PLAIN) else type(v).__name__ for v in cells]
    globals_ = getattr(fn, "__globals__", {})
    read = {
        n: repr(globals_[n])
        for n in code.co_names
        if n in globals_ and isinstance(globals_[n], _PLAIN)
    }
    return json.dumps([_code_digest(code), closed, read], sort_keys=True)


def _code_digest(code: Any) -> list[Any]:
    consts = [
        _code_digest(c)
        if hasattr(c, "co_code")
        else repr(c)
        if isinstance(c, _PLAIN)
        else type(c).__name__
        for c in code.co_consts
    ]
    return [code.co_code.hex(), consts, list(code.co_names)]
