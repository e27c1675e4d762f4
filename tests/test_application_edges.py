"""An application module is loaded only at the edges (the CLI, the demo): library code takes
an `App` (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import loopline

SRC = Path(loopline.__file__).parent
EDGES = {SRC / "app.py", SRC / "__init__.py"}  # where load_app lives and is re-exported


def test_no_library_function_loads_an_application():
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        if path in EDGES or path.relative_to(SRC).parts[0] in ("cli", "demo"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name == "load_app":
                    calls.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert calls == [], "take an App and let the CLI load it: " + ", ".join(calls)
