"""``loopline dashboard APP``: the running loop of APP on web pages."""

from __future__ import annotations

import click

from loopline.app import AppError, load_app
from loopline.cli.errors import CLIError
from loopline.cli.http_options import LIMITS_HELP, HTTPServing, http_options
from loopline.cli.settings import LogSettings


@click.command(
    epilog=f"""\b
Examples:
  loopline dashboard pymk.app:app                 # http://127.0.0.1:8050
  loopline dashboard pymk.app:app --host 0.0.0.0 --token "$(openssl rand -hex 16)"

\b
Pages: Loop (records/s on every edge, each consumer's lag and freshness, open
alerts in red), Models (versions, aliases and their history, live quality;
promote, roll back), Experiments (traffic share and metrics per arm, the
report's lift by exposure age and segments, history; start, stop), Features (coverage and
drift against training), Alerts, Topics (contracts, newest records, dead
letters; replay). The numbers come from the monitor (loopline monitor APP)
and the registries; run the monitor too. With a token, a browser signs in
once at /login; programs send 'Authorization: Bearer TOKEN'.

{LIMITS_HELP}""",
)
@click.argument("app_spec", metavar="APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8050, show_default=True, type=int, help="Port to listen on.")
@http_options("LOOPLINE_DASHBOARD_TOKEN")
@click.pass_obj
def dashboard(
    settings: LogSettings, app_spec: str, host: str, port: int, http: HTTPServing
) -> None:
    """Serve APP's dashboard until stopped: the loop, models, experiments, features, alerts
    and topics, live, with promote, roll back, start, stop and replay as buttons."""
    from loopline.dashboard.context import Dashboard
    from loopline.dashboard.server import dashboard_app
    from loopline.http.server import serve

    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    with settings.open() as log:
        try:
            board = Dashboard(log, app)
        except ValueError as exc:  # a signing key of the environment that cannot be used
            raise CLIError(str(exc)) from None
        try:
            http.announce(
                f"dashboard of {app.name}",
                f"http://{host}:{port}",
                "/login, /healthz and /static/",
                host=host,
                port=port,
            )
            serve(dashboard_app(board, token=http.token), host, port, http.limits)
        finally:
            board.close()
