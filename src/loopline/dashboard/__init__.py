"""The dashboard: the running loop of one application on web pages (``loopline dashboard APP``).

Server-rendered pages (Loop, Models, Experiments, Features, Alerts,
Topics) over the monitor's aggregates, the model and experiment
registries and the topics' offsets; charts drawn as SVG on the server;
actions (promote, roll back, stop an experiment, replay dead letters) as
POST forms with CSRF protection, through the same functions as the CLI.
`dashboard_app` builds the ASGI app (decision 0034).
"""

from __future__ import annotations

__all__ = ["Dashboard", "dashboard_app"]


def __getattr__(name: str) -> object:
    # The CLI imports this package to register the command; the web stack loads on use.
    if name in __all__:
        from loopline.dashboard import server

        return getattr(server, name)
    raise AttributeError(name)
