"""CSRF protection for the dashboard's actions: a double-submit cookie and the Origin.

A page sets a random ``loopline_csrf`` cookie (SameSite=Strict) once and
puts the same value in every form; an action is done only when the form's
``csrf`` field equals the cookie, and, when the browser says where the
request came from (``Origin``), it came from this server. Another site can
make a browser send the cookie, but cannot read it to fill the field.

>>> ok = "a" * 32
>>> problem({"csrf": ok}, {"loopline_csrf": ok}, origin=None, host="h:1")
>>> problem({"csrf": ok}, {"loopline_csrf": ok}, origin="http://evil", host="h:1")
'the request came from http://evil, not from this dashboard'
>>> problem({}, {"loopline_csrf": ok}, origin=None, host="h:1")
'the form has no CSRF token: reload the page and try again'
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["COOKIE", "new_token", "problem"]

COOKIE = "loopline_csrf"


def new_token() -> str:
    return secrets.token_hex(16)


def problem(
    form: Mapping[str, str], cookies: Mapping[str, str], *, origin: str | None, host: str
) -> str | None:
    """Why a POST must be refused (None: it may go ahead)."""
    if origin and origin != "null" and urlsplit(origin).netloc != host:
        return f"the request came from {origin}, not from this dashboard"
    given, held = form.get("csrf", ""), cookies.get(COOKIE, "")
    if not given:
        return "the form has no CSRF token: reload the page and try again"
    if not held or not hmac.compare_digest(given.encode(), held.encode()):
        return "the form's CSRF token does not match this browser's: reload the page and try again"
    return None
