"""Bearer-token authentication for loopline's HTTP servers.

With a token configured, every request needs ``Authorization: Bearer TOKEN``
(compared in constant time) except the paths the server declares public
(health, readiness, metrics, the OpenAPI document). The token is never logged
or echoed; a weak one is refused when the middleware is built
(`loopline.http.tokens.check_token`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from loopline.http.errors import Shape, error_json
from loopline.http.tokens import check_token

__all__ = ["BearerAuth", "public"]

_CHALLENGE = 'Bearer realm="loopline"'


def public(*paths: str, methods: frozenset[str] = frozenset()) -> Callable[[str, str], bool]:
    """A rule: requests to `paths`, and any request whose method is in `methods`, need no token.

    >>> rule = public("/healthz", methods=frozenset({"GET"}))
    >>> rule("POST", "/healthz"), rule("GET", "/subjects"), rule("POST", "/subjects")
    (True, True, False)
    """
    exact = frozenset(paths)
    return lambda method, path: path in exact or method in methods


class BearerAuth:
    """ASGI middleware: refuse with 401 (through `shape`) requests without the right token.

    ``basic=True`` also takes HTTP Basic credentials whose password is the token
    (any user name): Kafka tools configure a schema registry that way
    (``basic.auth.user.info=loopline:TOKEN``, or ``http://loopline:TOKEN@host``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        is_public: Callable[[str, str], bool] = lambda method, path: False,
        shape: Shape = error_json,
        basic: bool = False,
    ) -> None:
        self.app = app
        self.token = check_token(token).encode()
        self.is_public = is_public
        self.shape = shape
        self.basic = basic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        message, challenge = problem
        response = self.shape(401, message, {"WWW-Authenticate": challenge})
        await response(scope, receive, send)

    def _problem(self, scope: Scope) -> tuple[str, str] | None:
        """None if the request carries the token, else (message, WWW-Authenticate)."""
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, given = header.strip().partition(b" ")
        scheme = scheme.lower()
        given = given.strip()
        if scheme == b"basic" and self.basic and given:
            try:
                given = base64.b64decode(given, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                given = b""
        elif scheme != b"bearer" or not given:
            how = "`Authorization: Bearer TOKEN`"
            if self.basic:
                how += " (or HTTP Basic auth with the token as the password)"
            return f"this endpoint needs a bearer token: send {how}", _CHALLENGE
        if not hmac.compare_digest(given, self.token):
            return "the token is not valid", f'{_CHALLENGE}, error="invalid_token"'
        return None
