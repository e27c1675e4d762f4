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
from loopline.cli.output import is_terminal, plural
from loopline.cli.settings import LogSettings


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
@click.pass_obj
def ingest(
    settings: LogSettings,
    file: str,
    topic: str,
    contract: str | None,
    key: str | None,
    time_column: str | None,
) -> None:
    """Write the rows of FILE (CSV, JSON lines or Parquet) to a topic, exactly once.

    Rows that break the contract go to the topic's dead-letter topic with the
    reason. An interrupted ingest run again resumes where it stopped, without
    duplicates. The summary always satisfies read = produced + dead-lettered.
    """
    from loopline.connectors.files import count_rows, ingest_file

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
        )
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


@click.command(
    "ingest-server",
    epilog="""\b
Example:
  LOOPLINE_INGEST_TOKEN=s3cret loopline ingest-server --port 8080
  curl -H 'Authorization: Bearer s3cret' -d '[{"member_id": "m-1", "item": 7}]' \\
       'http://127.0.0.1:8080/v1/topics/clicks/records?key=member_id'""",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--token",
    envvar="LOOPLINE_INGEST_TOKEN",
    metavar="TOKEN",
    help="Require 'Authorization: Bearer TOKEN' (default: $LOOPLINE_INGEST_TOKEN).",
)
@click.option(
    "--max-body",
    default="1MiB",
    show_default=True,
    metavar="SIZE",
    help="Refuse larger requests with 413.",
)
@click.option(
    "--max-records",
    default=10_000,
    show_default=True,
    type=int,
    help="Refuse requests with more records.",
)
@click.pass_obj
def ingest_server(
    settings: LogSettings,
    host: str,
    port: int,
    token: str | None,
    max_body: str,
    max_records: int,
) -> None:
    """Serve the HTTP ingest endpoint: POST /v1/topics/{topic}/records (OpenAPI at /docs).

    A request is all or nothing: if any record breaks the topic's contract the
    answer is 400 with every bad record's index and reason, and nothing is
    written. 200 is answered only once the log has acknowledged the records.
    """
    from loopline.connectors.http import serve
    from loopline.log import parse_size

    with opened_registry(settings) as (log, registry):
        click.echo(f"ingest endpoint on http://{host}:{port} (OpenAPI at /docs)", err=True)
        serve(
            log,
            registry,
            host=host,
            port=port,
            token=token,
            max_body_bytes=parse_size(max_body) or 1_048_576,
            max_records=max_records,
        )


@click.command("schema-registry")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@click.pass_obj
def schema_registry_command(settings: LogSettings, host: str, port: int) -> None:
    """Serve the log's contracts as a Confluent-compatible Schema Registry API.

    Kafka tools and clients that speak Schema Registry (confluent-kafka's Avro
    serializers, Kafka Connect, ...) then share loopline's contracts and read
    and write loopline's Avro topics.
    """
    from loopline.contracts.registry_http import serve_registry

    with opened_registry(settings) as (_, registry):
        click.echo(f"schema registry API on http://{host}:{port}", err=True)
        serve_registry(registry, host=host, port=port)
