"""The demo's dashboard: ``loopline demo --dashboard-port PORT`` serves the run's pages.

Started once the run's application exists (the demo's ``on_start``), on the
demo's own log, in the demo's process; stopped when the demo ends. The
application is rebuilt from the run's name (`demo_app` is a pure function
of it), so nothing in the loop itself changes for the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable

from loopline.dashboard.context import Dashboard
from loopline.dashboard.server import dashboard_app
from loopline.demo.application import demo_app
from loopline.http.limits import ServerLimits
from loopline.http.server import start
from loopline.log import Log
from loopline.models.signing import Signer

__all__ = ["start_dashboard"]


def start_dashboard(
    log: Log, app_name: str, port: int, signer: Signer, host: str = "127.0.0.1"
) -> tuple[str, Callable[[], None]]:
    """Serve the dashboard of demo run `app_name` on `log`; its URL, and a function that
    stops it. `signer` is the run's (`run_demo`'s): a promotion on the Models page is signed
    with it, so the run's serving follows it."""
    board = Dashboard(log, demo_app(app_name), signer=signer, verifier=signer.verifier())
    url, stop_server = start(dashboard_app(board), host, port, ServerLimits())

    def stop() -> None:
        stop_server()
        board.close()

    return url, stop
