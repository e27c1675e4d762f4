"""Running a loopline HTTP server: uvicorn with limits against slow and greedy clients.

uvicorn closes an idle keep-alive connection, but not one that sends half a
request head, nor one that sends a head and then its body a byte a minute:
150 such clients held 150 connections of a loopline server for as long as
they liked. Every loopline server therefore runs with `ServerLimits`:

- ``header_timeout``: a request's head (request line and headers) must be
  complete this many seconds after the connection opens or its first byte
  arrives, else the server answers 408 and closes the connection;
- ``body_timeout``: the body must be complete this many seconds after the
  head, else the server answers 408 (if the app has not answered yet) and
  closes the connection; the app's body read ends there
  (`loopline.http.body.BodyLimit` answers it, to no one, as 408);
- ``keep_alive``: an idle connection is closed after this many seconds;
- ``max_connections``: a connection over this number is answered 503 and
  closed at once, so file descriptors and tasks stay bounded.

A request head is also limited to 16 KiB (h11's default; 400 beyond it).

"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from loopline.http.limits import ServerLimits

__all__ = ["running", "serve", "server_config", "start", "start_metrics_server"]


def _raw_response(status: str, message: str) -> bytes:
    body = message.encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _LimitedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head and body."""

    limits = ServerLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            message = f"too many connections (the limit is {self.limits.max_connections})"
            transport.write(_raw_response("503 Service Unavailable", message))
            transport.close()
            return
        self._expect("head", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Arm or cancel the deadline for what the client still has to send."""
        state = self.conn.their_state
        if state is h11.IDLE:
            # Waiting for a request: only a started head has a deadline (an idle
            # keep-alive connection is uvicorn's timeout_keep_alive's business).
            if self.conn.trailing_data[0] and self._waiting_for != "head":
                self._expect("head", self.limits.header_timeout)
        elif state is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._expect("body", self.limits.body_timeout)
        else:
            self._cancel()

    def _expect(self, what: str, seconds: float) -> None:
        self._cancel()
        self._waiting_for = what
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _expired(self, what: str) -> None:
        self._deadline, self._waiting_for = None, None
        if self.transport.is_closing():
            return
        state, cycle = self.conn.their_state, self.cycle
        if what == "head" and state is h11.IDLE and (cycle is None or cycle.response_complete):
            seconds = self.limits.header_timeout
            message = f"the request head did not arrive within {seconds:g} s"
            self.transport.write(_raw_response("408 Request Timeout", message))
        elif what == "body" and state is h11.SEND_BODY and not (cycle and cycle.response_started):
            seconds = self.limits.body_timeout
            message = f"the body did not arrive within {seconds:g} s; nothing was done with it"
            self.transport.write(_raw_response("408 Request Timeout", message))
        self.transport.close()


def server_config(
    app: Any, host: str, port: int, limits: ServerLimits, **kw: Any
) -> uvicorn.Config:
    """The uvicorn configuration every loopline server runs with (`kw` goes to uvicorn)."""
    protocol = type("LimitedH11Protocol", (_LimitedH11,), {"limits": limits})
    kw.setdefault("log_level", "warning")
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        ws="none",  # no loopline server speaks WebSocket: one surface less
        timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]
        **kw,
    )


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: ServerLimits | None = None,
    **kw: Any,
) -> None:
    """Serve the ASGI `app` until interrupted, with `limits` (`kw` goes to uvicorn)."""
    uvicorn.Server(server_config(app, host, port, limits or ServerLimits(), **kw)).run()


def start(app: Any, host: str, port: int, limits: ServerLimits) -> tuple[str, Callable[[], None]]:
    """Serve `app` from a daemon thread; its base URL, and a function that stops it."""
    server = uvicorn.Server(server_config(app, host, port, limits))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{host}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the HTTP server on {host}:{port} did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return f"http://{host}:{bound}", stop


@contextmanager
def running(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: ServerLimits | None = None,
) -> Iterator[str]:
    """Serve an ASGI `app` from a background thread, as `serve` would; yield its base URL.

    For tests and for ``loopline demo``, which runs every part in one process.
    Port 0 picks a free port.

    >>> from starlette.applications import Starlette
    >>> with running(Starlette()) as url:
    ...     url.startswith("http://127.0.0.1:")
    True
    """
    url, stop = start(app, host, port, limits or ServerLimits())
    try:
        yield url
    finally:
        stop()


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", limits: ServerLimits | None = None
) -> str:
    """Serve ``GET /metrics`` (Prometheus) from a daemon thread; its base URL.

    For the long-running stages' ``--metrics-port``. In place of
    prometheus-client's ``start_http_server``, whose thread per connection
    waits forever on a client that sends half a request: this one has the
    limits of every loopline server.
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    from loopline.http.metrics import metrics_response

    app = Starlette(routes=[Route("/metrics", lambda request: metrics_response())])
    url, _ = start(app, addr, port, limits or ServerLimits())
    return url
