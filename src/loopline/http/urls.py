"""URLs as they may be printed: credentials in the userinfo part replaced by ``***``.

``--schema-registry http://admin:PASS@host:8081`` is how Confluent clients take
basic-auth credentials, so a URL may carry a password; every message that
shows a URL shows `redact_url` of it instead.

>>> redact_url("http://admin:hunter2@registry:8081/subjects")
'http://admin:***@registry:8081/subjects'
>>> redact_url("https://TOKEN@registry")
'https://***@registry'
>>> redact_url("http://registry:8081"), redact_url("embedded:/tmp/log")
('http://registry:8081', 'embedded:/tmp/log')
>>> url_secrets("http://admin:hunter2@registry:8081")
['hunter2']
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["redact_url", "url_secrets"]

# scheme://userinfo@ : userinfo is everything up to the last '@' before the host part.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")


def redact_url(url: str) -> str:
    """`url` with its password (or, with no user name, its whole userinfo) replaced by ``***``."""

    def hide(match: re.Match[str]) -> str:
        user, sep, _ = match["userinfo"].partition(":")
        shown = f"{user}:***" if sep else "***"
        return f"{match['scheme']}{shown}@"

    return _USERINFO.sub(hide, url)


def url_secrets(url: str) -> list[str]:
    """The secrets in `url`'s userinfo (as written and percent-decoded), to scrub from messages."""
    found: list[str] = []
    for match in _USERINFO.finditer(url):
        user, sep, password = match["userinfo"].partition(":")
        secret = password if sep else user
        if secret:
            found += [secret] if unquote(secret) == secret else [secret, unquote(secret)]
    return found
