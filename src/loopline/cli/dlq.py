"""``loopline dlq``: look at dead letters and replay them once fixed."""

from __future__ import annotations

import json

import click

from loopline.cli.contracts import opened_registry
from loopline.cli.output import value_json
from loopline.cli.settings import LogSettings
from loopline.contracts.replay import pending, replay


@click.group()
def dlq() -> None:
    """Dead letters: records set aside because they broke their topic's contract.

    \b
    Examples:
      loopline dlq inspect clicks
      loopline contracts register clicks --schema fixed.avsc && loopline dlq replay clicks
    """


@dlq.command("inspect")
@click.argument("topic")
@click.option("--all", "everything", is_flag=True, help="Include dead letters already replayed.")
@click.option("--max", "limit", type=int, help="Show at most N dead letters.")
@click.pass_obj
def inspect(settings: LogSettings, topic: str, everything: bool, limit: int | None) -> None:
    """Show TOPIC's pending dead letters as JSON lines: the reason, the source and the record."""
    with settings.open() as log:
        letters = pending(log, topic, everything=everything, limit=limit)
    for d in letters:
        line = {
            "reason": d.reason,
            "contract": d.contract,
            "source": {
                "topic": d.source_topic,
                "partition": d.source_partition,
                "offset": d.source_offset,
            },
            "key": d.record.key.decode(errors="replace") if d.record.key is not None else None,
            "value": json.loads(value_json(d.record.value)),
            "dlq_offset": d.record.offset,
        }
        click.echo(json.dumps(line))
    click.echo(
        f"{len(letters)} dead letter{'s' if len(letters) != 1 else ''} in {topic}.dlq", err=True
    )


@dlq.command("replay")
@click.argument("topic")
@click.pass_obj
def replay_command(settings: LogSettings, topic: str) -> None:
    """Re-submit TOPIC's pending dead letters that its current contract accepts.

    Letters that still fail go back to the dead-letter topic with the new reason.
    """
    with opened_registry(settings) as (log, registry):
        report = replay(log, registry, topic)
    click.echo(
        f"replayed {report.replayed} to {topic}; {report.returned} still failing, "
        f"back in {topic}.dlq"
    )
