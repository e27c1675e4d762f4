"""Contracts: typed records, a schema registry in the log, encodings, dead letters.

Every topic can carry a contract: a named, versioned schema with a
compatibility rule. Producers validate against it; consumers decode with it
and set aside what they cannot read in ``<topic>.dlq``, with the reason.
"""

from __future__ import annotations

from loopline.contracts.codecs import AvroCodec, ContractViolation, JsonCodec
from loopline.contracts.compatibility import Incompatibility, IncompatibleSchema, Mode
from loopline.contracts.registry import (
    SCHEMAS_TOPIC,
    Binding,
    ContractNotFound,
    ContractVersion,
    LogRegistry,
    SchemaRegistry,
)
from loopline.contracts.schemas import SchemaError, avro_schema, json_schema_to_avro, record_type
from loopline.contracts.topics import Message, Topic, TypedConsumer, TypedProducer
from loopline.stream.deadletters import DeadLetter, dead_letter, dlq_topic

__all__ = [
    "SCHEMAS_TOPIC",
    "AvroCodec",
    "Binding",
    "ContractNotFound",
    "ContractVersion",
    "ContractViolation",
    "DeadLetter",
    "IncompatibleSchema",
    "Incompatibility",
    "JsonCodec",
    "LogRegistry",
    "Message",
    "Mode",
    "SchemaError",
    "SchemaRegistry",
    "Topic",
    "TypedConsumer",
    "TypedProducer",
    "avro_schema",
    "dead_letter",
    "dlq_topic",
    "json_schema_to_avro",
    "record_type",
]
