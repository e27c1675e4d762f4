"""Feature sources: how a record of a source topic becomes the fields features read.

The online processor and the offline builder read sources through this one
function, so they can never disagree on what a record says. A topic bound to
a contract is decoded with it (JSON or Avro, any registered version); an
unbound topic must hold JSON objects. A tombstone (no value) reads as None.

>>> reader = SourceReader(None)
>>> reader.fields("clicks", b'{"member_id": "m1", "item": 7}')
{'member_id': 'm1', 'item': 7}
>>> reader.fields("clicks", None) is None
True
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
    return fields
