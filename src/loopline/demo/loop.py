"""The whole loop of ``loopline demo``, on one log, in one process.

Started in order: the profiles are published and the feature processor
catches up; the heuristic is published, signed, as version 1 of the model
and promoted to ``production``; then the parts run side by side, each in
its thread, as their commands would (``features run``, ``serve``,
``outcomes``, ``train --labelled ... --every``):

- the simulated application (`loopline.demo.traffic`) sends activity events
  and ranking requests to the prediction service, and outcomes a moment later;
- the joiner turns decisions and outcomes into labelled examples;
- the trainer retrains from ``<app>.labelled`` on a schedule and publishes a
  signed version; it never moves ``production`` itself: each version enters
  as a canary experiment against it (`loopline.demo.rollout`), and the
  experiment watcher (``experiments run``) rolls it back when it does worse
  or moves ``production`` to it when it does better; the service follows;
- with `bad_model_at`, a deliberately broken version is proposed at that
  second, to show its guardrail rolling it back;
- the monitor (``loopline monitor``, `loopline.demo.watch`) watches the
  decisions, labels and activity, and its alerts show in the view; with
  `break_feature`, the profiles pipeline breaks that feature for 40% of the
  members at second `break_at` (`loopline.demo.pipeline_bug`).

Every run has its own application name (``demo-<8 hex digits>``), so its
topics and its model never meet another run's on a shared Kafka.
`run_demo` returns the run's `DemoStats`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from loopline.app import App
from loopline.contracts import LogRegistry
from loopline.demo.application import FEATURES, demo_app, model_name
from loopline.demo.heuristic import heuristic_trainer
from loopline.demo.network import Network
from loopline.demo.pipeline_bug import PipelineBug
from loopline.demo.rollout import Rollout
from loopline.demo.stats import DemoStats
from loopline.demo.traffic import ACTIVITY_PER_STEP, Traffic, history
from loopline.demo.watch import demo_monitor, reference_profile
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.router import ExperimentRouter
from loopline.experiments.watcher import ExperimentWatcher
from loopline.features.processor import FeatureProcessor
from loopline.log import Log, TopicConfig, TopicExists
from loopline.models.registry import ModelRegistry
from loopline.models.schedules import train_every
from loopline.models.signing import HmacSigner, Signer
from loopline.models.training import TrainResult
from loopline.outcomes import outcomes_topic
from loopline.outcomes.joiner import OutcomeJoiner
from loopline.serving.service import PredictionService

__all__ = ["run_demo", "schedule"]

logger = logging.getLogger(__name__)

STEPS_PER_SECOND = 25.0  # ranking requests per second; 4 activity events each
HISTORY = 120.0  # seconds of activity before the demo starts


def schedule(duration: float) -> tuple[float, float]:
    """When the first retraining starts and how often the next ones follow (seconds).

    About six versions in any run, the first once a fifth of the run has
    produced outcomes, never more often than every 8 s:

    >>> schedule(150), schedule(30), schedule(600)
    ((30.0, 25.0), (8.0, 8.0), (120.0, 100.0))
    """
    return max(8.0, duration * 0.2), max(8.0, duration / 6)


def run_demo(
    log: Log,
    *,
    duration: float = 150.0,
    seed: int = 7,
    rate: float = STEPS_PER_SECOND,
    state_dir: str,
    stop: threading.Event | None = None,
    on_tick: Callable[[DemoStats], None] | None = None,
    on_start: Callable[[DemoStats], None] | None = None,
    bad_model_at: float | None = None,
    break_feature: str | None = None,
    break_at: float = 60.0,
    signer: Signer | None = None,
) -> DemoStats:
    """Run the simulated business on `log` for `duration` seconds (or until `stop` is set).

    `rate` is the application's ranking requests per second; `state_dir` holds
    the decision backlog; `on_start` sees the stats once every part runs,
    `on_tick` after every step; `bad_model_at` (seconds into the run) is when
    a deliberately broken version is proposed; `signer` signs the run's versions and alias
    moves (default: a new random key); `break_feature` is broken upstream from
    `break_at` seconds in (`loopline.demo.pipeline_bug`). Returns the final `DemoStats`.
    """
    stop = stop or threading.Event()
    name = f"demo-{random.Random().getrandbits(32):08x}"  # not the seed: every run is new
    app = demo_app(name)
    network = Network(seed=seed)
    stats = DemoStats(name, log.url, duration, model=model_name(name))
    bug = None
    if break_feature is not None:  # an unknown feature is refused before anything starts
        send = functools.partial(_send_profiles, log, name)
        bug = PipelineBug(send, network, stats, break_feature, break_at, seed)
    with contextlib.ExitStack() as parts:
        schemas = _closing(parts, LogRegistry(log))
        _create_topics(log, schemas, app)
        _send_profiles(log, name, network.profiles())
        _publish_history(log, network, name, random.Random(seed + 1), rate * ACTIVITY_PER_STEP)
        processor = _closing(parts, FeatureProcessor(log, app, commit_interval=0.2))
        processor.run_until_caught_up()
        # the heuristic learned from nothing: its profile is the features it starts serving on
        reference = reference_profile(log, app, network.ids(), FEATURES, random.Random(seed + 2))

        if signer is None:  # a key for this run only; never leaves the process
            signer = HmacSigner(os.urandom(32))
        models = _closing(parts, ModelRegistry(log, signer=signer, verifier=signer.verifier()))
        heuristic = heuristic_trainer(FEATURES, seed)
        artifact, format = heuristic.save()
        v1 = models.publish(
            stats.model,
            artifact,
            format=format,
            trainer=heuristic.name,
            params=heuristic.params(),
            features=[(f, "float") for f in FEATURES],
            profile=reference.to_dict(),
        )
        models.promote(stats.model, v1.version, "production", reason="the starting heuristic")
        stats.heuristic = stats.production = v1.version

        experiments = _closing(parts, ExperimentRegistry(log))
        router = _closing(parts, ExperimentRouter(experiments, stats.model))
        service = PredictionService(
            log, app, schemas, state_dir=state_dir, models=models, refresh_interval=0.2,
            router=router,
        )  # fmt: skip
        parts.callback(_close_service, service, stats)
        joiner = _closing(parts, OutcomeJoiner(log, app, commit_interval=0.2))
        watcher = _closing(
            parts,
            ExperimentWatcher(
                log, app, schemas, experiments=experiments, models=models, commit_interval=0.2
            ),
        )
        # the rollout reads the experiments' changes with a registry of its own: `refresh`
        # hands each change to one reader, and the router reads the shared one
        changes = _closing(parts, ExperimentRegistry(log))
        rollout = Rollout(changes, stats, patience=max(60.0, 3 * schedule(duration)[1]))
        monitor = _closing(parts, demo_monitor(log, app, schemas, reference, stats))
        traffic = Traffic(log, schemas, network, service, stats, random.Random(seed))
        parts.callback(traffic.close)
        service.start()
        _wait_ready(service, stop)

        done = threading.Event()  # the parts' own stop: set when the traffic ends
        threads = [
            threading.Thread(target=processor.run, args=(done,), name="demo-features", daemon=True),
            threading.Thread(target=joiner.run, args=(done,), name="demo-outcomes", daemon=True),
            threading.Thread(
                target=watcher.run, args=(done,), name="demo-experiments", daemon=True
            ),
            threading.Thread(target=monitor.run, args=(done,), name="demo-monitor", daemon=True),
            threading.Thread(
                target=_retrain,
                args=(log, app, models, rollout, stats, done),
                name="demo-train",
                daemon=True,  # a stuck part must not keep the process alive after the summary
            ),
        ]
        parts.callback(_join, threads, done)
        stats.started = time.monotonic()
        for thread in threads:
            thread.start()
        if on_start is not None:
            on_start(stats)
        broken = _BrokenModel(models, rollout, stats, seed, bad_model_at)
        ticking = [rollout, broken, *([bug] if bug is not None else [])]
        _run_traffic(traffic, service, joiner, stats, stop, rate, on_tick, ticking)
        stats.stopped_early = stop.is_set()
    # What the joiner labelled up to its last commit, once it has stopped.
    stats.labelled, stats.positives = joiner.stats.examples, joiner.stats.positives
    return stats


def _closing(parts: contextlib.ExitStack, part: Any) -> Any:
    parts.callback(part.close)
    return part


def _create_topics(log: Log, schemas: LogRegistry, app: App) -> None:
    # profiles is a table, not compacted: a dataset built later reads its history (decision 0008)
    for topic in (f"{app.name}.profiles", f"{app.name}.activity"):
        with contextlib.suppress(TopicExists):
            log.create_topic(topic, TopicConfig(partitions=1))
    outcomes_topic(app.name).create(log, schemas)  # binds the loopline.outcome contract


def _send_profiles(log: Log, name: str, profiles: list[dict]) -> None:
    """What the members' profile pipeline publishes: `profiles`, to the profiles table."""
    producer = log.producer()
    try:
        for profile in profiles:
            producer.send(
                f"{name}.profiles", json.dumps(profile).encode(), profile["member_id"].encode()
            )
        producer.flush()
    finally:
        producer.close()


def _publish_history(
    log: Log, network: Network, name: str, rng: random.Random, per_second: float
) -> None:
    """The members' activity of the last `HISTORY` seconds."""
    producer = log.producer()
    try:
        for event in history(network, rng, HISTORY, per_second, now_ms=time.time_ns() // 10**6):
            producer.send(
                f"{name}.activity",
                json.dumps(event).encode(),
                event["member_id"].encode(),
                timestamp=event["at"],
            )
        producer.flush()
    finally:
        producer.close()


def _wait_ready(service: PredictionService, stop: threading.Event, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while waiting := service.readiness():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo's prediction service is not ready: {'; '.join(waiting)}")
        if stop.wait(0.05):
            return


def _run_traffic(
    traffic: Traffic,
    service: PredictionService,
    joiner: OutcomeJoiner,
    stats: DemoStats,
    stop: threading.Event,
    rate: float,
    on_tick: Callable[[DemoStats], None] | None,
    every_second: list[Any],
) -> None:
    """Step the application `rate` times a second until the duration has passed; tick
    each of `every_second` once a second."""
    interval, next_step = 1.0 / rate, time.monotonic()
    recent: list[tuple[float, int]] = []  # (when, events so far) over the last 5 s
    freshness = _Freshness(stats.app)
    while not stop.is_set() and stats.elapsed < stats.duration:
        traffic.step()
        now = time.monotonic()
        recent.append((now, stats.events))
        while now - recent[0][0] > 5:
            recent.pop(0)
        if now > recent[0][0]:
            stats.events_per_s = (stats.events - recent[0][1]) / (now - recent[0][0])
        stats.decisions_logged = service.decisions.written
        stats.labelled, stats.positives = joiner.stats.examples, joiner.stats.positives
        if now - freshness.read_at >= 1.0:
            if (fresh := freshness(now)) is not None:
                stats.freshness_ms = fresh
            for part in every_second:
                part.tick()
            if (held := service.models.alias(stats.model, "production")) is not None:
                stats.production = held.version
        if on_tick is not None:
            on_tick(stats)
        next_step += interval
        stop.wait(max(0.0, next_step - time.monotonic()))


def _retrain(
    log: Log,
    app: App,
    models: ModelRegistry,
    rollout: Rollout,
    stats: DemoStats,
    done: threading.Event,
) -> None:
    """``loopline train --labelled <app>.labelled --every ...``, in a thread; each version
    published is proposed to `rollout` (a canary against ``production``)."""
    first, every = schedule(stats.duration)
    if done.wait(max(0.0, first - stats.elapsed)):
        return

    def published(result: TrainResult) -> None:
        auc = result.metrics.get("auc")
        stats.training.append(
            f"{stats.elapsed:5.0f}s  v{result.version.version} trained on "
            f"{result.train_rows:,} examples"
            + (f", test AUC {auc:.3f}" if isinstance(auc, float) else "")
        )
        rollout.propose(result.version.version)

    def failed(exc: Exception) -> None:  # too few examples yet, one class: next time
        stats.training.append(f"{stats.elapsed:5.0f}s  not yet: {exc}")

    try:
        train_every(
            every, done, log, app, stats.model, labelled_topic=f"{app.name}.labelled",
            registry=models, on_result=published, on_error=failed,
        )  # fmt: skip
    except Exception as exc:  # shown in the view; the rest of the loop goes on
        logger.exception("the demo's trainer stopped")
        stats.training.append(f"{stats.elapsed:5.0f}s  the trainer stopped: {exc}")


class _BrokenModel:
    """Publishes a deliberately broken version at `at` seconds and proposes it (once)."""

    def __init__(
        self, models: ModelRegistry, rollout: Rollout, stats: DemoStats, seed: int, at: float | None
    ) -> None:
        self.models, self.rollout, self.stats, self.seed, self.at = models, rollout, stats, seed, at

    def tick(self) -> None:
        if self.at is None or self.stats.elapsed < self.at:
            return
        self.at = None
        broken = heuristic_trainer(FEATURES, self.seed, inverted=True)
        artifact, format = broken.save()
        version = self.models.publish(
            self.stats.model,
            artifact,
            format=format,
            trainer=broken.name,
            params=broken.params(),
            features=[(f, "float") for f in FEATURES],
        )
        self.stats.broken = version.version
        self.stats.training.append(
            f"{self.stats.elapsed:5.0f}s  v{version.version} published: deliberately broken "
            "(other industries and the least active first)"
        )
        self.rollout.propose(version.version, broken=True)


def _join(threads: list[threading.Thread], done: threading.Event) -> None:
    done.set()
    for thread in threads:
        if thread.is_alive():
            thread.join(timeout=60)


def _close_service(service: PredictionService, stats: DemoStats) -> None:
    service.decisions.flush(10)
    stats.decisions_logged = service.decisions.written
    service.close()


class _Freshness:
    """Mean time from an event's append to its effect being readable, since the last call.

    Read from the online store's Prometheus histogram, as a dashboard would
    (once a second: collecting the registry is not free).
    """

    def __init__(self, app: str) -> None:
        self.labels = {"app": app}
        self.last = (0.0, 0.0)
        self.read_at = 0.0

    def __call__(self, now: float) -> float | None:
        from prometheus_client import REGISTRY

        self.read_at = now
        name = "loopline_features_store_freshness_seconds"
        total = REGISTRY.get_sample_value(f"{name}_sum", self.labels) or 0.0
        count = REGISTRY.get_sample_value(f"{name}_count", self.labels) or 0.0
        (last_total, last_count), self.last = self.last, (total, count)
        if count <= last_count:
            return None
        return 1000 * (total - last_total) / (count - last_count)
