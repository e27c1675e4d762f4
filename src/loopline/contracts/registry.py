"""A schema registry that lives in the log itself: nothing else to run.

Contracts are versioned by name. Every version, every compatibility setting
and every binding of a topic to a contract is a record of the compacted topic
``_loopline_schemas``, so the registry works the same on the embedded log and
on Kafka, and every process that reads the topic sees the same history.

Schema ids (the 4 bytes of the Confluent wire format) are derived from the
schema itself (31 bits of the SHA-256 of its canonical JSON), so two
processes registering the same schema agree on its id without coordination;
two different schemas that ever meet on one id are refused.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = LogRegistry(log)
>>> v1 = registry.register("clicks", {"type": "record", "name": "Click",
...     "fields": [{"name": "item", "type": "long"}]})
>>> v1.version, registry.latest("clicks").schema_id == v1.schema_id
(1, True)
>>> registry.register("clicks", {"type": "record", "name": "Click", "fields": [
...     {"name": "item", "type": "long"}, {"name": "country", "type": "string"}]})
Traceback (most recent call last):
...
loopline.contracts.compatibility.IncompatibleSchema: contract 'clicks' v2 is not backward \
compatible with v1: field 'country' was added without a default (give it a default or make it optional)
>>> log.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import msgspec

from loopline.contracts.compatibility import (
    Incompatibility,
    IncompatibleSchema,
    Mode,
    check,
    problems_by_version,
)
from loopline.contracts.schemas import Schema
from loopline.log import Log, Record, TopicConfig, TopicExists
from loopline.stream.table import Table

SCHEMAS_TOPIC = "_loopline_schemas"
"""The compacted topic of the log that keeps every contract and topic binding."""
MODES: tuple[str, ...] = get_args(Mode)
Encoding = Literal["json", "avro"]


class ContractNotFound(KeyError):
    """No contract (or no such version) of that name."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ContractVersion:
    """One registered version of a contract."""

    name: str
    version: int
    schema_id: int
    schema: Schema
    registered_at: int


@dataclass(frozen=True)
class Binding:
    """A topic bound to a contract: what its values must follow and how they are encoded."""

    topic: str
    contract: str
    encoding: Encoding = "json"


def canonical(schema: Schema) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def schema_id_of(schema: Schema) -> int:
    digest = hashlib.sha256(canonical(schema).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


class SchemaRegistry(Protocol):
    """What loopline needs of a schema registry: the in-log one or an external one."""

    def register(self, name: str, schema: Schema) -> ContractVersion: ...
    def check(self, name: str, schema: Schema) -> list[Incompatibility]: ...
    def latest(self, name: str) -> ContractVersion: ...
    def version(self, name: str, version: int) -> ContractVersion: ...
    def versions(self, name: str) -> list[ContractVersion]: ...
    def by_id(self, schema_id: int) -> Schema: ...
    def names(self) -> list[str]: ...


class _VersionRecord(msgspec.Struct, tag="version", tag_field="kind"):
    name: str
    version: int
    schema_id: int
    schema: Schema
    registered_at: int


class _ModeRecord(msgspec.Struct, tag="mode", tag_field="kind"):
    name: str
    mode: Mode


class _BindingRecord(msgspec.Struct, tag="binding", tag_field="kind"):
    topic: str
    contract: str
    encoding: Encoding = "json"


# Every record of the schemas topic, typed: anything else is skipped by the table.
_decode_entry = msgspec.json.Decoder(_VersionRecord | _ModeRecord | _BindingRecord).decode


class LogRegistry:
    """The schema registry kept in the ``_loopline_schemas`` topic of `log` (or `topic`).

    The topic is read through `table` (a `loopline.stream.table.Table`): a
    record that does not decode as a registry record is logged, counted in
    ``table.skipped`` and passed over.
    """

    def __init__(
        self, log: Log, *, default_mode: Mode = "backward", topic: str = SCHEMAS_TOPIC
    ) -> None:
        self.log = log
        self.default_mode = default_mode
        self.topic = topic
        self._lock = threading.RLock()
        self._versions: dict[str, list[ContractVersion]] = {}
        self._modes: dict[str, Mode] = {}
        self._bindings: dict[str, Binding] = {}
        self._ids: dict[int, Schema] = {}
        with contextlib.suppress(TopicExists):
            log.create_topic(topic, TopicConfig(partitions=1, compact=True))
        self.table = Table(log, topic, self._apply_record)
        self._producer = log.producer()
        self.refresh()

    # -- reading the topic -------------------------------------------------------------

    def refresh(self) -> None:
        """Read every registry record appended since the last refresh."""
        with self._lock:
            self.table.refresh()

    def _apply_record(self, record: Record) -> None:
        if record.value is not None:
            self._apply(_decode_entry(record.value))

    def _apply(self, entry: _VersionRecord | _ModeRecord | _BindingRecord) -> None:
        if isinstance(entry, _VersionRecord):
            v = ContractVersion(
                entry.name, entry.version, entry.schema_id, entry.schema, entry.registered_at
            )
            versions = self._versions.setdefault(v.name, [])
            if all(x.version != v.version for x in versions):
                versions.append(v)
                versions.sort(key=lambda x: x.version)
            self._ids.setdefault(v.schema_id, v.schema)
        elif isinstance(entry, _ModeRecord):
            self._modes[entry.name] = entry.mode
        else:
            self._bindings[entry.topic] = Binding(entry.topic, entry.contract, entry.encoding)

    def _append(self, key: str, entry: _VersionRecord | _ModeRecord | _BindingRecord) -> None:
        self._producer.send(self.topic, msgspec.json.encode(entry), key.encode())
        self._producer.flush()
        self._apply(entry)

    # -- contracts ---------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._versions)

    def versions(self, name: str) -> list[ContractVersion]:
        with self._lock:
            if name not in self._versions:
                self.refresh()
            if name not in self._versions:
                raise ContractNotFound(
                    f"no contract named {name!r}: register one with "
                    f"`loopline contracts register {name} --schema FILE`"
                )
            return list(self._versions[name])

    def latest(self, name: str) -> ContractVersion:
        return self.versions(name)[-1]

    def version(self, name: str, version: int) -> ContractVersion:
        for v in self.versions(name):
            if v.version == version:
                return v
        raise ContractNotFound(f"contract {name!r} has no version {version}")

    def by_id(self, schema_id: int) -> Schema:
        with self._lock:
            if schema_id not in self._ids:
                self.refresh()
            return self._ids[schema_id]

    def mode(self, name: str) -> Mode:
        with self._lock:
            return self._modes.get(name, self.default_mode)

    def set_mode(self, name: str, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown compatibility mode {mode!r}: use one of {', '.join(MODES)}")
        with self._lock:
            self._append(f"mode/{name}", _ModeRecord(name, mode))

    def check(self, name: str, schema: Schema) -> list[Incompatibility]:
        """Problems that registering `schema` as the next version of `name` would have."""
        with self._lock:
            self.refresh()
            previous = [v.schema for v in self._versions.get(name, [])]
            return check(self.mode(name), schema, previous) if previous else []

    def register(self, name: str, schema: Schema) -> ContractVersion:
        """Register `schema` as the next version of `name` (or return the version it already is)."""
        with self._lock:
            self.refresh()
            existing = self._versions.get(name, [])
            for v in existing:
                if canonical(v.schema) == canonical(schema):
                    return v
            by_version = problems_by_version(self.mode(name), schema, [v.schema for v in existing])
            if by_version:
                first = min(by_version)
                raise IncompatibleSchema(
                    name,
                    len(existing) + 1,
                    existing[first].version,
                    self.mode(name),
                    by_version[first],
                )
            schema_id = schema_id_of(schema)
            known = self._ids.get(schema_id)
            if known is not None and canonical(known) != canonical(schema):
                raise ValueError(
                    f"schema id {schema_id} of contract {name!r} collides with another schema; "
                    "change the schema's doc or name to register it"
                )
            version = ContractVersion(
                name, len(existing) + 1, schema_id, schema, time.time_ns() // 1_000_000
            )
            self._append(
                f"version/{name}/{version.version}",
                _VersionRecord(name, version.version, schema_id, schema, version.registered_at),
            )
            return version

    # -- topics bound to contracts -------------------------------------------------------

    def bind(self, topic: str, contract: str, encoding: Encoding = "json") -> Binding:
        """Bind `topic` to `contract`: producers validate against it, consumers decode with it."""
        if encoding not in ("json", "avro"):
            raise ValueError(f"unknown encoding {encoding!r}: use json or avro")
        self.latest(contract)  # must exist
        with self._lock:
            self._append(f"binding/{topic}", _BindingRecord(topic, contract, encoding))
            return self._bindings[topic]

    def binding(self, topic: str) -> Binding | None:
        with self._lock:
            if topic not in self._bindings:
                self.refresh()
            return self._bindings.get(topic)

    def close(self) -> None:
        self.table.close()
        self._producer.close()
