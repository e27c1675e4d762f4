"""The monitor: decisions with 20 features through `Monitor`, against Evidently; alert delay.

One run, one machine. Figures:

- decisions/s through the monitor (`loopline.monitor.task.Monitor`, the task of
  ``loopline monitor``, one core: its runner reads, decodes, counts every
  feature in the version's profile bins, writes records and its changelog),
  over N decisions (default 200,000) of one candidate with 20 float
  features, on the log given (default an embedded log in a temporary
  directory), windows 1m and 1h; target at least 20,000 decisions/s;
- decoding alone: the same N records decoded by the monitor's decoder of the
  decisions contract, in batches with the collector paused as the monitor
  does, nothing counted: the most any monitor that checks the contract could
  reach on one core, against the rate 10x Evidently asks for;
- Evidently 0.7.23's data-drift report (``Report([DataDriftPreset(method="psi")])``)
  over the same N rows as a DataFrame already in memory, against the same
  reference rows, in its own virtualenv (`scripts/evidently-venv.sh`): rows/s,
  and the monitor's multiple of it (target: at least 10x);
- the delay from a feature's coverage dropping to the alert on ``<app>.alerts``:
  decisions written live (event time = now) at R per second into 1 s windows,
  feature f00 missing from T/2 on; the wall-clock delay from the first broken
  decision to the alert record being readable, in windows (target: within 2).

    python bench/monitor.py
    python bench/monitor.py --decisions 20000       # smoke
    python bench/monitor.py --log kafka://127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopline import App
from loopline.log import open_log
from loopline.log.collector import collector_paused
from loopline.models.profiles import Profile, profile_features
from loopline.monitor.alerts import AlertRecord
from loopline.monitor.task import Monitor
from loopline.outcomes.inputs import decoder
from loopline.serving.decisions import Decision

FEATURES = [f"f{i:02d}" for i in range(20)]
T0 = 1_714_564_800_000
HERE = os.path.dirname(os.path.abspath(__file__))

EVIDENTLY = """
import sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
Report([DataDriftPreset(method="psi")]).run(current_data=cur.head(1000), reference_data=ref)  # warm
started = time.perf_counter()
Report([DataDriftPreset(method="psi")]).run(current_data=cur, reference_data=ref)
print(time.perf_counter() - started)
"""


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES))).round(4)


def decision(i: int, at_ms: int, x: np.ndarray, drop: bool = False) -> bytes:
    at = datetime.datetime.fromtimestamp(at_ms / 1000, datetime.UTC).isoformat()
    values = dict(zip(FEATURES, x.tolist(), strict=True))
    if drop:
        values["f00"] = None
    return json.dumps(
        {"decision_id": f"d-{i}", "at": at, "kind": "predict", "model": "m", "model_version": 1,
         "entity_name": "member", "entity": f"e-{i % 1000}", "context": {},
         "candidates": [{"id": f"e-{i % 1000}", "score": float(abs(x[0]) % 1), "features": values}],
         "returned": [], "latency_ms": 1.0 + (i % 7)}
    ).encode()  # fmt: skip


def profile(reference: np.ndarray) -> Profile:
    table = pa.table({name: reference[:, j] for j, name in enumerate(FEATURES)})
    return Profile(rows=len(reference), features=profile_features(table, FEATURES))


def throughput(url: str, n: int, reference: np.ndarray, current: np.ndarray) -> float:
    log, app = open_log(url), App(f"bench-{uuid.uuid4().hex[:8]}")
    baseline = profile(reference)
    monitor = Monitor(log, app, lambda m, v: baseline, clock=lambda: T0 + 10**9)
    producer = log.producer()
    values = [decision(i, T0 + i * 5, current[i]) for i in range(n)]
    for i, value in enumerate(values):
        producer.send(
            monitor.decisions_topic, value, f"e-{i % 1000}".encode(), timestamp=T0 + i * 5
        )
    producer.flush()
    producer.close()
    started = time.perf_counter()
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        log.close()
    seconds = time.perf_counter() - started
    assert stats.decisions == n, stats
    print(
        f"monitor: {n:,} decisions x 20 features in {seconds:.2f} s: {n / seconds:,.0f} decisions/s ({stats.windows} windows)"
    )
    decode, _ = decoder(None, monitor.decisions_topic, Decision)  # the monitor's, no registry
    started = time.perf_counter()
    for i in range(0, n, 5_000):  # as the monitor does: batches, the collector paused
        with collector_paused():
            batch = [decode(v) for v in values[i : i + 5_000]]
    del batch
    floor = n / (time.perf_counter() - started)
    print(f"decoding alone (the decisions contract, nothing counted): {floor:,.0f} decisions/s")
    return n / seconds, floor


def evidently(reference: np.ndarray, current: np.ndarray) -> float | None:
    try:
        python = subprocess.run(
            ["bash", os.path.join(HERE, "..", "scripts", "evidently-venv.sh")],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except subprocess.CalledProcessError as exc:
        print(f"evidently: no virtualenv ({exc.stderr.strip()[-200:]})")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"{name}.parquet") for name in ("reference", "current")]
        for path, data in zip(paths, (reference, current), strict=True):
            pq.write_table(pa.table({f: data[:, j] for j, f in enumerate(FEATURES)}), path)
        out = subprocess.run(
            [python, "-c", EVIDENTLY, *paths], check=True, capture_output=True, text=True
        )
    seconds = float(out.stdout.strip().splitlines()[-1])
    n = len(current)
    print(
        f"evidently 0.7.23 data-drift report (PSI), {n:,} rows x 20 features in {seconds:.2f} s: {n / seconds:,.0f} rows/s"
    )
    return n / seconds


def alert_delay(url: str, rate: int, seconds: float, reference: np.ndarray) -> None:
    log, app = open_log(url), App(f"bench-{uuid.uuid4().hex[:8]}")
    baseline = profile(reference)
    monitor = Monitor(
        log, app, lambda m, v: baseline, windows=["1s"], lateness="0s", commit_interval=0.1
    )
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,))
    thread.start()
    seen: list[float] = []

    def watch() -> None:  # reads the alerts while decisions are written: when it is readable
        consumer = log.consumer(None, [monitor.alerts_topic], reset="earliest")
        deadline = time.time() + seconds + 10
        while not seen and time.time() < deadline:
            for r in consumer.poll(100, timeout=0.05):
                alert = msgspec.json.decode(r.value, type=AlertRecord)
                if (alert.alert, alert.feature, alert.state) == ("coverage_drop", "f00", "opened"):
                    seen.append(time.time())
        consumer.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    producer = log.producer()
    x = rows(int(rate * seconds) + 1, 3)
    started = time.time()
    broken_at = None
    i = 0
    while (now := time.time()) - started < seconds:
        drop = now - started >= seconds / 2
        if drop and broken_at is None:
            broken_at = now
        at = int(now * 1000)
        producer.send(monitor.decisions_topic, decision(i, at, x[i], drop), b"e", timestamp=at)
        i += 1
        producer.flush()
        time.sleep(max(0.0, started + i / rate - time.time()))
    producer.close()
    watcher.join()
    stop.set()
    thread.join()
    monitor.close()
    log.close()
    if not seen or broken_at is None:
        print("alert delay: no coverage alert within 10 s")
        return
    delay = seen[0] - broken_at
    print(
        f"alert delay: coverage of f00 dropped -> alert readable on {app.name}.alerts in {delay:.2f} s = {delay:.2f} windows of 1 s ({rate}/s live)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--reference", type=int, default=20_000)
    parser.add_argument(
        "--log", default=None, help="log URL (default: an embedded log in a temporary directory)"
    )
    parser.add_argument("--rate", type=int, default=500, help="decisions/s in the alert-delay run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.log or f"embedded:{tmp}/log"
        reference, current = rows(args.reference, 1), rows(args.decisions, 2)
        ours, floor = throughput(url, args.decisions, reference, current)
        theirs = evidently(reference, current)
        if theirs:
            print(f"monitor / evidently: {ours / theirs:.1f}x")
            print(
                f"10x evidently needs {10 * theirs:,.0f} decisions/s; decoding alone gives at most "
                f"{floor / theirs:.1f}x"
            )
        alert_delay(url, args.rate, 8.0, reference)


if __name__ == "__main__":
    main()
