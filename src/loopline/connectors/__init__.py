"""Connectors: how data from outside reaches the log.

- `loopline.connectors.files`: CSV, JSON lines and Parquet files into a topic,
  validated by the topic's contract, exactly once even across a crash
  (`ingest_file`, `count_rows`).

Rows that break a contract never stop a connector: they go to the topic's
dead-letter topic (``<topic>.dlq``) with the reason.

>>> from loopline.connectors import ingest_file, IngestReport
>>> IngestReport(read=3, produced=2, dead_lettered=1)
IngestReport(read=3, produced=2, dead_lettered=1, skipped=0)
"""

from __future__ import annotations

from loopline.connectors.files import IngestReport, count_rows, ingest_file

__all__ = ["IngestReport", "count_rows", "ingest_file"]
