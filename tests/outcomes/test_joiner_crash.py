"""The outcome joiner survives kill -9: every labelled example exactly once, on both backends.

Decisions (with repeats) and outcomes (on time, too late, without a
decision) are written first, to two applications' topics. The first
application's joiner runs in a subprocess that is killed with SIGKILL at
random moments (during restore, mid-transaction, between commits) and
started again; a last run finishes. The second application's joiner runs
once, cleanly. The labelled and late topics of both must hold the same
records, each exactly once.
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

from loopline.log import TopicConfig, open_log
from loopline.outcomes.joiner import OutcomeJoiner
from outcomes.test_joiner import outcome, rank_decision
from support import consume_all, unique

KAFKA_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
WINDOW = 5 * 60_000

PROCESS = textwrap.dedent(
    """
    import json, sys
    from loopline import App
    from loopline.log import open_log
    from loopline.outcomes import Outcomes
    from loopline.outcomes.joiner import OutcomeJoiner
    url, name, config = sys.argv[1:]
    log = open_log(url, kafka_config=json.loads(config)) if url.startswith("kafka") else open_log(url)
    print("started", flush=True)
    app = App(name, outcomes=Outcomes(window="5m", positive=["accepted"]))
    joiner = OutcomeJoiner(log, app, instance="a", commit_interval=0.02, max_batch=25)
    joiner.run(on_commit=lambda j: print("commit", flush=True))
    """
)


def _records(rng: random.Random) -> tuple[list, list]:
    base = int(time.time() * 1000) - 86_400_000  # a day ago: every window has passed
    decisions, outcomes = [], []
    for n in range(240):
        at = base + n * 5_000
        member = f"m{rng.randrange(30)}"
        shown = rng.sample([f"m{i}" for i in range(30, 60)], 2)
        decision = rank_decision(f"d-{n}", member, at, shown)
        decisions.append((decision, at))
        if rng.random() < 0.05:  # written twice (a retry of the decision log)
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


def _produce(log, topic: str, records: list) -> None:
    producer = log.producer()
    for value, at in records:
        producer.send(topic, json.dumps(value).encode(), value["entity"].encode(), timestamp=at)
    producer.flush()
    producer.close()


def _run_and_kill(url: str, name: str, rng: random.Random) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROCESS, url, name, json.dumps(KAFKA_CONFIG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")))
    reader.start()
    commits = rng.randint(0, 6)
    quiet_since, seen = time.monotonic(), 0
    while sum(line.startswith(b"commit") for line in lines) < commits:
        if len(lines) != seen:
            quiet_since, seen = time.monotonic(), len(lines)
        if time.monotonic() - quiet_since > 5 or proc.poll() is not None:
            break
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.03))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]


def _topic(log, topic: str) -> list[bytes]:
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        out = consume_all(consumer, 10**6, timeout=3)
    finally:
        consumer.close()
    return [r.value for r in out]


def test_joiner_after_kill_9_writes_every_example_exactly_once(log_url, backend) -> None:
    from loopline import App
    from loopline.outcomes import Outcomes

    log = open_log(log_url, kafka_config=KAFKA_CONFIG) if backend == "kafka" else open_log(log_url)
    rng = random.Random(5)
    decisions, outcomes = _records(rng)
    apps = [
        App(unique(kind), outcomes=Outcomes(window="5m", positive=["accepted"]))
        for kind in ("crashed", "clean")
    ]
    for app in apps:
        for topic in ("decisions", "outcomes"):
            log.create_topic(f"{app.name}.{topic}", TopicConfig(partitions=2))
        _produce(log, f"{app.name}.decisions", decisions)
        _produce(log, f"{app.name}.outcomes", outcomes)
    crashed, clean = apps
    for _ in range(4):
        _run_and_kill(log_url, crashed.name, rng)
    last = OutcomeJoiner(log, crashed, instance="a")
    stats = last.run_until_caught_up()
    last.close()
    assert stats.aborts == 0
    once = OutcomeJoiner(log, clean, instance="a")
    clean_stats = once.run_until_caught_up()
    once.close()
    assert clean_stats.examples > 300 and clean_stats.positives > 50 and clean_stats.late > 10

    def normalized(app) -> collections.Counter:
        examples = [json.loads(v) for v in _topic(log, f"{app.name}.labelled")]
        return collections.Counter(json.dumps(e, sort_keys=True) for e in examples)

    after_crashes, reference = normalized(crashed), normalized(clean)
    assert sum(reference.values()) == clean_stats.examples
    assert max(after_crashes.values()) == 1, "a labelled example was written twice"
    assert after_crashes == reference
    late = [collections.Counter(_topic(log, f"{app.name}.outcomes-late")) for app in apps]
    assert late[0] == late[1] and max(late[0].values()) == 1
    log.close()
