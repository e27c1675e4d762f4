"""`loopline.http` sits left of contracts: it imports only `loopline.log` of loopline."""

from __future__ import annotations

import ast
from pathlib import Path

import loopline.http

PACKAGE = Path(loopline.http.__file__).parent


def test_loopline_http_imports_only_the_log_and_itself() -> None:
    imported = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] == "loopline"}
    assert ours, "the scan found no loopline imports at all: is the path right?"
    assert all(name.startswith(("loopline.http", "loopline.log")) for name in ours), sorted(ours)
