"""An application module is loaded only at the edges (the CLI, the demo): library code takes
an `App` (docs/architecture.md, "The layers")."""

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


def test_serving_and_outcomes_never_import_the_experiments_above_them():
    found = []
    for package in ("serving", "outcomes"):
        for path in sorted((SRC / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n.startswith("loopline.experiments") for n in names):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == [], "serving routes through serving/routing.py's protocol: " + ", ".join(found)
