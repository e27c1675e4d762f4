"""Change data capture tests run against a real PostgreSQL (`scripts/postgres.sh`).

`scripts/test.sh` starts it and exports LOOPLINE_POSTGRES_URL. When it is not
reachable these tests fail; they are never skipped.

Each test gets its own table (`members_<hex>`: id, name, score, country) with
a change history table filled by a trigger: every insert, update and delete
with its transaction id, so a test knows each change and its commit time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from cdc.tables import Members
from loopline.connectors.cdc import CdcSource


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("LOOPLINE_POSTGRES_URL")
    if not url:
        pytest.fail(
            "LOOPLINE_POSTGRES_URL is not set: start PostgreSQL with "
            "`bash scripts/postgres.sh start` and export the URL it prints, or run "
            "the suite with scripts/test.sh",
            pytrace=False,
        )
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {url} is not reachable: {exc}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def connect_url() -> str:
    url = os.environ.get("LOOPLINE_CONNECT_URL", "")
    try:
        httpx.get(url + "/connector-plugins", timeout=5).raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        pytest.fail(
            f"no Kafka Connect worker at LOOPLINE_CONNECT_URL={url!r} ({exc}): start one with "
            "`bash scripts/connect.sh start`, or run the suite with scripts/test.sh",
            pytrace=False,
        )
    return url


@pytest.fixture
def members(pg_url: str) -> Iterator[Members]:
    table = f"members_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.execute(
        f"CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL, "
        "score integer, country text)"
    )
    conn.execute(
        f"CREATE TABLE {table}_history (seq bigserial PRIMARY KEY, "
        "xid xid8 NOT NULL DEFAULT pg_current_xact_id(), op text, id integer, row jsonb)"
    )
    conn.execute(
        f"""CREATE FUNCTION {table}_log() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            INSERT INTO {table}_history (op, id, row) VALUES ('d', OLD.id, NULL);
          ELSE
            INSERT INTO {table}_history (op, id, row)
              VALUES (CASE TG_OP WHEN 'INSERT' THEN 'c' ELSE 'u' END, NEW.id, to_jsonb(NEW));
          END IF;
          RETURN NULL;
        END $$"""
    )
    conn.execute(
        f"CREATE TRIGGER {table}_log AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_log()"
    )
    source = CdcSource.create(table, pg_url, f"public.{table}")
    yield Members(pg_url, conn, table, source)
    conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = %s AND NOT active",
        (source.slot,),
    )
    conn.execute(f'DROP PUBLICATION IF EXISTS "{source.publication}"')
    conn.execute(f"DROP TABLE {table}, {table}_history")
    conn.execute(f"DROP FUNCTION {table}_log")
    conn.close()
