"""Bearer tokens fit to protect a server: at least `MIN_TOKEN_LENGTH` printable characters.

An empty ``LOOPLINE_INGEST_TOKEN=`` once switched authentication off without a
word, so a short or empty token is refused before a server starts.

>>> check_token("")
Traceback (most recent call last):
...
loopline.http.tokens.WeakToken: the token is empty; a bearer token needs at least 16 \
characters (make one with `openssl rand -hex 16`), or leave it unset to serve without \
authentication
>>> check_token("0123456789abcdef")
'0123456789abcdef'
"""

from __future__ import annotations

__all__ = ["MIN_TOKEN_LENGTH", "WeakToken", "check_token"]

MIN_TOKEN_LENGTH = 16


class WeakToken(ValueError):
    """A token too weak to protect a server: empty, short, or not printable ASCII."""


def check_token(token: str, source: str = "the token") -> str:
    """`token` if it is fit to protect a server, else `WeakToken` saying why (never the token)."""
    hint = (
        f"a bearer token needs at least {MIN_TOKEN_LENGTH} characters (make one with "
        "`openssl rand -hex 16`), or leave it unset to serve without authentication"
    )
    if not token:
        raise WeakToken(f"{source} is empty; {hint}")
    if len(token) < MIN_TOKEN_LENGTH:
        raise WeakToken(f"{source} has {len(token)} characters; {hint}")
    if not all(" " < c < "\x7f" for c in token):
        raise WeakToken(
            f"{source} holds spaces or characters HTTP headers cannot carry; use printable "
            "ASCII (e.g. `openssl rand -hex 16`)"
        )
    return token
