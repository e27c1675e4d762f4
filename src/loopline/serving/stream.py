"""Scoring a topic of requests into a topic of answers: ``loopline serve APP --from T --to U``.

`StreamScorer` reads requests from one topic and writes each answer to
another, through the same `PredictionService` as HTTP: the same features,
model, hot swap and decision log. A request is a JSON object: with a
``candidates`` list it is a rank request (``{"entity", "candidates", "k",
"context"}``), otherwise a predict request (``{"entity", "context"}``). The
answer is what HTTP would answer plus the entity, keyed like the request
(or by the entity), with headers naming the request's topic, partition and
offset.

A request the service refuses (what HTTP answers with a 4xx, or a model that
fails to score) goes to ``<from>.dlq`` with the reason; the stream goes on.
Answers, dead letters and the input offsets commit in one transaction (it
is a task on `loopline.stream`), so
after a crash every request has exactly one answer or dead letter on the
log. (A request scored again after a crash is a second decision on the
decisions topic: decisions record what the service did.)

>>> import json, tempfile
>>> from loopline.app import App
>>> from loopline.contracts import LogRegistry
>>> from loopline.features import Entity, FeatureSet, Table, TableFeature
>>> from loopline.log import open_log
>>> from loopline.models.declarations import Model
>>> from loopline.models.trainers import LightGBMTrainer
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> for topic in ("profiles", "requests", "answers"):
...     log.create_topic(topic)
>>> app = App("shop", features=FeatureSet(tables=[
...     Table("profiles", Entity("member", "member_id"), [TableFeature("age", "age", default=30)])]),
...     models=[Model("churn", trainer=LightGBMTrainer, entity="member")])
>>> service = PredictionService(log, app, LogRegistry(log), state_dir=tempfile.mkdtemp())
>>> producer = log.producer()
>>> producer.send("requests", b'{"entity": "m-1"}')
>>> producer.flush()
1
>>> scorer = StreamScorer(service, "requests", "answers")
>>> scorer.run_until_caught_up(ready_timeout=0.5)  # no model published: not ready
Traceback (most recent call last):
...
TimeoutError: not ready after 0.5 s: no version of model 'churn' is at alias 'production' yet
>>> scorer.close(); service.close(); producer.close(); log.close()
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from loopline.log import Record, TopicExists
from loopline.serving.requests import PredictRequest, RankRequest, ServingError, decode
from loopline.serving.service import PredictionService
from loopline.stream import names
from loopline.stream.deadletters import dlq_topic
from loopline.stream.runner import Runner
from loopline.stream.stage import Stage
from loopline.stream.task import Context, TaskStats

__all__ = ["StreamScorer", "StreamStats"]

REQUEST_TOPIC = "loopline.request.topic"
REQUEST_PARTITION = "loopline.request.partition"
REQUEST_OFFSET = "loopline.request.offset"


@dataclass
class StreamStats(TaskStats):
    """What a `StreamScorer` did: requests read (`records`), answered, dead-lettered; commits."""

    answered: int = 0

    @property
    def requests(self) -> int:
        return self.records


class StreamScorer(Stage[StreamStats]):
    """Answers the requests of topic `source` into topic `target` (see the module docstring).

    The consumer group is ``<app>.serve.<source>``, so several scorers split
    the request topic's partitions; `instance` tells their transactional ids
    apart.
    """

    name = "scorer"

    def __init__(
        self,
        service: PredictionService,
        source: str,
        target: str,
        *,
        instance: str = "0",
        max_batch: int = 500,
    ) -> None:
        self.service, self.source, self.target = service, source, target
        self.log = log = service.log
        self.topics = (source,)
        self.stats = StreamStats()
        self.group = names.scorer_group(service.app.name, source)
        for topic in (source, target, dlq_topic(source)):
            with contextlib.suppress(TopicExists):
                log.create_topic(topic)
        self.runner = Runner(
            log, self, group=self.group, instance=instance, commit_interval=0, max_batch=max_batch
        )

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_caught_up: bool = False,
        ready_timeout: float = 300.0,
        on_commit: Callable[[StreamScorer], None] | None = None,
    ) -> StreamStats:
        """Answer requests until `stop` is set (or, with `until_caught_up`, none is left)."""
        stop = stop or threading.Event()
        self._wait_ready(stop, ready_timeout)
        return super().run(stop, until_caught_up=until_caught_up, on_commit=on_commit)

    def run_until_caught_up(self, ready_timeout: float = 300.0) -> StreamStats:
        """Answer every request present now, and return."""
        return self.run(until_caught_up=True, ready_timeout=ready_timeout)

    def _wait_ready(self, stop: threading.Event, timeout: float) -> None:
        self.service.start()
        deadline = time.monotonic() + timeout
        while waiting := self.service.readiness():
            if stop.is_set():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:g} s: {'; '.join(waiting)}")
            time.sleep(0.05)

    def process(self, records: list[Record], context: Context) -> None:
        for record in records:
            try:
                entity, answer = self._score(record.value)
            except ServingError as exc:
                context.dead_letter(record, f"{exc.status}: {exc.message}")
                continue
            headers = (
                (REQUEST_TOPIC, record.topic.encode()),
                (REQUEST_PARTITION, str(record.partition).encode()),
                (REQUEST_OFFSET, str(record.offset).encode()),
            )
            key = record.key if record.key is not None else entity.encode()
            context.send(self.target, json.dumps(answer).encode(), key, headers=headers)
            self.stats.answered += 1

    def _score(self, value: bytes | None) -> tuple[str, dict]:
        if value is None:
            raise ServingError(400, "the request record has no value")
        try:
            body = msgspec.json.decode(value)
        except Exception as exc:  # DecodeError, RecursionError, UnicodeError, ...
            raise ServingError(400, f"the body is not valid JSON: {exc}") from None
        rank = isinstance(body, dict) and "candidates" in body
        started = time.perf_counter()
        if rank:
            request = decode(value, RankRequest)
            answer = self.service.rank(request, started)
        else:
            request = decode(value, PredictRequest)
            answer = self.service.predict(request, started)
        return request.entity, {"entity": request.entity, **answer}
