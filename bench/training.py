"""Training: `loopline train` end to end on 1,000,000 labelled examples, and River online.

One run, one machine, one topic of N labelled examples (default 1,000,000),
flat JSON rows of 20 float features, a 0/1 label and an event time, in 4
partitions. Figures:

- the training profile (`loopline.models.profiles`) of the same N rows x 20
  features in memory: the seconds `train_once` adds for it, against pandas
  computing the same figures (describe, the quantiles, the histogram counts);
- `train_once` from start to published version: read the examples from the
  log, split by time, fit LightGBM (loopline's deterministic defaults: 100
  rounds, one thread), evaluate on the later 20 %, profile, sign and publish;
  with the seconds and the share of each step (target: loading under 20 % of
  the total);
- River online learning (StandardScaler | LogisticRegression, River's own
  README example) through `train_online` (the `--online` path: consume, decode,
  learn, a version every 100,000 examples)
  against River's bare `learn_one` loop over the same examples already decoded
  in memory; the overhead of loopline's plumbing (target: under 15 %), measured
  without progressive validation, then with the default (1 example in 10 scored
  before it is learned).

    bash scripts/kafka.sh start
    python bench/training.py                        # on Kafka, 1,000,000 examples
    python bench/training.py --rows 20000           # smoke
    python bench/training.py --log embedded:/tmp/bench-log
    python bench/training.py --profile-only         # the profile figures alone, no log
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid

import msgspec
import numpy as np
import pyarrow as pa

from loopline import App
from loopline.log import Log, TopicConfig, open_log
from loopline.models import HmacSigner, ModelRegistry
from loopline.models.declarations import Model
from loopline.models.online import train_online
from loopline.models.profiles import QUANTILES, predictions_profile, profile_features
from loopline.models.trainers import LightGBMTrainer, RiverTrainer
from loopline.models.training import STEPS, train_once

CHUNK = 10_000


def make_examples(n: int, features: int, seed: int = 11) -> tuple[list[str], list[bytes]]:
    """`n` flat JSON examples: features f00.., a label with a known signal, an event time."""
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(features)]
    X = rng.normal(size=(n, features)).round(4)
    signal = 1.2 * X[:, 0] - 0.8 * X[:, 1] + 0.6 * X[:, 2] * X[:, 3] + 0.4 * np.abs(X[:, 4])
    labels = (signal + rng.normal(size=n) > 0.3).astype(int)
    start = int(time.time() * 1000) - n * 10
    encode = msgspec.json.Encoder().encode
    values = [
        encode({**dict(zip(names, row, strict=True)), "label": label, "at": start + 10 * i})
        for i, (row, label) in enumerate(zip(X.tolist(), labels.tolist(), strict=True))
    ]
    return names, values


def produce(log: Log, topic: str, values: list[bytes]) -> None:
    producer = log.producer()
    for i in range(0, len(values), CHUNK):
        batch = values[i : i + CHUNK]
        producer.send_batch(topic, batch, [b"e%d" % (i + j) for j in range(len(batch))])
    producer.flush()
    producer.close()


def bare_river(values: list[bytes], names: list[str]) -> float:
    """Examples/s of River's own learn_one loop over the examples, decoded beforehand."""
    from river import linear_model, preprocessing

    decode = msgspec.json.Decoder().decode
    rows = [decode(v) for v in values]
    examples = [({n: r[n] for n in names}, bool(r["label"])) for r in rows]
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    start = time.perf_counter()
    for x, y in examples:
        model.learn_one(x, y)
    return len(examples) / (time.perf_counter() - start)


def profile_figures(n: int, features: int) -> None:
    """Seconds to profile `n` rows x `features` floats (5% nulls) and 20% as many scores."""
    rng = np.random.default_rng(3)
    names = [f"f{i:02d}" for i in range(features)]
    X = rng.normal(size=(n, features)).round(4)
    X[rng.random(size=X.shape) < 0.05] = np.nan
    table = pa.table({name: pa.array(X[:, i], from_pandas=True) for i, name in enumerate(names)})
    scores, labels = rng.random(n // 5), rng.random(n // 5) < 0.3
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        profile_features(table, names, {name: 0.0 for name in names})
        predictions_profile("classification", scores, labels)
        runs.append(time.perf_counter() - started)
    ours = min(runs)
    print(f"profile: {n:,} rows x {features} features in {ours:.2f} s (best of 3)")
    try:
        import pandas as pd
    except ImportError:
        print("note: pandas is not installed (pip install -e '.[bench]'): no comparison")
        return
    frame = table.to_pandas()
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        frame.describe()
        frame.isna().sum(), (frame == 0.0).sum()
        frame.quantile(list(QUANTILES))
        for name in names:
            column = frame[name].dropna()
            edges = column.quantile(np.linspace(0, 1, 11)).unique()
            np.histogram(column, np.concatenate([[-np.inf], edges, [np.inf]]))
        pd.Series(scores).describe()
        runs.append(time.perf_counter() - started)
    print(f"profile with pandas (describe, quantiles, histograms): {min(runs):.2f} s (best of 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="labelled examples")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--online-rows", type=int, help="examples for the online figures (default: --rows)"
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="only the training profile's figures"
    )
    parser.add_argument(
        "--log",
        default="kafka://" + os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="the log: kafka://host:port (default, $LOOPLINE_KAFKA_BOOTSTRAP) or embedded:PATH",
    )
    args = parser.parse_args()
    n, online_n = args.rows, min(args.online_rows or args.rows, args.rows)
    profile_figures(n, args.features)
    if args.profile_only:
        return
    temporary = None
    url = args.log
    if url == "embedded":
        temporary = tempfile.TemporaryDirectory()
        url = f"embedded:{temporary.name}"
    log = open_log(url)
    kind = url.split(":", 1)[0]
    print(
        f"training: {n:,} labelled examples x {args.features} features, "
        f"{args.partitions} partitions, {kind} log"
    )

    names, values = make_examples(n, args.features)
    topic = f"bench-examples-{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, TopicConfig(partitions=args.partitions))
    started = time.perf_counter()
    produce(log, topic, values)
    print(f"setup: produced the examples in {time.perf_counter() - started:.1f} s")

    signer = HmacSigner(os.urandom(32))
    registry = ModelRegistry(log, signer=signer)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    batch = Model(name, trainer=LightGBMTrainer, entity="example", features=names)
    app = App("bench", models=[batch])

    result = train_once(log, app, batch.name, labelled_topic=topic, registry=registry)
    total = result.seconds
    print(
        f"train_once end to end: {total:.1f} s to v{result.version.version} "
        f"({result.train_rows:,} train / {result.test_rows:,} test rows, "
        f"auc {result.metrics['auc']:.3f})"
    )
    for step in STEPS:
        seconds = result.timings[step]
        print(f"train_once {step}: {seconds:.2f} s ({seconds / total:.0%})")
    load_share = result.timings["load"] / total
    verdict = "met" if load_share < 0.20 else "missed"
    print(f"train_once load share: {load_share:.0%} (target < 20%: {verdict})")

    online_values = values[:online_n]
    online_topic = topic
    if online_n < n:
        online_topic = f"{topic}-online"
        log.create_topic(online_topic, TopicConfig(partitions=args.partitions))
        produce(log, online_topic, online_values)
    before = bare_river(online_values, names)
    runs = {}
    for validate_every in (0, 10):  # plumbing alone, then with the default validation
        model = Model(
            f"{name}-online-{validate_every}",
            trainer=lambda: RiverTrainer(_river_model()),
            entity="example",
            features=names,
        )
        started = time.perf_counter()
        stats = train_online(
            log,
            App("bench", models=[model]),
            model.name,
            online_topic,
            registry=registry,
            every_examples=100_000,
            every_seconds=3600,
            validate_every=validate_every,
            until_caught_up=True,
            stop=threading.Event(),
        )
        runs[validate_every] = (stats, stats.examples / (time.perf_counter() - started))
    after = bare_river(online_values, names)  # before and after: the machine's load drifts
    bare = (before + after) / 2
    print(
        f"river learn_one loop: {bare:,.0f} examples/s "
        f"(mean of {before:,.0f} before and {after:,.0f} after the --online runs)"
    )
    for validate_every, (stats, rate) in runs.items():
        how = "no validation" if not validate_every else f"1 in {validate_every} validated"
        last = stats.versions[-1].metrics.get("auc")
        auc = f", last auc {last:.3f}" if last is not None else ""
        print(
            f"train_online (--online, {how}): {rate:,.0f} examples/s "
            f"({stats.examples:,} examples, {len(stats.versions)} versions{auc})"
        )
    overhead = bare / runs[0][1] - 1
    verdict = "met" if overhead < 0.15 else "missed"
    print(f"online plumbing overhead: {overhead:.0%} (target < 15%: {verdict})")
    print(f"online overhead with progressive validation: {bare / runs[10][1] - 1:.0%}")
    registry.close()
    for name_ in {topic, online_topic}:
        log.delete_topic(name_)
    log.close()
    if temporary is not None:
        temporary.cleanup()


def _river_model():
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


if __name__ == "__main__":
    main()
