"""``loopline cdc``: tables of a PostgreSQL database captured into topics (change data capture)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
import psycopg

from loopline.cli.errors import CLIError
from loopline.cli.settings import LogSettings
from loopline.connectors.cdc import (
    CdcError,
    CdcSource,
    debezium,
    get_source,
    list_sources,
    read_cdc_progress,
    remove_source,
    run_cdc,
    save_source,
)
from loopline.connectors.cdc import database as db
from loopline.connectors.cdc.rows import Shape
from loopline.log import TopicExists, TopicNotFound


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CdcError as exc:
        raise CLIError(str(exc)) from None


@click.group(name="cdc")
def cdc() -> None:
    """Capture PostgreSQL tables into topics: a copy of the rows, then every change.

    Records are keyed by the table's primary key; the value is the row after
    the change (JSON, under a contract derived from the table's columns), a
    delete is a tombstone, and the header loopline.cdc.op says r/c/u/d.

    \b
    Examples:
      loopline cdc add members postgresql://app@db:5432/shop --table public.members
      loopline cdc run members
      loopline cdc status members
      loopline cdc remove members
    """


@cdc.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--table", required=True, metavar="SCHEMA.TABLE", help="The table to capture.")
@click.option("--topic", help="The topic to write to (default: NAME_cdc).")
@click.option(
    "--key",
    metavar="COLUMN",
    multiple=True,
    help="A column that keys the records (repeatable; default: the primary key).",
)
@click.option(
    "--connect-url",
    metavar="URL",
    help="On a kafka:// log: register a Debezium connector with this Kafka Connect worker "
    "(http://host:8083) instead of running loopline's own.",
)
@click.pass_obj
def add(
    settings: LogSettings,
    name: str,
    url: str,
    table: str,
    topic: str | None,
    key: tuple[str, ...],
    connect_url: str | None,
) -> None:
    """Declare the capture NAME of a table of the database at URL (postgresql://...).

    The table is checked now (it exists, it has a key). Without --connect-url
    nothing is read until `loopline cdc run NAME`; with it, Debezium starts
    on the Kafka Connect worker at once.
    """
    with _errors():
        if connect_url and not settings.url.startswith("kafka://"):
            raise CdcError(
                f"--connect-url registers a Debezium connector, which writes to Kafka, but the "
                f"log is {settings.url}: drop --connect-url to run loopline's own connector "
                "(`loopline cdc run`), or pass --log kafka://..."
            )
        source = CdcSource.create(
            name, url, table, topic=topic, key=key, connect_url=connect_url or ""
        )
        conn = db.connect(source)
        try:
            columns = db.table_columns(conn, db.table_oid(conn, source))
            Shape(columns, source.key)
            level = conn.execute("SHOW wal_level").fetchone()
        finally:
            conn.close()
        if level is None or level[0] != "logical":
            raise CdcError(
                f"the database at {source.display_url()} has wal_level={level and level[0]}; "
                "logical replication needs wal_level=logical (postgresql.conf, then restart)"
            )
        with settings.open() as log:
            if any(s.name == name for s in list_sources(log)):
                raise CdcError(f"a CDC named {name!r} exists already: remove it first")
            if source.connect_url:
                with contextlib.suppress(TopicExists):
                    log.create_topic(source.topic)
                debezium.register(source)
            save_source(log, source)
    how = (
        f"Debezium runs it on {source.connect_url}"
        if source.connect_url
        else f"start it with `loopline cdc run {name}`"
    )
    click.echo(
        f"added CDC {name!r}: {source.schema}.{source.table} at {source.display_url()} "
        f"-> topic {source.topic!r}; {how}"
    )


@cdc.command(name="list")
@click.pass_obj
def list_command(settings: LogSettings) -> None:
    """List the captures: name, table, topic (tab-separated)."""
    with settings.open() as log:
        for s in list_sources(log):
            click.echo(f"{s.name}\t{s.schema}.{s.table}\t{s.topic}\t{s.display_url()}")


@cdc.command(name="status")
@click.argument("name")
@click.pass_obj
def status(settings: LogSettings, name: str) -> None:
    """Where the capture NAME stands: rows copied, changes written, position, slot lag."""
    with _errors(), settings.open() as log:
        source = get_source(log, name)
        try:
            progress = read_cdc_progress(log, source)
        except TopicNotFound:
            progress = None
    click.echo(f"cdc {source.name}: {source.schema}.{source.table} -> {source.topic}")
    if source.connect_url:
        with _errors():
            state = debezium.status(source)
        tasks = ", ".join(t.get("state", "?") for t in state.get("tasks", [])) or "none"
        click.echo(
            f"  Debezium on {source.connect_url}: connector {state['connector']['state']}, "
            f"tasks {tasks}"
        )
    elif progress is None or not progress.snapshot_done:
        click.echo("  not started: no rows copied yet")
    else:
        click.echo(
            f"  copied {progress.snapshot_rows} rows, then {progress.changes} changes; "
            f"{progress.dead_lettered} dead-lettered; in the log up to {progress.lsn}"
        )
    try:
        conn = db.connect(source)
    except CdcError as exc:
        click.echo(f"  database: {exc}")
        return
    try:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (source.slot,),
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        click.echo(f"  slot {source.slot}: none")
    else:
        click.echo(f"  slot {source.slot}: {int(row[0] or 0)} bytes of WAL not yet in the log")


@cdc.command(name="remove")
@click.argument("name")
@click.option(
    "--keep-slot",
    is_flag=True,
    help="Leave the replication slot and publication in the database.",
)
@click.pass_obj
def remove(settings: LogSettings, name: str, keep_slot: bool) -> None:
    """Forget the capture NAME, and drop its replication slot (which holds WAL back)."""
    with _errors(), settings.open() as log:
        source = get_source(log, name)
        if source.connect_url:
            debezium.unregister(source)
        # forgotten first, so a `cdc run` that finds its slot gone knows it was removed
        remove_source(log, name)
        if not keep_slot:
            conn = db.connect(source)
            try:
                _drop_slot(conn, source)
                db.drop_publication(conn, source)
            finally:
                conn.close()
    click.echo(f"removed CDC {name!r} (topic {source.topic!r} kept)")


def _drop_slot(conn: object, source: CdcSource, timeout: float = 30.0) -> None:
    """Drop the slot once no one reads it (Debezium's task lets go a moment after its delete)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.drop_slot(conn, source)
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise CdcError(
                    f"replication slot {source.slot!r} is still in use after {timeout:.0f} s: "
                    "stop what reads it, then `SELECT pg_drop_replication_slot(...)`"
                ) from None
            time.sleep(0.5)


@cdc.command(name="run")
@click.argument("name")
@click.option(
    "--until-idle",
    is_flag=True,
    help="Stop once every committed change is in the log, instead of following the table.",
)
@click.pass_obj
def run(settings: LogSettings, name: str, until_idle: bool) -> None:
    """Copy the table NAME captures, then follow its changes (restartable; Ctrl-C stops).

    A restart, even after kill -9, resumes where the log says the last run
    stopped: no change is lost or written twice.
    """
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _errors(), settings.open() as log:
            source = get_source(log, name)
            if source.connect_url:
                raise CdcError(
                    f"CDC {name!r} is Debezium's, on the Kafka Connect worker at "
                    f"{source.connect_url}: it runs there (see `loopline cdc status {name}`)"
                )
            click.echo(f"cdc {name}: {source.schema}.{source.table} -> {source.topic}", err=True)
            report = run_cdc(log, source, stop=stop, until_idle=until_idle)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if report.removed:
        click.echo(f"cdc {name}: removed (`loopline cdc remove`) while running; stopped")
    click.echo(
        f"cdc {name}: copied {report.snapshot_rows} rows, wrote {report.changes} changes "
        f"of {report.transactions} transactions, dead-lettered {report.dead_lettered}; "
        f"in the log up to {report.lsn or 'the start'}"
    )
