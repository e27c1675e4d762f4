"""The simulated application and its members: activity, ranking requests, outcomes.

One `Traffic.step` is what the application does in a moment: members act
(profile views and searches, to ``<app>.activity``), one member opens the
"people you may know" page (the application asks the prediction service to
rank 20 candidates and shows the best 3), and the member accepts each shown
suggestion with the network's true probability. An acceptance happens a
moment later: it becomes an `Outcome` on ``<app>.outcomes`` naming the
decision and the item, once its time has come.

Before the application starts, `history` is the activity of the last few
minutes, so that activity features mean something from the first request.

>>> from loopline.demo.network import Network
>>> events = list(history(Network(members=20, seed=1), random.Random(1), 10, 5, now_ms=60_000))
>>> len(events), events[0]["at"], events[-1]["at"] < 60_000
(50, 50000, True)
"""

from __future__ import annotations

import datetime
import heapq
import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

from loopline.contracts import SchemaRegistry
from loopline.demo.network import Network
from loopline.demo.stats import DemoStats
from loopline.log import Log
from loopline.outcomes import Outcome, outcomes_topic
from loopline.serving.requests import RankRequest, ServingError
from loopline.serving.service import PredictionService

__all__ = ["ACTIVITY_PER_STEP", "CANDIDATES", "SHOWN", "Traffic", "history"]

logger = logging.getLogger(__name__)

CANDIDATES, SHOWN = 20, 3
ACTIVITY_PER_STEP = 4
OUTCOME_DELAY = (0.2, 1.5)  # seconds from showing a suggestion to its acceptance


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def history(
    network: Network, rng: random.Random, seconds: float, per_second: float, *, now_ms: int
) -> Iterator[dict]:
    """The activity events of the `seconds` before `now_ms`, `per_second` of them a second."""
    n = int(seconds * per_second)
    start = now_ms - int(seconds * 1000)
    for i in range(n):
        yield network.activity(rng, start + int(i * 1000 / per_second))


class Traffic:
    """The simulated application of `network`, asking `service` and writing to `log`."""

    def __init__(
        self,
        log: Log,
        schemas: SchemaRegistry,
        network: Network,
        service: PredictionService,
        stats: DemoStats,
        rng: random.Random,
    ) -> None:
        self.network, self.service, self.stats, self.rng = network, service, stats, rng
        self.activity_topic = f"{service.app.name}.activity"
        self._events = log.producer()
        self._outcomes = outcomes_topic(service.app.name).producer(log, schemas)
        self._ids = network.ids()
        self._due: list[tuple[float, int, Outcome]] = []  # accepted, not yet happened
        self._counter = 0

    def step(self) -> None:
        """One moment of the application: activity, one ranking request, due outcomes."""
        now = time.monotonic()
        for _ in range(ACTIVITY_PER_STEP):
            event = self.network.activity(self.rng, _now_ms())
            self._events.send(
                self.activity_topic,
                json.dumps(event).encode(),
                event["member_id"].encode(),
                timestamp=event["at"],
            )
            self.stats.events += 1
        self._rank(now)
        while self._due and self._due[0][0] <= now:
            _, _, outcome = heapq.heappop(self._due)
            self._outcomes.send(outcome)
            self.stats.outcomes += 1
        # The application's events and outcomes reach the log now, not at a batch's end.
        self._events.flush()
        self._outcomes.flush()

    def _rank(self, now: float) -> None:
        member = self.rng.choice(self._ids)
        candidates = self.rng.sample(self._ids, CANDIDATES + 1)
        candidates = [c for c in candidates if c != member][:CANDIDATES]
        request = RankRequest(member, candidates, k=SHOWN, context={"page": "pymk"})
        try:
            answer: dict[str, Any] = self.service.rank(request, time.perf_counter())
        except ServingError as exc:
            self.stats.failed += 1
            logger.warning("the demo's ranking request failed: %s", exc.message)
            return
        accepted = 0
        for item in answer["items"]:
            if self.rng.random() < self.network.acceptance(member, item["id"]):
                accepted += 1
                self._counter += 1
                at = now + self.rng.uniform(*OUTCOME_DELAY)
                outcome = Outcome(
                    entity=member,
                    type="accepted",
                    at=_in_wall_clock(at),
                    decision_id=answer["decision_id"],
                    item=item["id"],
                )
                heapq.heappush(self._due, (at, self._counter, outcome))
        self.stats.served(answer["version"], member, shown=len(answer["items"]), accepted=accepted)

    def close(self) -> None:
        """Flush what was sent and close; acceptances still to happen never do."""
        try:
            self._events.flush(10)
            self._outcomes.flush(10)
        finally:
            self._events.close()
            self._outcomes.close()


def _in_wall_clock(monotonic: float) -> datetime.datetime:
    """The wall-clock instant of a `time.monotonic()` instant."""
    seconds = time.time() + (monotonic - time.monotonic())
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
