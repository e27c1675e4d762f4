"""``loopline ingest``, ``loopline ingest-server`` and ``loopline schema-registry``.

How data from outside reaches the log: files (CSV, JSON lines, Parquet), an
HTTP endpoint, and a Confluent-compatible registry API so that Kafka
ecosystem tools can share loopline's contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.http_options import LIMITS_HELP, HTTPServing, http_options
from loopline.cli.output import is_terminal, plural
from loopline.cli.settings import LogSettings
from loopline.log import parse_size


@contextmanager
def _bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (only on a terminal); yields `advance(rows)`."""
    if not is_terminal("stderr"):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = [
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


@click.command(
    epilog="""\b
Examples:
  loopline ingest clicks.csv --topic clicks --key member_id --time-column at
  loopline ingest events.jsonl --topic events --contract events
  loopline ingest profiles.parquet --topic profiles --key member_id""",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--topic", required=True, help="The topic to write to.")
@click.option(
    "--contract",
    metavar="NAME",
    help="Validate rows against this contract (default: the one the topic is bound to).",
)
@click.option("--key", "key", metavar="FIELD", help="Key each record by this column.")
@click.option(
    "--time-column",
    metavar="COLUMN",
    help="Take each record's event time from this column (ISO-8601 or epoch s/ms).",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Write every row again, even those an earlier run of this ingest wrote.",
)
@click.pass_obj
def ingest(
    settings: LogSettings,
    file: str,
    topic: str,
    contract: str | None,
    key: str | None,
    time_column: str | None,
    restart: bool,
) -> None:
    """Write the rows of FILE (CSV, JSON lines or Parquet) to a topic, exactly once.

    Rows that break the contract go to the topic's dead-letter topic with the
    reason. An interrupted ingest run again resumes where it stopped, without
    duplicates (the same file into the same topic with the same options; a
    topic deleted and created again gets every row again). The summary always
    satisfies read = produced + dead-lettered. Exits 1, saying why, when
    nothing was produced.
    """
    from loopline.connectors.files import count_rows, ingest_file

    try:
        with (
            opened_registry(settings) as (log, registry),
            _bar(f"ingest {topic}", count_rows(file)) as advance,
        ):
            report = ingest_file(
                log,
                file,
                topic,
                contract=contract,
                key=key,
                time_column=time_column,
                registry=registry,
                progress=advance,
                restart=restart,
            )
    except (ValueError, OSError) as exc:  # a file that cannot be ingested; the message says why
        raise CLIError(str(exc)) from None
    skipped = (
        f", {plural(report.skipped, 'row')} already ingested earlier" if report.skipped else ""
    )
    click.echo(
        f"read {plural(report.read, 'row')}: produced {report.produced} to {topic}, "
        f"dead-lettered {report.dead_lettered} to {topic}.dlq{skipped}"
    )
    if report.as_text:
        click.echo(
            f"warning: topic {topic!r} has no contract, so every value of the CSV columns "
            f'{", ".join(map(repr, report.as_text))} was written as a string ("5.5", not '
            "5.5); features that sum or average them dead-letter every record, and min and max "
            "compare them as text. To write numbers, register a contract and ingest with it: "
            f"loopline contracts register {topic} --schema {topic}.avsc, then "
            f"loopline ingest FILE --topic {topic} --contract {topic}",
            err=True,
        )
    if report.produced:
        return
    if report.read:
        why = (
            f"every one of the {plural(report.read, 'row')} read was dead-lettered; see why "
            f"with `loopline dlq inspect {topic}`, fix the file or the options, and run again"
        )
    elif report.skipped:
        why = (
            f"an earlier run wrote all {plural(report.skipped, 'row')} of {file} to {topic} "
            "(same content, same options); pass --restart to write them again"
        )
    else:
        why = f"{file} has no rows"
    raise CLIError(f"nothing was produced: {why}")


@click.command(
    "ingest-server",
    epilog="""\b
Example:
  LOOPLINE_INGEST_TOKEN=$(openssl rand -hex 16) loopline ingest-server --port 8080
  curl -H "Authorization: Bearer $LOOPLINE_INGEST_TOKEN" -d '[{"member_id": "m-1"}]' \\
       'http://127.0.0.1:8080/v1/topics/clicks/records?key=member_id'

"""
    + LIMITS_HELP,
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@http_options("LOOPLINE_INGEST_TOKEN")
@click.option(
    "--max-records",
    default=10_000,
    show_default=True,
    type=int,
    help="Refuse requests with more records.",
)
@click.option(
    "--max-record",
    metavar="SIZE",
    help="Refuse requests holding a record larger than this, encoded (default: 999000 "
    "bytes, what Kafka takes by default).",
)
@click.pass_obj
def ingest_server(
    settings: LogSettings,
    host: str,
    port: int,
    http: HTTPServing,
    max_records: int,
    max_record: str | None,
) -> None:
    """Serve the HTTP ingest endpoint: POST /v1/topics/{topic}/records (OpenAPI at /docs).

    A request is all or nothing: if any record breaks the topic's contract, or
    is too large for the log, the answer is 4xx with every bad record's index
    and reason, and nothing is written. 200 is answered only once the log has
    acknowledged the records.
    """
    from loopline.connectors.http import MAX_RECORD_BYTES, serve

    max_record_bytes = parse_size(max_record) or MAX_RECORD_BYTES
    with opened_registry(settings) as (log, registry):
        url = f"http://{host}:{port}"
        http.announce(
            "ingest endpoint",
            f"{url} (OpenAPI at /docs)",
            "/healthz and /docs",
            host=host,
            port=port,
        )
        serve(
            log,
            registry,
            host=host,
            port=port,
            limits=http.limits,
            token=http.token,
            max_body_bytes=http.max_body_bytes,
            max_records=max_records,
            max_record_bytes=max_record_bytes,
            log_level="info",
        )


@click.command("schema-registry", epilog=LIMITS_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@http_options("LOOPLINE_REGISTRY_TOKEN")
@click.option(
    "--public-reads",
    is_flag=True,
    help="With a token: let reads through without it (GETs, schema lookups, compatibility "
    "checks); registering and setting levels still need it.",
)
@click.pass_obj
def schema_registry_command(
    settings: LogSettings, host: str, port: int, http: HTTPServing, public_reads: bool
) -> None:
    """Serve the log's contracts as a Confluent-compatible Schema Registry API.

    Kafka tools and clients that speak Schema Registry (confluent-kafka's Avro
    serializers, Kafka Connect, ...) then share loopline's contracts and read
    and write loopline's Avro topics. With a token, give them
    ``basic.auth.user.info=loopline:TOKEN`` (or ``http://loopline:TOKEN@HOST:PORT``):
    the token is also taken as a basic-auth password.
    """
    from loopline.contracts.registry_http import serve_registry

    with opened_registry(settings) as (_, registry):
        opened = "reads (GET, lookups, compatibility checks) and /docs" if public_reads else "/docs"
        http.announce("schema registry API", f"http://{host}:{port}", opened, host=host, port=port)
        serve_registry(
            registry,
            host=host,
            port=port,
            limits=http.limits,
            token=http.token,
            public_reads=public_reads,
            max_body_bytes=http.max_body_bytes,
        )
