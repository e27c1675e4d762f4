"""Feature sources: how a record of a source topic becomes the fields features read.

The online processor and the offline builder read sources through this one
function, so they can never disagree on what a record says. A topic bound to
a contract is decoded with it (JSON or Avro, any registered version); an
unbound topic must hold JSON objects. A tombstone (no value) reads as None.

A change data capture topic reads as the table it captures: loopline's own
connector writes the row after the change (a delete is a tombstone), and a
Debezium envelope (``{"before", "after", "op", ...}``, bare or inside
JsonConverter's ``{"schema", "payload"}``) reads as its ``after`` row, or as
a tombstone for a delete (decision 0029). Debezium keys the record by a JSON
object of the key columns; `key_entity` reads the entity id from it.

>>> reader = SourceReader(None)
>>> reader.fields("clicks", b'{"member_id": "m1", "item": 7}')
{'member_id': 'm1', 'item': 7}
>>> reader.fields("clicks", None) is None
True
>>> reader.fields("members", b'{"before": null, "after": {"id": 7, "tier": 2}, "op": "c"}')
{'id': 7, 'tier': 2}
>>> reader.fields("members", b'{"schema": {}, "payload": {"before": {"id": 7}, "after": null, "op": "d"}}')
>>> key_entity('{"schema": {}, "payload": {"id": 7}}', "id"), key_entity("m-1", "id")
('7', 'm-1')
>>> reader.fields("clicks", b'[1, 2]')
Traceback (most recent call last):
...
loopline.contracts.codecs.ContractViolation: a feature source record must be a JSON object, got list
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.contracts.schemas import record_type
from loopline.contracts.topics import codec_for

Decode = Callable[[bytes | None], dict[str, Any] | None]


class SourceReader:
    """Decodes values of feature-source topics to field dicts, one decoder per topic.

    `registry` (a `LogRegistry`, `ConfluentRegistry`, or None for "no
    contracts") says which topics are bound to a contract.
    """

    def __init__(self, registry: SchemaRegistry | None) -> None:
        self.registry = registry
        self._decoders: dict[str, Decode] = {}

    def decoder(self, topic: str) -> Decode:
        """The function that reads a value of `topic` (raises `ContractViolation`)."""
        decode = self._decoders.get(topic)
        if decode is None:
            decode = self._decoders[topic] = self._make(topic)
        return decode

    def fields(self, topic: str, value: bytes | None) -> dict[str, Any] | None:
        """The fields of one value of `topic`; None for a tombstone."""
        return self.decoder(topic)(value)

    def _make(self, topic: str) -> Decode:
        binding = None
        if self.registry is not None and hasattr(self.registry, "binding"):
            binding = self.registry.binding(topic)
        if binding is None:
            return _json_object
        version = self.registry.latest(binding.contract)
        codec = codec_for(record_type(version.schema), version, binding.encoding, self.registry)

        def decode(value: bytes | None) -> dict[str, Any] | None:
            if value is None:
                return None
            return msgspec.structs.asdict(codec.decode(value))

        return decode


_decode_json = msgspec.json.Decoder().decode


def _json_object(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        fields = _decode_json(value)
    except msgspec.DecodeError as exc:
        raise ContractViolation(f"not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise ContractViolation(
            f"a feature source record must be a JSON object, got {type(fields).__name__}"
        )
    return unwrap_envelope(fields) if is_envelope(fields) else fields


_OPS = frozenset(("c", "u", "d", "r", "t"))


def is_envelope(value: dict[str, Any]) -> bool:
    """Whether a decoded JSON value is a Debezium change event (bare or with its schema)."""
    if "payload" in value and "schema" in value and isinstance(value["payload"], dict):
        value = value["payload"]
    return value.get("op") in _OPS and "after" in value and "before" in value


def unwrap_envelope(value: dict[str, Any]) -> dict[str, Any] | None:
    """The row a Debezium change event leaves: ``after``, None for a delete."""
    if "payload" in value and "schema" in value:
        value = value["payload"]
    after = value.get("after")
    if value.get("op") == "d" or after is None:
        return None
    if not isinstance(after, dict):
        raise ContractViolation(f"a change event's 'after' must be an object, got {after!r}")
    return after


def key_entity(key: str, key_field: str) -> str:
    """The entity id a record key gives: the key itself, or `key_field` of a JSON object key
    (Debezium's, bare or with its schema)."""
    if not key.startswith("{"):
        return key
    try:
        decoded = _decode_json(key)
    except msgspec.DecodeError:
        return key
    if isinstance(decoded, dict) and "payload" in decoded and "schema" in decoded:
        decoded = decoded["payload"]
    if isinstance(decoded, dict) and decoded.get(key_field) is not None:
        value = decoded[key_field]
        return value if isinstance(value, str) else str(value)
    return key
