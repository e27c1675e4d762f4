"""The dashboard: each page's server time and weight with a million decisions in the log.

One run, one machine. The log holds N decisions (default 1,000,000) on
``<app>.decisions`` and the monitor's records for them on ``<app>.monitor``
(1m windows, 2 versions x 2 arms, 5 features each: what ``loopline monitor``
writes for that traffic; written directly, the monitor itself is measured
by bench/monitor.py). Figures:

- per page: the median server time of GET (in-process, through the whole
  ASGI app with its middleware, the page's data read from the dashboard's
  followers and registries) over 20 requests, and the HTML's bytes (the
  stylesheet and script add ~6 KB, once); targets: under 200 ms, under 300 KB;
- an experiment's page (``/experiments/ab``) while its report is computed
  in the dashboard's background thread (the page shows "computing…"), and
  how long that report took: it reads the N decisions, as ``loopline
  experiments report`` does (decision 0037);
- what the same numbers would cost from the raw topic: reading the N
  decisions once (the dashboard never does; it reads end offsets and the
  monitor's aggregates).

    python bench/dashboard.py
    python bench/dashboard.py --decisions 100000      # smoke
    python bench/dashboard.py --log kafka://127.0.0.1:19092
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

import msgspec
from starlette.testclient import TestClient

from loopline import App
from loopline.dashboard.context import Dashboard
from loopline.dashboard.server import dashboard_app
from loopline.log import TopicConfig, open_log
from loopline.models.registry import ModelRegistry
from loopline.models.signing import HmacSigner
from loopline.monitor.records import FeatureStats, MonitorRecord
from loopline.stream import names

PAGES = ["/loop", "/models", "/experiments", "/features", "/alerts", "/topics", "/experiments/ab"]
FEATURES = [f"f{i}" for i in range(5)]
KEYS = [(1, "production"), (2, "v2")]
PER_WINDOW = 250  # decisions per key and 1m window


def _fill(log, app: str, decisions: int) -> None:
    for topic in (names.decisions(app), names.monitor(app), names.alerts(app)):
        log.create_topic(topic, TopicConfig(partitions=1))
    producer = log.producer()
    value = b'{"decision_id":"d","model":"m","model_version":1,"features":{"f0":1.0}}'
    batch = [(value, b"member-1")] * 10_000
    for _ in range(decisions // len(batch)):
        for v, k in batch:
            producer.send(names.decisions(app), v, k)
        producer.flush()
    windows = decisions // (PER_WINDOW * len(KEYS))
    t0 = int(time.time() * 1000) - windows * 60_000
    encode = msgspec.json.encode
    for w in range(windows):
        for version, arm in KEYS:
            record = MonitorRecord(
                source="decisions", window="1m", start=t0 + w * 60_000,
                end=t0 + (w + 1) * 60_000, model=f"{app}.m", model_version=version, arm=arm,
                segment="", decisions=PER_WINDOW, candidates=PER_WINDOW, latency_p95=3.0,
                score_count=PER_WINDOW, score_mean=0.2,
                features=[FeatureStats(name=f, rows=PER_WINDOW, present=PER_WINDOW,
                                       covered=PER_WINDOW, coverage=1.0, mean=0.5, psi=0.01)
                          for f in FEATURES],
            )  # fmt: skip
            producer.send(names.monitor(app), encode(record), record.model.encode())
    producer.flush()
    producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--log", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = open_log(args.log or f"embedded:{tmp}/log")
        app_name = f"bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        _fill(log, app_name, args.decisions)
        print(f"wrote {args.decisions:,} decisions and their monitor records in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        signer = HmacSigner(b"k" * 32)
        models = ModelRegistry(log, signer=signer)
        for _ in range(2):
            models.publish(f"{app_name}.m", b"m", format="bytes", trainer="t", params={},
                           features=[(f, "float") for f in FEATURES])  # fmt: skip
        models.promote(f"{app_name}.m", 1, "production")
        models.close()
        from loopline.experiments.registry import ExperimentRegistry
        from loopline.experiments.start import start

        experiments = ExperimentRegistry(log)
        start(experiments, "ab", f"{app_name}.m", ["control=alias:production", "v2=2"])
        experiments.close()
        from loopline.models.declarations import Model

        app = App(
            app_name,
            models=[Model(f"{app_name}.m", trainer=None, entity="member", features=FEATURES)],
        )
        board = Dashboard(log, app, verifier=signer.verifier())
        try:
            started = time.perf_counter()
            expected = args.decisions // PER_WINDOW
            while board.feed.read < expected:
                time.sleep(0.05)
            board.rates.sampled.wait(30)
            time.sleep(1.5)  # a second sample: rates
            print(f"dashboard followed {board.feed.read:,} monitor records in "
                  f"{time.perf_counter() - started:.2f} s (once, at start)")  # fmt: skip
            client = TestClient(dashboard_app(board))
            for page in PAGES:
                times, size = [], 0
                for _ in range(20):
                    t = time.perf_counter()
                    response = client.get(page)
                    times.append(time.perf_counter() - t)
                    assert response.status_code == 200, (page, response.text[:300])
                    size = len(response.content)
                print(f"{page:<13} {1000 * statistics.median(times):7.1f} ms median server time, "
                      f"{size / 1024:6.1f} KB HTML (targets: 200 ms, 300 KB)")  # fmt: skip
            started = time.perf_counter()
            while (held := board.reports.get("ab")) is None:
                time.sleep(0.05)
            print(f"the experiment's report (in the background) took {held.seconds:.1f} s; "
                  f"shown {time.perf_counter() - started:.1f} s after the page timings")  # fmt: skip
        finally:
            board.close()
        consumer = log.consumer(None, [names.decisions(app_name)], reset="earliest")
        started, read = time.perf_counter(), 0
        while batch := consumer.poll(5000, timeout=1.0):
            read += len(batch)
        consumer.close()
        print(f"reading the raw decisions instead: {read:,} records in "
              f"{time.perf_counter() - started:.1f} s (the dashboard never does)")  # fmt: skip
        log.close()


if __name__ == "__main__":
    main()
