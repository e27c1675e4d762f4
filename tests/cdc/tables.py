"""A test's PostgreSQL table with its change history, and how a CDC topic's records read.

`Members` is what the `members` fixture (tests/cdc/conftest.py) yields.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import psycopg

from loopline.connectors.cdc import CdcSource


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
