"""A second joiner started by mistake on Kafka: nothing is joined from half a partition.

Partition p of the decisions is joined with partition p of the outcomes, so
a member given one without the other must not join it: it would close
windows without their outcomes (wrong negatives). Two joiners share the
group for a while, whatever Kafka's assignor gives each; then one stops and
the other joins everything. The labelled examples are exactly those of a
single joiner.
"""

from __future__ import annotations

import json
import os
import threading
import time

from loopline.app import App
from loopline.log import TopicConfig, open_log
from loopline.outcomes import Outcomes
from loopline.outcomes.joiner import OutcomeJoiner
from outcomes.test_joiner import MINUTE, T0, outcome, produce, rank_decision
from support import KAFKA_CONFIG, consume_all, unique


def test_two_joiners_in_one_group_never_join_half_a_partition() -> None:
    url = f"kafka://{os.environ.get('LOOPLINE_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}"
    log = open_log(url, kafka_config=KAFKA_CONFIG)
    app = App(unique("pair"), outcomes=Outcomes(window="10m", positive=["accepted"]))
    for topic in ("decisions", "outcomes"):
        log.create_topic(f"{app.name}.{topic}", TopicConfig(partitions=2))
    members = [f"m{i}" for i in range(12)]
    later = T0 + 60 * MINUTE  # every window has ended by this clock
    first = OutcomeJoiner(log, app, instance="a", commit_interval=0.05, clock=lambda: later)
    second = OutcomeJoiner(log, app, instance="b", commit_interval=0.05, clock=lambda: later)
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=j.run, args=(stop,))
        for j, stop in zip((first, second), stops, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the group has split the four partitions
            owned = [len(j.runner.consumer.assignment()) for j in (first, second)]
            if sum(owned) == 4 and min(owned) > 0:
                break
            time.sleep(0.1)
        decisions = [(rank_decision(f"d-{m}", m, T0, ["x", "y"]), T0) for m in members]
        produce(log, f"{app.name}.decisions", decisions)
        outcomes = [(outcome(m, T0 + MINUTE, item="x"), T0 + MINUTE) for m in members]
        produce(log, f"{app.name}.outcomes", outcomes)
        time.sleep(1.5)  # both members at work, each with what the group gave it
        stops[1].set()
        threads[1].join()
        second.close()  # leaves the group: the first one gets every partition
        deadline = time.monotonic() + 30
        while first.stats.examples + second.stats.examples < 24 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join()
        for joiner in (first, second):
            joiner.close()
    consumer = log.consumer(None, [f"{app.name}.labelled"], reset="earliest")
    examples = [json.loads(r.value) for r in consume_all(consumer, 25, timeout=3)]
    consumer.close()
    log.close()
    assert sorted((e["entity"], e["item"], e["label"]) for e in examples) == sorted(
        [(m, "x", 1.0) for m in members] + [(m, "y", 0.0) for m in members]
    )
