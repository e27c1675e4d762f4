"""The bearer token from a cookie: how a browser signs in to a dashboard that has a token.

A browser cannot add ``Authorization: Bearer`` to a link it follows, so the
login form (`/login`) stores the token in an HttpOnly, SameSite=Strict
cookie and this middleware, outside `loopline.http.auth.BearerAuth`, turns
the cookie into the header. The check itself stays BearerAuth's (constant
time, the same refusal as every loopline server); a request with its own
Authorization header is left as it is.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["COOKIE", "TokenCookie"]

COOKIE = "loopline_token"


class TokenCookie:
    """ASGI middleware: ``Cookie: loopline_token=T`` becomes ``Authorization: Bearer T``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            if not any(name == b"authorization" for name, _ in headers):
                token = _cookie(headers)
                if token:
                    scope = dict(scope)
                    scope["headers"] = [*headers, (b"authorization", b"Bearer " + token)]
        await self.app(scope, receive, send)


def _cookie(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                return None
            if COOKIE in jar:
                return jar[COOKIE].value.encode("latin-1")
    return None
