"""Serving at saturation, logging on / queued / off, with the server's CPU per thread.

What `bench/serving.py` measures at saturation, alone and shorter, so that
trees can be compared in one session: each mode of ``/v1/rank`` (50
candidates x 10 features, the same application, model and closed-loop load
of 8 clients as `bench/serving.py`) runs for `--seconds` in a server of its
own, `--rounds` times, taking turns. It prints requests/s, the server's CPU
per request, and the CPU per request of each of the server's threads that
used any (read from /proc: the request thread is the process's main thread;
the others are the decision journal, its sender, LightGBM's OpenMP workers
and the followers, unnamed at the OS level).

``--tree PATH`` runs another checkout of loopline (its ``src`` and its
``bench/serving.py``), e.g. a ``git worktree`` of an older commit, with this
file's measuring; ``--no-decision-writes`` for trees older than
``serve --decision-writes``.

    python bench/serving_saturation.py                      # this tree, ~2 minutes
    git worktree add --detach /tmp/before <commit>
    python bench/serving_saturation.py --tree /tmp/before --no-decision-writes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _thread_ticks(pid: int) -> dict[str, int]:
    """CPU clock ticks (user + system) of each thread of process `pid`, by thread id."""
    ticks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        ticks[task.name] = int(fields[11]) + int(fields[12])
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="the checkout to run")
    parser.add_argument("--modes", default="on,queued,off", help="of on, queued, off")
    parser.add_argument("--seconds", type=float, default=15.0, help="per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-decision-writes", action="store_true", help="an older tree")
    args = parser.parse_args()
    tree = args.tree.resolve()
    sys.path[:0] = [str(tree / "bench"), str(tree / "src")]
    import numpy as np

    import serving as bench  # the tree's bench/serving.py: its application and load
    from loopline.features.processor import FeatureProcessor
    from loopline.log import open_log
    from loopline.models.registry import ModelRegistry

    os.environ.setdefault("LOOPLINE_SIGNING_KEY", bench.KEY)
    tmp = Path(tempfile.mkdtemp(prefix="loopline-bench-saturation-"))
    url, run = f"embedded:{tmp}/log", uuid.uuid4().hex[:8]
    app = bench.bench_app(run)
    ranker = app.models[0].name
    rng = np.random.default_rng(7)
    log = open_log(url)
    bench.produce_sources(log, app, bench.FULL, rng)
    processor = FeatureProcessor(log, app)
    processor.run_until_caught_up()
    processor.close()
    X = bench.training_rows(log, app, bench.FULL, rng)
    registry = ModelRegistry(log)
    model = bench.fit(X, bench.MEMBER + bench.ITEM, seed=1)
    registry.promote(ranker, bench.publish(registry, ranker, model), "production")
    registry.close()
    log.close()
    members, items = bench.FULL.members, bench.FULL.items
    ranks = [
        json.dumps(
            {
                "entity": f"m-{rng.integers(members)}",
                "candidates": [
                    f"i-{j}" for j in rng.choice(items, bench.CANDIDATES, replace=False)
                ],
                "k": bench.K,
            }
        ).encode()
        for _ in range(500)
    ]
    path = os.pathsep.join([str(tree / "bench"), str(tree / "src")])
    env = {**os.environ, bench.RUN_ENV: run, "PYTHONPATH": path}

    def argv(mode: str, state: str) -> list[str]:
        if mode == "off":  # the same service with its decisions discarded
            role = [str(tree / "bench" / "serving.py"), "--role", "discarding", "--argv"]
            return [*role, url, ranker, "{port}", state]
        serve = ["-m", "loopline", "--log", url, "serve", "serving:bench_app", "--model", ranker]
        serve += ["--port", "{port}", "--state-dir", state]
        if not args.no_decision_writes:
            serve += ["--decision-writes", "queued" if mode == "queued" else "synced"]
        return serve

    print(f"tree {tree}; /v1/rank at saturation (8 clients), {args.seconds:g} s per run")
    load = bench.LoadGenerator()
    try:
        for round_ in range(1, args.rounds + 1):
            for mode in args.modes.split(","):
                state = str(tmp / f"{mode}-{round_}")
                server = bench.start_server(mode, argv(mode, state), env, tmp)
                try:
                    bench.wait_ready(server)
                    load.open(server.port, "/v1/rank", ranks, 100, 3)  # warm up
                    pid = server.process.pid
                    before, cpu = _thread_ticks(pid), server.cpu_seconds()
                    r = load.closed(server.port, "/v1/rank", ranks, args.seconds)
                    after, used = _thread_ticks(pid), server.cpu_seconds() - cpu
                finally:
                    server.stop()
                answered = r["rate"] * args.seconds
                per = {
                    t: (n - before.get(t, 0)) / os.sysconf("SC_CLK_TCK") for t, n in after.items()
                }
                threads = sorted((s for t, s in per.items() if s and t != str(pid)), reverse=True)
                print(
                    f"round {round_} logging {mode}: {r['rate']:,.0f} requests/s, server CPU "
                    f"{used / answered * 1000:.2f} ms/request (request thread "
                    f"{per.get(str(pid), 0) / answered * 1000:.3f}; other threads "
                    f"{', '.join(f'{s / answered * 1000:.3f}' for s in threads)}), "
                    f"failed {r['failed']}",
                    flush=True,
                )
    finally:
        load.close()


if __name__ == "__main__":
    main()
