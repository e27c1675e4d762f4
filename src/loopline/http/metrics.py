"""Request metrics (Prometheus) for every loopline HTTP server, and the ``/metrics`` answer.

`RequestMetrics` counts each answered request by server, route (the path
template, such as ``/v1/topics/{topic}/records``, so the label set stays
small whatever paths clients send), method and status, refused ones
included (401, 408, 413 are counted like any other), and times it from its
arrival to the end of its answer.

>>> from starlette.applications import Starlette
>>> from starlette.responses import PlainTextResponse
>>> from starlette.routing import Route
>>> from starlette.testclient import TestClient
>>> app = Starlette(routes=[Route("/items/{id}", lambda r: PlainTextResponse("ok"))])
>>> client = TestClient(RequestMetrics(app, server="doc", routes=app.routes))
>>> _ = client.get("/items/1"), client.get("/items/2"), client.get("/nope")
>>> from prometheus_client import REGISTRY
>>> def served(route, status):
...     labels = {"server": "doc", "route": route, "method": "GET", "status": status}
...     return REGISTRY.get_sample_value("loopline_http_requests_total", labels)
>>> served("/items/{id}", "200"), served("unmatched", "404")
(2.0, 1.0)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LATENCY", "REQUESTS", "RequestMetrics", "metrics_response"]

# Clients choose the method: any other is counted as OTHER, so labels stay few.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30)

REQUESTS = Counter(
    "loopline_http_requests",
    "HTTP requests answered, by server, route (path template), method and status.",
    ["server", "route", "method", "status"],
)
LATENCY = Histogram(
    "loopline_http_request_seconds",
    "Time from a request's arrival to the end of its answer, by server and route.",
    ["server", "route"],
    buckets=_BUCKETS,
)


def metrics_response() -> Response:
    """Every Prometheus metric of this process, in the text format (for ``GET /metrics``)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """ASGI middleware counting and timing requests; outermost, so refusals count too."""

    def __init__(self, app: ASGIApp, *, server: str, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.server = server
        self.routes = routes
        # Labelled children, looked up once: .labels() costs more than the increment.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = self._route(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            key = (route, method, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = REQUESTS.labels(self.server, route, method, str(status))
                self._counters[key] = counter
            timer = self._timers.get(route)
            if timer is None:
                timer = self._timers[route] = LATENCY.labels(self.server, route)
            counter.inc()
            timer.observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        """The path template that served (or would have served) the request."""
        route = scope.get("route")
        if route is None:  # refused before routing: find the route it was meant for
            for candidate in self.routes:
                if candidate.matches(scope)[0] is not Match.NONE:
                    route = candidate
                    break
        return getattr(route, "path", None) or "unmatched"
