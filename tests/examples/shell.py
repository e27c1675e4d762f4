"""Running the documentation's shell commands as a user would: bash, the installed CLI.

`environment` puts this interpreter's ``bin`` first on ``PATH`` (so ``loopline`` and
``python`` are the ones under test) and points the log at the embedded one in the
working directory; `free_ports` finds ports for the servers a script starts.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def environment(home: Path) -> dict[str, str]:
    """The environment of a documented command: this venv first, the source tree importable,
    the embedded log in the current directory, `home` as ``$HOME``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["HOME"] = str(home)
    env["LOOPLINE_KAFKA_BOOTSTRAP"] = os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    return env


def free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports found")
