"""most_frequent: the value of a string field that most records in the window hold."""

from __future__ import annotations

from typing import Any

from loopline.features.aggregations.base import Aggregation, Position, filtered

Counts = dict[str, int]
"""How many records in the tile held each value."""


class MostFrequent(Aggregation[Counts]):
    """The most frequent value of a string field (a category); a tie goes to the smallest
    value (by code point, as Python and DuckDB both order strings), so the answer never
    depends on the order records arrived in.

    The state is the count of each value, merged by adding counts; it is dumped as
    ``[value, count]`` pairs. Offline it is DuckDB's ``histogram`` of the field, sorted by
    count (descending) and value.

    >>> favourite = MostFrequent("device", window="24h")
    >>> morning, evening = favourite.empty(), favourite.empty()
    >>> for device in ["ios", "web", "web"]:
    ...     morning = favourite.add(morning, device, 0, (0, 0))
    >>> for device in ["ios", "android"]:
    ...     evening = favourite.add(evening, device, 0, (0, 0))
    >>> favourite.result(morning)
    'web'
    >>> favourite.result(favourite.merge(morning, evening))  # ios 2, web 2: the smaller wins
    'ios'
    >>> favourite.name, favourite.usable(7)
    ('device_most_frequent_24h', False)
    """

    kind = "most_frequent"
    types = (str,)
    accepts = "a string"

    def empty(self) -> Counts:
        return {}

    def add(self, state: Counts, value: Any, event_time: int, position: Position) -> Counts:
        state[value] = state.get(value, 0) + 1
        return state

    def merge(self, a: Counts, b: Counts) -> Counts:
        for value, count in b.items():
            a[value] = a.get(value, 0) + count
        return a

    def result(self, state: Counts) -> str | None:
        if not state:
            return None
        return min(state.items(), key=lambda item: (-item[1], item[0]))[0]

    def dump(self, state: Counts) -> list[list[Any]]:
        return [[value, count] for value, count in state.items()]

    def load(self, data: Any) -> Counts:
        return {value: count for value, count in data}

    def sql(self, value: str, passes: str | None) -> str:
        counts = filtered(f"histogram({value})", passes, f"{value} IS NOT NULL")
        # the first of the (minus count, value) pairs: the largest count, then the least value
        ranked = (
            f"list_sort(list_transform(map_entries({counts}), "
            "lambda e: {'n': -CAST(e.value AS BIGINT), 'v': e.key}))"
        )
        return f"{ranked}[1].v"
