"""A malformed record on `_loopline_schemas` never stops a reader (issue 13, item 10).

On Kafka the schemas topic is private to each test (the broker is shared).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loopline.cli import cli
from loopline.contracts import SCHEMAS_TOPIC, LogRegistry
from loopline.log import open_log
from support import send_records, unique

BAD_SCHEMA_RECORDS = [
    (b"version/clicks/1", b"[]"),
    (b"version/clicks/2", b"not json"),
    (b"mode/clicks", b'{"kind": "mode", "name": ["clicks"], "mode": "full"}'),
    (b"binding/clicks", b'{"kind": "binding", "topic": 7}'),
    (b"binding/x", b'"just a string"'),
]


def click_schema() -> dict:
    return {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "long"}]}


def test_a_malformed_schemas_record_is_skipped_and_later_ones_apply(log, backend):
    topic = SCHEMAS_TOPIC if backend == "embedded" else unique("schemas")
    kwargs = {} if topic == SCHEMAS_TOPIC else {"topic": topic}
    first = LogRegistry(log, **kwargs)
    name = unique("clicks")
    first.register(name, click_schema())
    send_records(log, topic, BAD_SCHEMA_RECORDS)
    first.set_mode(name, "full")
    first.bind("some-topic", name, "avro")

    second = LogRegistry(log, **kwargs)  # a new process reads past the bad records
    assert second.latest(name).schema == click_schema()
    assert second.mode(name) == "full"
    assert second.binding("some-topic").encoding == "avro"
    assert second.table.skipped == len(BAD_SCHEMA_RECORDS)
    send_records(log, topic, BAD_SCHEMA_RECORDS[:1])
    first.set_mode(name, "none")
    second.refresh()
    assert second.mode(name) == "none"
    first.close()
    second.close()


@pytest.mark.parametrize("value", [b"[]", json.dumps({"kind": "version"}).encode()])
def test_contracts_cli_lists_past_a_malformed_record(tmp_path, value):
    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    registry = LogRegistry(log)
    registry.register("clicks", click_schema())
    send_records(log, SCHEMAS_TOPIC, [(b"version/clicks/2", value)])
    registry.close()
    log.close()
    listed = CliRunner().invoke(cli, ["--log", url, "contracts", "list"])
    assert listed.exit_code == 0, listed.output
    assert "clicks" in listed.stdout
