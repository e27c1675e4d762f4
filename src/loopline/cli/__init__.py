"""The ``loopline`` command: one subcommand per part of the loop.

Global options say which log to use; each subcommand lives in its own module
of this package and is registered on `cli` below.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(cli, ["--version"]).output.startswith("loopline, version")
True
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from loopline import __version__
from loopline.cli.cdc import cdc
from loopline.cli.consume import consume
from loopline.cli.contracts import contracts
from loopline.cli.dashboard import dashboard
from loopline.cli.dataset import dataset
from loopline.cli.demo import demo
from loopline.cli.dlq import dlq
from loopline.cli.errors import CLIError, LogErrorGroup
from loopline.cli.experiments import experiments
from loopline.cli.experiments_report import report as experiments_report
from loopline.cli.experiments_run import run as experiments_run
from loopline.cli.features import features
from loopline.cli.ingest import ingest, ingest_server, schema_registry_command
from loopline.cli.models import models
from loopline.cli.monitor import alerts, monitor
from loopline.cli.outcomes import outcomes
from loopline.cli.produce import produce
from loopline.cli.serve import serve
from loopline.cli.settings import LogSettings, parse_pairs, read_properties
from loopline.cli.topics import topics
from loopline.cli.train import train
from loopline.log import DEFAULT_LOG_URL, default_log_url

__all__ = ["CLIError", "cli", "main"]


@click.group(
    cls=LogErrorGroup,
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


cli.add_command(demo)
cli.add_command(topics)
cli.add_command(produce)
cli.add_command(consume)
cli.add_command(contracts)
cli.add_command(dlq)
cli.add_command(ingest)
cli.add_command(ingest_server)
cli.add_command(cdc)
cli.add_command(schema_registry_command)
cli.add_command(dataset)
cli.add_command(features)
cli.add_command(models)
cli.add_command(serve)
cli.add_command(outcomes)
cli.add_command(experiments)
cli.add_command(train)
experiments.add_command(experiments_report)
experiments.add_command(experiments_run)
cli.add_command(monitor)
cli.add_command(alerts)
cli.add_command(dashboard)


def main() -> None:
    """Run the ``loopline`` command (the console script's entry point)."""
    cli(prog_name="loopline")
