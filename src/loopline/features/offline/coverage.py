"""What a dataset build filled in silently: rows before a table's first record.

A table answers a spine row only from records that arrived (log timestamp)
by the row's instant (decision 0008). A table ingested without ``--time-column`` is timed by its
log timestamps, the moment of ingestion: every spine row of the past comes
before its first record and gets the defaults, silently. `before_first_record`
counts those rows per table topic, so that ``dataset build`` can say so and
name the likely cause.

>>> from loopline.features import Entity, Table, TableFeature
>>> profiles = Table("profiles", Entity("member", "member_id"), [TableFeature("age", "age")])
>>> source = pa.table({"arrival": [5_000, 9_000]})
>>> spine = pa.table({"entity": ["m1", "m2", "m3"], "at": [1_000, 2_000, 6_000]})
>>> before_first_record([profiles], {"profiles": source}, spine)
{'profiles': 2}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from loopline.features.declarations import Table


def before_first_record(
    tables: Sequence[Table], sources: Mapping[str, pa.Table], spine: pa.Table
) -> dict[str, int]:
    """Per table topic, the spine rows (``at`` column) earlier than its first record's time."""
    out: dict[str, int] = {}
    for table in tables:
        source = sources[table.source]
        if source.num_rows == 0:
            out[table.source] = spine.num_rows
            continue
        first = pc.min(source.column("arrival")).as_py()  # a table reads records by arrival
        out[table.source] = int(pc.sum(pc.less(spine.column("at"), first)).as_py() or 0)
    return out
