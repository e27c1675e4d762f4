"""Change data capture tests run against a real PostgreSQL (`scripts/postgres.sh`).

`scripts/test.sh` starts it and exports LOOPLINE_POSTGRES_URL. When it is not
reachable these tests fail; they are never skipped.

Each test gets its own table (`members_<hex>`: id, name, score, country) with
a change history table filled by a trigger: every insert, update and delete
with its transaction id, so a test knows each change and its commit time.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

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


@dataclass
class Members:
    """A table of one test, its history, and the CDC source that captures it."""

    url: str
    conn: psycopg.Connection
    table: str
    source: CdcSource

    def history(self) -> list[tuple[int, str, int, dict | None, int]]:
        """Every change so far: seq, op (c/u/d), id, row after, commit time (ms)."""
        rows = self.conn.execute(
            f"SELECT seq, op, id, row, (extract(epoch FROM pg_xact_commit_timestamp(xid(xid)))"
            f" * 1000000)::bigint FROM {self.table}_history ORDER BY seq"
        ).fetchall()
        return [(s, op, i, r, t // 1000) for s, op, i, r, t in rows]

    def forget_history(self) -> None:
        self.conn.execute(f"DELETE FROM {self.table}_history")

    def state(self) -> dict[str, dict]:
        rows = self.conn.execute(f"SELECT to_jsonb(t) FROM {self.table} t").fetchall()
        return {str(r[0]["id"]): r[0] for r in rows}

    def insert(self, count: int, start: int = 1) -> None:
        self.conn.execute(
            f"INSERT INTO {self.table} (id, name, score, country) SELECT g, 'name-' || g, "
            "g %% 97, (ARRAY['DE','FR','NL'])[1 + g %% 3] FROM generate_series(%s::int, %s::int) g",
            (start, start + count - 1),
        )

    def random_changes(self, rng: random.Random, changes: int, keys: int, per_tx: int = 10) -> int:
        """Random inserts, updates and deletes in transactions of 1..per_tx; returns commits."""
        done = commits = 0
        while done < changes:
            n = min(rng.randint(1, per_tx), changes - done)
            with self.conn.transaction():
                for _ in range(n):
                    self.change(rng, keys)
            done += n
            commits += 1
        return commits

    def change(self, rng: random.Random, keys: int) -> None:
        key = rng.randint(1, keys)
        roll = rng.random()
        if roll < 0.2:
            self.conn.execute(f"DELETE FROM {self.table} WHERE id = %s", (key,))
        elif roll < 0.5:
            self.conn.execute(
                f"INSERT INTO {self.table} (id, name, score, country) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score",
                (key, f"new-{key}", rng.randint(0, 1000), rng.choice(["DE", "FR", "US"])),
            )
        else:
            self.conn.execute(
                f"UPDATE {self.table} SET score = %s, country = %s WHERE id = %s",
                (rng.randint(0, 1000), rng.choice(["DE", "FR", "US", None]), key),
            )


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


def topic_state(records) -> dict[str, dict]:
    """The latest row per key that the topic's records leave (tombstones remove)."""
    state: dict[str, dict] = {}
    for r in records:
        key = r.key.decode()
        if r.value is None:
            state.pop(key, None)
        else:
            state[key] = json.loads(r.value)
    return state


def op_of(record) -> str:
    return dict(record.headers)["loopline.cdc.op"].decode()
