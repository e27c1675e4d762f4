"""Change data capture: loopline's own connector against Debezium on Kafka Connect, in one run.

For each: the initial copy (rows/s, from the start of the capture until the
topic holds every row), the changes (changes/s from their commit until the
topic holds them: a backlog of `--changes` random inserts, updates and
deletes in transactions of 10, drained), and commit-to-feature latency
(p50/p99 over `--updates` single-row updates: from the UPDATE's commit until
a `FeatureStore` in this process serves the new value, with `loopline
features run` and the capture running as processes of their own).

loopline's connector writes to the embedded log; Debezium writes to Kafka.

    bash scripts/kafka.sh start; bash scripts/connect.sh start
    LOOPLINE_POSTGRES_URL=$(bash scripts/postgres.sh start)
    python bench/cdc.py --postgres $LOOPLINE_POSTGRES_URL --kafka 127.0.0.1:9092 \\
        --connect-url http://127.0.0.1:8083
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from loopline.app import App
from loopline.connectors.cdc import CdcSource, debezium, run_cdc, save_source
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.store import FeatureStore
from loopline.log import Log, open_log


def _table(conn: psycopg.Connection, rows: int) -> str:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text, score integer)")
    conn.execute(
        f"INSERT INTO {table} SELECT g, 'name-' || g, g %% 1000 FROM generate_series(1, %s::int) g",
        (rows,),
    )
    return table


def _changes(conn: psycopg.Connection, table: str, changes: int, keys: int) -> None:
    rng = random.Random(19)
    for start in range(0, changes, 10):
        with conn.transaction():
            for _ in range(min(10, changes - start)):
                key, roll = rng.randint(1, keys), rng.random()
                if roll < 0.2:
                    conn.execute(f"DELETE FROM {table} WHERE id = %s", (key,))
                elif roll < 0.5:
                    conn.execute(
                        f"INSERT INTO {table} VALUES (%s, 'new', %s) "
                        "ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score",
                        (key, rng.randint(0, 1000)),
                    )
                else:
                    conn.execute(
                        f"UPDATE {table} SET score = %s WHERE id = %s", (rng.randint(0, 1000), key)
                    )


def _count(log: Log, topic: str) -> int:
    return sum(p.end - p.start for p in log.describe_topic(topic).partitions)


def _wait_count(log: Log, topic: str, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while _count(log, topic) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{topic} stopped at {_count(log, topic)} of {count} records")
        time.sleep(0.05)


def _latency(
    conn: psycopg.Connection, log: Log, app: App, table: str, updates: int, log_url: str, tmp: Path
) -> list[float]:
    module = f"benchapp_{table}"
    (tmp / f"{module}.py").write_text(
        "from loopline import App\n"
        "from loopline.features import Entity, FeatureSet, Table, TableFeature\n"
        f"app = App({app.name!r}, features=FeatureSet(tables=[Table("
        f"{app.features.tables[0].source!r}, Entity('member', key='id'), "
        "[TableFeature('score', 'score', default=-1)])]))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    features = subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", log_url, "features", "run", f"{module}:app"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    waits = []
    try:
        with FeatureStore(log, app) as store:
            conn.execute(f"UPDATE {table} SET score = 5000 WHERE id = 1")
            deadline = time.monotonic() + 600
            while store.get("member", ["1"], ["score"])[0]["score"] != 5000:
                if time.monotonic() > deadline:
                    raise SystemExit("the features processor never caught up")
                time.sleep(0.05)
                store.catch_up()
            for n in range(updates):
                value = 10_000 + n
                conn.execute(f"UPDATE {table} SET score = %s WHERE id = 1", (value,))
                committed = time.monotonic()
                while store.get("member", ["1"], ["score"])[0]["score"] != value:
                    store.catch_up()
                waits.append(time.monotonic() - committed)
    finally:
        features.terminate()
        features.wait()
    return waits


def _app(topic: str) -> App:
    return App(
        f"bench-{uuid.uuid4().hex[:6]}",
        features=FeatureSet(
            tables=[
                Table(
                    topic, Entity("member", key="id"), [TableFeature("score", "score", default=-1)]
                )
            ]
        ),
    )


def _report(name: str, rows: int, copy_s: float, changes: int, drain_s: float, waits: list[float]):
    ms = sorted(w * 1000 for w in waits)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name}: initial copy {rows:,} rows in {copy_s:.1f} s: {rows / copy_s:,.0f} rows/s")
    print(f"{name}: {changes:,} changes, commit to topic: {changes / drain_s:,.0f} changes/s")
    print(
        f"{name}: commit to feature ({len(ms)} updates): p50 {statistics.median(ms):.0f} ms, "
        f"p99 {p99:.0f} ms"
    )


def bench_loopline(url: str, rows: int, changes: int, updates: int) -> None:
    conn = psycopg.connect(url, autocommit=True)
    table = _table(conn, rows)
    tmp = Path(tempfile.mkdtemp())
    log_url = f"embedded:{tmp / 'log'}"
    log = open_log(log_url)
    source = CdcSource.create(table, url, table)
    try:
        started = time.monotonic()
        run_cdc(log, source, until_idle=True)
        copy_s = time.monotonic() - started
        _changes(conn, table, changes, rows + rows // 10)
        started = time.monotonic()
        report = run_cdc(log, source, until_idle=True)
        drain_s = time.monotonic() - started
        save_source(log, source)
        follower = subprocess.Popen(
            [sys.executable, "-m", "loopline", "--log", log_url, "cdc", "run", table],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            waits = _latency(conn, log, _app(source.topic), table, updates, log_url, tmp)
        finally:
            follower.terminate()
            follower.wait()
        _report("loopline (embedded)", rows, copy_s, report.changes, drain_s, waits)
    finally:
        log.close()
        conn.execute("SELECT pg_drop_replication_slot(%s)", (source.slot,))
        conn.execute(f'DROP PUBLICATION "{source.publication}"')
        conn.execute(f"DROP TABLE {table}")


def bench_debezium(url: str, kafka: str, connect_url: str, rows: int, changes: int, updates: int):
    conn = psycopg.connect(url, autocommit=True)
    table = _table(conn, rows)
    log_url = f"kafka://{kafka}"
    log = open_log(log_url)
    source = CdcSource.create(table, url, table, connect_url=connect_url)
    log.create_topic(source.topic)
    try:
        started = time.monotonic()
        debezium.register(source)
        _wait_count(log, source.topic, rows)
        copy_s = time.monotonic() - started
        # the records the changes make: each change one, each delete one more (a tombstone)
        before = _count(log, source.topic)
        records, made = _records_of(conn, table, changes, rows)
        expected = before + records
        # paused while the backlog is made, as loopline's connector is not running then
        httpx.put(f"{connect_url}/connectors/{source.name}/pause", timeout=30).raise_for_status()
        _changes(conn, table, changes, rows + rows // 10)
        started = time.monotonic()
        httpx.put(f"{connect_url}/connectors/{source.name}/resume", timeout=30).raise_for_status()
        _wait_count(log, source.topic, expected)
        drain_s = time.monotonic() - started
        waits = _latency(
            conn, log, _app(source.topic), table, updates, log_url, Path(tempfile.mkdtemp())
        )
        _report("Debezium 3.6.1 (Kafka)", rows, copy_s, made, drain_s, waits)
    finally:
        debezium.unregister(source)
        time.sleep(2)
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active",
            (source.slot,),
        )
        conn.execute(f"DROP TABLE {table}")
        log.close()


def _records_of(conn: psycopg.Connection, table: str, changes: int, rows: int) -> tuple[int, int]:
    """Records Debezium writes for `_changes`, and the rows they change: replayed on a scratch
    copy (an UPDATE or DELETE of a missing row changes nothing; a delete adds a tombstone)."""
    scratch = f"{table}_count"
    conn.execute(f"CREATE TEMP TABLE {scratch} (id integer PRIMARY KEY, name text, score integer)")
    conn.execute(
        f"INSERT INTO {scratch} SELECT g, 'name-' || g, g %% 1000 "
        "FROM generate_series(1, %s::int) g",
        (rows,),
    )
    rng = random.Random(19)
    records = made = 0
    for _ in range(changes):
        key, roll = rng.randint(1, rows + rows // 10), rng.random()
        if roll < 0.2:
            n = conn.execute(f"DELETE FROM {scratch} WHERE id = %s", (key,)).rowcount
            records += 2 * n
            made += n
        elif roll < 0.5:
            conn.execute(
                f"INSERT INTO {scratch} VALUES (%s, 'new', %s) "
                "ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score",
                (key, rng.randint(0, 1000)),
            )
            records += 1
            made += 1
        else:
            n = conn.execute(
                f"UPDATE {scratch} SET score = %s WHERE id = %s", (rng.randint(0, 1000), key)
            ).rowcount
            records += n
            made += n
    conn.execute(f"DROP TABLE {scratch}")
    return records, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("LOOPLINE_POSTGRES_URL"))
    parser.add_argument("--kafka", help="the broker Debezium writes to (omit: loopline only)")
    parser.add_argument("--connect-url", default=os.environ.get("LOOPLINE_CONNECT_URL"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--updates", type=int, default=100)
    args = parser.parse_args()
    if not args.postgres:
        parser.error("--postgres (or LOOPLINE_POSTGRES_URL) is required")
    bench_loopline(args.postgres, args.rows, args.changes, args.updates)
    if args.kafka and args.connect_url:
        bench_debezium(
            args.postgres, args.kafka, args.connect_url, args.rows, args.changes, args.updates
        )


if __name__ == "__main__":
    main()
