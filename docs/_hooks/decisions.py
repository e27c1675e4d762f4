"""A MkDocs hook: the decisions page lists every docs/decisions/NNNN-*.md by its title.

Written by hand, the list would miss the next decision; built here, a new
file is listed by the next build.
"""

from __future__ import annotations

from typing import Any

INDEX = "decisions/index.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != INDEX:
        return markdown
    decisions = sorted(
        (f for f in files if f.src_uri.startswith("decisions/") and f.src_uri != INDEX),
        key=lambda f: f.src_uri,
    )
    lines = []
    for f in decisions:
        if not f.src_uri.endswith(".md"):
            continue
        first = f.content_string.splitlines()[0] if f.content_string else f.src_uri
        title = first.lstrip("#").strip()
        lines.append(f"- [{title}]({f.src_uri.removeprefix('decisions/')})")
    return markdown.rstrip() + "\n\n" + "\n".join(lines) + "\n"
