"""Flushes and offset commits on a private Kafka broker that is stopped and started again.

`KafkaLog(timeout=...)` bounds every call. Two of librdkafka's calls wait for
the group coordinator without a limit while it is unreachable: a transaction's
``send_offsets_to_transaction`` ignores its timeout (librdkafka issue #5456),
and a consumer's synchronous ``commit`` has none; a flush waits up to
``message.timeout.ms`` (five minutes). Here they raise `LogUnavailable` (a
flush: `DeliveryError`) within the timeout while the broker is down, a stage can then
stop or start again, and after the broker is back a new producer and consumer
commit, and nothing committed before the outage is lost. A process reading a
group's committed offsets while the broker shuts down goes on (librdkafka's
admin request for them crashed it: decision 0048).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from loopline.log import DeliveryError, LogUnavailable, TopicPartition
from loopline.log.kafka.deadline import Stuck
from loopline.log.kafka.log import KafkaLog
from loopline.log.kafka.offsets import committed_offsets
from serving.test_log_outage import Broker
from support import KAFKA_CONFIG

pytestmark = pytest.mark.slow

TIMEOUT = 3.0

# Reads a group's committed offsets over and over in a process of its own (a client library
# that crashes takes only that process down); prints "read" once a look-up answered.
READER = textwrap.dedent(
    """
    import sys, time
    from loopline.log import LogError
    from loopline.log.kafka.log import KafkaLog

    bootstrap, group, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    log = KafkaLog(bootstrap, timeout=3)
    answered = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            log.committed_offsets(group)
        except LogError:
            failed += 1
            time.sleep(0.01)
            continue
        answered += 1
        if answered == 1:
            print("read", flush=True)
    print(answered, failed, flush=True)
    log.close()
    """
)


def _ended_within(seconds: float, call) -> tuple[BaseException | None, float]:
    """Run `call` in a thread; what it raised and how long it took (fails past `seconds`)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            call()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert "took" in outcome, f"still waiting after {seconds} s (the timeout is {TIMEOUT} s)"
    return outcome.get("error"), outcome["took"]  # type: ignore[return-value]


def _calls_ended(timeout: float) -> None:
    """Wait for the librdkafka calls loopline stopped waiting for (`deadline.within`)."""
    deadline = time.monotonic() + timeout
    while any(t.name == "loopline-kafka-call" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a Kafka call still waits"
        time.sleep(0.1)


def _consumer(log: KafkaLog, group: str | None):
    """A consumer from offset 0, tried again while a broker just started loads its groups."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return log.consumer(group, ["in" if group else "out"], reset="earliest")
        except LogUnavailable:
            if time.monotonic() > deadline:
                raise


def test_offset_commits_end_within_the_timeout_while_the_broker_is_down(tmp_path) -> None:
    broker = Broker(tmp_path / "kafka")
    broker("start")
    try:
        log = KafkaLog(broker.bootstrap, KAFKA_CONFIG, timeout=TIMEOUT)  # sessions of 2 s
        # librdkafka's default session (45 s): a commit waits for the coordinator all along
        plain = KafkaLog(broker.bootstrap, timeout=TIMEOUT)
        log.create_topic("in")
        log.create_topic("out")
        log.create_topic("aside")
        feeder = log.producer()
        for i in range(10):
            feeder.send("in", b"%d" % i, partition=0)
        feeder.flush()
        feeder.close()
        tid = f"outage-{uuid.uuid4().hex[:8]}"
        eos = _consumer(log, "exactly-once")
        alo = _consumer(plain, "at-least-once")
        producer = log.producer(transactional_id=tid)
        first = eos.poll(10)
        assert alo.poll(10) and first
        # one whole transaction and one commit: the coordinators are known and up
        producer.begin_transaction()
        producer.send("out", b"before")
        producer.send_offsets(eos, {TopicPartition("in", 0): 4})
        producer.commit_transaction()
        alo.commit({TopicPartition("in", 0): 6})
        producer.begin_transaction()
        producer.send("out", b"during")
        plain_producer = log.producer()
        plain_producer.send("aside", b"before")
        plain_producer.flush()

        # The dashboard and the monitor read groups' offsets all the time; librdkafka's admin
        # request for them crashed the process when it met a broker shutting down (0048).
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, broker.bootstrap, "at-least-once", "5"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert reader.stdout is not None and reader.stdout.readline() == "read\n"

        broker("stop")
        out, _ = reader.communicate(timeout=60)
        assert reader.returncode == 0, f"reading offsets while the broker stopped: {out!r}"
        # a flush of a record the broker cannot take gives up once nothing was acknowledged
        # for the timeout (librdkafka's message.timeout.ms would hold it for five minutes)
        plain_producer.send("aside", b"unsent")
        error, took = _ended_within(TIMEOUT + 10, plain_producer.flush)
        assert isinstance(error, DeliveryError) and "unacknowledged" in str(error), error
        assert took < TIMEOUT + 2, took
        error, _ = _ended_within(TIMEOUT + 10, plain_producer.close)  # drops the record
        assert isinstance(error, DeliveryError), error
        for call in (
            lambda: producer.send_offsets(eos, {TopicPartition("in", 0): 8}),
            lambda: alo.commit({TopicPartition("in", 0): 9}),
        ):
            error, took = _ended_within(TIMEOUT + 10, call)
            assert isinstance(error, LogUnavailable), error
            assert took < TIMEOUT + 2, took
        # where a consumer starts reading, looked up while the broker is down (as `position`
        # does for a partition whose start the group's rebalance could not look up)
        error, _ = _ended_within(
            TIMEOUT + 10, lambda: eos._start_offsets([TopicPartition("in", 0)])
        )
        assert isinstance(error, LogUnavailable), repr(error)
        # a consumer whose commit still waits says so at once: another call to the group's
        # coordinator would wait behind it
        error, took = _ended_within(TIMEOUT + 10, lambda: alo.committed([TopicPartition("in", 0)]))
        assert isinstance(error, LogUnavailable) and took < 1, (error, took)
        # what a stage does next: give up its transaction and close, within the timeout too
        for call in (producer.abort_transaction, producer.close, eos.close, alo.close):
            _ended_within(2 * TIMEOUT + 5, call)

        broker("resume")
        # the calls left waiting end once the broker answers
        _ended_within(60, lambda: _calls_ended(60))
        part = TopicPartition("in", 0)
        assert log.committed_offsets("exactly-once") == {part: 4}  # never committed: 8
        # a commit that timed out can still land when the broker answers (no client can take
        # it back): its records were read, so a consumer that goes on from there loses none
        assert log.committed_offsets("at-least-once") in ({part: 6}, {part: 9})
        again = log.producer(transactional_id=tid)  # fences the stuck one
        eos = _consumer(log, "exactly-once")
        again.begin_transaction()
        again.send("out", b"after")
        again.send_offsets(eos, {part: 10})
        again.commit_transaction()
        # (the coordinator writes the transaction's offsets a moment after the commit returns)
        deadline = time.monotonic() + 30
        while log.committed_offsets("exactly-once") != {part: 10}:
            assert time.monotonic() < deadline, log.committed_offsets("exactly-once")
            time.sleep(0.2)
        values = [r.value for r in _consumer(log, None).poll(10)]
        assert values == [b"before", b"after"], values
        for client in (again, eos, log, plain):
            client.close()
    finally:
        broker("stop")


class _Waiting:
    """librdkafka's ``committed()`` as seen once after a broker came back: past its timeout."""

    def __init__(self) -> None:
        self.answer = threading.Event()

    def committed(self, parts, timeout):
        self.answer.wait(60)
        return parts


def test_a_committed_offsets_look_up_past_its_timeout_ends_at_the_deadline() -> None:
    # The stricter broker-outage stage test (tests/stream/test_faults.py) saw the outcome
    # joiner's look-up wait for minutes with the broker back; its stack ended in
    # ``Consumer.committed(parts, 5)``. This is that call, held past its timeout.
    client, stuck = _Waiting(), Stuck()
    error, took = _ended_within(
        TIMEOUT + 10, lambda: committed_offsets(client, [("t", 0)], 1, stuck)
    )
    assert isinstance(error, TimeoutError) and took < 3, (error, took)
    assert stuck  # the client is not used again (nor closed) until the call ends
    client.answer.set()
    _ended_within(10, lambda: _calls_ended(10))
    assert not stuck
