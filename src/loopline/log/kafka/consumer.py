"""Reading a Kafka log: `KafkaConsumer`, loopline's `Consumer` on librdkafka.

Three things differ from using confluent-kafka's consumer directly:

- **The consumer owns its partitions when it is returned** (`membership`), each
  assigned at an explicit start offset, so `position` is exact, and `seek` works,
  before the first `poll`.
- **Positions are loopline's own.** The position of a partition is the offset
  after the last record `poll` returned (or where a seek put it); `commit()`
  stores exactly these positions, for the partitions `poll` returned records
  from or that were seeked.
- **The end of a partition is where reading ends.** librdkafka reports the end of
  a partition with its offset; the position moves there. For a
  ``read_committed`` consumer this steps over transaction markers (which occupy
  offsets but are never returned), so `lag` reaches 0 once a transactional
  topic is read to its end, rather than staying at one per transaction.

`poll` returns as soon as records are there: librdkafka's ``consume(n, t)``
waits until it has `n` messages or `t` has passed, so `poll` takes what is
already fetched, and only when nothing is waits for a first message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from loopline.log.errors import LogError, LogUnavailable, TransactionError
from loopline.log.kafka.admin import TopicAdmin
from loopline.log.kafka.config import incremental_rebalancing, logger
from loopline.log.kafka.deadline import Stuck, within
from loopline.log.kafka.errors import (
    MISSING_TOPIC,
    UNREACHABLE,
    ErrorTrail,
    error_code,
    reason,
    translate,
)
from loopline.log.kafka.membership import Membership
from loopline.log.kafka.messages import events, to_records
from loopline.log.kafka.offsets import (
    EARLIEST,
    LATEST,
    committed_offsets,
    held_by_transaction,
    start_offsets,
)
from loopline.log.kafka.progress import Progress
from loopline.log.records import Record, TopicPartition

_EOF = KafkaError._PARTITION_EOF
# Reported, then retried by librdkafka: a broker out of reach, or this member having
# been dropped from its group for not polling in max.poll.interval.ms (it rejoins).
_PASSING = UNREACHABLE | {KafkaError._MAX_POLL_EXCEEDED}
_REBALANCED = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.STALE_MEMBER_EPOCH,
    }
)


class KafkaConsumer:
    """Reads records of its assigned partitions from Kafka; see `loopline.log.Consumer`.

    Made by `KafkaLog.consumer`. Not thread-safe: use one consumer per thread.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        group: str | None,
        topics: Sequence[str],
        partitions: Mapping[str, int],
        reset: Literal["earliest", "latest"],
        read_committed: bool,
        admin: TopicAdmin,
        user_config: Mapping[str, Any],
        timeout: float,
    ):
        self.group = group
        self.topics = tuple(topics)
        self.url = admin.url
        self._admin = admin
        self._user_config = user_config
        self._reset = reset
        self._read_committed = read_committed
        self._timeout = timeout
        self._progress = Progress(self.topics)
        self._closed = False
        self._stuck = Stuck()  # commits and look-ups still waiting past the timeout
        self._trail = ErrorTrail()
        try:
            self._consumer = Consumer({**config, "error_cb": self._trail})
        except KafkaException as exc:
            raise self._fail(exc, "create a Kafka consumer") from None
        self._membership = Membership(
            self._consumer,
            self._progress,
            self._start_offsets,
            group=group,
            topics=self.topics,
            incremental=group is None or incremental_rebalancing(config),
            url=self.url,
            user_config=user_config,
            timeout=timeout,
        )
        try:
            if group is None:
                self._membership.assign_all(partitions)
            else:
                self._membership.join(self._records)
        except BaseException:
            self._closed = True
            self._consumer.close()
            raise

    def __repr__(self) -> str:
        return (
            f"KafkaConsumer(group={self.group!r}, topics={list(self.topics)!r}, log={self.url!r})"
        )

    def _start_offsets(
        self, partitions: list[TopicPartition], *, in_callback: bool = False
    ) -> dict[TopicPartition, int]:
        """Where reading `partitions` starts (`in_callback`: inside a rebalance callback)."""
        self._check_not_stuck("find where to start reading")
        try:
            return start_offsets(
                self._consumer,
                self._admin,
                partitions,
                self._reset,
                grouped=self.group is not None,
                read_committed=self._read_committed,
                timeout=self._timeout,
                stuck=None if in_callback else self._stuck,
            )
        except (KafkaException, TimeoutError) as exc:
            action = f"find where to start reading {self.topics}"
            raise self._lookup_failed(exc, action, partitions) from None

    # -- reading ----------------------------------------------------------------

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Return up to `max_records` records, waiting up to `timeout` seconds for the first."""
        if self._closed:
            raise self._closed_error()
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        progress = self._progress
        if progress.held:
            records = progress.take_held(max_records)
            if records:
                progress.returned(records)
                return records
        consume = self._consumer.consume
        deadline = time.monotonic() + timeout
        while True:
            # consume(n, t) waits for n messages or t seconds; wait only for the first.
            messages = consume(max_records, 0)
            if not messages and timeout > 0:
                messages = consume(1, timeout)
                if messages and max_records > 1:
                    messages += consume(max_records - 1, 0)
            records = self._records(messages) if messages else []
            if self._membership.error is not None:
                progress.held.extend(records)
                self._membership.raise_error()
            if records or not messages:
                break
            timeout = deadline - time.monotonic()  # only partition ends came: wait on
            if timeout <= 0:
                break
        if records:
            progress.returned(records)
        if progress.ends:
            progress.apply_ends()
        return records

    def _records(self, messages: list[Message]) -> list[Record]:
        """The records of `messages` to return now; events handled, paused partitions held."""
        records = to_records(messages)
        if len(records) != len(messages):
            try:
                self._handle_events(messages)
            except LogError:
                self._progress.held.extend(records)  # returned by the next poll, never lost
                raise
        if self._progress.paused:
            records = self._progress.hold_paused(records)
        return records

    def _handle_events(self, messages: list[Message]) -> None:
        for m in events(messages):
            err = m.error()
            code = err.code()
            if code == _EOF:
                self._progress.end_seen((m.topic(), m.partition()), m.offset())
            elif code in MISSING_TOPIC:
                raise self._fail(err, f"read topic {m.topic()!r}", topic=m.topic())
            elif err.fatal() or not (err.retriable() or code in _PASSING):
                where = f"{m.topic()}[{m.partition()}]" if m.topic() else str(list(self.topics))
                raise self._fail(err, f"read {where}")
            else:
                why = reason(err, self._user_config)
                logger.warning("consumer of %s: %s (retrying)", self.url, why)

    # -- offsets ----------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Store the group's offsets (default: the position of each partition read or seeked)."""
        self._check_open()
        if self.group is None:
            raise LogError(
                f"cannot commit: this consumer of {list(self.topics)} has no group; "
                "open it with a group name, e.g. log.consumer('my-app', topics), to store offsets"
            )
        chosen = self._progress.commit_offsets() if offsets is None else offsets
        parts = [KafkaPartition(tp[0], tp[1], offset) for tp, offset in chosen.items()]
        if not parts:
            return
        action = f"commit offsets of group {self.group!r}"
        self._check_not_stuck(action)
        try:
            # a synchronous commit waits for an unreachable group coordinator without limit
            commit = self._consumer.commit
            result = within(
                self._timeout, commit, offsets=parts, asynchronous=False, stuck=self._stuck
            )
        except (KafkaException, TimeoutError) as exc:
            raise self._commit_error(exc, action) from None
        result = result or []
        for part in result:
            if part.error is not None:
                raise self._commit_error(part.error, action)

    def _commit_error(self, exc: BaseException | KafkaError, action: str) -> LogError:
        if error_code(exc) in _REBALANCED:
            return LogError(
                f"cannot {action}: the group rebalanced and these partitions may belong to "
                f"another member now ({reason(exc, self._user_config)}); poll() again and "
                "commit what this consumer still owns"
            )
        return self._fail(exc, action)

    def _transaction_offsets(
        self, offsets: Mapping[TopicPartition, int] | None
    ) -> tuple[list[KafkaPartition], Any]:
        """What `KafkaProducer.send_offsets` commits: offsets and the group's metadata."""
        self._check_open()
        if self.group is None:
            raise TransactionError(
                f"cannot send offsets: the consumer of {list(self.topics)} has no group; "
                "a transaction commits the offsets of a consumer group"
            )
        chosen = self._progress.commit_offsets() if offsets is None else offsets
        parts = [KafkaPartition(tp[0], tp[1], offset) for tp, offset in chosen.items()]
        return parts, self._consumer.consumer_group_metadata()

    def committed(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where nothing was committed)."""
        self._check_open()
        if partitions is None:
            parts = self.assignment()
        else:
            parts = [TopicPartition(tp[0], tp[1]) for tp in partitions]
        if self.group is None:
            return dict.fromkeys(parts)
        self._check_not_stuck(f"read the committed offsets of group {self.group!r}")
        try:
            return committed_offsets(self._consumer, parts, self._timeout, self._stuck)
        except (KafkaException, TimeoutError) as exc:
            action = f"read the committed offsets of group {self.group!r}"
            raise self._lookup_failed(exc, action, parts) from None

    def assignment(self) -> list[TopicPartition]:
        """The partitions this consumer currently reads."""
        self._check_open()
        return sorted(self._progress.positions)

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record this consumer will return from `partition`."""
        tp = self._assigned(partition)
        position = self._progress.positions[tp]
        if position is None:  # the start offset look-up failed during the rebalance
            position = self._resolve(tp)
            self._progress.positions[tp] = position
        return position

    def _resolve(self, tp: TopicPartition) -> int:
        try:
            (known,) = self._consumer.position([KafkaPartition(tp.topic, tp.partition)])
        except KafkaException as exc:
            raise self._fail(exc, f"find the position of {tp.topic}[{tp.partition}]") from None
        if known.offset >= 0:
            return known.offset
        return self._start_offsets([tp])[tp]

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Continue reading `partition` at `offset`."""
        tp = self._assigned(partition)
        if offset < 0:
            raise LogError(
                f"cannot seek {tp.topic}[{tp.partition}] to {offset}: offsets start at 0"
            )
        self._seek({tp: offset})

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Continue at the first offset still held (default: every assigned partition)."""
        self._seek(self._offsets(self._chosen(partitions), EARLIEST))

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Continue after the last record (only new records will be read)."""
        self._seek(self._offsets(self._chosen(partitions), LATEST))

    def seek_to_time(
        self, timestamp: int, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        """Continue at the first record whose timestamp is >= `timestamp` (ms), or at the end."""
        if timestamp < 0:
            raise LogError(f"cannot seek to time {timestamp}: use milliseconds since the epoch")
        targets = self._offsets(self._chosen(partitions), timestamp)
        missing = [tp for tp, offset in targets.items() if offset is None]
        targets.update(self._offsets(missing, LATEST))
        self._seek(targets)

    def _offsets(
        self, partitions: list[TopicPartition], when: int
    ) -> dict[TopicPartition, int | None]:
        return self._admin.offsets(partitions, when, read_committed=self._read_committed)

    def _seek(self, targets: Mapping[TopicPartition, int | None]) -> None:
        for tp, offset in targets.items():
            if offset is None:
                continue
            part = KafkaPartition(tp.topic, tp.partition, offset)
            try:
                self._consumer.seek(part)
            except KafkaException as exc:
                if error_code(exc) != KafkaError._STATE or not self._membership.incremental:
                    action = f"seek {tp.topic}[{tp.partition}] to offset {offset}"
                    raise self._fail(exc, action) from None
                # Fetching has not started yet: restart the partition at the offset instead.
                self._consumer.incremental_unassign([KafkaPartition(tp.topic, tp.partition)])
                self._consumer.incremental_assign([part])
                if tp in self._progress.paused:
                    self._consumer.pause([KafkaPartition(tp.topic, tp.partition)])
            self._progress.seeked(tp, offset)

    # -- flow -------------------------------------------------------------------

    def pause(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Stop returning records of `partitions` until `resume`."""
        chosen = self._chosen(partitions)
        try:
            self._consumer.pause([KafkaPartition(t, p) for t, p in chosen])
        except KafkaException as exc:
            raise self._fail(exc, f"pause {[tuple(tp) for tp in chosen]}") from None
        self._progress.paused.update(chosen)

    def resume(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Return records of paused `partitions` again."""
        chosen = self._chosen(partitions)
        try:
            self._consumer.resume([KafkaPartition(t, p) for t, p in chosen])
        except KafkaException as exc:
            raise self._fail(exc, f"resume {[tuple(tp) for tp in chosen]}") from None
        self._progress.paused.difference_update(chosen)

    def lag(self) -> dict[TopicPartition, int]:
        """Records not yet read per assigned partition: end offset minus position.

        The end is the high watermark, or for a ``read_committed`` consumer the
        last stable offset. A transaction's commit marker takes an offset too; the
        position steps over it once `poll` has reached the end of the partition.
        """
        parts = self.assignment()
        ends = self._offsets(parts, LATEST)
        return {tp: max(0, (ends[tp] or 0) - self.position(tp)) for tp in parts}

    def close(self) -> None:
        """Leave the group and release resources (does not commit)."""
        if self._closed:
            return
        self._closed = True
        if self._stuck:  # closing under a waiting call would free what it uses
            logger.warning(
                "consumer of %s: a commit or look-up still waits; it closes after it", self.url
            )
            self._stuck.then(self._consumer.close, f"closing consumer of {self.url}")
            self._progress.held = []
            return
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            why = reason(exc, self._user_config)
            logger.warning("closing consumer of %s: %s", self.url, why)
        self._progress.held = []

    # -- helpers ----------------------------------------------------------------

    def _fail(
        self, exc: BaseException | KafkaError, action: str, topic: str | None = None
    ) -> LogError:
        return translate(exc, action, self.url, self._user_config, topic=topic, trail=self._trail)

    def _lookup_failed(
        self, exc: BaseException, action: str, partitions: Iterable[TopicPartition]
    ) -> LogError:
        """The error of a committed-offsets look-up that failed: when it timed out because a
        transaction holds the offsets back (which librdkafka does not say), that."""
        timed_out = isinstance(exc, TimeoutError) or error_code(exc) == KafkaError._TIMED_OUT
        if self.group is not None and self._read_committed and timed_out:
            held = self._admin.held_offsets(self.group, partitions)
            if held:
                return LogUnavailable(held_by_transaction(action, self.group, held, self.url))
        return self._fail(exc, action)

    def _closed_error(self) -> LogError:
        return LogError(f"{self!r} is closed: open a new consumer with log.consumer(...)")

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    def _check_not_stuck(self, action: str) -> None:
        """Calls to the group coordinator would wait behind a call still waiting for it."""
        if self._stuck:
            raise LogUnavailable(
                f"cannot {action}: an earlier commit or offset look-up of this consumer is "
                f"still waiting for {self.url} past the timeout; close it and open a new one"
            )

    def _assigned(self, partition: TopicPartition) -> TopicPartition:
        self._check_open()
        tp = TopicPartition(partition[0], partition[1])
        if tp not in self._progress.positions:
            assigned = [tuple(t) for t in sorted(self._progress.positions)]
            raise LogError(
                f"partition {tp.topic}[{tp.partition}] is not assigned to {self!r}; "
                f"it reads {assigned}"
            )
        return tp

    def _chosen(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        if partitions is None:
            return self.assignment()
        return [self._assigned(tp) for tp in partitions]
