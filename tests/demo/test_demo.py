"""`loopline demo`: the simulation, and the whole loop as a newcomer runs it (smoke tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from loopline.demo.network import Network


def test_acceptance_follows_the_hidden_factors() -> None:
    network = Network(members=400, seed=3)
    by_id = {m.member_id: m for m in network.members}
    same, other = [], []
    for a in network.ids()[:40]:
        for b in network.ids()[40:120]:
            (same if by_id[a].industry == by_id[b].industry else other).append(
                network.acceptance(a, b)
            )
    assert sum(same) / len(same) > 3 * sum(other) / len(other)
    assert Network(seed=3).acceptance("m-1", "m-2") == network.acceptance("m-1", "m-2")


def _demo(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loopline", *args, "demo", "--duration", "30", "--no-live"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _check(out: str) -> None:
    decisions = int(re.search(r"decisions logged\s+([\d,]+)", out).group(1).replace(",", ""))
    labelled = int(re.search(r"labelled examples\s+([\d,]+)", out).group(1).replace(",", ""))
    assert decisions > 200 and labelled > 200, out
    assert re.search(r"v2 trained on \d+ examples", out), out  # a learned version was published
    assert re.search(r"│\s+v2 │\s+\d+s │\s+[1-9]", out), out  # ... and it answered requests
    assert "the starting heuristic (v1)" in out or "run longer" in out, out
    assert "(0 failed)" in out, out


def test_loopline_demo_runs_the_whole_loop_on_the_embedded_log() -> None:
    _check(_demo())


def test_loopline_demo_runs_on_kafka() -> None:
    bootstrap = os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    _check(_demo("--log", f"kafka://{bootstrap}"))
