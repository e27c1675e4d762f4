"""``loopline topics``: list, create, describe and delete the topics of the log."""

from __future__ import annotations

import json

import click

from loopline.cli.errors import CLIError
from loopline.cli.output import echo_table, format_duration, format_size, is_terminal, plural
from loopline.cli.settings import LogSettings, parse_pairs
from loopline.log import TopicConfig, TopicInfo, TopicNotFound, parse_duration, parse_size


def _summary(config: TopicConfig) -> str:
    parts = [plural(config.partitions, "partition"), f"cleanup {config.cleanup_policy}"]
    if config.retention_ms is not None:
        parts.append(f"retention {format_duration(config.retention_ms)}")
    if config.retention_bytes is not None:
        parts.append(f"retention bytes {format_size(config.retention_bytes)}")
    return ", ".join(parts)


def _as_json(info: TopicInfo) -> dict[str, object]:
    config = info.config
    return {
        "name": info.name,
        "partitions": config.partitions,
        "cleanup": config.cleanup_policy,
        "retention_ms": config.retention_ms,
        "retention_bytes": config.retention_bytes,
        "config": dict(config.extra),
        "offsets": [
            {"partition": p.partition, "start": p.start, "end": p.end} for p in info.partitions
        ],
    }


@click.group(name="topics")
def topics() -> None:
    """List, create, describe and delete topics.

    \b
    Examples:
      loopline topics list
      loopline topics create clicks --partitions 6 --retention 7d
      loopline topics describe clicks
      loopline topics delete clicks --yes
    """


@topics.command(name="list", epilog="Example: loopline topics list --json | jq -r '.[].name'")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def list_topics(settings: LogSettings, as_json: bool) -> None:
    """List every topic with its partitions and cleanup policy.

    On a terminal this is a table; otherwise one tab-separated line per topic:
    name, partitions, cleanup.
    """
    with settings.open(read_only=True) as log:
        infos = []
        for name in log.list_topics():
            try:
                infos.append(log.describe_topic(name))
            except TopicNotFound:
                continue  # deleted since it was listed
    if as_json:
        click.echo(json.dumps([_as_json(info) for info in infos], indent=2))
        return
    if not infos and is_terminal("stdout"):
        click.echo("no topics yet: create one with `loopline topics create NAME`", err=True)
        return
    rows = [[i.name, str(i.config.partitions), i.config.cleanup_policy] for i in infos]
    echo_table(None, ["topic", "partitions", "cleanup"], rows)


@topics.command(
    name="create",
    epilog="""\b
Examples:
  loopline topics create clicks --partitions 6 --retention 7d
  loopline topics create prices --compact
  loopline topics create events --retention-bytes 1GiB --config segment.ms=3600000""",
)
@click.argument("name")
@click.option(
    "--partitions",
    "-p",
    type=int,
    default=1,
    show_default=True,
    help="Number of partitions: the most consumers of one group that can share it.",
)
@click.option(
    "--compact",
    is_flag=True,
    help="Keep only the latest value of every key instead of deleting by age (not for a "
    "table that datasets read: they need its history).",
)
@click.option(
    "--retention",
    metavar="DURATION",
    help="Delete records older than this: 30m, 12h, 7d, 2w or forever (the default).",
)
@click.option(
    "--retention-bytes",
    metavar="SIZE",
    help="Delete the oldest records once a partition holds more: 500MB, 1GiB, ...",
)
@click.option(
    "--config",
    "extra",
    metavar="KEY=VALUE",
    multiple=True,
    help="A backend topic setting passed through unchanged (on Kafka any topic "
    "config, e.g. segment.ms=3600000). Repeatable.",
)
@click.option(
    "--contract",
    metavar="NAME",
    help="Bind the topic to a registered contract: its records must follow it.",
)
@click.option(
    "--encoding",
    type=click.Choice(["json", "avro"]),
    default="json",
    show_default=True,
    help="How the contract's records are encoded (avro: Confluent wire format).",
)
@click.option(
    "--if-not-exists",
    is_flag=True,
    help="Succeed without changing anything if the topic already exists.",
)
@click.pass_obj
def create_topic(
    settings: LogSettings,
    name: str,
    partitions: int,
    compact: bool,
    retention: str | None,
    retention_bytes: str | None,
    extra: tuple[str, ...],
    contract: str | None,
    encoding: str,
    if_not_exists: bool,
) -> None:
    """Create a topic, optionally bound to a contract."""
    config = TopicConfig(
        partitions=partitions,
        compact=compact,
        retention_ms=parse_duration(retention),
        retention_bytes=parse_size(retention_bytes),
        extra=parse_pairs(extra, "--config"),
    )
    if if_not_exists:
        with settings.open() as log:
            if name in log.list_topics():
                click.echo(f"topic {name!r} already exists")
                return
    if contract is not None:
        from loopline.cli.contracts import opened_registry

        with opened_registry(settings) as (log, registry):
            registry.latest(contract)  # refuse an unknown contract before creating anything
            log.create_topic(name, config)
            registry.bind(name, contract, encoding)  # type: ignore[arg-type]
        click.echo(
            f"created topic {name!r} ({_summary(config)}), bound to contract {contract!r} "
            f"({encoding})"
        )
        return
    with settings.open() as log:
        log.create_topic(name, config)
    click.echo(f"created topic {name!r} ({_summary(config)})")


@topics.command(name="describe", epilog="Example: loopline topics describe clicks")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_obj
def describe_topic(settings: LogSettings, name: str, as_json: bool) -> None:
    """Show a topic's settings and the offsets of its partitions.

    `start` is the first offset still held, `end` the offset the next record
    will get; `records` is their difference (an upper bound once compaction or
    retention has removed records).
    """
    with settings.open(read_only=True) as log:
        info = log.describe_topic(name)
    if as_json:
        click.echo(json.dumps(_as_json(info), indent=2))
        return
    config = info.config
    lines = [
        ("topic", info.name),
        ("partitions", str(config.partitions)),
        ("cleanup", config.cleanup_policy),
        ("retention", format_duration(config.retention_ms)),
        ("retention bytes", format_size(config.retention_bytes)),
        *((f"config {key}", value) for key, value in sorted(config.extra.items())),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label + ':':<{width + 1}} {value}")
    click.echo()
    rows = [[str(p.partition), str(p.start), str(p.end), str(p.records)] for p in info.partitions]
    if not is_terminal("stdout"):
        click.echo("partition\tstart\tend\trecords")
    echo_table(None, ["partition", "start", "end", "records"], rows)


@topics.command(name="delete", epilog="Example: loopline topics delete clicks --yes")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking for confirmation.")
@click.pass_obj
def delete_topic(settings: LogSettings, name: str, yes: bool) -> None:
    """Delete a topic and all of its records.

    On a terminal this asks for confirmation; elsewhere (scripts, CI) it
    refuses unless --yes is given.
    """
    with settings.open() as log:
        info = log.describe_topic(name)
        if not yes:
            if not is_terminal("stdin"):
                raise CLIError(
                    f"refusing to delete topic {name!r} without confirmation: pass --yes"
                )
            held = plural(sum(p.records for p in info.partitions), "record")
            click.confirm(f"Delete topic {name!r} and its {held}?", abort=True, err=True)
        log.delete_topic(name)
    click.echo(f"deleted topic {name!r}")
