"""The change data captures an application declared: `loopline cdc add` keeps them in the log.

Each is a record of the compacted topic ``_loopline_cdc``, keyed by its name
(a removal is a tombstone), so every process that reads the topic sees the
same list, on the embedded log and on Kafka alike.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> source = CdcSource.create("members", "postgresql://127.0.0.1/shop", "public.members")
>>> source.topic, source.slot
('members_cdc', 'loopline_members')
>>> save_source(log, source)
>>> [s.name for s in list_sources(log)]
['members']
>>> remove_source(log, "members")
>>> list_sources(log)
[]
>>> log.close()
"""

from __future__ import annotations

import contextlib
import re

import msgspec

from loopline.log import Log, Record, TopicConfig, TopicExists
from loopline.stream import names
from loopline.stream.table import read_table

SOURCES_TOPIC = names.internal("cdc")


class CdcError(Exception):
    """A change data capture cannot go on; the message says why and what to do."""


class CdcSource(msgspec.Struct, frozen=True, kw_only=True):
    """One table captured into one topic.

    `url` is the database's (``postgresql://user@host:port/db``), `table`
    ``schema.table``, `key` the columns that key each record (default: the
    table's primary key), `slot` and `publication` the names of the
    replication slot and publication the connector owns in the database.
    """

    name: str
    url: str
    schema: str
    table: str
    topic: str
    key: tuple[str, ...] = ()
    slot: str
    publication: str
    connect_url: str = ""

    @classmethod
    def create(
        cls,
        name: str,
        url: str,
        table: str,
        *,
        topic: str | None = None,
        key: tuple[str, ...] = (),
        connect_url: str = "",
    ) -> CdcSource:
        """A source from what a user types (``--table schema.table``), checked."""
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise CdcError(f"a CDC name takes letters, digits, '_' and '-' only, not {name!r}")
        if not url.startswith(("postgres://", "postgresql://")):
            raise CdcError(
                f"the database URL must be postgresql://user@host:port/database, not {url!r}"
            )
        schema, dot, bare = table.partition(".")
        if not dot:
            schema, bare = "public", table
        if not schema or not bare:
            raise CdcError(f"--table must be schema.table (or table, in public), not {table!r}")
        own = "loopline_" + re.sub(r"[^a-z0-9_]", "_", name.lower())
        return cls(
            name=name,
            url=url,
            schema=schema,
            table=bare,
            topic=topic or f"{name}_cdc",
            key=tuple(key),
            slot=own,
            publication=own,
            connect_url=connect_url,
        )

    @property
    def qualified(self) -> str:
        """``schema.table`` as SQL, quoted."""
        return f'"{self.schema}"."{self.table}"'

    def display_url(self) -> str:
        """The URL without its password, to print."""
        return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", self.url)


_decode = msgspec.json.Decoder(CdcSource).decode


def _ensure_topic(log: Log) -> None:
    with contextlib.suppress(TopicExists):
        log.create_topic(SOURCES_TOPIC, TopicConfig(partitions=1, compact=True))


def save_source(log: Log, source: CdcSource) -> None:
    """Record `source` (replacing one of the same name)."""
    _ensure_topic(log)
    producer = log.producer()
    try:
        producer.send(SOURCES_TOPIC, msgspec.json.encode(source), source.name.encode())
        producer.flush()
    finally:
        producer.close()


def remove_source(log: Log, name: str) -> None:
    """Forget the source `name`."""
    _ensure_topic(log)
    producer = log.producer()
    try:
        producer.send(SOURCES_TOPIC, None, name.encode())
        producer.flush()
    finally:
        producer.close()


def list_sources(log: Log) -> list[CdcSource]:
    """Every source recorded, by name."""
    _ensure_topic(log)
    found: dict[bytes, CdcSource | None] = {}

    def apply(record: Record) -> None:
        if record.key is not None:
            found[record.key] = None if record.value is None else _decode(record.value)

    read_table(log, SOURCES_TOPIC, apply)
    return sorted((s for s in found.values() if s is not None), key=lambda s: s.name)


def get_source(log: Log, name: str) -> CdcSource:
    """The source `name`; `CdcError` naming the known ones when there is none."""
    sources = list_sources(log)
    for source in sources:
        if source.name == name:
            return source
    known = ", ".join(s.name for s in sources) or "none"
    raise CdcError(f"no CDC source named {name!r} (known: {known}); add it with `loopline cdc add`")
