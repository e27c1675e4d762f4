"""Table features online: the latest record of each entity in a table topic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopline.features.aggregations import Position
from loopline.features.declarations import Table


class TableState:
    """Latest values of a table's features per entity, by log position; tombstones remove.

    "Latest" is the greatest (partition, offset), whatever order records are
    put in, so a tombstone is remembered (as an entry without values) until a
    later record of the entity replaces it: an older record put after it must
    not bring the entity back.

    >>> from loopline.features import Entity, TableFeature
    >>> member = Entity("member", key="member_id")
    >>> profiles = TableState(Table("profiles", member, [TableFeature("country", "country", "??")]))
    >>> profiles.put("m1", (0, 4), {"member_id": "m1", "country": "PT"})
    >>> profiles.put("m1", (0, 2), {"member_id": "m1", "country": "FR"})  # older: ignored
    >>> profiles.read("m1")
    {'country': 'PT'}
    >>> profiles.put("m1", (0, 5), None)  # a tombstone
    >>> profiles.read("m1")
    {'country': '??'}
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self._fields = [f.field for f in table.features]
        self._defaults = {f.name: f.default for f in table.features}
        # entity -> [partition, offset, values in feature order, or None for a tombstone]
        self._rows: dict[str, list[Any]] = {}

    def put(self, entity: str, position: Position, fields: Mapping[str, Any] | None) -> None:
        """Record the table record at `position` (`fields` None: a tombstone)."""
        row = self._rows.get(entity)
        if row is not None and (row[0], row[1]) > position:
            return
        values = None if fields is None else [fields.get(f) for f in self._fields]
        self._rows[entity] = [position[0], position[1], values]

    def read(self, entity: str) -> dict[str, Any]:
        """The table features of `entity`: its latest values, defaults where missing."""
        row = self._rows.get(entity)
        if row is None or row[2] is None:
            return dict(self._defaults)
        return {
            name: default if value is None else value
            for (name, default), value in zip(self._defaults.items(), row[2], strict=True)
        }

    def dump_row(self, entity: str) -> list[Any] | None:
        """One entity's row as msgpack-ready data (None: no row)."""
        row = self._rows.get(entity)
        return None if row is None else list(row)

    def load_row(self, entity: str, data: list[Any] | None) -> None:
        """Set (or, with None, remove) one entity's row from `dump_row` data."""
        if data is None:
            self._rows.pop(entity, None)
        else:
            self._rows[entity] = list(data)

    def entities(self) -> list[str]:
        """The entities with a row (tombstoned ones included)."""
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def dump(self) -> dict[str, list[Any]]:
        """Every row as JSON-ready data."""
        return {entity: list(row) for entity, row in self._rows.items()}

    def load(self, data: Mapping[str, list[Any]]) -> TableState:
        """Replace the rows with those `dump` gave; returns self."""
        self._rows = {entity: list(row) for entity, row in data.items()}
        return self
