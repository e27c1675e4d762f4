"""The outcome joiner survives kill -9: every labelled example exactly once, on both backends.

Decisions (some delivered twice) and outcomes (on time, too late, about
nothing shown) reach two applications' topics. The first application's
joiner runs in a subprocess that is killed with SIGKILL at random moments
(during restore, mid-transaction, between commits) while more decisions and
outcomes arrive, and is started again; a last run catches up. The second
application's joiner runs once, cleanly, over everything. The labelled and
late topics of both must hold the same records, each exactly once, and every
returned item of every decision must have its example (nothing was left
unread). The subprocess holds its clock before the data, so windows close by
event time only, as in the clean run; the last runs close the rest by clock.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

from loopline.app import App
from loopline.log import TopicConfig, open_log
from loopline.outcomes import Outcomes
from loopline.outcomes.joiner import OutcomeJoiner
from outcomes.test_joiner import outcome, rank_decision
from support import KAFKA_CONFIG, unique

WINDOW = 5 * 60_000
DECISIONS = 400
SHOWN = 2

PROCESS = textwrap.dedent(
    """
    import json, sys
    from loopline import App
    from loopline.log import open_log
    from loopline.outcomes import Outcomes
    from loopline.outcomes.joiner import OutcomeJoiner
    url, name, config, clock = sys.argv[1:]
    log = open_log(url, kafka_config=json.loads(config)) if url.startswith("kafka") else open_log(url)
    print("started", flush=True)
    app = App(name, outcomes=Outcomes(window="5m", positive=["accepted"]))
    joiner = OutcomeJoiner(log, app, instance="a", commit_interval=0.02, max_batch=25,
                           clock=lambda: int(clock))
    joiner.run(on_commit=lambda j: print("commit", sum(j.runner.consumer.lag().values()), flush=True))
    """
)


def _records(rng: random.Random, base: int) -> tuple[list, list]:
    """Decisions (in time order, a few twice) and outcomes (in time order)."""
    decisions, outcomes = [], []
    for n in range(DECISIONS):
        at = base + n * 5_000
        member = f"m{rng.randrange(30)}"
        shown = rng.sample([f"m{i}" for i in range(30, 60)], SHOWN)
        decision = rank_decision(f"d-{n}", member, at, shown)
        decisions.append((decision, at))
        if rng.random() < 0.05:  # written twice (at least once delivery)
            decisions.append((decision, at))
        for item in shown:
            if rng.random() < 0.4:
                when = at + rng.randrange(0, WINDOW + 120_000)  # some after the window
                by_id = rng.random() < 0.5
                extra = {"decision_id": decision["decision_id"]} if by_id else {}
                outcomes.append((outcome(member, when, item=item, **extra), when))
        if rng.random() < 0.03:
            when = at + 1_000
            outcomes.append((outcome(member, when, item="nobody-shown"), when))
    outcomes.sort(key=lambda pair: pair[1])
    return decisions, outcomes


def _chunks(records: list, n: int) -> list[list]:
    """`records` in `n` consecutive pieces (each topic stays in time order)."""
    size = -(-len(records) // n)
    return [records[i * size : (i + 1) * size] for i in range(n)]


def _produce(log, topic: str, records: list, every: int = 10**9) -> None:
    """Write `records` to `topic`, flushing every `every` records (so they trickle in)."""
    producer = log.producer()
    for n, (value, at) in enumerate(records, 1):
        producer.send(topic, json.dumps(value).encode(), value["entity"].encode(), timestamp=at)
        if n % every == 0:
            producer.flush()
    producer.flush()
    producer.close()


class _Joiner:
    """The joiner of application `name` in a subprocess, its output followed by a thread."""

    def __init__(self, url: str, name: str, clock: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROCESS, url, name, json.dumps(KAFKA_CONFIG), str(clock)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[bytes] = []
        stdout = self.proc.stdout
        assert stdout is not None
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, b"")))
        self.reader.start()

    def wait_commits(self, commits: int, quiet: float) -> None:
        """Until `commits` more commits, a commit with nothing left to read, or `quiet` s of silence."""
        seen, since, counted = len(self.lines), time.monotonic(), 0
        while counted < commits and self.proc.poll() is None:
            if len(self.lines) > seen:
                new, seen, since = self.lines[seen:], len(self.lines), time.monotonic()
                counted += sum(line.startswith(b"commit") for line in new)
                if any(line.strip() == b"commit 0" for line in new):
                    return  # caught up: no more commits until more records arrive
            if time.monotonic() - since > quiet:
                return
            time.sleep(0.005)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join()
        assert self.proc.returncode == -signal.SIGKILL, self.proc.stderr.read().decode()[-2000:]


def _topic(log, topic: str) -> list[bytes]:
    """Every committed value of `topic`, read to its end."""
    consumer = log.consumer(None, [topic], reset="earliest")
    out: list = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            out += consumer.poll(10_000, timeout=0.2)
            if not any(consumer.lag().values()):
                break
    finally:
        consumer.close()
    return [r.value for r in out]


def test_joiner_after_kill_9_writes_every_example_exactly_once(log_url, backend) -> None:
    log = open_log(log_url, kafka_config=KAFKA_CONFIG) if backend == "kafka" else open_log(log_url)
    rng, moments = random.Random(5), random.Random(backend)  # the data, when to kill
    base = int(time.time() * 1000) - 86_400_000  # a day ago: the last runs' clock closes all
    decisions, outcomes = _records(rng, base)
    crashed, clean = (
        App(unique(kind), outcomes=Outcomes(window="5m", positive=["accepted"]))
        for kind in ("crashed", "clean")
    )
    for app in (crashed, clean):
        for topic in ("decisions", "outcomes"):
            log.create_topic(f"{app.name}.{topic}", TopicConfig(partitions=2))
    _produce(log, f"{clean.name}.decisions", decisions)
    _produce(log, f"{clean.name}.outcomes", outcomes)

    kills = 3 if backend == "kafka" else 4  # each Kafka restart waits for the session timeout
    quiet = 12.0 if backend == "kafka" else 2.0  # a restarted Kafka member waits ~6 s first
    pieces = list(zip(_chunks(decisions, 2 * kills), _chunks(outcomes, 2 * kills), strict=True))

    def produce_a_piece() -> None:
        more_decisions, more_outcomes = pieces.pop(0)
        _produce(log, f"{crashed.name}.decisions", more_decisions, every=15)
        _produce(log, f"{crashed.name}.outcomes", more_outcomes, every=15)

    for _ in range(kills):
        produce_a_piece()
        joiner = _Joiner(log_url, crashed.name, clock=base)
        joiner.wait_commits(moments.randint(0, 3), quiet)  # 0: killed while starting or restoring
        arriving = threading.Thread(target=produce_a_piece)  # more while it runs
        arriving.start()
        time.sleep(moments.uniform(0, 0.15))  # while those arrive: mid-transaction, often
        joiner.kill()
        arriving.join()
    assert not pieces

    last = OutcomeJoiner(log, crashed, instance="a")
    stats = last.run_until_caught_up()
    last.close()
    assert stats.aborts == 0
    once = OutcomeJoiner(log, clean, instance="a")
    clean_stats = once.run_until_caught_up()
    once.close()
    assert clean_stats.examples == SHOWN * DECISIONS  # every returned item, each once
    assert clean_stats.positives > 50 and clean_stats.late > 10 and clean_stats.duplicates > 0

    def normalized(app: App) -> collections.Counter:
        return collections.Counter(
            json.dumps(json.loads(v), sort_keys=True) for v in _topic(log, f"{app.name}.labelled")
        )

    after_crashes, reference = normalized(crashed), normalized(clean)
    assert sum(reference.values()) == clean_stats.examples
    assert max(after_crashes.values()) == 1, "a labelled example was written twice"
    assert after_crashes == reference
    late = [
        collections.Counter(_topic(log, f"{app.name}.outcomes.late")) for app in (crashed, clean)
    ]
    assert late[0] == late[1]
    assert sum(late[1].values()) == clean_stats.late
    log.close()
