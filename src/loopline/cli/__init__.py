"""The ``loopline`` command: one subcommand per part of the loop.

Global options say which log to use; each subcommand lives in its own module
of this package, named in `COMMANDS` below and imported when it is used.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(cli, ["--version"]).output.startswith("loopline, version")
True
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from loopline import __version__
from loopline.cli.errors import CLIError
from loopline.cli.lazy_group import LazyGroup
from loopline.cli.settings import LogSettings, parse_pairs, read_properties
from loopline.log import DEFAULT_LOG_URL, default_log_url

__all__ = ["CLIError", "cli", "main"]


# Each command is imported when it is used (LazyGroup): name -> module:attribute.
COMMANDS = {
    "alerts": "loopline.cli.monitor:alerts",
    "cdc": "loopline.cli.cdc:cdc",
    "consume": "loopline.cli.consume:consume",
    "contracts": "loopline.cli.contracts:contracts",
    "dashboard": "loopline.cli.dashboard:dashboard",
    "dataset": "loopline.cli.dataset:dataset",
    "demo": "loopline.cli.demo:demo",
    "dlq": "loopline.cli.dlq:dlq",
    "experiments": "loopline.cli.experiments:experiments",
    "features": "loopline.cli.features:features",
    "ingest": "loopline.cli.ingest:ingest",
    "ingest-server": "loopline.cli.ingest:ingest_server",
    "models": "loopline.cli.models:models",
    "monitor": "loopline.cli.monitor:monitor",
    "outcomes": "loopline.cli.outcomes:outcomes",
    "produce": "loopline.cli.produce:produce",
    "schema-registry": "loopline.cli.ingest:schema_registry_command",
    "serve": "loopline.cli.serve:serve",
    "topics": "loopline.cli.topics:topics",
    "train": "loopline.cli.train:train",
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"""\b
Examples:
  loopline topics create clicks --partitions 3
  loopline produce clicks --key member_id < clicks.jsonl
  loopline consume clicks --from-beginning --max 10
  loopline --log kafka://localhost:9092 topics list
  loopline --log kafka://broker:9093 --kafka-config-file client.properties topics list

\b
The log defaults to $LOOPLINE_LOG, else {DEFAULT_LOG_URL}.""",
)
@click.version_option(__version__, "--version", "-V", prog_name="loopline")
@click.option(
    "--log",
    "log_url",
    metavar="URL",
    help="The log: embedded:PATH (a local directory) or "
    "kafka://host:port[,host:port...]. "
    f"Default: $LOOPLINE_LOG, else {DEFAULT_LOG_URL}.",
)
@click.option(
    "--kafka-config",
    "kafka_pairs",
    metavar="KEY=VALUE",
    multiple=True,
    help="A librdkafka setting for kafka:// logs (e.g. security.protocol=SASL_SSL); "
    "repeatable, wins over --kafka-config-file. Secret values are never printed, "
    "but other users may see command lines: keep passwords in the file.",
)
@click.option(
    "--kafka-config-file",
    metavar="PATH",
    envvar="LOOPLINE_KAFKA_CONFIG_FILE",
    type=click.Path(dir_okay=False),
    help="A Java properties file of librdkafka settings (key=value lines, # comments), "
    "as used by Kafka's own tools. Default: $LOOPLINE_KAFKA_CONFIG_FILE.",
)
@click.option(
    "--schema-registry",
    "schema_registry",
    metavar="URL",
    envvar="LOOPLINE_SCHEMA_REGISTRY",
    help="Use an external Confluent-compatible schema registry instead of the one "
    "kept in the log. Default: $LOOPLINE_SCHEMA_REGISTRY, else the log's own.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    log_url: str | None,
    kafka_pairs: tuple[str, ...],
    kafka_config_file: str | None,
    schema_registry: str | None,
) -> None:
    """loopline: machine learning in production on a streaming log.

    Start with `loopline demo`: the whole loop on a simulated business. Then:
    topics and their contracts, data in from files and HTTP, features, models,
    serving, outcomes, on the embedded log or on Apache Kafka.
    """
    url = log_url or default_log_url()
    from_env = ctx.get_parameter_source("kafka_config_file") is ParameterSource.ENVIRONMENT
    if from_env and not url.startswith("kafka:"):
        kafka_config_file = None  # a Kafka setting of the environment, not meant for this log
    config = read_properties(kafka_config_file) if kafka_config_file else {}
    config.update(parse_pairs(kafka_pairs, "--kafka-config"))
    ctx.obj = LogSettings(url=url, kafka_config=config, schema_registry=schema_registry)


def main() -> None:
    """Run the ``loopline`` command (the console script's entry point)."""
    cli(prog_name="loopline")
