"""The protocol every aggregation follows: a declared feature that knows how it is computed.

An `Aggregation` is one feature of an `Aggregations` group (``Sum("amount",
window="1h")``) and the whole of its kind, both ways of docs/decisions/0008:

- online, a mergeable state per tile: `empty`, `add`, `merge`, `result`
  (and `dump`/`load` for a changelog); `add` and `merge` may change their
  first argument and return it, never the second;
- offline, `sql`: the aggregate over the records a spine key joins with in
  DuckDB (NULL when none counts); a kind may also offer faster forms that the
  builder uses when it can (`lifetime_sql`: a running aggregate in ready
  order, `by_difference`/`difference`: differences of running sums in numpy).

`types` are the value types it reads (None: any). A record holding a value of
another type for a feature that reads it is unusable: online it changes
nothing and goes to the dead letters with the reason, offline it is left out
and counted, so both agree (0008).

How to add a kind: one file, one subclass with a `kind` name, its `types`
(and `accepts`, their words), `empty`/`add`/`merge`/`result` and `sql`; it is
declared like the built-in ones and nothing else changes (the online
processor, the changelog, the offline builder, dead letters and fingerprints
take it as they are). A kind with parameters of its own (a quantile's `q`)
sets them in `__init__` with ``object.__setattr__`` (a declared feature is
immutable) and adds them to `describe`. `tests/features/test_aggregation_recipe.py`
adds one and runs the parity check on it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

from loopline.features.windows import DeclarationError, Window

if TYPE_CHECKING:
    import pyarrow as pa

S = TypeVar("S")
Position = tuple[int, int]
"""Where a record sits in the log: (partition, offset)."""
Filter = Callable[[Mapping[str, Any]], bool]
"""A feature's ``where=``: given a record's value, whether the feature counts it."""
NUMBERS: tuple[type, ...] = (int, float)
"""What sums, means, minima and maxima read: a bool or a numeric string is not a number."""
_KIND_DEFAULT: Any = object()


class LifetimePlan(Protocol):
    """What the offline planner offers a kind for a lifetime window (`Aggregation.lifetime_sql`)."""

    def running(self, aggregate: str) -> str:
        """An expression reading `aggregate`, run over the entity's records in ready order,
        as of each spine key's instant."""
        ...

    def first_ready(self, value: str, passes: str | None) -> str:
        """An expression reading how many distinct `value`s are ready by each key's instant."""
        ...


class Differences(Protocol):
    """What the offline numpy planner offers a kind (`Aggregation.difference`)."""

    def count(self, where: str | None, window: Window) -> pa.Array: ...

    def total(self, field: str, where: str | None, window: Window) -> pa.Array: ...

    def mean(self, field: str, where: str | None, window: Window) -> pa.Array: ...


class Aggregation(ABC, Generic[S]):
    """One aggregated feature: `kind` of `field` over `window`, for records passing `where`.

    `name` defaults to ``<field>_<kind>_<window>``; `default` is the value of
    an empty window (each kind has its own: 0 for a count, None for a mean).
    `per_window` declares one feature per window, named ``<name>_<window>``.

    >>> from loopline.features.aggregations import Count, Sum
    >>> Sum("amount", window="1h")
    Sum('amount', window='1h', name='amount_sum_1h')
    >>> [f.name for f in Count.per_window("clicks", windows=["1h", "lifetime"])]
    ['clicks_1h', 'clicks_lifetime']
    >>> count = Count()
    >>> first_tile = count.add(count.empty(), None, 1_000, (0, 7))
    >>> second_tile = count.add(count.empty(), None, 61_000, (0, 8))
    >>> count.result(count.merge(first_tile, second_tile))
    2
    >>> count.result(count.empty()) is None  # no value: the feature's default applies
    True
    """

    kind: ClassVar[str]
    types: ClassVar[tuple[type, ...] | None] = None
    accepts: ClassVar[str] = "any value"  # `types` in words, for the reason of a dead letter
    missing: ClassVar[Any] = None  # the default of `default`
    summed: ClassVar[bool] = False  # offline: wants the exact fixed-point scale of its field
    # online: `load` only copies what it is given (so a read, which changes nothing, may
    # read a dumped state itself)
    loads_copy: ClassVar[bool] = False

    field: str | None
    window: Window
    name: str
    where: Filter | None
    default: Any

    def __init__(
        self,
        field: str | None = None,
        *,
        window: str | Window = "lifetime",
        name: str | None = None,
        where: Filter | None = None,
        default: Any = _KIND_DEFAULT,
    ) -> None:
        parsed = window if isinstance(window, Window) else Window.parse(window)
        kind = type(self).kind
        if name is None:
            name = f"{kind}_{parsed.name}" if field is None else f"{field}_{kind}_{parsed.name}"
        if field is None and self.reads_field():
            raise DeclarationError(f"feature {name!r}: {kind} needs a field")
        values = {
            "field": field,
            "window": parsed,
            "name": name,
            "where": where,
            "default": type(self).missing if default is _KIND_DEFAULT else default,
        }
        for attribute, value in values.items():
            object.__setattr__(self, attribute, value)

    @classmethod
    def per_window(
        cls, name: str, *, windows: Sequence[str] = ("lifetime",), **options: Any
    ) -> list[Self]:
        """One feature per window, named ``<name>_<window>`` (`options`: field, where, default)."""
        if not windows:
            raise DeclarationError(f"feature {name!r} needs at least one window")
        return [cls(window=w, name=f"{name}_{w}", **options) for w in windows]

    @classmethod
    def reads_field(cls) -> bool:
        """Whether the kind aggregates a field's values (count does not)."""
        return True

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a declared feature cannot change ({name!r} of {self.name!r})")

    def describe(self) -> dict[str, Any]:
        """What the feature computes, for `FeatureSet.fingerprint` (a kind with parameters of
        its own adds them)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "field": self.field,
            "window": self.window.name,
            "default": self.default,
        }

    def _identity(self) -> tuple[Any, ...]:
        return (type(self), self.field, self.window, self.name, self.where, repr(self.default))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Aggregation):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        field = "" if self.field is None else f"{self.field!r}, "
        return f"{type(self).__name__}({field}window={self.window.name!r}, name={self.name!r})"

    # -- online: a mergeable state per tile ------------------------------------------------

    def usable(self, value: Any) -> bool:
        """Whether the feature can read `value` (never None: a missing value is skipped)."""
        return self.types is None or type(value) in self.types

    @abstractmethod
    def empty(self) -> S:
        """A fresh state that has seen nothing."""

    @abstractmethod
    def add(self, state: S, value: Any, event_time: int, position: Position) -> S:
        """`state` after one more record (`value` is never None, except for count)."""

    @abstractmethod
    def merge(self, a: S, b: S) -> S:
        """The state of the records of `a` and of `b` together."""

    @abstractmethod
    def result(self, state: S) -> Any | None:
        """The feature value of `state`; None when there is none (the default applies)."""

    def result_of(self, states: Sequence[S]) -> Any | None:
        """The feature value of the tiles `states` together, changing none of them: `result`
        of their `merge` (what a read of the online store computes, docs/decisions/0033).

        This fold is the reference; a kind may compute the same value in fewer Python steps
        (a count sums its tiles in one call).

        >>> from loopline.features.aggregations import Count
        >>> Count().result_of([2, 3]), Count().result_of([])
        (5, None)
        """
        acc = self.empty()
        for state in states:
            acc = self.merge(acc, state)
        return self.result(acc)

    def view_load(self) -> Callable[[Any], Any] | None:
        """What turns a dumped state into one a read keeps (reads never change a state);
        None: the dump itself. By default `load`, unless it only copies (`loads_copy`)."""
        return None if type(self).load is Aggregation.load or self.loads_copy else self.load

    def state_key(self) -> tuple[Any, ...] | None:
        """What a feature's tile states are made of: features of one group with equal keys
        hold equal states, and the online state keeps one for all of them (a sum and a mean
        of one field over one window, docs/decisions/0045). None, the default: its own.

        A kind opts in by returning the methods that build its states with what they read;
        a kind with parameters of its own that change its states adds them.

        >>> from loopline.features.aggregations import Count, Mean, Sum
        >>> Sum("amount", window="1h").state_key() == Mean("amount", window="1h").state_key()
        True
        >>> Sum("amount", window="1h").state_key() == Sum("amount", window="24h").state_key()
        False
        >>> Count(window="1h").state_key() is None
        True
        """
        return None

    def dump(self, state: S) -> Any:
        """`state` as plain data (lists, numbers, strings) for a changelog."""
        return state

    def load(self, data: Any) -> S:
        """The state that `dump` turned into `data`."""
        return data

    # -- offline ---------------------------------------------------------------------------

    @abstractmethod
    def sql(self, value: str, passes: str | None) -> str:
        """The DuckDB aggregate of the feature over the records a spine key joins with
        (NULL when none counts): `value` is the field's column, `passes` the filter's
        boolean column (None: no filter). Use `filtered` for the FILTER clause."""

    def finish(self, values: list[Any]) -> pa.Array | list[Any]:
        """The feature's values from what `sql` gave per key (the identity unless `sql`
        gathers something Python finishes, such as lists to `math.fsum`)."""
        return values

    def lifetime_sql(self, plan: LifetimePlan, value: str, passes: str | None) -> str | None:
        """A lifetime value without joining a key with its entity's whole history, from
        `plan`'s running forms; None: join (`sql`)."""
        return None

    def by_difference(self, scales: Mapping[str, int | None]) -> bool:
        """Whether `difference` computes the feature (`scales`: the exact fixed-point scale of
        each summed field, None where there is none)."""
        return False

    def difference(self, sums: Differences, where: str | None) -> pa.Array:
        """The feature at every spine row from `sums`' differences of running sums (`where`:
        the feature whose filter applies, None: no filter)."""
        raise NotImplementedError(f"{self.kind} is not computed by differences")


def filtered(aggregate: str, *conditions: str | None) -> str:
    """`aggregate` with a FILTER of the given conditions (None: no condition).

    >>> filtered("max(v)", None, "v IS NOT NULL")
    'max(v) FILTER (WHERE v IS NOT NULL)'
    """
    terms = [c for c in conditions if c]
    return f"{aggregate} FILTER (WHERE {' AND '.join(terms)})" if terms else aggregate


def fsum_lists(values: list[Any], mean: bool = False) -> list[float | None]:
    """`math.fsum` (or the mean) of each list of `values`; None for an empty one."""
    return [None if not vs else math.fsum(vs) / len(vs) if mean else math.fsum(vs) for vs in values]
