"""``loopline experiments``: start, follow, stop and conclude experiments kept on the log.

Every command reads or appends records of ``_loopline_experiments``
(`loopline.experiments.registry`); every ``loopline serve`` of the model
follows that topic and routes requests by what it says within a second, no
restart. ``conclude --promote`` moves the control arm's alias (``production``)
to the winner's version through the model registry, reason and all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import msgspec

from loopline.cli.errors import CLIError
from loopline.cli.lazy_group import LazyGroup
from loopline.cli.models import iso, opened_models
from loopline.cli.output import echo_table
from loopline.cli.settings import LogSettings
from loopline.experiments.records import METRICS, Arm, Experiment, ExperimentError
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.start import OptionError
from loopline.experiments.start import start as start_experiment
from loopline.models import promotion

__all__ = ["experiments"]


@contextmanager
def opened_experiments(settings: LogSettings) -> Iterator[ExperimentRegistry]:
    """The log's experiment registry; its errors as CLIErrors."""
    with settings.open() as log:
        registry = ExperimentRegistry(log)
        try:
            yield registry
        except ExperimentError as exc:
            raise CLIError(str(exc)) from None
        finally:
            registry.close()


def _target(arm: Arm) -> str:
    return f"v{arm.version}" if arm.version is not None else f"alias {arm.alias}"


def _arms(e: Experiment) -> str:
    return ", ".join(f"{a.name}={_target(a)} {a.weight:g}" for a in e.arms)


def _plain(e: Experiment) -> dict[str, Any]:
    return msgspec.to_builtins(e)


@click.group(
    cls=LazyGroup,
    lazy={
        "report": "loopline.cli.experiments_report:report",
        "run": "loopline.cli.experiments_run:run",
    },
    epilog="""\b
Examples:
  loopline experiments start ranker-v7 --model ranker --arm control=alias:production \\
      --arm v7=version:7 --weights 0.9,0.1 --guardrail mean_label:0.1
  loopline experiments start v8-canary --model ranker --arm control=alias:production \\
      --arm v8=version:8 --policy canary --ramp 0.01,0.05,0.25,0.5 --auto-conclude
  loopline experiments status ranker-v7
  loopline experiments stop ranker-v7 --reason "p99 latency"
  loopline experiments conclude ranker-v7 --winner v7 --promote
  loopline experiments history ranker-v7""",
)
def experiments() -> None:
    """Experiments: model versions compared on live traffic (A/B splits, bandits, canaries)."""


@experiments.command(
    "start",
    epilog="""\b
The first --arm is the control (usually the alias serving now). A split keeps
each unit (--unit: the request's entity, or context.FIELD) in one arm for the
experiment's life: a hash of (salt, unit). Weights default to equal shares;
a canary starts at the first step of --ramp. With --auto-conclude the
experiment's watcher (`loopline experiments run`) concludes it and moves the
alias when the treatment wins.""",
)
@click.argument("name")
@click.option("--model", "model", required=True, help="The model whose versions are compared.")
@click.option(
    "--arm",
    "arms",
    metavar="NAME=version:N|alias:A",
    multiple=True,
    required=True,
    help="An arm and what answers for it; repeat for each arm, the control first.",
)
@click.option(
    "--weights",
    metavar="W,W,...|NAME=W,...",
    help="Each arm's share of traffic, adding up to 1 (in --arm order, or by name).",
)
@click.option(
    "--policy",
    type=click.Choice(["split", "bandit", "canary"]),
    default="split",
    show_default=True,
    help="split: fixed weights (A/B); bandit: Thompson sampling moves them; "
    "canary: the treatment's weight follows --ramp while the guardrails hold.",
)
@click.option("--ramp", metavar="W,W,...", help="A canary's treatment weights, step by step.")
@click.option(
    "--ramp-every", type=int, default=500, show_default=True, help="Units per canary step."
)
@click.option(
    "--unit",
    default="entity",
    show_default=True,
    metavar="entity|context.FIELD",
    help="What keeps its arm: the request's entity, or a field of its context.",
)
@click.option(
    "--guardrail",
    "guardrails",
    metavar="METRIC[:MARGIN]",
    multiple=True,
    help="Roll back a treatment that is worse than control on METRIC by more than MARGIN "
    "(relative, e.g. mean_label:0.1); repeatable.",
)
@click.option(
    "--primary",
    type=click.Choice(list(METRICS)),
    default="mean_label",
    show_default=True,
    help="The metric that decides the winner.",
)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="The tests' level.")
@click.option(
    "--floor", type=float, default=0.05, show_default=True, help="A bandit arm's least weight."
)
@click.option("--auto-conclude", is_flag=True, help="Conclude and promote a clear winner.")
@click.option("--reason", default="started", show_default=True, help="Recorded in the history.")
@click.pass_obj
def start(settings: LogSettings, name: str, model: str, arms: tuple[str, ...], **kw: Any) -> None:
    """Start experiment NAME on model MODEL; serving routes by it within a second."""
    reason = kw.pop("reason")
    with opened_experiments(settings) as registry:
        try:
            started = start_experiment(registry, name, model, arms, reason=reason, **kw)
        except OptionError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{exc.option}'") from None
    click.echo(
        f"experiment {name!r} started on model {model!r} ({started.policy}, by {started.unit}): "
        f"{_arms(started)}; every `loopline serve` of {model!r} routes by it within a second"
    )


@experiments.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the experiment as one JSON object.")
@click.pass_obj
def status(settings: LogSettings, name: str, as_json: bool) -> None:
    """Show experiment NAME as it is now: state, arms and weights, policy, the last change."""
    with opened_experiments(settings) as registry:
        e = registry.get(name)
    if as_json:
        click.echo(json.dumps(_plain(e), indent=2))
        return
    guardrails = ", ".join(f"{g.metric}:{g.margin:g}" for g in e.guardrails) or "none"
    lines = [
        ("experiment", e.name),
        ("model", e.model),
        ("state", e.state.replace("_", " ")),
        ("policy", e.policy + (f" (ramp {','.join(f'{w:g}' for w in e.ramp)})" if e.ramp else "")),
        ("unit", e.unit),
        ("primary", e.primary),
        ("guardrails", guardrails),
        ("auto-conclude", "yes" if e.auto_conclude else "no"),
        ("revision", f"{e.revision} at {iso(e.changed_at)} by {e.by}: {e.reason}"),
    ]
    if e.verdict is not None:
        v = e.verdict
        lines.append(
            (
                "verdict",
                f"{v.arm} {v.metric} {v.estimate:g} [{v.low:g}, {v.high:g}], {v.units} units",
            )
        )
    for label, value in lines:
        click.echo(f"{label + ':':<15}{value}")
    rows = [
        [a.name, _target(a), f"{a.weight:g}", "control" if a.control else "treatment"]
        for a in e.arms
    ]
    echo_table(f"arms of {e.name}", ["arm", "answers", "weight", "role"], rows)


@experiments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_obj
def list_experiments(settings: LogSettings, as_json: bool) -> None:
    """List every experiment with its model, state, policy and arms."""
    with opened_experiments(settings) as registry:
        every = registry.list()
    if as_json:
        click.echo(json.dumps([_plain(e) for e in every], indent=2))
        return
    rows = [
        [e.name, e.model, e.state, e.policy, _arms(e), str(e.revision), iso(e.changed_at)]
        for e in every
    ]
    echo_table(
        "experiments",
        ["experiment", "model", "state", "policy", "arms", "revision", "changed"],
        rows,
    )


@experiments.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of every revision.")
@click.pass_obj
def history(settings: LogSettings, name: str, as_json: bool) -> None:
    """Every revision of experiment NAME, oldest first: when, state, weights, who, why."""
    with opened_experiments(settings) as registry:
        revisions = registry.history(name)
    if as_json:
        click.echo(json.dumps([_plain(e) for e in revisions], indent=2))
        return
    rows = [
        [str(e.revision), iso(e.changed_at), e.state, _arms(e), e.by, e.reason] for e in revisions
    ]
    echo_table(f"history of {name}", ["revision", "time", "state", "arms", "by", "reason"], rows)


@experiments.command("stop", epilog="Example: loopline experiments stop ranker-v7 --reason bug")
@click.argument("name")
@click.option("--reason", required=True, help="Why, recorded in the history.")
@click.pass_obj
def stop(settings: LogSettings, name: str, reason: str) -> None:
    """Stop experiment NAME: within a second every request is answered by the alias again."""
    with opened_experiments(settings) as registry:
        stopped = registry.stop(name, reason=reason)
    click.echo(
        f"experiment {name!r} stopped (revision {stopped.revision}): every `loopline serve` "
        f"of {stopped.model!r} answers with alias {stopped.control.alias or _target(stopped.control)} "
        "again within a second"
    )


@experiments.command(
    "conclude",
    epilog="""\b
Examples:
  loopline experiments conclude ranker-v7 --winner v7 --promote
  loopline experiments conclude ranker-v7 --winner control --reason "no difference"

\b
--promote points the control arm's alias at the winner's version, after
checking its signature (as `loopline models promote` does).""",
)
@click.argument("name")
@click.option("--winner", metavar="ARM", help="The arm that won (default: the verdict's arm).")
@click.option("--promote", is_flag=True, help="Move the control arm's alias to the winner.")
@click.option(
    "--reason", default="concluded", show_default=True, help="Recorded in both histories."
)
@click.pass_obj
def conclude(
    settings: LogSettings, name: str, winner: str | None, promote: bool, reason: str
) -> None:
    """Conclude experiment NAME (traffic returns to the alias), moving the alias if asked."""
    with opened_experiments(settings) as registry:
        e = registry.get(name)
        if e.state != "running":
            raise CLIError(
                f"experiment {name!r} is {e.state.replace('_', ' ')} already ({e.reason!r}); "
                f"move the alias with `loopline models promote {e.model} VERSION --alias ALIAS`"
            )
        winner = winner or (e.verdict.arm if e.verdict is not None else None)
        if winner is None and promote:
            raise CLIError(
                f"experiment {name!r} has no verdict yet: say which arm won with --winner "
                f"({', '.join(a.name for a in e.arms)})"
            )
        arm = e.arm(winner) if winner is not None else None
        why = f"experiment {name}: {winner} won ({reason})" if winner else reason
        if promote and arm is not None and not arm.control:
            move = _promotion(settings, e, arm)
        else:
            move = None
        concluded = registry.conclude(name, reason=why)
    said = f"experiment {name!r} concluded (revision {concluded.revision})"
    if winner:
        said += f", winner {winner}"
    if move is not None:
        alias, version = move
        with opened_models(settings) as models:
            promotion.promote(models, e.model, version, alias, reason=why, verify=False)
        said += f"; alias {alias!r} of model {e.model!r} now points at v{version}"
    click.echo(said)


def _promotion(settings: LogSettings, e: Experiment, arm: Arm) -> tuple[str, int]:
    """The alias to move and the version to move it to, checked before anything is written."""
    alias = e.control.alias
    if alias is None:
        raise CLIError(
            f"the control arm of {e.name!r} answers with v{e.control.version}, not an alias: "
            f"conclude without --promote and move an alias with `loopline models promote`"
        )
    with opened_models(settings) as models:
        version = models.version(e.model, arm.version) if arm.version is not None else None
        if version is None:
            version = models.alias(e.model, arm.alias or "")
            if version is None:
                raise CLIError(f"alias {arm.alias!r} of model {e.model!r} points at no version")
        if models.verifier is not None:
            models.load_artifact(version)  # a version serving would refuse is not promoted
        promotion.check_signer(models, e.model, alias)  # nor a move serving would refuse
    return alias, version.version
