"""Writing decisions to the log: journaled on local disk before the answer leaves, then sent.

`DecisionLog.submit` encodes the decision with the decision contract (tens
of microseconds) and queues it in memory. A *journal* thread appends what
has queued to the `Backlog` (an SQLite file, fsync'd) in one write: group
commit, so one disk write serves all the requests that arrived during the
previous one. With ``wait=True`` (the default, and what ``loopline serve``
runs) an HTTP answer awaits `kept` and so leaves only once its decision is
on disk: a kill -9 of the process, a crash of the machine or an outage of
the log loses no answered decision. (``wait=False`` answers at once; a
crash then loses what waited in memory, at most a few milliseconds of
decisions.) A *sender* thread sends the backlog to the log, oldest first,
in batches of `max_batch`, each one transaction; a batch leaves the backlog
only after its transaction committed. Any error of the log (unreachable,
topic gone, files unwritable: whatever it raises) leaves the batch where it
is, and the sender tries again every `retry_interval` seconds.

A local log (the embedded one, `Log.local`) is as durable as the journal
(an fsync'd SQLite commit on the same machine) and cannot be unreachable:
there the journal thread commits each batch to the topic itself, one write
instead of three (journal, send, delete), and the answers wait for that
commit. The journal takes a batch only when the log failed to, or while
decisions wait in it already, so the order on the topic stays the order of
the answers. `journaled` counts the decisions that went through it.

Exactly once. The sender's transactional id is the backlog's own identity,
so a restarted process fences its predecessor (an open transaction is
aborted, a committing one completes). A crash between a commit and the
removal from the backlog would send that batch twice; so when it starts
with decisions waiting, the sender first reads the topic from the oldest
waiting decision's time and forgets those already there.

A record the log will never take is not allowed to block the rest. A
decision larger than the topic takes (`max_record_bytes`, from its
``max.message.bytes``, at most librdkafka's 1,000,000 bytes) is refused by
`submit` with `DecisionTooLarge` (the service answers 413); one found
waiting in the backlog (written by an earlier version, or the topic's limit
was lowered) goes to ``<topic>.dlq`` with the reason (without its value,
which the log refuses too) and is counted as dropped. Past the backlog's
own bound decisions are dropped, counted and logged; `full` and `stuck`
turn the service's readiness off.

>>> import asyncio, datetime, tempfile
>>> from loopline.contracts import LogRegistry
>>> from loopline.log import open_log
>>> from loopline.serving.decisions import Decision, decisions_topic
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> topic = decisions_topic("shop")
>>> decisions = DecisionLog(log, LogRegistry(log), topic, tempfile.mkdtemp(), label="shop")
>>> decisions.submit(Decision("id-1", datetime.datetime.now(datetime.UTC), "predict", "churn",
...     1, "member", "m-1", {}, [], [], latency_ms=0.4))
>>> asyncio.run(decisions.kept())  # on disk: what an answer waits for
>>> decisions.close()
>>> log.describe_topic("shop.decisions").partitions[0].end
1
>>> log.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path

from loopline.contracts import ContractViolation, SchemaRegistry, Topic
from loopline.contracts.registry import LogRegistry
from loopline.log import Log, LogError, Producer, TopicExists
from loopline.serving import metrics
from loopline.serving.backlog import Backlog, Encoded
from loopline.serving.decisions import Decision, check_values
from loopline.serving.journal import (
    DecisionNotKept,
    Waiters,
    decision_id,
    on_topic_already,
    record_limit,
)
from loopline.stream.deadletters import dead_letter, dlq_topic

__all__ = ["DecisionLog", "DecisionNotKept", "DecisionTooLarge"]

logger = logging.getLogger(__name__)


class DecisionTooLarge(ValueError):
    """The decision is larger than its topic takes: the log would refuse it."""


class DecisionLog:
    """Decisions on their way to `topic` of `log`, through a journal in `directory`.

    `registry` registers and binds the decision contract when `topic` is
    created (a `LogRegistry`), or only encodes with it (any schema registry,
    the topic then created and bound beforehand). `label` names this log in
    metrics (the application's name). `wait`: whether `kept` waits for the
    journal (see the module docstring). One process per `directory`: the
    journal's identity is its writer's transactional id.
    """

    def __init__(
        self,
        log: Log,
        registry: SchemaRegistry,
        topic: Topic[Decision],
        directory: str | Path,
        *,
        label: str,
        wait: bool = True,
        max_batch: int = 500,
        linger: float = 0.05,
        flush_timeout: float = 10.0,
        retry_interval: float = 1.0,
        max_pending: int = 100_000,
        max_backlog_bytes: int = 1 << 30,
        stuck_after: float = 30.0,
    ) -> None:
        self.log, self.topic, self.wait = log, topic, wait
        if isinstance(registry, LogRegistry):
            topic.create(log, registry)
        self._encoder = topic.producer(log, registry)  # validates against the contract
        self._encoder.close()  # only its encode is used; sending has its own producer
        self.max_record_bytes = record_limit(log, topic.name)
        self.backlog = Backlog(
            Path(directory) / "decisions-backlog.db", max_bytes=max_backlog_bytes
        )
        self.max_batch, self.linger = max_batch, linger
        self.flush_timeout, self.retry_interval = flush_timeout, retry_interval
        self.max_pending, self.stuck_after = max_pending, stuck_after
        self.written = 0
        self.dropped = 0
        self.journaled = 0
        self._lock = threading.Lock()
        self._queue: list[Encoded] = []
        self._submitted = 0  # tickets handed out by submit, in queue order
        self._waiters = Waiters()
        self._last = threading.local()  # the ticket of the last decision a thread submitted
        # A local log is as durable as the journal and never unreachable: decisions are
        # committed to it directly, one write instead of three, the journal kept for failures.
        self._direct = log.local
        self._sending = threading.Lock()  # one writer of the topic at a time: order is kept
        self._journal_wake = threading.Event()
        self._send_wake = threading.Event()
        self._stop_journal = threading.Event()
        self._stop_sending = threading.Event()
        self._producer: Producer | None = None
        self._transactional_id = f"loopline-decisions-{self.backlog.identity}"
        self._recovered = not len(self.backlog)  # decisions left by an earlier run: look first
        self._retry_at = 0.0
        self._stalled_since: float | None = None
        self._last_error = ""
        self._journal_error = ""
        self._full = False
        self._metrics = metrics.decision_metrics(label)
        self._metrics.backlog.set(len(self.backlog))
        self._threads = [
            threading.Thread(target=self._journal, name="loopline-decisions-journal", daemon=True),
            threading.Thread(target=self._send_loop, name="loopline-decisions", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the request path ------------------------------------------------------------------

    def submit(self, decision: Decision) -> None:
        """Queue `decision` for the journal, encoded; returns at once (`kept` waits for it).

        Raises `DecisionTooLarge` for a decision the topic would refuse.
        Encoding here, not in the writer, keeps one bytes object per queued
        decision instead of hundreds (candidates, feature dicts): they would
        live long enough to reach the garbage collector's oldest generation
        and make its full passes, which stop every request, frequent.
        """
        self._last.ticket = 0
        encoded = self._encode(decision)
        if encoded is None:
            return
        key, value, _ = encoded
        size = len(value) + len(key or b"")
        if size > self.max_record_bytes:
            raise DecisionTooLarge(
                f"its decision would be {size:,} bytes of JSON, over the {self.max_record_bytes:,} "
                f"bytes a record of topic {self.topic.name!r} may have (max.message.bytes, "
                "less room for the record's framing): send fewer or shorter candidates"
            )
        with self._lock:
            if len(self._queue) >= self.max_pending:
                self._drop(1)
                self._last.ticket = -1
                return
            self._queue.append(encoded)
            self._submitted += 1
            self._last.ticket = self._submitted
        self._metrics.pending.inc()
        self._journal_wake.set()

    async def kept(self) -> None:
        """Wait until the last decision this thread submitted is on disk (with `wait`).

        Raises `DecisionNotKept` when it could not be written (the journal's
        disk failed or is full).
        """
        if not self.wait:
            return
        ticket = getattr(self._last, "ticket", 0)
        if ticket == 0:
            return
        if ticket < 0:
            raise DecisionNotKept(
                f"{self.max_pending:,} decisions wait for the journal {self.backlog.path}: "
                "is its disk very slow?"
            )
        future = self._waiters.wait(ticket, asyncio.get_running_loop())
        if future is not None:
            await future

    @property
    def pending(self) -> int:
        """Decisions queued in memory, not yet in the journal."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        """True while the backlog has no room: decisions are being dropped."""
        return self._full

    @property
    def stuck(self) -> str | None:
        """Why decisions have not reached the log for `stuck_after` seconds (None: they do)."""
        if self._journal_error:
            return self._journal_error
        since = self._stalled_since
        if since is None or time.monotonic() - since < self.stuck_after:
            return None
        return (
            f"{len(self.backlog):,} decisions have waited {time.monotonic() - since:.0f} s "
            f"for topic {self.topic.name!r}: {self._last_error}"
        )

    # -- the journal thread ----------------------------------------------------------------

    def _journal(self) -> None:
        while True:
            stopping = self._stop_journal.is_set()
            if not stopping:
                self._journal_wake.wait(0.5)
                self._journal_wake.clear()
            with self._lock:
                batch, self._queue = self._queue, []
            if batch:
                self._metrics.pending.dec(len(batch))
                if self._direct and self._write_direct(batch):
                    kept, why = len(batch), ""
                else:
                    kept, why = self._keep(batch)
                    if kept:
                        self._send_wake.set()
                self._waiters.settle(len(batch), kept, why)
            elif stopping:
                return

    def _write_direct(self, records: list[Encoded]) -> bool:
        """Commit `records` to the topic now, if nothing waits in the journal ahead of them;
        False when they must go through the journal (a decision waits there, the sender is
        busy, or the log failed: the journal keeps them then, and the sender retries)."""
        if not self._sending.acquire(blocking=False):
            return False
        try:
            if len(self.backlog):  # (decisions left by an earlier run wait there too)
                return False
            if not self._send([(0, key, value, timestamp) for key, value, timestamp in records]):
                return False
            self._stalled_since = None
            return True
        finally:
            self._sending.release()

    def _keep(self, records: list[Encoded]) -> tuple[int, str]:
        try:
            kept = self.backlog.append(records)
        except Exception as exc:  # a disk error: the answers that wait for these fail
            self._journal_error = f"cannot write the decision journal {self.backlog.path}: {exc}"
            logger.error("%s; %d decisions were dropped", self._journal_error, len(records))
            self._drop(len(records))
            return 0, self._journal_error
        self._journal_error = ""
        self.journaled += kept
        self._metrics.backlog.set(len(self.backlog))
        if kept == len(records):
            return kept, ""
        self._full = True
        self._drop(len(records) - kept)
        why = (
            f"the decision backlog {self.backlog.path} is full ({self.backlog.bytes:,} bytes): "
            f"the log has not taken decisions for a while ({self._last_error or 'no error yet'})"
        )
        logger.error("%s; %d decisions were dropped", why, len(records) - kept)
        return kept, why

    def _encode(self, decision: Decision) -> Encoded | None:
        try:
            check_values(decision)  # the rest the service made with the contract's types
            return self._encoder.encode(decision, checked=True)
        except ContractViolation as exc:  # a bug in the service, not a reason to stop
            logger.error("decision %s breaks its contract: %s", decision.decision_id, exc)
            self._drop(1)
            return None

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._metrics.dropped.inc(count)

    # -- the sender thread -----------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            stopping = self._stop_sending.is_set()
            if not stopping:
                self._send_wake.wait(self.retry_interval)
                self._send_wake.clear()
                if len(self.backlog) < self.max_batch:
                    self._stop_sending.wait(self.linger)  # let a batch fill
            if len(self.backlog) and (stopping or time.monotonic() >= self._retry_at):
                try:
                    with self._sending:  # held only with work to do: the journal's direct
                        self._drain()  # writes go ahead whenever nothing waits
                except Exception as exc:  # never let the sender die: the service keeps answering
                    self._failed(exc, "the decision log's sender")
            if stopping:
                return

    def _drain(self) -> None:
        if not self._recovered:
            self._forget_sent()
        while rows := self.backlog.peek(self.max_batch):
            if not self._send(rows):
                return
            self.backlog.remove(rows[-1][0])
            self._full = False
            self._stalled_since = None
            self._metrics.backlog.set(len(self.backlog))

    def _forget_sent(self) -> None:
        rows = self.backlog.peek(self.max_batch)  # a crash can only have left the oldest batch
        self._ensure_producer()  # fences the last run, so its last transaction is settled
        last = on_topic_already(self.log, self.topic.name, rows, self.flush_timeout + 50)
        if last is not None:
            self.backlog.remove(last)
            self._metrics.backlog.set(len(self.backlog))
            logger.info("decisions waiting in %s were on the log already", self.backlog.path)
        self._recovered = True

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.log.producer(transactional_id=self._transactional_id)
        return self._producer

    def _send(self, rows: list[tuple[int, bytes | None, bytes, int | None]]) -> bool:
        name, limit = self.topic.name, self.max_record_bytes
        refused = [r for r in rows if len(r[2]) + len(r[1] or b"") > limit]
        try:
            if refused:
                with contextlib.suppress(TopicExists):
                    self.log.create_topic(dlq_topic(name))
            producer = self._ensure_producer()
            producer.begin_transaction()
            send = producer.send
            for _, key, value, timestamp in rows:
                if len(value) + len(key or b"") > limit:
                    reason = (
                        f"decision {decision_id(value)} is {len(value):,} bytes, over the "
                        f"{limit:,} a record of {name!r} may have (max.message.bytes); "
                        "its value is not kept"
                    )
                    key, value, headers = dead_letter(
                        None, reason, None, None, key=key, source=name
                    )
                    send(dlq_topic(name), None, key, headers=headers)
                else:
                    send(name, value, key, timestamp=timestamp)
            producer.flush(self.flush_timeout)
            producer.commit_transaction()
        except Exception as exc:  # whatever the backend raised: the batch stays in the backlog
            self._failed(exc, f"the log did not take {len(rows)} decisions")
            self._reset_producer()
            return False
        if refused:
            self._drop(len(refused))
            logger.error(
                "%d decisions too large for %s went to %s", len(refused), name, dlq_topic(name)
            )
        self.written += len(rows) - len(refused)
        self._metrics.written.inc(len(rows) - len(refused))
        return True

    def _failed(self, exc: Exception, what: str) -> None:
        self._retry_at = time.monotonic() + self.retry_interval
        if self._stalled_since is None:
            self._stalled_since = time.monotonic()
        self._last_error = (
            f"{type(exc).__name__}: {exc}" if not isinstance(exc, LogError) else str(exc)
        )
        logger.warning(
            "%s (%s); they wait in %s, retrying", what, self._last_error, self.backlog.path
        )

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
        while self._queue or self._waiters.settled < self._submitted or len(self.backlog):
            if time.monotonic() > deadline:
                return False
            self._retry_at = 0.0
            self._journal_wake.set()
            self._send_wake.set()
            time.sleep(0.02)
        return True

    def close(self) -> None:
        """Journal what is queued, try once more to send the backlog, and stop."""
        self._stop_journal.set()
        self._journal_wake.set()
        self._threads[0].join(timeout=60)
        self._stop_sending.set()
        self._send_wake.set()
        self._threads[1].join(timeout=self.flush_timeout + 60)
        self._reset_producer()
        self.backlog.close()
