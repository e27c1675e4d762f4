"""Writing decisions to the log: asynchronous, batched, and never lost when the log is down.

`DecisionLog.submit` encodes the decision with the decision contract (tens
of microseconds) and appends it to an in-memory queue: no I/O on the
request path. A background thread takes what has queued (waiting at most
`linger` seconds to fill a batch), sends it and flushes. If the log refuses (unreachable,
topic gone, no acknowledgement in `flush_timeout`), the batch goes to the
`Backlog` on local disk, and from then on new decisions queue behind it so
order is kept; every `retry_interval` seconds the thread tries to drain the
backlog, oldest first, and once it is empty decisions go straight to the log
again. Gauges show the backlog (`loopline_decisions_backlog`) and what
waits in memory.

Should the in-memory queue reach `max_pending` (the thread is stuck in a
long flush), `submit` writes to the backlog itself: a rare, bounded disk
write instead of unbounded memory. Past the backlog's own bound decisions
are dropped, counted and logged: the service keeps answering, and
`DecisionLog.full` turns the service's readiness off so traffic goes to a
replica that can still record.

>>> import datetime, tempfile
>>> from loopline.contracts import LogRegistry
>>> from loopline.log import open_log
>>> from loopline.serving.decisions import Decision, decisions_topic
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> topic = decisions_topic("shop")
>>> decisions = DecisionLog(log, LogRegistry(log), topic, tempfile.mkdtemp(), label="shop")
>>> decisions.submit(Decision("id-1", datetime.datetime.now(datetime.UTC), "predict", "churn",
...     1, "member", "m-1", {}, [], [], latency_ms=0.4))
>>> decisions.close()
>>> log.describe_topic("shop.decisions").partitions[0].end
1
>>> log.close()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from pathlib import Path

from loopline.contracts import ContractViolation, SchemaRegistry, Topic
from loopline.contracts.registry import LogRegistry
from loopline.log import Log, LogError, Producer
from loopline.serving import metrics
from loopline.serving.backlog import Backlog, Encoded
from loopline.serving.decisions import Decision, check_values

__all__ = ["DecisionLog"]

logger = logging.getLogger(__name__)


class DecisionLog:
    """Decisions on their way to `topic` of `log`, through a backlog in `directory` if need be.

    `registry` registers and binds the decision contract when `topic` is
    created (a `LogRegistry`), or only encodes with it (any schema registry,
    the topic then created and bound beforehand). `label` names this log in
    metrics (the application's name).
    """

    def __init__(
        self,
        log: Log,
        registry: SchemaRegistry,
        topic: Topic[Decision],
        directory: str | Path,
        *,
        label: str,
        max_batch: int = 500,
        linger: float = 0.05,
        flush_timeout: float = 10.0,
        retry_interval: float = 1.0,
        max_pending: int = 100_000,
        max_backlog_bytes: int = 1 << 30,
    ) -> None:
        self.log, self.topic = log, topic
        if isinstance(registry, LogRegistry):
            topic.create(log, registry)
        self._encoder = topic.producer(log, registry)  # validates against the contract
        self._encoder.close()  # only its encode is used; sending has its own producer
        self.backlog = Backlog(
            Path(directory) / "decisions-backlog.db", max_bytes=max_backlog_bytes
        )
        self.max_batch, self.linger = max_batch, linger
        self.flush_timeout, self.retry_interval = flush_timeout, retry_interval
        self.max_pending = max_pending
        self.written = 0
        self.dropped = 0
        self._queue: deque[Encoded] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._producer: Producer | None = None
        # Each batch is one transaction: a batch the log did not take is aborted before it
        # goes to the backlog, so a read_committed reader never sees a decision twice.
        self._transactional_id = f"loopline-decisions-{topic.name}-{uuid.uuid4().hex[:16]}"
        self._retry_at = 0.0
        self._full = False
        self._busy = False  # the writer holds decisions it took from the queue
        self._metrics = metrics.decision_metrics(label)
        self._metrics.backlog.set(len(self.backlog))
        self._thread = threading.Thread(target=self._run, name="loopline-decisions", daemon=True)
        self._thread.start()

    # -- the request path ------------------------------------------------------------------

    def submit(self, decision: Decision) -> None:
        """Queue `decision` for the log, encoded; returns at once.

        Encoding here, not in the writer, keeps one bytes object per queued
        decision instead of hundreds (candidates, feature dicts): they would
        live long enough to reach the garbage collector's oldest generation
        and make its full passes, which stop every request, frequent.
        """
        encoded = self._encode(decision)
        if encoded is None:
            return
        if len(self._queue) >= self.max_pending:
            self._keep([encoded])
            return
        self._queue.append(encoded)
        self._metrics.pending.inc()
        if len(self._queue) >= self.max_batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Decisions queued in memory."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        """True while the backlog has no room: decisions are being dropped."""
        return self._full

    # -- the background thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if not stopping and len(self._queue) < self.max_batch:
                self._wake.wait(self.linger)
                self._wake.clear()
            try:
                self._step()
            except Exception:  # never let the writer die: the service keeps answering
                logger.exception("the decision log writer failed; retrying")
                time.sleep(self.retry_interval)
            if stopping and not self._queue:
                return

    def _step(self) -> None:
        self._busy = True
        try:
            self._write_batch()
        finally:
            self._busy = False

    def _write_batch(self) -> None:
        encoded: list[Encoded] = []
        while self._queue and len(encoded) < self.max_batch:
            encoded.append(self._queue.popleft())
        if encoded:
            self._metrics.pending.dec(len(encoded))
        if len(self.backlog) and time.monotonic() >= self._retry_at:
            self._drain()
        if not encoded:
            return
        if len(self.backlog):
            self._keep(encoded)  # behind the older ones, in order
        elif not self._send(encoded):
            self._keep(encoded)

    def _encode(self, decision: Decision) -> Encoded | None:
        try:
            check_values(decision)  # the rest the service made with the contract's types
            return self._encoder.encode(decision, checked=True)
        except ContractViolation as exc:  # a bug in the service, not a reason to stop
            logger.error("decision %s breaks its contract: %s", decision.decision_id, exc)
            self._drop(1)
            return None

    def _send(self, records: list[Encoded]) -> bool:
        try:
            if self._producer is None:
                self._producer = self.log.producer(transactional_id=self._transactional_id)
            producer = self._producer
            producer.begin_transaction()
            send = producer.send
            name = self.topic.name
            for key, value, timestamp in records:
                send(name, value, key, timestamp=timestamp)
            producer.flush(self.flush_timeout)
            producer.commit_transaction()
        except LogError as exc:
            self._retry_at = time.monotonic() + self.retry_interval
            logger.warning(
                "the log did not take %d decisions (%s); they wait in %s",
                len(records),
                exc,
                self.backlog.path,
            )
            self._reset_producer()
            return False
        self.written += len(records)
        self._metrics.written.inc(len(records))
        return True

    def _drain(self) -> None:
        while True:
            rows = self.backlog.peek(self.max_batch)
            if not rows:
                logger.info("the decision backlog is drained")
                return
            if not self._send([(key, value, ts) for _, key, value, ts in rows]):
                return
            self.backlog.remove(rows[-1][0])
            self._full = False
            self._metrics.backlog.set(len(self.backlog))

    def _keep(self, records: list[Encoded]) -> None:
        kept = self.backlog.append(records)
        self._metrics.backlog.set(len(self.backlog))
        if kept < len(records):
            self._full = True
            self._drop(len(records) - kept)
            logger.error(
                "the decision backlog %s is full (%d bytes): %d decisions were dropped",
                self.backlog.path,
                self.backlog.bytes,
                len(records) - kept,
            )

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._metrics.dropped.inc(count)

    def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.abort_transaction()
            with contextlib.suppress(Exception):
                producer.close()

    # -- shutting down ---------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until nothing waits in memory or in the backlog; False if `timeout` passed."""
        deadline = time.monotonic() + timeout
        while self._queue or self._busy or len(self.backlog):
            if time.monotonic() > deadline:
                return False
            self._retry_at = 0.0
            self._wake.set()
            time.sleep(0.02)
        return True

    def close(self) -> None:
        """Write what is queued (to the log, else to the backlog) and stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.flush_timeout + 30)
        self._reset_producer()
        self.backlog.close()
