"""The feature processor survives kill -9: its state equals a clean recomputation, on both backends.

A processor subprocess is killed with SIGKILL at random moments (during
start-up and restore, mid-batch, between commits) while more records arrive,
and started again each time. A last run catches up. Then a second
application with the same declarations (so: its own group and changelog)
computes everything once, cleanly. Every entity's vector must be the same,
and the late topic and the dead-letter topic must hold every late and every
unreadable record exactly once: exactly-once, not at-least-once.
"""

from __future__ import annotations

import importlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import msgspec

from loopline.app import App
from loopline.features.processor import FeatureProcessor
from loopline.features.store import FeatureStore
from loopline.log import TopicConfig, open_log
from support import KAFKA_CONFIG, read_all, unique

APP_MODULE = textwrap.dedent(
    """
    from loopline import App
    from loopline.features import Aggregations, Derived, Entity, FeatureSet, Table, TableFeature
    from loopline.features.aggregations import Count, Distinct, Last, Mean, Sum

    def features(views, profiles):
        member = Entity("member", key="member_id")
        group = Aggregations(views, member, time="at", lateness="2m", features=[
            *Count.per_window("views", windows=["10m", "1h", "lifetime"]),
            *Sum.per_window("seconds", field="seconds", windows=["1h"]),
            *Mean.per_window("avg_seconds", field="seconds", windows=["lifetime"]),
            *Last.per_window("last_page", field="page", windows=["lifetime"]),
            *Distinct.per_window("pages", field="page", windows=["1h"]),
        ])
        table = Table(profiles, member, [TableFeature("country", "country", "??")])
        ratio = Derived("per_view", ("seconds_1h", "views_1h"), lambda s, n: s / n, 0.0)
        return FeatureSet([group], tables=[table], derived=[ratio])
    """
)

PROCESS = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from crashapp import features
    from loopline import App
    from loopline.features.processor import FeatureProcessor
    from loopline.log import open_log
    url, name, views, profiles, config, instance = sys.argv[2:]
    log = open_log(url, kafka_config=json.loads(config)) if url.startswith("kafka") else open_log(url)
    print("started", flush=True)
    processor = FeatureProcessor(log, App(name, features=features(views, profiles)),
                                 instance=instance, commit_interval=0.02, max_batch=50)
    processor.run(on_commit=lambda p: print("commit", p.stats.records, flush=True))
    """
)


def _produce(log, views: str, profiles: str, rng: random.Random, n: int, bad: list) -> None:
    producer = log.producer()
    now = time.time_ns() // 1_000_000
    for _ in range(n):
        member = f"m{rng.randrange(40)}"
        if rng.random() < 0.1:
            value = {"member_id": member, "country": rng.choice(["NO", "NL", None])}
            producer.send(profiles, msgspec.json.encode(value), member.encode())
            continue
        if rng.random() < 0.01:
            bad.append(member)
            value = {"member_id": member, "at": "not a time"}
        else:
            skew = rng.choice([0, 0, 0, 30_000, 90_000, 600_000])  # 10 minutes behind: late
            value = {
                "member_id": member,
                "at": now - skew - rng.randrange(1000),
                "seconds": rng.choice([None, rng.uniform(0, 300)]),
                "page": rng.choice(["feed", "jobs", "search", None]),
            }
        producer.send(views, msgspec.json.encode(value), member.encode())
    producer.flush()
    producer.close()


def _start(tmp_path, url: str, name: str, views: str, profiles: str, instance: str = "a"):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            PROCESS,
            str(tmp_path),
            url,
            name,
            views,
            profiles,
            msgspec.json.encode(KAFKA_CONFIG).decode(),
            instance,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _run_and_kill(tmp_path, url: str, name: str, views: str, profiles: str, rng) -> None:
    proc = _start(tmp_path, url, name, views, profiles)
    assert proc.stdout is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")))
    reader.start()
    # kill during start-up and restore (0 commits seen), or after some commits
    commits = rng.randint(0, 8)
    quiet_since, seen = time.monotonic(), 0
    while sum(line.startswith(b"commit") for line in lines) < commits:
        if len(lines) != seen:
            quiet_since, seen = time.monotonic(), len(lines)
        if time.monotonic() - quiet_since > 3 or proc.poll() is not None:
            break  # caught up: nothing more to commit
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]


def _declarations(tmp_path):
    (tmp_path / "crashapp.py").write_text(APP_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import crashapp

        importlib.reload(crashapp)
        return crashapp.features
    finally:
        sys.path.remove(str(tmp_path))


def _same_as_clean(log, crashed: App, clean: App, views: str, bad: list[str]) -> None:
    """`crashed` (run with crashes) and `clean` (run once now) hold the same state and outputs."""
    processor = FeatureProcessor(log, clean, instance="a")
    processor.run_until_caught_up()
    processor.close()
    at = time.time_ns() // 1_000_000
    members = [f"m{i}" for i in range(40)]
    with FeatureStore(log, crashed) as after_crashes, FeatureStore(log, clean) as once:
        after_crashes.catch_up()
        once.catch_up()
        assert after_crashes.get("member", members, at=at) == once.get("member", members, at=at)
        assert any(v["views_lifetime"] for v in once.get("member", members, at=at))
    late = [len(read_all(log, f"{app.name}.features.late")) for app in (crashed, clean)]
    assert late[0] == late[1] > 0
    dead = read_all(log, f"{views}.dlq")
    assert len(dead) == 2 * len(bad) > 0


def test_processor_state_after_kill_9_equals_a_clean_recomputation(log_url, backend, tmp_path):
    declare = _declarations(tmp_path)
    log = open_log(log_url, kafka_config=KAFKA_CONFIG) if backend == "kafka" else open_log(log_url)
    rng = random.Random(7)
    views, profiles = unique("views"), unique("profiles")
    log.create_topic(views, TopicConfig(partitions=3))
    log.create_topic(profiles, TopicConfig(partitions=1, compact=True))
    features = declare(views, profiles)
    crashed, clean = (
        App(unique("crashed"), features=features),
        App(unique("clean"), features=features),
    )
    bad: list[str] = []
    for _ in range(5):
        _produce(log, views, profiles, rng, 600, bad)
        _run_and_kill(tmp_path, log_url, crashed.name, views, profiles, rng)

    processor = FeatureProcessor(log, crashed, instance="a")
    stats = processor.run_until_caught_up()
    processor.close()
    assert stats.aborts == 0
    _same_as_clean(log, crashed, clean, views, bad)
    log.close()


def test_processors_split_partitions_and_take_over_on_kafka(tmp_path):
    """Two processors share the sources; kill -9 one, the other takes its partitions over."""
    url = f"kafka://{os.environ.get('LOOPLINE_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}"
    declare = _declarations(tmp_path)
    log = open_log(url, kafka_config=KAFKA_CONFIG)
    rng = random.Random(11)
    views, profiles = unique("views"), unique("profiles")
    log.create_topic(views, TopicConfig(partitions=4))
    log.create_topic(profiles, TopicConfig(partitions=1, compact=True))
    features = declare(views, profiles)
    crashed, clean = (
        App(unique("split"), features=features),
        App(unique("clean"), features=features),
    )
    bad: list[str] = []
    _produce(log, views, profiles, rng, 600, bad)

    owned: list[int] = []  # partitions the in-process member owned at each commit
    lag: list[int] = []
    stop = threading.Event()
    member = FeatureProcessor(log, crashed, instance="b", commit_interval=0.05, max_batch=50)

    def on_commit(p: FeatureProcessor) -> None:
        owned.append(len(p.runner.consumer.assignment()))
        lag.append(sum(p.runner.consumer.lag().values()))
        if owned[-1] == 5 and lag[-1] == 0 and other.poll() is not None:
            stop.set()

    other = _start(tmp_path, url, crashed.name, views, profiles, instance="a")
    runner = threading.Thread(target=member.run, args=(stop,), kwargs={"on_commit": on_commit})
    runner.start()
    try:
        deadline = time.monotonic() + 90
        while not (owned and 0 < owned[-1] < 5) and time.monotonic() < deadline:
            _produce(log, views, profiles, rng, 50, bad)  # keep commits (and callbacks) coming
            time.sleep(0.5)
        assert owned and 0 < owned[-1] < 5, (
            f"the two processors never split the partitions: {owned}"
        )
        _produce(log, views, profiles, rng, 600, bad)
        time.sleep(1)
        other.send_signal(signal.SIGKILL)
        other.wait()
        _produce(log, views, profiles, rng, 600, bad)
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            _produce(log, views, profiles, rng, 5, bad)
            time.sleep(1)
        assert stop.is_set(), (
            f"the survivor did not take every partition over: {owned[-5:]}, lag {lag[-5:]}"
        )
    finally:
        stop.set()
        runner.join()
        if other.poll() is None:
            other.kill()
    # Records produced while the survivor was stopping (the loop above may be mid-send
    # when it stops) are the survivor's to process too: it owns every partition now.
    assert len(member.runner.consumer.assignment()) == 5
    member.run_until_caught_up()
    member.close()
    _same_as_clean(log, crashed, clean, views, bad)
    log.close()
