"""Decisions and labelled examples for the monitor's tests, and the monitor's records read back."""

from __future__ import annotations

import datetime
import json
import random

import msgspec
import numpy as np
import pyarrow as pa

from loopline.log import Log
from loopline.models.profiles import Profile, predictions_profile, profile_features
from loopline.monitor.records import MonitorRecord
from support import consume_all

T0 = 1_714_564_800_000  # 2024-05-01 12:00 UTC
MINUTE = 60_000
CITIES = ["paris", "lyon", "nice", "lille"]


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def features(rng: random.Random, broken: bool = False) -> dict:
    """One candidate's features: `x` a number (0 its default), `city` text, `new` a bool."""
    x = None if broken or rng.random() < 0.1 else (0 if rng.random() < 0.2 else rng.gauss(5, 2))
    return {"x": x, "city": rng.choice(CITIES), "new": rng.random() < 0.3}


def training_profile(seed: int = 7) -> Profile:
    """The profile model ``m`` v1 was trained with: like `features`, and held-out scores."""
    rng = random.Random(seed)
    rows = [features(rng) for _ in range(2000)]
    table = pa.table({k: [r[k] for r in rows] for k in ("x", "city", "new")})
    scores = np.array([rng.random() for _ in range(1000)])
    labels = np.array([rng.random() < s for s in scores])
    return Profile(
        rows=len(rows),
        features=profile_features(table, ["x", "city", "new"], {"x": 0}),
        predictions=predictions_profile("classification", scores, labels),
    )


def make_decisions(
    n: int,
    seed: int = 1,
    start: int = T0,
    step: int = 180,
    broken=(None, None),
    model="m",
    errors_every: int = 0,
    unknown_every: int = 0,
):
    """`n` decisions (dict, time ms), `step` ms apart, over two versions, two arms, two countries;
    feature `x` is missing from every candidate between the times `broken` (from, until); with
    `errors_every`, every such decision is a failed request (its `error`, no candidates); with
    `unknown_every`, every such one is a request refused for an unknown entity (a 404)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = start + i * step
        k = rng.choice([1, 1, 2, 3])
        gone = broken[0] is not None and broken[0] <= at < broken[1]
        candidates = [
            {"id": f"i-{j}", "score": rng.random(), "features": features(rng, gone)}
            for j in range(k)
        ]
        out.append(
            (
                {
                    "decision_id": f"d-{seed}-{i}",
                    "at": iso(at),
                    "kind": "rank",
                    "model": model,
                    "model_version": rng.choice([1, 2]),
                    "entity_name": "member",
                    "entity": f"e-{rng.randrange(50)}",
                    "context": {"country": rng.choice(["fr", "de"])},
                    "candidates": candidates,
                    "returned": [{"id": c["id"], "score": c["score"]} for c in candidates[:1]],
                    "latency_ms": rng.lognormvariate(0, 1),
                    "experiment": "e1",
                    "arm": rng.choice(["a", "b"]),
                    **(
                        {"candidates": [], "returned": [], "error": "ValueError: boom"}
                        if errors_every and i % errors_every == errors_every - 1
                        else {"candidates": [], "returned": [], "error": "404: unknown member"}
                        if unknown_every and i % unknown_every == unknown_every - 1
                        else {}
                    ),
                },
                at,
            )
        )
    return out


def make_labelled(decisions: list[tuple[dict, int]], seed: int = 2, delay: int = 90_000):
    """One labelled example per answered decision (its first candidate), known `delay` ms
    later; a failed request (no candidates) has none."""
    rng = random.Random(seed)
    out = []
    for d, at in decisions:
        if not d["candidates"]:
            continue
        c = d["candidates"][0]
        out.append(
            (
                {
                    "features": c["features"],
                    "label": float(rng.random() < c["score"]),
                    "at": at,
                    "decision_id": d["decision_id"],
                    "model": d["model"],
                    "model_version": d["model_version"],
                    "entity": d["entity"],
                    "item": c["id"],
                    "position": 0,
                    "probability": 1.0,
                    "score": c["score"] if rng.random() > 0.05 else None,
                    "experiment": d["experiment"],
                    "arm": d["arm"],
                    "outcomes": [],
                    "closed_at": at + delay,
                },
                at + delay,
            )
        )
    out.sort(key=lambda r: r[1])
    return out


def produce(log: Log, topic: str, records: list[tuple[dict, int]]) -> None:
    producer = log.producer()
    for value, at in records:
        producer.send(topic, json.dumps(value).encode(), value["entity"].encode(), timestamp=at)
    producer.flush()
    producer.close()


def monitor_records(
    log: Log, app: str, expected: int, timeout: float = 30.0
) -> list[MonitorRecord]:
    consumer = log.consumer(None, [f"{app}.monitor"], reset="earliest")
    try:
        got = consume_all(consumer, expected, timeout=timeout, max_records=10_000)
    finally:
        consumer.close()
    return [msgspec.json.decode(r.value, type=MonitorRecord) for r in got]
