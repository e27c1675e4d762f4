"""Feature declarations: what a user writes once, computed online and offline alike.

The nouns are DESIGN.md's: an *entity* (who a feature is about, and its key
field), *aggregations* of a source topic per entity over tiled event-time
*windows*, *tables* (latest values of a compacted topic), and *derived*
features (plain Python functions of other features). The exact meaning of
every value is docs/decisions/0008.

>>> member = Entity("member", key="member_id")
>>> views = Aggregations(
...     source="profile_views",
...     entity=member,
...     time="at",
...     lateness="5m",
...     features=[
...         *count("views", windows=["1h", "24h"]),
...         *mean("dwell", field="seconds", windows=["24h"]),
...         *distinct("viewers", field="viewer_id", windows=["7d"]),
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from loopline.log import parse_duration

Kind = Literal["count", "sum", "mean", "min", "max", "last", "distinct"]
KINDS: tuple[Kind, ...] = ("count", "sum", "mean", "min", "max", "last", "distinct")
Filter = Callable[[Mapping[str, Any]], bool]

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


class DeclarationError(ValueError):
    """A feature declaration that cannot be computed (says which and why)."""


@dataclass(frozen=True)
class Window:
    """A tiled event-time window: `length` ms cut into tiles of `tile` ms (None: lifetime).

    >>> Window.parse("10m")
    Window(name='10m', length=600000, tile=60000)
    >>> Window.parse("lifetime").start(123) is None
    True
    """

    name: str
    length: int | None
    tile: int | None

    @classmethod
    def parse(cls, text: str) -> Window:
        if text == "lifetime":
            return cls("lifetime", None, None)
        length = parse_duration(text)
        if length is None or length <= 0:
            raise DeclarationError(f"window {text!r} must be a positive duration or 'lifetime'")
        tile = MINUTE if length <= HOUR else HOUR if length <= 7 * DAY else DAY
        if length % tile:
            raise DeclarationError(
                f"window {text!r} must be a whole number of {tile // MINUTE} minute tiles"
            )
        return cls(text, length, tile)

    def start(self, at: int) -> int | None:
        """First event time (ms) inside the window read at `at`; None for lifetime."""
        if self.length is None or self.tile is None:
            return None
        return (at // self.tile) * self.tile - self.length + self.tile


@dataclass(frozen=True)
class Entity:
    """Who features are about, and the field of a record that holds its id."""

    name: str
    key: str


@dataclass(frozen=True)
class Aggregate:
    """One aggregated feature: `kind` of `field` over `window`, for records passing `where`."""

    name: str
    kind: Kind
    field: str | None
    window: Window
    where: Filter | None = None
    default: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DeclarationError(f"feature {self.name!r}: unknown aggregation {self.kind!r}")
        if self.kind != "count" and self.field is None:
            raise DeclarationError(f"feature {self.name!r}: {self.kind} needs a field")


def _family(
    kind: Kind,
    name: str,
    field: str | None,
    windows: Sequence[str],
    where: Filter | None,
    default: Any,
) -> list[Aggregate]:
    if not windows:
        raise DeclarationError(f"feature {name!r} needs at least one window")
    return [Aggregate(f"{name}_{w}", kind, field, Window.parse(w), where, default) for w in windows]


def count(
    name: str, *, windows: Sequence[str], where: Filter | None = None, default: Any = 0
) -> list[Aggregate]:
    """Number of records per window (features ``{name}_{window}``)."""
    return _family("count", name, None, windows, where, default)


def sum(
    name: str,
    *,
    field: str,
    windows: Sequence[str],
    where: Filter | None = None,
    default: Any = 0.0,
) -> list[Aggregate]:
    """Sum of `field` per window."""
    return _family("sum", name, field, windows, where, default)


def mean(
    name: str,
    *,
    field: str,
    windows: Sequence[str],
    where: Filter | None = None,
    default: Any = None,
) -> list[Aggregate]:
    """Mean of `field` per window (the default when the window is empty)."""
    return _family("mean", name, field, windows, where, default)


def min(
    name: str,
    *,
    field: str,
    windows: Sequence[str],
    where: Filter | None = None,
    default: Any = None,
) -> list[Aggregate]:
    """Smallest `field` per window."""
    return _family("min", name, field, windows, where, default)


def max(
    name: str,
    *,
    field: str,
    windows: Sequence[str],
    where: Filter | None = None,
    default: Any = None,
) -> list[Aggregate]:
    """Largest `field` per window."""
    return _family("max", name, field, windows, where, default)


def last(
    name: str,
    *,
    field: str,
    windows: Sequence[str] = ("lifetime",),
    where: Filter | None = None,
    default: Any = None,
) -> list[Aggregate]:
    """`field` of the record with the greatest event time in the window."""
    return _family("last", name, field, windows, where, default)


def distinct(
    name: str,
    *,
    field: str,
    windows: Sequence[str],
    where: Filter | None = None,
    default: Any = 0,
) -> list[Aggregate]:
    """Number of distinct values of `field` per window."""
    return _family("distinct", name, field, windows, where, default)


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
    features: Sequence[Aggregate]
    time: str | None = None
    lateness: int | str = 0
    key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
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
    """Features read from a compacted topic: the latest value of fields per entity."""

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

    def _all(self) -> Iterable[Aggregate | TableFeature | Derived]:
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

    def __getitem__(self, name: str) -> Aggregate | TableFeature | Derived:
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
            item = {k: v for k, v in vars(f).items() if k not in ("where", "fn")}
            item["window"] = getattr(getattr(f, "window", None), "name", None)
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
