"""The whole loop of ``loopline demo``, on one log, in one process.

Started in order: the profiles are published and the feature processor
catches up; the heuristic is published as version 1 of the model; then the
parts run side by side, each in its thread, exactly as their commands would
(``features run``, ``serve``, ``outcomes``, ``train --every``):

- the simulated application sends activity events and ranking requests
  (a member and 20 candidates, keep 3) to the prediction service;
- simulated members accept suggestions with their true probability; an
  acceptance is an outcome on ``<app>.outcomes`` a moment later;
- the joiner turns decisions and outcomes into labelled examples;
- the trainer retrains from ``<app>.labelled`` on a schedule, publishes a
  signed version and moves the ``production`` alias; the service swaps it in.

`DemoStats` holds what the view shows; `run_demo` returns it at the end.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopline.contracts import LogRegistry
from loopline.demo.application import FEATURES, MODEL, demo_app, heuristic_trainer
from loopline.demo.network import Network
from loopline.features.processor import FeatureProcessor
from loopline.log import Log, TopicConfig, TopicExists
from loopline.models.registry import ModelRegistry
from loopline.models.signing import HmacSigner
from loopline.models.training import train_once
from loopline.outcomes.joiner import OutcomeJoiner
from loopline.serving.requests import RankRequest, ServingError
from loopline.serving.service import PredictionService

__all__ = ["DemoStats", "VersionStats", "run_demo"]

logger = logging.getLogger(__name__)

CANDIDATES, SHOWN = 20, 3


@dataclass
class VersionStats:
    """How one model version did: requests answered, suggestions shown and accepted."""

    version: int
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    since: float = 0.0  # seconds into the run when it first answered

    @property
    def rate(self) -> float:
        return self.accepted / self.shown if self.shown else 0.0


@dataclass
class DemoStats:
    """What the live view shows, updated while the demo runs."""

    app: str
    log_url: str
    duration: float
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    requests: int = 0
    failed: int = 0
    outcomes: int = 0
    decisions_logged: int = 0
    labelled: int = 0
    production: int = 0
    versions: dict[int, VersionStats] = field(default_factory=dict)
    training: list[str] = field(default_factory=list)
    freshness_ms: float | None = None
    events_per_s: float = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def run_demo(
    log: Log,
    *,
    duration: float = 150.0,
    seed: int = 7,
    rate: float = 25.0,
    on_tick: Callable[[DemoStats], None] | None = None,
    state_dir: str,
) -> DemoStats:
    """Run the simulated business for `duration` seconds; return the final `DemoStats`."""
    name = f"demo-{random.Random().getrandbits(32):08x}"
    app = demo_app(name)
    network = Network(seed=seed)
    rng = random.Random(seed)
    stats = DemoStats(name, log.url, duration)
    for topic, compact in ((f"{name}.profiles", True), (f"{name}.activity", False)):
        with contextlib.suppress(TopicExists):
            log.create_topic(topic, TopicConfig(partitions=1, compact=compact))
    producer = log.producer()
    for profile in network.profiles():
        producer.send(
            f"{name}.profiles", json.dumps(profile).encode(), profile["member_id"].encode()
        )
    producer.flush()
    processor = FeatureProcessor(log, app, commit_interval=0.2)
    processor.run_until_caught_up()

    key = os.urandom(32)
    models = ModelRegistry(log, signer=HmacSigner(key))
    schemas = LogRegistry(log)
    heuristic = heuristic_trainer(seed)
    data, format = heuristic.save()
    v1 = models.publish(
        MODEL, data, format=format, trainer="lightgbm", features=[(f, "float") for f in FEATURES]
    )
    models.promote(MODEL, v1.version, "production")
    service = PredictionService(
        log, app, schemas, state_dir=state_dir, models=models, refresh_interval=0.2
    )
    joiner = OutcomeJoiner(log, app, commit_interval=0.2)
    stop = threading.Event()
    threads = [
        threading.Thread(target=processor.run, args=(stop,), name="demo-features", daemon=True),
        threading.Thread(target=joiner.run, args=(stop,), name="demo-outcomes", daemon=True),
        threading.Thread(
            target=_retrain, args=(log, app, models, stats, stop, duration), daemon=True
        ),
    ]
    service.start()
    try:
        _wait_ready(service)
        stats.started = time.monotonic()
        for thread in threads:
            thread.start()
        _traffic(service, network, producer, rng, stats, stop, rate, on_tick, joiner)
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=60)
        service.decisions.flush(10)
        stats.decisions_logged = service.decisions.written
        stats.labelled = joiner.stats.examples
        for part in (service, joiner, processor, producer, models, schemas):
            with contextlib.suppress(Exception):
                part.close()
    return stats


def _wait_ready(service: PredictionService, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while waiting := service.readiness():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo's service is not ready: {'; '.join(waiting)}")
        time.sleep(0.05)


def _traffic(
    service: PredictionService,
    network: Network,
    producer: Any,
    rng: random.Random,
    stats: DemoStats,
    stop: threading.Event,
    rate: float,
    on_tick: Callable[[DemoStats], None] | None,
    joiner: OutcomeJoiner,
) -> None:
    """The simulated application and its members, until the duration has passed."""
    app = service.app.name
    ids = network.ids()
    due: list[tuple[float, int, dict]] = []  # outcomes not yet happened: (when, n, outcome)
    interval, next_tick, counted = 1.0 / rate, time.monotonic(), 0
    window: list[tuple[float, int]] = []
    freshness = _Freshness(app)
    while stats.elapsed < stats.duration:
        now = time.monotonic()
        for _ in range(4):  # activity: views and searches
            who, whom = rng.sample(ids, 2)
            kind = rng.choice(["view", "view", "search"])
            event = {"member_id": who, "target": whom, "kind": kind, "at": _now_ms()}
            producer.send(f"{app}.activity", json.dumps(event).encode(), who.encode())
            stats.events += 1
        member = rng.choice(ids)
        candidates = rng.sample([i for i in ids if i != member], CANDIDATES)
        try:
            answer = service.rank(
                RankRequest(member, candidates, k=SHOWN, context={"page": "pymk"}),
                time.perf_counter(),
            )
        except ServingError as exc:
            stats.failed += 1
            logger.warning("the demo's request failed: %s", exc.message)
            answer = None
        if answer is not None:
            stats.requests += 1
            version = answer["version"]
            vs = stats.versions.get(version)
            if vs is None:
                vs = stats.versions[version] = VersionStats(version, since=stats.elapsed)
            stats.production = max(stats.production, version)
            vs.requests += 1
            for item in answer["items"]:
                vs.shown += 1
                if rng.random() < network.acceptance(member, item["id"]):
                    vs.accepted += 1
                    counted += 1
                    outcome = {"entity": member, "type": "accepted", "item": item["id"]}
                    heapq.heappush(due, (now + rng.uniform(0.2, 1.5), counted, outcome))
        while due and due[0][0] <= now:
            _, _, outcome = heapq.heappop(due)
            outcome["at"] = _iso(_now_ms())
            producer.send(
                f"{app}.outcomes", json.dumps(outcome).encode(), outcome["entity"].encode()
            )
            stats.outcomes += 1
        producer.flush()  # the application's events and outcomes reach the log now
        window.append((now, stats.events))
        while window and now - window[0][0] > 5:
            window.pop(0)
        if len(window) > 1 and now > window[0][0]:
            stats.events_per_s = (window[-1][1] - window[0][1]) / (now - window[0][0])
        stats.decisions_logged = service.decisions.written
        stats.labelled = joiner.stats.examples
        fresh = freshness()
        if fresh is not None:
            stats.freshness_ms = fresh
        if on_tick is not None:
            on_tick(stats)
        next_tick += interval
        time.sleep(max(0.0, next_tick - time.monotonic()))
        if stop.is_set():
            break
    producer.flush()


def _retrain(
    log: Log, app: Any, models: ModelRegistry, stats: DemoStats, stop: threading.Event,
    duration: float,
) -> None:  # fmt: skip
    """Train from the labelled examples on a schedule, and promote every new version."""
    first, every = max(8.0, duration * 0.2), max(8.0, duration / 6)
    next_at = first
    while not stop.wait(0.2):
        if stats.elapsed < next_at:
            continue
        next_at = stats.elapsed + every
        try:
            result = train_once(
                log, app, MODEL, labelled_topic=f"{app.name}.labelled", registry=models,
                alias="production",
            )  # fmt: skip
        except Exception as exc:  # too little data yet, one class, ...: try again next time
            stats.training.append(f"{stats.elapsed:5.0f}s  not yet: {exc}")
            continue
        auc = result.metrics.get("auc")
        stats.training.append(
            f"{stats.elapsed:5.0f}s  v{result.version.version} trained on "
            f"{result.train_rows} examples"
            + (f", test AUC {auc:.3f}" if isinstance(auc, float) else "")
            + ", promoted"
        )


class _Freshness:
    """Mean time from an event's append to its effect being readable, over the last tick.

    Read from the online store's Prometheus histogram, as a dashboard would.
    """

    def __init__(self, app: str) -> None:
        self.labels = {"app": app}
        self.last = (0.0, 0.0)

    def __call__(self) -> float | None:
        from prometheus_client import REGISTRY

        name = "loopline_features_store_freshness_seconds"
        total = REGISTRY.get_sample_value(f"{name}_sum", self.labels) or 0.0
        count = REGISTRY.get_sample_value(f"{name}_count", self.labels) or 0.0
        (last_total, last_count), self.last = self.last, (total, count)
        if count <= last_count:
            return None
        return 1000 * (total - last_total) / (count - last_count)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()
