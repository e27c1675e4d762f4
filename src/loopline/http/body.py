"""Request body limits: a size and a time, for every loopline HTTP server.

`BodyLimit` refuses a body larger than ``max_bytes`` with 413 (up front when
``Content-Length`` says so, else as soon as the bytes read pass it, chunked
bodies included) and a body that has not fully arrived ``timeout`` seconds
after the request's head with 408: a client that sends a head and then a
byte a minute holds a connection and a task no longer than that. Either
answer closes the connection (the rest of the body is never read).

Endpoints read the body as usual (``await request.body()``); a refusal is
raised from there as `Refused`, which the server answers in its own shape.

>>> from starlette.applications import Starlette
>>> from starlette.responses import PlainTextResponse
>>> from starlette.routing import Route
>>> from starlette.testclient import TestClient
>>> async def echo(request):
...     return PlainTextResponse(str(len(await request.body())))
>>> app = Starlette(routes=[Route("/", echo, methods=["POST"])],
...                 exception_handlers={Refused: lambda r, e: error_json(e.status, e.message, e.headers)})
>>> client = TestClient(BodyLimit(app, max_bytes=10))
>>> client.post("/", content=b"0123").text
'4'
>>> answer = client.post("/", content=b"x" * 11)
>>> answer.status_code, answer.json(), answer.headers["connection"]
(413, {'error': 'the body is 11 bytes; the limit is 10'}, 'close')
"""

from __future__ import annotations

import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopline.http.errors import Refused, Shape, error_json

__all__ = ["BodyLimit"]

_CLOSE = {"Connection": "close"}


class BodyLimit:
    """ASGI middleware bounding each request body's size (413) and arrival time (408)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float | None = None,
        shape: Shape = error_json,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"the body limit must be at least 1 byte, got {max_bytes}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"the body timeout must be positive, got {timeout} s")
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.shape = shape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    message = f"the body is {int(value)} bytes; the limit is {limit}"
                    await self.shape(413, message, _CLOSE)(scope, receive, send)
                    return
                break
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        size = 0
        done = False

        async def limited() -> Message:
            nonlocal size, done
            if done:  # the body is in: later receives wait for a disconnect, unbounded
                return await receive()
            if deadline is None:
                message = await receive()
            else:
                try:
                    with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                        message = await receive()
                except TimeoutError:
                    raise Refused(
                        408, f"the body did not arrive within {timeout:g} s", _CLOSE
                    ) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise Refused(413, f"the body is over the limit of {limit} bytes", _CLOSE)
                done = not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)
