"""The schema registry in the log: versions, modes, bindings, history kept across restarts."""

from __future__ import annotations

import pytest

from loopline.contracts import (
    SCHEMAS_TOPIC,
    ContractNotFound,
    IncompatibleSchema,
    LogRegistry,
)
from support import unique


def click(*fields):
    return {
        "type": "record",
        "name": "Click",
        "fields": [{"name": "item", "type": "long"}, *fields],
    }


def test_versions_are_numbered_and_identical_schemas_not_duplicated(log):
    registry = LogRegistry(log)
    name = unique("clicks")
    v1 = registry.register(name, click())
    assert registry.register(name, click()) == v1
    v2 = registry.register(name, click({"name": "country", "type": "string", "default": "NO"}))
    assert (v1.version, v2.version) == (1, 2)
    assert registry.latest(name) == v2
    assert registry.by_id(v1.schema_id) == click()
    assert [v.version for v in registry.versions(name)] == [1, 2]
    registry.close()


def test_history_survives_a_restart_and_is_seen_by_other_processes(log):
    name = unique("clicks")
    first = LogRegistry(log)
    first.register(name, click())
    first.set_mode(name, "full")
    first.bind("some-topic", name, "avro")
    second = LogRegistry(log)
    assert second.latest(name).schema == click()
    assert second.mode(name) == "full"
    assert second.binding("some-topic").encoding == "avro"
    assert SCHEMAS_TOPIC in log.list_topics()
    assert log.describe_topic(SCHEMAS_TOPIC).config.compact is True
    first.close()
    second.close()


def test_incompatible_change_is_refused_with_field_and_reason(log):
    registry = LogRegistry(log)
    name = unique("clicks")
    registry.register(name, click())
    changed = {
        "type": "record",
        "name": "Click",
        "fields": [{"name": "item", "type": "string"}],
    }
    with pytest.raises(IncompatibleSchema) as info:
        registry.register(name, changed)
    message = str(info.value)
    assert f"contract '{name}' v2 is not backward compatible with v1" in message
    assert "item" in message and "long" in message and "string" in message
    assert registry.check(name, changed)
    registry.set_mode(name, "none")
    assert registry.register(name, changed).version == 2
    registry.close()


def test_unknown_contract_says_how_to_register(log):
    registry = LogRegistry(log)
    with pytest.raises(ContractNotFound, match="loopline contracts register"):
        registry.latest("nope-" + unique())
    registry.close()


def test_transitive_mode_names_the_old_version_that_breaks(log):
    registry = LogRegistry(log)
    name = unique("clicks")
    registry.set_mode(name, "backward_transitive")
    registry.register(name, click())
    registry.register(name, click({"name": "country", "type": ["null", "string"], "default": None}))
    # v3 drops the default: fine against v2 (which has the field) but not against v1
    v3 = click({"name": "country", "type": ["null", "string"]})
    with pytest.raises(IncompatibleSchema) as info:
        registry.register(name, v3)
    assert "v3 is not backward transitive compatible with v1" in str(info.value)
    registry.close()
