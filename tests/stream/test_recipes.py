"""The recipes of docs/architecture.md, tried: a new stage, a new backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from loopline.log import Log, LogError, TopicConfig, TopicInfo, TopicPartition, open_log
from loopline.log.partitioner import partition_for
from loopline.stream.runner import Runner
from loopline.stream.state import PartitionedState, StateCodec
from loopline.stream.task import Context, Task
from stream.faults import Faults, FaultyLog
from support import read_all, unique

# -- a new stage ---------------------------------------------------------------------------


class _Counts(StateCodec[TopicPartition, dict]):
    def new(self, unit: TopicPartition) -> dict:
        return {"counts": {}, "changed": set()}

    def load(self, state: dict, key: bytes, value: bytes | None) -> None:
        state["counts"][key.decode()] = int(value or b"0")

    def settle(self, state: dict) -> None:
        state["changed"].clear()

    def dump(self, unit: TopicPartition, state: dict) -> Iterable[tuple[bytes, bytes | None]]:
        for word in sorted(state["changed"]):
            yield word.encode(), str(state["counts"][word]).encode()
        state["changed"].clear()


class WordCounts(Task):
    """Counts each word (the record key) and writes the running count: the recipe's stage."""

    name = "words"

    def __init__(self, log: Log, source: str, target: str) -> None:
        self.topics, self.target = (source,), target
        self.changelog = f"{source}.counts.changelog"
        with contextlib.suppress(LogError):
            log.create_topic(self.changelog, TopicConfig(partitions=2, compact=True))
        self.state = PartitionedState(
            log, _Counts(), lambda tp: TopicPartition(self.changelog, tp.partition)
        )

    def process(self, records: list, context: Context) -> None:
        for record in records:
            if not record.key:
                context.dead_letter(record, "a word needs a key")
                continue
            tp = TopicPartition(record.topic, record.partition)
            state, word = self.state.get(tp), record.key.decode()
            state["counts"][word] = state["counts"].get(word, 0) + 1
            state["changed"].add(word)
            self.state.changed(tp)
            context.send(self.target, str(state["counts"][word]).encode(), record.key)

    def checkpoint(self, context: Context) -> None:
        self.state.write(lambda t, v, k, p: context.send(t, v, k, partition=p))

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self.state.drop(partitions)

    def reset(self) -> None:
        self.state.clear()


def test_a_new_stage_is_a_task(log) -> None:
    source, target = unique("words"), unique("counted")
    log.create_topic(source, TopicConfig(partitions=2))
    log.create_topic(target)
    producer = log.producer()
    words = [b"red", b"blue", b"red", None, b"red", b"blue"] * 20
    for word in words:
        producer.send(source, b"", word)
    producer.flush()
    producer.close()
    # A commit fails on the way: the runner rewinds, the task restores from its changelog.
    faulty = FaultyLog(log, Faults(commits={1}))
    task = WordCounts(faulty, source, target)
    runner = Runner(faulty, task, group=unique("counter"), commit_interval=0, max_batch=7)
    stats = runner.run(until_caught_up=True)
    runner.close()
    assert stats.aborts == 1 and faulty.faults.injected == 1
    counts: dict[bytes, list[int]] = {}
    for record in read_all(log, target):
        counts.setdefault(record.key, []).append(int(record.value))
    assert sorted(counts[b"red"]) == list(range(1, 61))  # each count exactly once
    assert sorted(counts[b"blue"]) == list(range(1, 41))
    assert len(read_all(log, f"{source}.dlq")) == 20


# -- a new backend -------------------------------------------------------------------------


class TenantLog:
    """A backend that keeps one tenant's topics under a prefix of another log (by delegation)."""

    def __init__(self, log: Log, tenant: str) -> None:
        self._log, self._prefix = log, f"{tenant}."

    def _name(self, topic: str) -> str:
        return self._prefix + topic

    def create_topic(self, name: str, config: TopicConfig | None = None) -> None:
        self._log.create_topic(self._name(name), config)

    def describe_topic(self, name: str) -> TopicInfo:
        return self._log.describe_topic(self._name(name))

    def list_topics(self) -> list[str]:
        n = len(self._prefix)
        return [t[n:] for t in self._log.list_topics() if t.startswith(self._prefix)]

    def delete_topic(self, name: str) -> None:
        self._log.delete_topic(self._name(name))

    def producer(self, *, transactional_id: str | None = None) -> Any:
        return _TenantProducer(self, self._log.producer(transactional_id=transactional_id))

    def consumer(self, group: str | None, topics: list[str], **kwargs: Any) -> Any:
        group = None if group is None else self._name(group)
        return self._log.consumer(group, [self._name(t) for t in topics], **kwargs)

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        n = len(self._prefix)
        return {
            TopicPartition(tp.topic[n:], tp.partition): offset
            for tp, offset in self._log.committed_offsets(self._name(group)).items()
            if tp.topic.startswith(self._prefix)
        }

    def close(self) -> None:
        return None


class _TenantProducer:
    def __init__(self, log: TenantLog, producer: Any) -> None:
        self._tenant, self._producer = log, producer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def send(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self._producer.send(self._tenant._name(topic), *args, **kwargs)


def test_a_new_backend_meets_the_contract(log_url) -> None:
    inner = open_log(log_url)
    log = TenantLog(inner, unique("tenant"))
    log.create_topic("clicks", TopicConfig(partitions=4))
    assert log.list_topics() == ["clicks"]
    # keyed records land where the Java client puts them (murmur2), in order, durable on flush
    producer = log.producer()
    for i in range(40):
        producer.send("clicks", str(i).encode(), f"member-{i % 7}".encode())
    assert producer.flush() == 40
    producer.close()
    consumer = log.consumer(None, ["clicks"], reset="earliest")
    records = []
    while len(records) < 40:
        batch = consumer.poll(100, timeout=5)
        assert batch, "records flushed are readable"
        records += batch
    consumer.close()
    for r in records:
        assert r.partition == partition_for(r.key, 4)
    # a transaction's records appear only once it commits, never when it aborts
    tx = log.producer(transactional_id=unique("tx"))
    tx.begin_transaction()
    tx.send("clicks", b"aborted", b"k")
    tx.abort_transaction()
    tx.begin_transaction()
    tx.send("clicks", b"committed", b"k")
    tx.commit_transaction()
    tx.close()
    values = [r.value for r in read_all(inner, log._name("clicks"))]
    assert b"committed" in values and b"aborted" not in values
    inner.close()
