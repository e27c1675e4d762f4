"""``loopline serve``: the prediction service of an application, over HTTP."""

from __future__ import annotations

import os
from contextlib import ExitStack

import click

from loopline.app import AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.http_options import LIMITS_HELP, HTTPServing, http_options
from loopline.cli.runner_options import RunnerOptions, runner_options
from loopline.cli.serve_log import show_serving_log, warn_if_alias_missing
from loopline.cli.settings import LogSettings


@click.command(
    epilog="""\b
Examples:
  loopline serve shop.app:app --port 8000
  LOOPLINE_SERVE_TOKEN=s3cret loopline serve shop.app:app --model accept --alias candidate
  curl -d '{"entity": "m-42", "candidates": ["i-1", "i-2"], "k": 1}' localhost:8000/v1/rank

\b
The model's artifacts are verified with $LOOPLINE_SIGNING_KEY (or
$LOOPLINE_VERIFY_KEY_FILE); every answer is written to the APP.decisions topic.

"""
    + LIMITS_HELP,
)
@click.argument("app_spec", metavar="APP")
@click.option("--model", "model", help="The model to serve (default: the application's only one).")
@click.option("--alias", default="production", show_default=True, help="The alias to follow.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@http_options("LOOPLINE_SERVE_TOKEN")
@click.option(
    "--max-candidates", default=1000, show_default=True, type=int, help="Per rank request."
)
@click.option(
    "--unknown-entities",
    type=click.Choice(["reject", "defaults"]),
    default="reject",
    show_default=True,
    help="An entity the online features hold nothing of: refuse with 404, or score "
    "it on the declared defaults.",
)
@click.option(
    "--from",
    "source",
    metavar="TOPIC",
    help="Score the requests of TOPIC (JSON bodies of predict or rank) instead of serving HTTP.",
)
@click.option("--to", "target", metavar="TOPIC", help="With --from: the topic the answers go to.")
@click.option(
    "--create-topics",
    is_flag=True,
    help="With --from/--to: create those topics when missing (else a missing one is an error).",
)
@click.option(
    "--artifact-root",
    "artifact_roots",
    metavar="DIR",
    multiple=True,
    help="Where model artifacts kept outside the log may be read: a directory or an "
    "object-store URL prefix; repeatable. Wins over $LOOPLINE_ARTIFACT_ROOTS (comma-separated); "
    "$LOOPLINE_ARTIFACT_DIR counts too. An artifact elsewhere is refused.",
)
@click.option(
    "--state-dir",
    default=".loopline-serve",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The decision journal: where decisions wait (durably) until the log has them. "
    "One serve process per directory.",
)
@click.option(
    "--decision-writes",
    type=click.Choice(["synced", "queued"]),
    default="synced",
    show_default=True,
    help="synced: an answer leaves once its decision is on disk in --state-dir (one fsync'd "
    "write for the requests of a moment); queued: at once, and a kill -9 may lose the last "
    "milliseconds of decisions.",
)
@runner_options("instance", "until_caught_up", "metrics_port", "metrics_host")
@click.pass_obj
def serve(
    settings: LogSettings,
    app_spec: str,
    model: str | None,
    alias: str,
    host: str,
    port: int,
    http: HTTPServing,
    max_candidates: int,
    unknown_entities: str,
    source: str | None,
    target: str | None,
    create_topics: bool,
    state_dir: str,
    artifact_roots: tuple[str, ...],
    decision_writes: str,
    options: RunnerOptions,
) -> None:
    """Serve APP's model: POST /v1/predict and /v1/rank (OpenAPI at /docs).

    Features come from the online store (run `loopline features run APP`);
    the model is the version ALIAS points at, swapped without a restart when
    the alias moves. An experiment running on the model (`loopline
    experiments start`) routes each request to an arm's version; starting,
    changing or stopping it reaches this process within a second. /healthz, /readyz and /metrics (Prometheus) need no token.
    With --from, --instance, --until-caught-up and --metrics-port apply to the
    stream of requests.
    """
    from loopline.experiments.registry import ExperimentRegistry
    from loopline.experiments.router import ExperimentRouter
    from loopline.http.server import serve as serve_app
    from loopline.log.collector import quiet_collector
    from loopline.serving.http import create_app
    from loopline.serving.service import PredictionService

    if (source is None) != (target is None):
        raise CLIError("--from and --to go together: --from REQUESTS --to ANSWERS")
    if artifact_roots:  # read by every model registry of this process
        from loopline.models.artifacts import ARTIFACT_ROOTS_ENV

        os.environ[ARTIFACT_ROOTS_ENV] = ",".join(artifact_roots)
    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    with opened_registry(settings) as (log, registry), ExitStack() as parts:
        if source is not None and not create_topics:
            _require_topics(log.list_topics(), source, target)  # type: ignore[arg-type]
        served = model or (app.models[0].name if len(app.models) == 1 else None)
        router = None
        if served is not None:  # else the service says which models there are to choose from
            experiments = ExperimentRegistry(log)
            parts.callback(experiments.close)
            router = ExperimentRouter(experiments, served)
            parts.callback(router.close)
        try:
            service = PredictionService(
                log,
                app,
                registry,
                state_dir=state_dir,
                model=model,
                alias=alias,
                max_candidates=max_candidates,
                unknown_entities=unknown_entities,  # type: ignore[arg-type]
                wait_for_decisions=decision_writes == "synced",
                router=router,
            )
        except (AppError, ValueError) as exc:
            raise CLIError(str(exc)) from None
        show_serving_log()
        warn_if_alias_missing(service.models, service.declaration.name, alias)
        if source is not None:
            _score_stream(service, source, target, options)  # type: ignore[arg-type]
            return
        http.announce(
            f"serving {app.name} model {service.declaration.name!r} at alias {alias!r}",
            f"http://{host}:{port} (OpenAPI at /docs)",
            "/healthz, /readyz, /metrics and /docs",
            host=host,
            port=port,
        )
        quiet_collector()  # no 100 ms full collections in the way of requests
        web = create_app(service, token=http.token, max_body_bytes=http.max_body_bytes)
        serve_app(web, host, port, http.limits)


def _require_topics(existing: list[str], source: str, target: str) -> None:
    # A misspelled topic would otherwise be created and waited on, silently.
    for option, topic in (("--from", source), ("--to", target)):
        if topic not in existing:
            raise CLIError(
                f"{option}: topic {topic!r} does not exist; create it "
                f"(loopline topics create {topic}) or pass --create-topics"
            )


def _score_stream(service, source: str, target: str, options: RunnerOptions) -> None:
    from loopline.serving.stream import StreamScorer

    options.serve_metrics()
    scorer = StreamScorer(service, source, target, instance=options.instance)
    click.echo(
        f"scoring {source} into {target} with model {service.declaration.name!r} "
        f"(dead letters: {source}.dlq); Ctrl-C stops",
        err=True,
    )
    try:
        stats, _ = options.run(scorer)
    finally:
        service.close()
    click.echo(
        f"{stats.requests} requests: {stats.answered} answered, {stats.dead_letters} dead-lettered",
        err=True,
    )
