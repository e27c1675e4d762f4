"""Experiments: the report over N decisions against pandas, and the cost of assignment.

One run, one machine, the embedded log. Generates an experiment (control and
one treatment, 50/50 by `assign`) with N decisions of N / 5 units (a rank
decision of 3 candidates with 3 features each, one returned item, a context
``page`` of 3 values) and one labelled example per decision (a 0/1 label, a
score), written to ``bench.decisions`` and ``bench.labelled`` (4 partitions
each). Then, per figure one line:

- ``loopline experiments report``'s work (`read_report_data` and `build_report`,
  as ``--segment page`` runs them): reading both topics (DuckDB's JSON reader on the
  raw values) and the report (DuckDB aggregation, DeLong AUC, novelty);
- pandas computing the same per-arm and per-page table (units, decisions,
  exposures, each unit's mean label, the arms' means and Welch's test) from the
  same records: the records read with the same reader (`read_ranges`), the
  JSON decoded as a user would (``pandas.read_json(lines=True)``), then
  ``groupby``; the two tables are compared (they must agree to 1e-9);
- the serving overhead of assignment: `assign` per request, for a split
  (a hash) and a bandit (a draw);
- the experiment watcher (``loopline experiments run``) counting every
  labelled example and decision of the same topics per arm, exactly once;
- the cost of one bandit look (Thompson-sampling weights of two arms).

    python bench/experiments.py                 # 200,000 decisions
    python bench/experiments.py 10000000        # 10M decisions (about 15 minutes)
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from scipy import stats

from loopline.experiments.assignment import assign
from loopline.experiments.records import Arm, Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.report import build_report
from loopline.experiments.report_data import Segment, read_report_data
from loopline.log import Log, TopicConfig, open_log
from loopline.stream import names
from loopline.stream.ranges import pin, read_ranges

APP = "bench"
PAGES = ("home", "search", "profile")
CHUNK = 100_000
START = 1_714_564_800_000


def line(name: str, value: str) -> None:
    print(f"{name}: {value}", flush=True)


def generate(log: Log, n: int, experiment: Experiment) -> None:
    """N decisions and their labelled examples, as serving and the joiner write them."""
    for topic in (names.decisions(APP), names.labelled(APP)):
        log.create_topic(topic, TopicConfig(partitions=4))
    units = max(1, n // 5)
    arm_of = [assign(experiment, f"member-{u}").arm.name for u in range(units)]
    rng = random.Random(1)
    producer = log.producer()
    for start in range(0, n, CHUNK):
        decisions, examples, keys, stamps = [], [], [], []
        for i in range(start, min(n, start + CHUNK)):
            u = rng.randrange(units)
            arm = arm_of[u]
            at = START + i * 10
            score = rng.random()
            label = (
                1.0 if rng.random() < (0.2 if arm == "control" else 0.22) * (0.5 + score) else 0.0
            )
            page = PAGES[i % 3]
            did = f"d{i:012d}"
            decisions.append(
                (
                    f'{{"decision_id":"{did}","at":"2024-05-01T12:00:00Z","kind":"rank",'
                    f'"model":"ranker","model_version":{2 if arm == "v2" else 1},'
                    f'"entity_name":"member","entity":"member-{u}","context":{{"page":"{page}"}},'
                    f'"candidates":[{{"id":"i-1","score":{score},"features":{{"views_1h":{i % 7},'
                    f'"price":12.5,"same_city":1}}}},{{"id":"i-2","score":0.1,"features":'
                    f'{{"views_1h":0,"price":3.0,"same_city":0}}}},{{"id":"i-3","score":0.05,'
                    f'"features":{{"views_1h":2,"price":9.0,"same_city":1}}}}],'
                    f'"returned":[{{"id":"i-1","score":{score},"probability":1.0}}],'
                    f'"latency_ms":1.5,"experiment":"{experiment.name}","arm":"{arm}",'
                    f'"arm_probability":0.5}}'
                ).encode()
            )
            examples.append(
                (
                    f'{{"features":{{"views_1h":{i % 7},"price":12.5,"same_city":1}},'
                    f'"label":{label},"at":{at},"decision_id":"{did}","model":"ranker",'
                    f'"model_version":1,"entity":"member-{u}","item":"i-1","position":0,'
                    f'"probability":1.0,"score":{score},"experiment":"{experiment.name}",'
                    f'"arm":"{arm}","outcomes":[],"closed_at":{at + 3_600_000}}}'
                ).encode()
            )
            keys.append(f"member-{u}".encode())
            stamps.append(at)
        producer.send_batch(names.decisions(APP), decisions, keys, stamps)
        producer.send_batch(names.labelled(APP), examples, keys, stamps)
    producer.flush()
    producer.close()


def pandas_table(log: Log) -> tuple[pd.DataFrame, float]:
    """What a user would write: read both topics, decode the JSON with pandas, group.
    Returns the table and the seconds spent reading and decoding."""
    t = time.perf_counter()

    def raw(partition, records):
        return b"\n".join(r.value for r in records), 0

    frames = {}
    for topic in (names.decisions(APP), names.labelled(APP)):
        chunks = read_ranges(log, pin(log, topic), raw).chunks
        frames[topic] = pd.read_json(io.BytesIO(b"\n".join(chunks)), lines=True, dtype=False)
    d = frames[names.decisions(APP)]
    e = frames[names.labelled(APP)]
    decoded = time.perf_counter() - t
    d = pd.DataFrame(
        {
            "decision_id": d.decision_id,
            "arm": d.arm,
            "unit": d.entity,
            "page": d.context.map(lambda c: c.get("page")),
            "returned": d.returned.map(len),
        }
    ).drop_duplicates("decision_id")
    e = e[["decision_id", "label"]].merge(d, on="decision_id")
    out = []
    for keys, group in [((None,), d)] + [((p,), d[d.page == p]) for p in PAGES]:
        counts = group.groupby("arm").agg(
            units=("unit", "nunique"),
            decisions=("decision_id", "size"),
            exposures=("returned", lambda r: int((r > 0).sum())),
        )
        ex = e if keys[0] is None else e[e.page == keys[0]]
        per_unit = ex.groupby(["arm", "unit"]).label.mean()
        control, treatment = per_unit["control"].to_numpy(), per_unit["v2"].to_numpy()
        welch = stats.ttest_ind(treatment, control, equal_var=False)
        counts["mean_label"] = [control.mean(), treatment.mean()]
        counts["p_value"] = welch.pvalue
        counts["segment"] = keys[0]
        out.append(counts)
    return pd.concat(out), decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decisions", nargs="?", type=int, default=200_000)
    parser.add_argument("--skip-pandas", action="store_true", help="time only loopline's report")
    args = parser.parse_args()
    n = args.decisions
    directory = tempfile.mkdtemp(prefix="loopline-bench-experiments-")
    try:
        log = open_log(f"embedded:{directory}")
        registry = ExperimentRegistry(log)
        arms = (
            Arm("control", alias="production", weight=0.5, control=True),
            Arm("v2", version=2, weight=0.5),
        )
        experiment = registry.start(
            Experiment(name="ranker-v2", model="ranker", arms=arms), reason="bench"
        )
        registry.close()
        line("decisions", f"{n:,} decisions of {max(1, n // 5):,} units, one labelled example each")
        t = time.perf_counter()
        generate(log, n, experiment)
        seconds = time.perf_counter() - t
        line("generate", f"{seconds:.1f} s ({2 * n / seconds:,.0f} records/s written)")

        segments = [Segment.parse("page")]
        t = time.perf_counter()
        data = read_report_data(log, APP, experiment.name, experiment.unit, segments)
        read = time.perf_counter() - t
        result = build_report(experiment, data, segments)
        seconds = time.perf_counter() - t
        line(
            "loopline report (--segment page)",
            f"{seconds:.1f} s ({n / seconds:,.0f} decisions/s): reading both topics {read:.1f} s, "
            f"the report {seconds - read:.1f} s",
        )
        if not args.skip_pandas:
            t = time.perf_counter()
            table, decoded = pandas_table(log)
            seconds_pandas = time.perf_counter() - t
            line(
                "pandas, same per-arm/per-page table",
                f"{seconds_pandas:.1f} s ({n / seconds_pandas:,.0f} decisions/s): reading and "
                f"decoding {decoded:.1f} s, the table {seconds_pandas - decoded:.1f} s; "
                f"loopline {seconds_pandas / seconds:.1f}x as fast",
            )
            agree(result, table)
        watch(log, n)
        log.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assignment(experiment)
    bandit_update()


def agree(result: dict, table: pd.DataFrame) -> None:
    worst = 0.0
    overall = table[table.segment.isna()]
    for a in result["arms"]:
        row = overall.loc[a["arm"]]
        assert (a["units"], a["decisions"], a["exposures"]) == (
            row.units,
            row.decisions,
            row.exposures,
        )
        worst = max(worst, abs(a["metrics"]["mean_label"]["mean"] - row.mean_label))
    primary = next(c for c in result["comparisons"] if c["metric"] == "mean_label")
    worst = max(worst, abs(primary["p_value"] - overall.p_value.iloc[0]))
    for seg in result["segments"]:
        mine = table[table.segment == seg["value"]]
        c = next(c for c in seg["comparisons"] if c["metric"] == "mean_label")
        worst = max(worst, abs(c["p_value"] - mine.p_value.iloc[0]))
        for a in seg["arms"]:
            assert a["units"] == mine.loc[a["arm"]].units
    assert worst < 1e-9, worst
    line("agreement with pandas + scipy", f"counts equal, means and p-values within {worst:.1e}")


def watch(log: Log, n: int) -> None:
    """`loopline experiments run`'s work over the same topics: every labelled example and
    every decision counted per arm, exactly once (changelog and transaction), then one look."""
    from loopline import App
    from loopline.experiments.watcher import ExperimentWatcher

    watcher = ExperimentWatcher(log, App(APP))
    t = time.perf_counter()
    stats = watcher.run_until_caught_up()
    seconds = time.perf_counter() - t
    watcher.close()
    assert stats.examples == stats.decisions == n, stats
    line(
        "experiment watcher (count outcomes and decisions per arm, then look)",
        f"{seconds:.1f} s ({n / seconds:,.0f} outcomes/s with their decisions, "
        f"{seconds / n * 1e6:.1f} us per outcome)",
    )


def assignment(experiment: Experiment) -> None:
    units = [f"member-{i}" for i in range(200_000)]
    t = time.perf_counter()
    for unit in units:
        assign(experiment, unit)
    per = (time.perf_counter() - t) / len(units)
    line("assign, split (hash of salt and unit)", f"{per * 1e6:.2f} us per request")
    bandit = Experiment(name="b", model="m", arms=experiment.arms, policy="bandit")
    rng = random.Random(1)
    t = time.perf_counter()
    for unit in units:
        assign(bandit, unit, rng)
    per = (time.perf_counter() - t) / len(units)
    line("assign, bandit (a weighted draw)", f"{per * 1e6:.2f} us per request")


def bandit_update() -> None:
    """The cost of one bandit look: Thompson-sampling weights of two arms, floored."""
    from loopline.experiments.arm_stats import ArmStats
    from loopline.experiments.bandit import floored, probability_best

    arms = {"control": ArmStats(), "v2": ArmStats()}
    rng = random.Random(3)
    for _ in range(5_000):
        arms["control"].add(float(rng.random() < 0.14))
        arms["v2"].add(float(rng.random() < 0.38))
    looks = 200
    t = time.perf_counter()
    for i in range(looks):
        floored(probability_best(arms, "acceptance_rate", seed=i), 0.05)
    per = (time.perf_counter() - t) / looks
    line("bandit look (Thompson sampling weights of 2 arms, floored)", f"{per * 1e3:.2f} ms")


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
