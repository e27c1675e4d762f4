"""The options every HTTP server command shares: token, body limit, timeouts, connections.

``loopline ingest-server``, ``loopline schema-registry`` and ``loopline serve``
take the same flags, checked the same way: an empty or short token (also an
environment variable set to nothing) stops the command before it serves, and
each server says in one line at start whether authentication is on (never
the token) and which limits it runs with.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

from loopline.cli.errors import CLIError
from loopline.http.limits import ServerLimits, size_text
from loopline.http.tokens import WeakToken, check_token
from loopline.log import parse_size

_DEFAULTS = ServerLimits()
LIMITS_HELP = f"""\b
Limits against slow and greedy clients (every loopline HTTP server):
  a request head must arrive within --header-timeout seconds of the
  connection (default {_DEFAULTS.header_timeout:g}), its body within --body-timeout seconds of the
  head (default {_DEFAULTS.body_timeout:g}; 408 otherwise), an idle connection is closed after
  --keep-alive seconds (default {_DEFAULTS.keep_alive:g}), connections beyond --max-connections
  (default {_DEFAULTS.max_connections}) are answered 503 and closed, a body over --max-body is
  413, and a request head over 16 KiB is 400."""


@dataclass(frozen=True)
class HTTPServing:
    """What the shared options say: the token (checked), body limit and server limits."""

    token: str | None
    max_body_bytes: int
    limits: ServerLimits

    def announce(self, what: str, url: str, open_to_all: str, *, host: str, port: int) -> None:
        """Print the start-up lines: where, and whether auth is on (never the token).

        The port is tried first: a busy one is a one-line error, not "serving on"
        followed by the server's bind failure.
        """
        check_port(host, port)
        click.echo(f"{what} on {url}", err=True)
        if self.token is None:
            auth = "auth off: no token set, anyone who reaches the port may call every endpoint"
        else:
            auth = f"auth on: bearer token required ({open_to_all} open)"
        body = size_text(self.max_body_bytes)
        click.echo(f"{auth}; bodies up to {body}; {self.limits.summary()}", err=True)


def check_port(host: str, port: int, option: str = "--port") -> None:
    """Raise a one-line `CLIError` when nothing could listen on `host`:`port` now
    (`option` is the command's option that gave the port, named in the error).

    A probe, closed at once: the server binds the port itself right after.

    >>> check_port("127.0.0.1", 0)
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror}; check --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = (
                    f"the address is in use; stop what listens there or choose another {option}"
                )
            else:
                reason = f"{exc.strerror}; choose another host or {option}"
            raise CLIError(f"cannot listen on {host}:{port}: {reason}") from None


def http_options(token_variable: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the shared server options to a command; it receives them as ``http: HTTPServing``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **kw: Any) -> Any:
            kw["http"] = _settings(
                token_variable,
                kw.pop("token"),
                kw.pop("max_body"),
                ServerLimits(
                    header_timeout=kw.pop("header_timeout"),
                    body_timeout=kw.pop("body_timeout"),
                    keep_alive=kw.pop("keep_alive"),
                    max_connections=kw.pop("max_connections"),
                ),
            )
            return command(*args, **kw)

        options = [
            click.option(
                "--token",
                envvar=token_variable,
                metavar="TOKEN",
                help=f"Require 'Authorization: Bearer TOKEN', at least 16 characters "
                f"(default: ${token_variable}; unset: no auth, said at start).",
            ),
            click.option(
                "--max-body",
                default="1MiB",
                show_default=True,
                metavar="SIZE",
                help="Refuse larger request bodies with 413.",
            ),
            click.option(
                "--header-timeout",
                default=_DEFAULTS.header_timeout,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                metavar="SECONDS",
                help="Close a connection whose request head is not complete in time (408).",
            ),
            click.option(
                "--body-timeout",
                default=_DEFAULTS.body_timeout,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                metavar="SECONDS",
                help="Refuse a request whose body is not complete in time (408).",
            ),
            click.option(
                "--keep-alive",
                default=_DEFAULTS.keep_alive,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                metavar="SECONDS",
                help="Close a connection idle for this long.",
            ),
            click.option(
                "--max-connections",
                default=_DEFAULTS.max_connections,
                show_default=True,
                type=click.IntRange(min=1),
                help="Answer 503 and close connections beyond this many.",
            ),
        ]
        for option in reversed(options):
            run = option(run)
        return run

    return decorate


def _settings(variable: str, token: str | None, max_body: str, limits: ServerLimits) -> HTTPServing:
    ctx = click.get_current_context()
    from_env = ctx.get_parameter_source("token") is ParameterSource.ENVIRONMENT
    source = f"${variable}" if from_env else "--token"
    if token is None and os.environ.get(variable) == "":
        token, source = "", f"${variable}"  # click reads an empty variable as unset
    if token is not None:
        try:
            check_token(token, source)
        except WeakToken as exc:
            raise CLIError(str(exc)) from None
    try:
        max_body_bytes = parse_size(max_body) or 0
    except ValueError as exc:
        raise CLIError(f"--max-body: {exc}") from None
    if max_body_bytes < 1:
        raise CLIError(f"--max-body must be at least 1 byte, got {max_body!r}")
    return HTTPServing(token, max_body_bytes, limits)
