"""Two watchers split the input partitions on Kafka; the one owning partition 0 acts on the sum."""

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
from support import KAFKA_CONFIG, unique


def test_the_member_owning_partition_0_acts_on_both_partitions_outcomes() -> None:
    from conftest import KAFKA_BOOTSTRAP, _check_kafka

    _check_kafka()
    # The range assignor splits each topic: one member gets partition 0 of the labelled
    # examples and of the decisions, the other partition 1 of both.
    config = {**KAFKA_CONFIG, "partition.assignment.strategy": "range"}
    log = open_log(f"kafka://{KAFKA_BOOTSTRAP}", kafka_config=config)
    app, name = unique("split"), unique("ranker-split")
    log.create_topic(names.labelled(app), TopicConfig(partitions=2))
    registry = ExperimentRegistry(log)
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, policy="bandit", salt="g"))
    stop = threading.Event()
    members: list[ExperimentWatcher] = []
    threads: list[threading.Thread] = []
    try:
        for instance in "ab":  # one polls while the other joins (the range assignor is eager)
            members.append(
                ExperimentWatcher(
                    log, App(app), instance=instance, interval=0.2, commit_interval=0.1
                )
            )
            threads.append(threading.Thread(target=members[-1].run, args=(stop,)))
            threads[-1].start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            {tp.partition for tp in m.runner.context.owned} in ({0}, {1}) for m in members
        ):
            time.sleep(0.2)
        owned = [sorted(m.runner.context.owned) for m in members]
        assert all(len(o) == 2 for o in owned), f"the members never split: {owned}"
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
    assert [m.stats.examples for m in members] == [600, 600]
