"""The dashboard: the running loop of one application on web pages (``loopline dashboard APP``).

Server-rendered pages (Loop, Models, Experiments, Features, Alerts,
Topics) over the monitor's aggregates, the model and experiment
registries and the topics' offsets; charts drawn as SVG on the server;
actions (promote, roll back, start and stop an experiment, replay dead
letters) as POST forms with CSRF protection, through the same functions as
the CLI. `dashboard_app` builds the ASGI app (decisions 0034, 0037).
"""

from __future__ import annotations

from loopline.dashboard.context import Dashboard
from loopline.dashboard.server import dashboard_app

__all__ = ["Dashboard", "dashboard_app"]
