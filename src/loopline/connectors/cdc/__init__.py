"""Change data capture: a PostgreSQL table into a topic, its contract derived from the table.

`run_cdc` is loopline's own connector (logical replication through psycopg,
no Java): an initial copy of the table, then every committed change, exactly
once, with the table's columns as the topic's contract. Sources are declared
with `CdcSource` and kept in the log (`save_source`, `list_sources`). The
records' form is described in `loopline.connectors.cdc.rows`; decision 0029
says why.

>>> CdcSource.create("members", "postgresql://127.0.0.1/shop", "members").qualified
'"public"."members"'
"""

from __future__ import annotations

from loopline.connectors.cdc.connector import CdcProgress, CdcReport, read_cdc_progress, run_cdc
from loopline.connectors.cdc.rows import LSN_HEADER, OP_HEADER
from loopline.connectors.cdc.sources import (
    CdcError,
    CdcSource,
    get_source,
    list_sources,
    remove_source,
    save_source,
)

__all__ = [
    "LSN_HEADER",
    "OP_HEADER",
    "CdcError",
    "CdcProgress",
    "CdcReport",
    "CdcSource",
    "get_source",
    "list_sources",
    "read_cdc_progress",
    "remove_source",
    "run_cdc",
    "save_source",
]
