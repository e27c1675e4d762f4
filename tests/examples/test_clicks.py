"""The tutorial's example end to end: examples/clicks/run.sh on the embedded log.

A CSV of views and clicks and an item table, contracts, ingest, user, item and user x
item features, a baseline version, a cold-start rule, serving /v1/rank, outcomes,
labelled examples, a retrained version hot-swapped in: the script asserts that its last
rank is answered by the retrained version (v2) and fails at the first command that fails.
"""

from __future__ import annotations

import shutil
import subprocess

from tests.examples.shell import REPO, environment, free_ports


def test_the_clicks_example_runs_end_to_end(tmp_path):
    work = tmp_path / "clicks"
    shutil.copytree(REPO / "examples" / "clicks", work)
    env = environment(tmp_path)
    env["PORT"] = str(free_ports(2))
    result = subprocess.run(
        ["bash", "run.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=240
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "== done: the rank was answered by v2, the retrained version" in result.stdout
    assert "published ranker v1" in result.stdout  # the baseline, from the CSV's history
    assert "published ranker v1 (a rule" in result.stdout  # the cold start, its own log
    assert "published ranker v2" in result.stdout
    assert "serving model 'ranker' v2" in output  # the hot swap, in serve's log
