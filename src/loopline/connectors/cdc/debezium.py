"""The same capture on Kafka, by Debezium on Kafka Connect, through the worker's REST API.

`register` turns a `CdcSource` into a Debezium PostgreSQL connector: the same
slot and publication names as loopline's own connector, the initial
snapshot, pgoutput, deletes followed by tombstones, numeric as double (as
`loopline.connectors.cdc.columns` maps it), and the records renamed from
Debezium's ``<prefix>.<schema>.<table>`` to the source's topic. Debezium
writes its envelope (JsonConverter, as the worker is configured); table
features read it as the row after the change (`loopline.features.sources`).

>>> source = CdcSource.create("members", "postgresql://app:pw@db:5433/shop", "public.members",
...                           connect_url="http://connect:8083")
>>> config = connector_config(source)
>>> config["database.hostname"], config["database.port"], config["table.include.list"]
('db', '5433', 'public.members')
>>> config["transforms.route.replacement"]
'members_cdc'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from loopline.connectors.cdc.sources import CdcError, CdcSource

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"


def connector_config(source: CdcSource) -> dict[str, str]:
    """The Debezium connector's configuration for `source`."""
    url = urlsplit(source.url)
    config = {
        "connector.class": CONNECTOR_CLASS,
        "plugin.name": "pgoutput",
        "database.hostname": url.hostname or "localhost",
        "database.port": str(url.port or 5432),
        "database.user": unquote(url.username or "postgres"),
        "database.password": unquote(url.password or ""),
        "database.dbname": (url.path or "/postgres").lstrip("/") or "postgres",
        "topic.prefix": source.name,
        "table.include.list": f"{source.schema}.{source.table}",
        "slot.name": source.slot,
        "publication.name": source.publication,
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
        "tombstones.on.delete": "true",
        "decimal.handling.mode": "double",
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
        "transforms": "route",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": ".*",
        "transforms.route.replacement": source.topic,
    }
    if source.key:
        config["message.key.columns"] = f"{source.schema}.{source.table}:{','.join(source.key)}"
    return config


def _call(source: CdcSource, method: str, path: str, body: Any = None) -> httpx.Response:
    try:
        return httpx.request(method, source.connect_url.rstrip("/") + path, json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise CdcError(
            f"cannot reach the Kafka Connect worker at {source.connect_url} ({exc}): "
            "start it (scripts/connect.sh start) or pass the right --connect-url"
        ) from None


def register(source: CdcSource) -> None:
    """Create (or update) the source's Debezium connector on the Connect worker."""
    response = _call(source, "PUT", f"/connectors/{source.name}/config", connector_config(source))
    if response.status_code not in (200, 201):
        raise CdcError(
            f"Kafka Connect at {source.connect_url} refused connector {source.name!r} "
            f"({response.status_code}): {response.text[:500]}"
        )


def status(source: CdcSource) -> dict[str, Any]:
    """The connector's state and its tasks' as the worker reports them."""
    response = _call(source, "GET", f"/connectors/{source.name}/status")
    if response.status_code == 404:
        return {"connector": {"state": "NOT REGISTERED"}, "tasks": []}
    response.raise_for_status()
    return response.json()


def unregister(source: CdcSource) -> None:
    """Delete the source's connector from the worker (gone already is fine)."""
    response = _call(source, "DELETE", f"/connectors/{source.name}")
    if response.status_code not in (200, 204, 404):
        raise CdcError(
            f"Kafka Connect at {source.connect_url} did not delete connector {source.name!r} "
            f"({response.status_code}): {response.text[:500]}"
        )
