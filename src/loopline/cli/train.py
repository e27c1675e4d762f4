"""``loopline train``: fit a declared model and publish it: once, on a schedule, or online.

The model is declared once in the application (``Model(name, trainer=...)``);
flags choose how fresh it is kept, never how it is written: once from a
dataset, every 15 minutes from the newest data, or continuously from the
stream of labelled examples.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from click.core import ParameterSource

from loopline.app import App, AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.entity_options import entity_columns, entity_option, parse_entities
from loopline.cli.errors import CLIError
from loopline.cli.interrupts import stopping
from loopline.cli.label_option import label_option, relabelled
from loopline.cli.output import plural
from loopline.cli.progress_bars import ProgressBars, progress_bars
from loopline.cli.settings import LogSettings
from loopline.cli.train_output import metrics_text, seconds_text, summary, warn_derived_errors
from loopline.features.offline.events import BuildError
from loopline.log import parse_duration
from loopline.models import ModelLoadError, ModelNotFound, ModelRegistry, ModelRegistryError
from loopline.models.evaluation import DataError
from loopline.models.trainers import LoadError
from loopline.models.training import TrainingError, TrainResult

_USER_ERRORS = (
    AppError,
    BuildError,
    DataError,
    TrainingError,
    ModelNotFound,
    ModelRegistryError,
    ModelLoadError,
    LoadError,
)
_ONLINE_OPTIONS = ("every_examples", "every_seconds", "validate_every", "group", "until_caught_up")


@contextmanager
def _user_errors() -> Iterator[None]:
    """Errors a user can act on (the data, the app, the keys, the registry) as ``error:``."""
    try:
        yield
    except _USER_ERRORS as exc:
        raise CLIError(str(exc)) from None


def _interval(text: str) -> float:
    try:
        ms = parse_duration(text)
    except Exception as exc:  # the log's own message says how to write a duration
        raise click.BadParameter(str(exc), param_hint="'--every'") from None
    if not ms:
        raise click.BadParameter(
            f"{text!r} is not a schedule: use a duration such as 30s, 15m or 1h",
            param_hint="'--every'",
        )
    return ms / 1000


def _check_options(ctx: click.Context, options: dict[str, Any]) -> None:
    """The flags that cannot go together, each refused with what to do instead."""

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is not ParameterSource.DEFAULT

    spine, labelled = options["spine"], options["labelled"]
    if options["reproduce"] is not None:
        extra = [f"--{n}" for n in ("spine", "labelled", "every", "online") if options.get(n)]
        if extra:
            raise click.UsageError(
                f"--reproduce reads the data its version's manifest names: drop {', '.join(extra)}"
            )
        return
    if options["online"]:
        if options["every"] or spine:
            raise click.UsageError(
                "--online learns from the labelled stream as it comes: give --labelled TOPIC, "
                "and drop --every and --spine"
            )
        if not labelled:
            raise click.UsageError(
                "--online needs the topic of labelled examples: --labelled TOPIC"
            )
    else:
        if (spine is None) == (labelled is None):
            raise click.UsageError(
                "say where the examples are: --spine FILE_OR_TOPIC (a dataset is built with "
                "the application's features) or --labelled TOPIC (labelled examples), one of them"
            )
        used = [f"--{n.replace('_', '-')}" for n in _ONLINE_OPTIONS if given(n)]
        if used:
            verb = "apply" if len(used) > 1 else "applies"
            raise click.UsageError(f"{', '.join(used)} {verb} only with --online")
    if given("allow_missing_history") and not spine:
        raise click.UsageError("--allow-missing-history applies to a dataset built from --spine")
    if options["runs"] is not None and not options["every"]:
        raise click.UsageError("--runs counts the trainings of --every: add --every DURATION")


@click.command(
    epilog="""\b
Examples:
  loopline train shop.app:app --model accept --spine labels.csv
  loopline train shop.app:app --model accept --labelled shop-examples --alias candidate
  loopline train shop.app:app --model accept --labelled shop-examples --every 15m
  loopline train shop.app:app --model accept-online --labelled shop-examples --online \\
      --every-examples 10000 --every-seconds 60
  loopline train shop.app:app --model accept --reproduce 7

\b
The data comes from a spine (a file or topic of entity, instant and label; the
application's features are computed as of each instant, as `loopline dataset
build` does) or from a topic of labelled examples, JSON objects such as
{"features": {"clicks_1h": 3}, "label": 1, "at": 1714564800000} (or flat, with
the features beside the label). Rows are split by time: the model is fitted on
the earlier 80 % (the model's test_fraction) and evaluated on the later rest,
and that model is published, signed, with its metrics and the exact offsets
read. Publishing needs a signing key: LOOPLINE_SIGNING_KEY (a shared secret)
or LOOPLINE_SIGNING_KEY_FILE (from `loopline models keygen`).""",
)
@click.argument("app_spec", metavar="APP")
@click.option("--model", "model_name", required=True, metavar="NAME", help="The model to train.")
@click.option(
    "--spine",
    metavar="FILE_OR_TOPIC",
    help="Build the dataset of this spine (Parquet, CSV, JSON lines file, or topic).",
)
@click.option(
    "--allow-missing-history",
    is_flag=True,
    help="With --spine: give the features' defaults to rows whose table history compaction or "
    "retention removed (counted in the manifest), instead of refusing.",
)
@click.option("--labelled", metavar="TOPIC", help="Learn from this topic of labelled examples.")
@label_option
@entity_option
@click.option("--alias", metavar="ALIAS", help="Point this alias (e.g. candidate) at each version.")
@click.option(
    "--every",
    metavar="DURATION",
    help="Retrain on this schedule (e.g. 15m, 1h), each time from the newest data, until stopped.",
)
@click.option("--runs", type=click.IntRange(min=1), metavar="N", help="With --every: stop after N.")
@click.option(
    "--online", is_flag=True, help="Learn continuously from --labelled, one example at a time."
)
@click.option(
    "--every-examples",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    metavar="N",
    help="With --online: publish a version after N new examples...",
)
@click.option(
    "--every-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="T",
    help="...or after T seconds, whichever comes first.",
)
@click.option(
    "--validate-every",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    metavar="K",
    help="With --online: score every K-th example before learning it (0: never).",
)
@click.option("--group", metavar="GROUP", help="With --online: the consumer group.")
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="With --online: stop once the examples present at the start are learned.",
)
@click.option(
    "--reproduce",
    "reproduce_version",
    type=click.IntRange(min=1),
    metavar="VERSION",
    help="Rebuild VERSION's data from its manifest, retrain, compare; publishes nothing.",
)
@click.pass_context
def train(
    ctx: click.Context,
    app_spec: str,
    model_name: str,
    spine: str | None,
    labelled: str | None,
    alias: str | None,
    every: str | None,
    runs: int | None,
    online: bool,
    every_examples: int,
    every_seconds: float,
    validate_every: int,
    group: str | None,
    until_caught_up: bool,
    reproduce_version: int | None,
    allow_missing_history: bool,
    label: str | None,
    entity_values: tuple[str, ...],
) -> None:
    """Train model NAME of APP (module:attribute) and publish it as a new signed version.

    Once by default; with --every on a schedule; with --online continuously.
    Progress goes to stderr, one line per published version to stdout.
    """
    options = dict(
        spine=spine, labelled=labelled, every=every, online=online, reproduce=reproduce_version
    )
    _check_options(ctx, {**options, "runs": runs})
    if label is not None and reproduce_version is not None:
        raise CLIError("--label does not apply with --reproduce: the version's manifest names it")
    if every:
        _interval(every)  # a bad duration fails before anything is opened
    settings: LogSettings = ctx.obj
    with _user_errors():
        app = relabelled(load_app(app_spec), model_name, label)
        app.model(model_name)
        entities = _spine_entities(app, model_name, entity_values, spine)
    with (
        _user_errors(),
        opened_registry(settings) as (log, schemas),
        _models(log) as registry,
        progress_bars() as bars,
    ):
        if reproduce_version is not None:
            _reproduce(log, app, model_name, reproduce_version, registry, schemas, bars)
        elif online:
            _online(
                log,
                app,
                model_name,
                labelled,
                registry,
                schemas,
                bars,
                dict(
                    every_examples=every_examples,
                    every_seconds=every_seconds,
                    validate_every=validate_every,
                    group=group,
                    alias=alias,
                    until_caught_up=until_caught_up,
                ),
            )
        elif every:
            _periodic(
                log,
                app,
                model_name,
                spine,
                labelled,
                alias,
                every,
                runs,
                registry,
                schemas,
                bars,
                allow_missing_history,
                entities,
            )
        else:
            from loopline.models.training import train_once

            result = train_once(
                log,
                app,
                model_name,
                spine=spine,
                labelled_topic=labelled,
                registry=registry,
                alias=alias,
                schemas=schemas,
                progress=bars,
                allow_missing_history=allow_missing_history,
                entities=entities,
            )
            if bars is not None:
                bars.clear()
            click.echo(summary(result))
            warn_derived_errors(result)


def _spine_entities(
    app: App, model_name: str, values: tuple[str, ...], spine: str | None
) -> dict[str, str] | None:
    """The related entities of a spine (--entity NAME=COLUMN ...), or None for the model's one."""
    if values and spine is None:
        raise CLIError("--entity applies only with --spine")
    entity, named = parse_entities(values)
    if entity is not None and entity != app.model(model_name).entity:
        raise CLIError(
            f"--entity {entity}: model {model_name!r} is of entity "
            f"{app.model(model_name).entity!r}; name its spine's id columns as "
            f"--entity {app.model(model_name).entity}=COLUMN --entity OTHER=COLUMN"
        )
    return entity_columns(app, named) if named else None


@contextmanager
def _models(log: Any) -> Iterator[ModelRegistry]:
    try:
        registry = ModelRegistry(log)
    except ValueError as exc:  # a signing key of the environment that cannot be used
        raise CLIError(str(exc)) from None
    try:
        yield registry
    finally:
        registry.close()


def _periodic(
    log: Any,
    app: App,
    model_name: str,
    spine: str | None,
    labelled: str | None,
    alias: str | None,
    every: str,
    runs: int | None,
    registry: ModelRegistry,
    schemas: Any,
    bars: ProgressBars | None,
    allow_missing_history: bool,
    entities: dict[str, str] | None,
) -> None:
    from loopline.models.schedules import train_every

    source = f"spine {spine}" if spine else f"topic {labelled}"
    click.echo(
        f"training {model_name} of {app.name} every {every} from {source}; "
        "Ctrl-C stops after the run in progress",
        err=True,
    )

    def done(result: TrainResult) -> None:
        if bars is not None:
            bars.clear()
        click.echo(summary(result))
        warn_derived_errors(result)

    def failed(exc: Exception) -> None:
        if bars is not None:
            bars.clear()
        click.echo(f"error: {exc} (trying again at the next run)", err=True)

    with stopping() as stop:
        train_every(
            _interval(every),
            stop,
            log,
            app,
            model_name,
            spine=spine,
            labelled_topic=labelled,
            registry=registry,
            alias=alias,
            schemas=schemas,
            progress=bars,
            on_result=done,
            on_error=failed,
            runs=runs,
            allow_missing_history=allow_missing_history,
            entities=entities,
        )


def _online(
    log: Any,
    app: App,
    model_name: str,
    topic: str | None,
    registry: ModelRegistry,
    schemas: Any,
    bars: ProgressBars | None,
    options: dict[str, Any],
) -> None:
    from loopline.models.online import OnlineVersion, check_online, default_group, train_online
    from loopline.models.training import check_signer

    assert topic is not None
    model = app.model(model_name)
    check_signer(registry, model.name)
    check_online(model)  # before saying it starts
    group = options["group"] or default_group(app, model)
    click.echo(
        f"learning {model_name} of {app.name} online from {topic} (group {group}); a version "
        f"every {options['every_examples']:,} examples or {options['every_seconds']:g} s; "
        "Ctrl-C stops (what was learned since the last version is learned again on restart)",
        err=True,
    )

    def published(v: OnlineVersion) -> None:
        moved = f"; alias {options['alias']} -> v{v.version.version}" if options["alias"] else ""
        validated = f" (progressive, {v.validated:,} validated)" if v.validated else ""
        click.echo(
            f"published {v.version.name} v{v.version.version} (online; "
            f"{plural(v.examples, 'example')}, {v.total:,} in all): "
            f"{metrics_text(v.metrics)}{validated}{moved}"
        )

    started = time.monotonic()
    with stopping() as stop:
        stats = train_online(
            log,
            app,
            model_name,
            topic,
            registry=registry,
            stop=stop,
            schemas=schemas,
            on_publish=published,
            progress=bars,
            **{**options, "group": group},
        )
    if bars is not None:
        bars.clear()
    seconds = time.monotonic() - started
    resumed = f", went on from v{stats.resumed_from}" if stats.resumed_from else ""
    dead = f", {stats.dead_letters:,} dead letters to {topic}.dlq" if stats.dead_letters else ""
    click.echo(
        f"learned {plural(stats.examples, 'example')} in {seconds_text(seconds)} "
        f"({stats.examples / max(seconds, 1e-9):,.0f}/s), "
        f"{plural(len(stats.versions), 'version')} published{resumed}{dead}",
        err=True,
    )


def _reproduce(
    log: Any,
    app: App,
    model_name: str,
    version: int,
    registry: ModelRegistry,
    schemas: Any,
    bars: ProgressBars | None,
) -> None:
    from loopline.models.reproduction import reproduce

    result = reproduce(
        log, app, model_name, version, registry=registry, schemas=schemas, progress=bars
    )
    if bars is not None:
        bars.clear()
    what = f"{model_name} v{version}"
    artifact = "identical" if result.same_artifact else "different bytes"
    if not result.identical:
        params = "" if result.same_params else "; the trainer's parameters changed since"
        raise CLIError(
            f"{what} did not reproduce: scores differ by up to {result.max_difference:.3g} on "
            f"{result.test_rows:,} test rows (artifact: {artifact}){params}. Check that the "
            "trainer is deterministic (fixed seeds, one thread) and the code and libraries are "
            "those of the version"
        )
    click.echo(
        f"reproduced {what} from its manifest: identical scores on {result.test_rows:,} test "
        f"rows, artifact {artifact}; {metrics_text(result.metrics)}"
    )
