"""The dashboard's HTML: the page frame, tables, numbers and times, all escaped.

Pages are Python functions returning strings (no template engine: the
pages are small and an f-string escapes nothing by itself, so every value
goes through `esc` or a helper that calls it).

>>> esc("<b>&")
'&lt;b&gt;&amp;'
>>> table(["a"], [[1]])
'<div class="scroll"><table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table></div>'
>>> num(0.123456), num(12345.6), num(3), num(None) == DASH
('0.1235', '12,346', '3', True)
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "DASH",
    "PAGES",
    "Raw",
    "ago",
    "card",
    "esc",
    "form",
    "iso",
    "link",
    "num",
    "page",
    "table",
]

PAGES = ("Loop", "Models", "Experiments", "Features", "Alerts", "Topics")
DASH = "\u2013"  # an en dash: nothing to show


class Raw(str):
    """HTML that is already safe (built by these helpers): not escaped again."""


def esc(value: Any) -> str:
    """`value` as HTML text (None as a dash; `Raw` as it is)."""
    if value is None:
        return DASH
    if isinstance(value, Raw):
        return value
    return html.escape(str(value))


def num(x: float | int | None, digits: int = 4) -> str:
    """A number for people: ints with separators, floats with `digits` significant digits."""
    if x is None:
        return DASH
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return f"{int(x):,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def iso(ms: int | None) -> str:
    """Epoch milliseconds as UTC time (``2024-05-01 12:00:00``)."""
    if not ms:
        return DASH
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def ago(seconds: float | None) -> str:
    """A duration in the past, short: ``4 s``, ``3 min``, ``2 h``."""
    if seconds is None:
        return DASH
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def link(href: str, text: Any) -> Raw:
    """An anchor (both escaped).

    >>> link("/topics/a&b", "a&b")
    '<a href="/topics/a&amp;b">a&amp;b</a>'
    """
    return Raw(f'<a href="{esc(href)}">{esc(text)}</a>')


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "") -> str:
    """A table that scrolls sideways on a narrow screen rather than squeezing its columns.

    With an empty `head`, a two-column table of names and values whose values wrap."""
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    if not body and empty:
        return f'<p class="muted">{esc(empty)}</p>'
    if not any(head):
        return f'<div class="scroll"><table class="kv"><tbody>{body}</tbody></table></div>'
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>'
        "</table></div>"
    )


def card(title: str, body: str, *, cls: str = "", anchor: str = "") -> str:
    """A titled section of a page (`anchor`: its id, for links to it)."""
    where = f' id="{esc(anchor)}"' if anchor else ""
    return f'<section class="card {cls}"{where}><h2>{esc(title)}</h2>{body}</section>'


def form(action: str, csrf: str, fields: str, button: str, *, confirm: str = "") -> str:
    """A POST form with the CSRF token; `confirm` asks before sending."""
    ask = f' data-confirm="{esc(confirm)}"' if confirm else ""
    return (
        f'<form method="post" action="{esc(action)}" class="action"{ask}>'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">{fields}'
        f'<button type="submit">{esc(button)}</button></form>'
    )


def page(title: str, active: str, app_name: str, body: str, *, notice: str = "") -> str:
    """A whole page: the navigation, `body`, and the stylesheet and script (from this server)."""
    links = "".join(
        f'<a href="/{p.lower()}"{" class=active" if p == active else ""}>{p}</a>' for p in PAGES
    )
    note = f'<p class="notice">{esc(notice)}</p>' if notice else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · {esc(app_name)} · loopline</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head><body>'
        f'<header><a class="brand" href="/loop">loopline</a><span class="app">{esc(app_name)}'
        f"</span><nav>{links}</nav></header><main><h1>{esc(title)}</h1>{note}{body}</main>"
        "</body></html>"
    )
