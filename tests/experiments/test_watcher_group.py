"""Two watchers split the labelled partitions on Kafka; the one owning partition 0 acts on the sum."""

from __future__ import annotations

import json
import random
import threading
import time

from loopline.app import App
from loopline.experiments.records import Arm, Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.watcher import ExperimentWatcher
from loopline.log import TopicConfig, open_log
from loopline.stream import names
from stream.faults import KAFKA_CONFIG
from support import unique


def test_the_member_owning_partition_0_acts_on_both_partitions_outcomes() -> None:
    from conftest import KAFKA_BOOTSTRAP, _check_kafka

    _check_kafka()
    log = open_log(f"kafka://{KAFKA_BOOTSTRAP}", kafka_config=KAFKA_CONFIG)
    app, name = unique("split"), unique("ranker-split")
    log.create_topic(names.labelled(app), TopicConfig(partitions=2))
    registry = ExperimentRegistry(log)
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, policy="bandit", salt="g"))
    members = [
        ExperimentWatcher(log, App(app), instance=i, interval=0.2, commit_interval=0.1)
        for i in "ab"
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=m.run, args=(stop,)) for m in members]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            len(m.runner.context.owned) == 1 for m in members
        ):
            time.sleep(0.2)
        assert all(len(m.runner.context.owned) == 1 for m in members), "the members never split"
        # Partition 0: control accepts 38%; partition 1: the treatment accepts 14%. Only the sum
        # of both says control is better: partition 0 alone knows nothing of the treatment.
        rng = random.Random(6)
        producer = log.producer()
        for partition, arm, rate in ((1, "v2", 0.14), (0, "control", 0.38)):
            for _ in range(600):
                example = {"label": float(rng.random() < rate), "experiment": name, "arm": arm}
                producer.send(
                    names.labelled(app), json.dumps(example).encode(), b"m", partition=partition
                )
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            registry.refresh()
            if registry.get(name).weights["control"] >= 0.9:
                break
            time.sleep(0.5)
        final = registry.get(name)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for m in members:
            m.close()
        registry.close()
        log.close()
    assert final.weights["control"] >= 0.9, final
    counted = int(final.reason.split(" after ")[1].split(" outcomes")[0])
    assert counted > 600, final.reason  # more than one partition holds
    assert sum(m.stats.examples for m in members) == 1200
    assert all(m.stats.examples == 600 for m in members)
