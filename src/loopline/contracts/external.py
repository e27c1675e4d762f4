"""An external Confluent Schema Registry as loopline's registry (``--schema-registry URL``).

Where a Kafka shop already runs Confluent Schema Registry, loopline keeps its
contracts there instead of in ``_loopline_schemas``: `ConfluentRegistry` offers
the methods of `LogRegistry` that loopline uses, over confluent-kafka's
``SchemaRegistryClient``. A contract is the subject of the same name, so
a loopline topic whose values other Kafka clients serialize with Confluent's
default naming declares ``contract="<topic>-value"``.

Bindings (which topic carries which contract, in which encoding) are
loopline's own idea; Confluent has no place for them. They are resolved in
this order: a binding made with `bind` in this process (kept in memory only),
else Confluent's convention: a topic ``T`` with a subject ``T-value`` carries
that subject in Avro. So a topic produced by Confluent serializers needs no
binding at all, and a binding that must outlive the process is expressed by
naming the subject ``<topic>-value``.

Compatibility is decided by the registry server (its rules and levels);
loopline's own checker only explains *why* when the server refuses.

Example, against any Confluent-compatible server (e.g. ``loopline registry serve``):

>>> registry = ConfluentRegistry("http://127.0.0.1:8081")  # doctest: +SKIP
>>> registry.register("clicks-value", {"type": "record", "name": "Click",
...     "fields": [{"name": "item", "type": "long"}]}).version  # doctest: +SKIP
1
>>> registry.binding("clicks")  # doctest: +SKIP
Binding(topic='clicks', contract='clicks-value', encoding='avro')
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema as ConfluentSchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from loopline.contracts.compatibility import (
    Incompatibility,
    IncompatibleSchema,
    Mode,
    check,
)
from loopline.contracts.registry import (
    MODES,
    Binding,
    ContractNotFound,
    ContractVersion,
    Encoding,
)
from loopline.contracts.schemas import Schema
from loopline.http.urls import redact_url

__all__ = ["ConfluentRegistry"]

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403


class ConfluentRegistry:
    """loopline's registry interface over a Confluent Schema Registry at `url`.

    `config` holds further ``SchemaRegistryClient`` settings
    (``basic.auth.user.info``, ``ssl.ca.location``, ...). Credentials may also
    be in the URL (``http://user:PASSWORD@host``); ``url`` is the URL as it may
    be shown, the password replaced by ``***``. Confluent does not say when a
    version was registered: ``registered_at`` is 0.
    """

    def __init__(self, url: str, config: Mapping[str, Any] | None = None) -> None:
        self.url = redact_url(url)
        self.client = SchemaRegistryClient({**(config or {}), "url": url})
        self._bindings: dict[str, Binding] = {}
        self._lock = threading.Lock()

    # -- contracts ---------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.client.get_subjects())

    def versions(self, name: str) -> list[ContractVersion]:
        try:
            numbers = self.client.get_versions(name)
        except SchemaRegistryError as exc:
            raise self._not_found(exc, name) from None
        return [self.version(name, n) for n in sorted(numbers)]

    def latest(self, name: str) -> ContractVersion:
        # get_version("latest") skips the client's cache: other processes may have registered.
        return self._get(name, "latest")

    def version(self, name: str, version: int) -> ContractVersion:
        return self._get(name, version)

    def by_id(self, schema_id: int) -> Schema:
        """The schema of `schema_id`; `KeyError` (`ContractNotFound`) if the server has none."""
        try:
            return json.loads(self.client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            if exc.error_code == SCHEMA_NOT_FOUND or exc.http_status_code == 404:
                raise ContractNotFound(f"no schema with id {schema_id} at {self.url}") from None
            raise

    def mode(self, name: str) -> Mode:
        """The subject's compatibility level, else the server's default."""
        try:
            level = self.client.get_compatibility(name)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:  # Confluent: 40408, no level set for the subject
                raise
            level = self.client.get_compatibility()
        return str(level).lower()  # type: ignore[return-value]

    def set_mode(self, name: str, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown compatibility mode {mode!r}: use one of {', '.join(MODES)}")
        self.client.set_compatibility(name, mode.upper())

    def check(self, name: str, schema: Schema) -> list[Incompatibility]:
        """Problems that registering `schema` as the next version of `name` would have."""
        try:
            ok = self.client.test_compatibility_all_versions(name, _schema(schema))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return []  # no subject yet: anything goes
            raise
        return [] if ok else self._explain(name, schema)

    def register(self, name: str, schema: Schema) -> ContractVersion:
        """Register `schema` as the next version of `name` (or return the version it already is).

        Raises `IncompatibleSchema` when the server refuses it as incompatible.
        """
        candidate = _schema(schema)
        try:
            self.client.register_schema(name, candidate)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 409:
                raise
            latest = self.latest(name)
            problems = self._explain(name, schema) or [Incompatibility("", exc.error_message)]
            raise IncompatibleSchema(
                name, latest.version + 1, latest.version, self.mode(name), problems
            ) from None
        # Confluent answers a registration with the id only: look the version up.
        found = self.client.lookup_schema(name, candidate)
        return ContractVersion(name, found.version, found.schema_id, schema, 0)

    # -- topics bound to contracts -------------------------------------------------------

    def bind(self, topic: str, contract: str, encoding: Encoding = "json") -> Binding:
        """Bind `topic` to `contract` in this process only (see the module docstring)."""
        if encoding not in ("json", "avro"):
            raise ValueError(f"unknown encoding {encoding!r}: use json or avro")
        self.latest(contract)  # must exist
        with self._lock:
            binding = self._bindings[topic] = Binding(topic, contract, encoding)
        return binding

    def binding(self, topic: str) -> Binding | None:
        """The binding made with `bind`, else ``<topic>-value`` in Avro if that subject exists."""
        with self._lock:
            if topic in self._bindings:
                return self._bindings[topic]
        subject = f"{topic}-value"
        try:
            self.client.get_versions(subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        return Binding(topic, subject, "avro")

    def close(self) -> None:
        self.client.close()

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, name: str, version: int | str) -> ContractVersion:
        try:
            found = self.client.get_version(name, version)  # type: ignore[arg-type]
        except SchemaRegistryError as exc:
            raise self._not_found(exc, name, version) from None
        return ContractVersion(
            name, found.version, found.schema_id, json.loads(found.schema.schema_str), 0
        )

    def _not_found(
        self, exc: SchemaRegistryError, name: str, version: int | str | None = None
    ) -> Exception:
        if exc.error_code == VERSION_NOT_FOUND:
            return ContractNotFound(f"contract {name!r} has no version {version} at {self.url}")
        if exc.error_code == SUBJECT_NOT_FOUND or exc.http_status_code == 404:
            return ContractNotFound(f"no contract (subject) named {name!r} at {self.url}")
        return exc

    def _explain(self, name: str, schema: Schema) -> list[Incompatibility]:
        """Why the server finds `schema` incompatible, in loopline's words (may be empty)."""
        try:
            previous = [v.schema for v in self.versions(name)]
            return check(self.mode(name), schema, previous)
        except (ContractNotFound, ValueError):
            return []


def _schema(schema: Schema) -> ConfluentSchema:
    return ConfluentSchema(json.dumps(schema), "AVRO")
