"""`protect`: the one call that gives a loopline HTTP app its auth, body limit and metrics.

The ingest server, the schema registry and the prediction service (and the
dashboard to come) each call it once, so they refuse the same requests in
the same order: metrics outermost (every answer is counted, refusals too),
then the bearer token (401 before a byte of the body is read), then the body
limit (413), then the app.

>>> from fastapi import FastAPI, Request
>>> from fastapi.testclient import TestClient
>>> app = FastAPI()
>>> @app.post("/echo")
... async def echo(request: Request) -> dict:
...     return {"bytes": len(await request.body())}
>>> protect(app, server="doc", token="0123456789abcdef", max_body_bytes=8)
>>> client = TestClient(app)
>>> client.post("/echo", content=b"1234").status_code
401
>>> bearer = {"Authorization": "Bearer 0123456789abcdef"}
>>> client.post("/echo", content=b"1234", headers=bearer).json()
{'bytes': 4}
>>> client.post("/echo", content=b"123456789", headers=bearer).status_code
413
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from loopline.http.auth import BearerAuth
from loopline.http.body import BodyLimit
from loopline.http.errors import Refused, Shape, error_json
from loopline.http.metrics import RequestMetrics
from loopline.http.tokens import check_token

__all__ = ["protect"]


def protect(
    app: Starlette,
    *,
    server: str,
    token: str | None,
    max_body_bytes: int,
    is_public: Callable[[str, str], bool] = lambda method, path: False,
    shape: Shape = error_json,
    basic: bool = False,
) -> None:
    """Add loopline's request metrics, bearer auth (when `token` is set) and body limit to `app`.

    `server` names the server in the metrics; `is_public` says which requests
    need no token; `shape` builds the app's error responses. A token that is
    empty or short raises `loopline.http.tokens.WeakToken` here, before serving.
    """
    if token is not None:
        check_token(token)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return shape(exc.status, exc.message, exc.headers)

    app.add_exception_handler(Refused, refused)
    # Added innermost first: each add_middleware wraps the ones before it.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, shape=shape)
    if token is not None:
        app.add_middleware(BearerAuth, token=token, is_public=is_public, shape=shape, basic=basic)
    app.add_middleware(RequestMetrics, server=server, routes=app.routes)
