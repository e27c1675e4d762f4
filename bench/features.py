"""Features: loopline's stream processor, online store and dataset builder, against Quix Streams and pandas.

One run, one machine, one Kafka topic. N JSON events (default 1,000,000) of
``{"member_id", "amount", "at"}`` over M members (default 100,000), event
times spread over the last two days with mild disorder, record timestamps =
event time, 4 partitions. Figures:

- `loopline features run` throughput (count/sum/mean over 1h and 24h) on each
  backend, and Quix Streams computing the same windowed aggregations from the
  same Kafka topic (hopping windows 1h/1m and 24h/1h, the tiles of loopline's
  windows), and their ratio;
- the online store's catch-up over the whole changelog, and `get` latency
  p50/p99 for 1 and for 100 entities, measured as `loopline serve` runs the
  store: the processor's state freed first (it runs in a process of its
  own), and full collections made rare (`quiet_collector`);
- `dataset build` of a spine of S rows (default 1,000,000) with 10 features,
  against the textbook pandas `merge_asof` version of the same point-in-time
  values (checked to agree on a sample of rows), twice: with the events already
  in memory, and reading them from the log first (loopline's consumer, JSON
  decoded batch by batch into DataFrames), as a pandas user building the same
  dataset must.

    bash scripts/kafka.sh start
    python bench/features.py --kafka 127.0.0.1:9092
    python bench/features.py --events 20000 --entities 2000 --spine-rows 20000  # smoke
    python bench/features.py --only dataset --backends embedded --phases  # the dataset only
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.app import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count, Max, Mean, Min, Sum
from loopline.log import Log, TopicConfig, open_log
from loopline.log.collector import quiet_collector

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
CHUNK = 10_000
PARTITIONS = 4
LATENESS = "5m"
# Every event is at most 2 * JITTER behind any event produced before it, which is less
# than LATENESS: no event is late, online or offline, so pandas needs no lateness model.
JITTER = MINUTE
# The dataset's windows: (name, length, tile), tiles as docs/decisions/0008 assigns them.
DATASET_WINDOWS = (("10m", 10 * MINUTE, MINUTE), ("1h", HOUR, MINUTE))
DATASET_WINDOWS += (("24h", DAY, HOUR), ("7d", 7 * DAY, HOUR))


# -- data -------------------------------------------------------------------------------


@dataclass
class Events:
    """The benchmark's events, in production order, as columns and as log records."""

    member: np.ndarray  # int entity number
    amount: np.ndarray  # float64
    at: np.ndarray  # int64 epoch ms
    values: list[bytes]
    keys: list[bytes]

    def frame(self) -> pd.DataFrame:
        ids = np.char.add("m", self.member.astype(str)).astype(object)
        return pd.DataFrame({"member_id": ids, "amount": self.amount, "at": self.at})


def make_events(n: int, entities: int, seed: int = 7) -> Events:
    rng = np.random.default_rng(seed)
    now = int(time.time() * 1000)
    # Production order follows event time over [now - 2d, now - 10m], each event moved by up
    # to +-JITTER: mildly out of order, never late, never in the future.
    base = np.linspace(now - 2 * DAY, now - 10 * MINUTE, n).astype(np.int64)
    at = base + rng.integers(-JITTER, JITTER + 1, n)
    member = rng.integers(0, entities, n)
    amount = np.round(rng.gamma(2.0, 25.0, n), 2)
    keys = [b"m%d" % k for k in member.tolist()]
    values = [
        b'{"member_id":"%s","amount":%r,"at":%d}' % (k, a, t)
        for k, a, t in zip(keys, amount.tolist(), at.tolist(), strict=True)
    ]
    return Events(member, amount, at, values, keys)


def produce(log: Log, topic: str, events: Events) -> float:
    """Seconds to write `events` to a new 4-partition `topic`, timestamps = event time."""
    log.create_topic(topic, TopicConfig(partitions=PARTITIONS))
    stamps = events.at.tolist()
    start = time.perf_counter()
    producer = log.producer()
    for i in range(0, len(events.values), CHUNK):
        j = i + CHUNK
        producer.send_batch(topic, events.values[i:j], events.keys[i:j], stamps[i:j])
    producer.flush()
    producer.close()
    return time.perf_counter() - start


def make_spine(path: str, events: Events, rows: int, entities: int, seed: int = 11) -> None:
    """A spine of (member_id, at): random members at random instants over the events' span."""
    rng = np.random.default_rng(seed)
    lo, hi = int(events.at.min()), int(events.at.max()) + HOUR
    member = rng.integers(0, entities, rows)
    at = rng.integers(lo, hi, rows)
    ids = np.char.add("m", member.astype(str))
    pq.write_table(pa.table({"member_id": ids, "at": at}), path)


# -- declarations -----------------------------------------------------------------------


def stream_app(name: str, topic: str) -> App:
    """count/sum/mean of amount over 1h and 24h per member: what Quix computes too."""
    member = Entity("member", key="member_id")
    windows = ["1h", "24h"]
    features = [
        *Count.per_window("n", windows=windows),
        *Sum.per_window("amount_sum", field="amount", windows=windows),
        *Mean.per_window("amount_mean", field="amount", windows=windows),
    ]
    group = Aggregations(topic, member, features, time="at", lateness=LATENESS)
    return App(name, features=FeatureSet([group]))


def wide_app(name: str, topic: str) -> App:
    """20 features for the latency of `get`: count/sum/mean/min/max over 10m, 1h, 24h, 7d."""
    member = Entity("member", key="member_id")
    windows = ["10m", "1h", "24h", "7d"]
    features = [
        *Count.per_window("n", windows=windows),
        *Sum.per_window("amount_sum", field="amount", windows=windows),
        *Mean.per_window("amount_mean", field="amount", windows=windows),
        *Min.per_window("amount_min", field="amount", windows=windows),
        *Max.per_window("amount_max", field="amount", windows=windows),
    ]
    group = Aggregations(topic, member, features, time="at", lateness=LATENESS)
    return App(name, features=FeatureSet([group]))


def dataset_app(name: str, topic: str) -> App:
    """The dataset's 10 features: count over 10m/1h/24h/7d, sum and mean over 1h/24h/7d."""
    member = Entity("member", key="member_id")
    features = [
        *Count.per_window("n", windows=["10m", "1h", "24h", "7d"]),
        *Sum.per_window("amount_sum", field="amount", windows=["1h", "24h", "7d"]),
        *Mean.per_window("amount_mean", field="amount", windows=["1h", "24h", "7d"]),
    ]
    group = Aggregations(topic, member, features, time="at", lateness=LATENESS)
    return App(name, features=FeatureSet([group]))


# -- Quix Streams -----------------------------------------------------------------------


QUIX_WINDOWS = {
    # name: [(duration, step)] per loopline window; step None = sliding, 0 = tumbling
    "hopping": [(HOUR, MINUTE), (DAY, HOUR)],
    "sliding": [(HOUR, None), (DAY, None)],
    "tumbling": [(HOUR, 0), (DAY, 0)],
}


def quix_run(bootstrap: str, topic: str, n: int, windows: str) -> tuple[float, int]:
    """Events/s of Quix Streams aggregating `topic` from the start, and how many were late.

    Per member: count, sum and mean of amount over 1h and 24h `windows` ("hopping": 1h
    every 1m and 24h every 1h, the tiles of loopline's windows; "sliding"; "tumbling") on
    the record timestamp (= "at"), grace = loopline's allowed lateness, RocksDB state with
    its changelog topics, as a user would run it. Timed from `run()` to its return (group
    join and final commit included), as loopline's run is.
    """
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Mean, Sum

    late = 0

    def on_late(*_args: object) -> bool:
        nonlocal late
        late += 1
        return False  # do not log each one

    processed = 0

    def on_processed(_topic: str, _partition: int, _offset: int) -> None:
        nonlocal processed
        processed += 1
        if processed == n:
            app.stop()

    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=bootstrap,
            consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            state_dir=state_dir,
            loglevel="WARNING",
            on_message_processed=on_processed,
        )
        sdf = app.dataframe(app.topic(topic, value_deserializer="json", key_deserializer="str"))
        grace = 5 * MINUTE
        for duration, step in QUIX_WINDOWS[windows]:
            if step is None:
                window = sdf.sliding_window(duration, grace_ms=grace, on_late=on_late)
            elif step == 0:
                window = sdf.tumbling_window(duration, grace_ms=grace, on_late=on_late)
            else:
                window = sdf.hopping_window(duration, step, grace_ms=grace, on_late=on_late)
            window.agg(n=Count(), amount_sum=Sum("amount"), amount_mean=Mean("amount")).final()
        start = time.perf_counter()
        app.run()
        elapsed = time.perf_counter() - start
    if processed != n:
        raise SystemExit(f"quix streams processed {processed} of {n} events")
    return n / elapsed, late


# -- pandas -----------------------------------------------------------------------------


def pandas_dataset(events: pd.DataFrame, spine_path: str, out_path: str) -> pd.DataFrame:
    """The 10 features of every spine row, point-in-time, the textbook merge_asof way.

    Cumulative count and sum per member, read with `merge_asof` just before the window's
    end T and just before its start S; the window value is the difference. The windows
    are loopline's tiled ones: [floor(T / tile) * tile - length + tile, T).
    """
    spine = pd.read_parquet(spine_path)
    ev = events.sort_values("at", kind="stable")
    by_member = ev.groupby("member_id", sort=False)
    right = pd.DataFrame(
        {
            "member_id": ev["member_id"],
            "at": ev["at"],
            "cum_n": by_member.cumcount().to_numpy() + 1,
            "cum_amount": by_member["amount"].cumsum().to_numpy(),
        }
    )
    members = spine["member_id"].to_numpy()

    def before(instants: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative count and sum of each spine row's member over events before `instants`."""
        order = np.argsort(instants, kind="stable")
        left = pd.DataFrame({"member_id": members[order], "t": instants[order]})
        found = pd.merge_asof(
            left, right, left_on="t", right_on="at", by="member_id", allow_exact_matches=False
        )
        n = np.empty(len(order), dtype=np.int64)
        total = np.empty(len(order), dtype=np.float64)
        n[order] = found["cum_n"].fillna(0).to_numpy(dtype=np.int64)
        total[order] = found["cum_amount"].fillna(0.0).to_numpy()
        return n, total

    t = spine["at"].to_numpy(dtype=np.int64)
    n_end, sum_end = before(t)
    out = spine.copy()
    sums = {}
    for name, length, tile in DATASET_WINDOWS:
        n_start, sum_start = before((t // tile) * tile - length + tile)
        out[f"n_{name}"] = n_end - n_start
        sums[name] = sum_end - sum_start
    for name in ("1h", "24h", "7d"):
        out[f"amount_sum_{name}"] = sums[name]
    for name in ("1h", "24h", "7d"):
        counts = out[f"n_{name}"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"amount_mean_{name}"] = np.where(counts > 0, sums[name] / counts, np.nan)
    out.to_parquet(out_path)
    return out


def pandas_read_log(log: Log, topic: str) -> pd.DataFrame:
    """The events of `topic` as a DataFrame, read from the log the plain way a pandas user would:
    loopline's consumer from the earliest offset to every partition's end, each batch of JSON
    values decoded into a DataFrame."""
    consumer = log.consumer(None, [topic], reset="earliest")
    frames = []
    try:
        while True:
            batch = consumer.poll(max_records=50_000, timeout=0.5)
            if batch:
                rows = msgspec.json.decode(b"[" + b",".join(r.value for r in batch) + b"]")
                frames.append(pd.DataFrame(rows))
            lag = consumer.lag()
            if lag and not any(lag.values()):
                break
    finally:
        consumer.close()
    return pd.concat(frames, ignore_index=True)


def pandas_from_log(log: Log, topic: str, spine_path: str, out_path: str) -> float:
    """Seconds to read `topic` from the log into pandas, then build the dataset with it."""
    start = time.perf_counter()
    pandas_dataset(pandas_read_log(log, topic), spine_path, out_path)
    return time.perf_counter() - start


def mismatches(expected: pd.DataFrame, actual: pd.DataFrame, names: list[str], rows: int) -> int:
    """Rows of a random sample where any feature differs (floats within 1e-9 relative)."""
    sample = random.Random(3).sample(range(len(expected)), min(rows, len(expected)))
    bad = 0
    for i in sample:
        for name in names:
            a, b = expected[name].iloc[i], actual[name].iloc[i]
            a_missing = a is None or (isinstance(a, float) and math.isnan(a))
            b_missing = b is None or (isinstance(b, float) and math.isnan(b))
            if a_missing or b_missing:
                if a_missing != b_missing:
                    bad += 1
                    break
            elif not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6):
                bad += 1
                break
    return bad


# -- loopline ---------------------------------------------------------------------------


def loopline_run(log: Log, app: App, n: int) -> float:
    """Events/s of `FeatureProcessor.run_until_caught_up` over every record of the source."""
    from loopline.features.processor import FeatureProcessor

    with quiet_collector():  # as `loopline features run` does (cli/runner_options.py)
        start = time.perf_counter()
        processor = FeatureProcessor(log, app)
        stats = processor.run_until_caught_up()
        elapsed = time.perf_counter() - start
        processor.close()
    # `loopline features run` is a process of its own: free its state (cycles, ~8.5 million
    # objects at 1M events) before the store is measured, or every full pass of the
    # collector in the store's catch-up and reads would walk it (2.5 s -> 9.5 s catch-up)
    del processor
    gc.collect()
    if stats.records != n:
        raise SystemExit(f"loopline features run processed {stats.records} of {n} events")
    if stats.late or stats.dead_letters:
        print(f"note: loopline found {stats.late:,} late events, {stats.dead_letters:,} unreadable")
    return n / elapsed


def loopline_get(log: Log, app: App, entities: int, label: str) -> None:
    """Prints p50/p99 of `FeatureStore.get` for 1 and for 100 random members."""
    from loopline.features.store import FeatureStore

    quiet_collector()  # as `loopline serve` runs its store, for the rest of the process
    start = time.perf_counter()
    store = FeatureStore(log, app)
    store.catch_up(timeout=1800)
    print(f"loopline online store catch-up ({label}): {time.perf_counter() - start:.1f} s")
    rng = random.Random(5)
    clock = time.perf_counter_ns
    for batch, calls in ((1, 10_000), (100, 2_000)):
        lists = [[f"m{rng.randrange(entities)}" for _ in range(batch)] for _ in range(calls)]
        store.get("member", lists[0])  # warm
        what = "1 entity" if batch == 1 else f"{batch} entities"
        # the first pass reads most members for the first time since the catch-up (their
        # entries are laid out for reads then); the second reads the same ids again
        for again in ("", ", read again"):
            took = np.empty(calls)
            for i, ids in enumerate(lists):
                start = clock()
                store.get("member", ids)
                took[i] = clock() - start
            p50, p99 = np.percentile(took, [50, 99]) / 1000
            print(f"loopline get {what} ({label}{again}) p50: {p50:,.1f} µs")
            print(f"loopline get {what} ({label}{again}) p99: {p99:,.1f} µs")
    store.close()


def loopline_dataset(
    log: Log, app: App, spine_path: str, out_path: str, phases: dict[str, float] | None = None
) -> float:
    """Seconds of `build_dataset` from the spine file to a parquet file; with `phases`, the
    seconds of each of its phases are added to it (see `timed_phases`)."""
    from loopline.features.offline.datasets import build_dataset

    with timed_phases(phases):
        start = time.perf_counter()
        build_dataset(log, app, spine_path, out_path)
        return time.perf_counter() - start


# The phases of `build_dataset`: (its module's name for the function, the phase's label).
PHASES = (
    ("read_spine_file", "spine"),
    ("read_events", "read the log into events tables"),
    ("build", "features"),
    ("write_parquet", "parquet"),
)


@contextmanager
def timed_phases(phases: dict[str, float] | None) -> Iterator[None]:
    """While inside, the functions `build_dataset` calls for each of `PHASES` add their
    seconds to `phases[label]` (the rest, manifest and pinning, is the total's remainder).
    Timing a handful of calls per build changes nothing measurable."""
    if phases is None:
        yield
        return
    from loopline.features.offline import datasets

    def timed(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start

        return call

    here = [(name, label) for name, label in PHASES if hasattr(datasets, name)]
    here += [("read_pinned", "read the log"), ("events_table_of_columns", "events table")]
    here = [(name, label) for name, label in here if hasattr(datasets, name)]  # older refs
    originals = {name: getattr(datasets, name) for name, _ in here}
    for name, label in here:
        setattr(datasets, name, timed(originals[name], label))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(datasets, name, fn)


def median(values: list[float]) -> float:
    return float(np.median(values))


def spread(seconds: list[float]) -> str:
    """Median seconds and their range, as a bench line prints them."""
    return f"{median(seconds):.2f} s [{min(seconds):.2f}-{max(seconds):.2f}]"


# -- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="embedded,kafka", help="comma-separated")
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument(
        "--quix-windows",
        default="sliding,tumbling",
        help="Quix Streams window types to run, comma-separated: sliding, tumbling, hopping "
        "(1h every 1m and 24h every 1h: 84 window updates per event, too slow for 1M events)",
    )
    parser.add_argument("--skip-loopline", action="store_true", help="baselines only")
    parser.add_argument(
        "--only",
        choices=["dataset"],
        help="run one part: 'dataset' builds the dataset (loopline and pandas) and nothing else",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also print the seconds of each phase of loopline's dataset build",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="dataset builds per backend, pandas (reading the log) and loopline taking turns; "
        "the figures are their medians, with the range",
    )
    parser.add_argument(
        "--kafka",
        default=os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="bootstrap servers of the broker to compare on",
    )
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - {"embedded", "kafka"}
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}: use embedded, kafka")
    quix_windows = [w for w in args.quix_windows.split(",") if w]
    unknown = set(quix_windows) - set(QUIX_WINDOWS)
    if unknown:
        parser.error(f"unknown Quix window type(s) {', '.join(sorted(unknown))}")
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    n = args.events
    print(
        f"features: {n:,} events over {args.entities:,} members, {PARTITIONS} partitions, "
        f"spine of {args.spine_rows:,} rows"
    )
    events = make_events(n, args.entities)
    run_id = uuid.uuid4().hex[:8]
    topic = f"bench-features-{run_id}"
    rates: dict[str, float] = {}
    builds: dict[str, float] = {}
    from_log: dict[str, float] = {}  # pandas reading the events from the log first
    with tempfile.TemporaryDirectory() as tmp:
        spine_path = os.path.join(tmp, "spine.parquet")
        make_spine(spine_path, events, args.spine_rows, args.entities)
        names = dataset_app("x", topic).features.names()
        for backend in backends:
            url = f"kafka://{args.kafka}" if backend == "kafka" else f"embedded:{tmp}/log"
            log = open_log(url)
            seconds = produce(log, topic, events)
            print(f"produced to {backend}: {n / seconds:,.0f} events/s (setup, not compared)")
            if args.skip_loopline or args.repeats < 2:
                from_log[backend] = pandas_from_log(
                    log, topic, spine_path, os.path.join(tmp, f"pandas-{backend}.parquet")
                )
                print(
                    f"pandas merge_asof dataset build, reading the log ({backend}): "
                    f"{from_log[backend]:.1f} s"
                )
            if args.skip_loopline:
                log.close()
                continue
            if args.only is None:
                app = stream_app(f"bench-{run_id}-{backend}", topic)
                rates[backend] = loopline_run(log, app, n)
                print(f"loopline features run ({backend}): {rates[backend]:,.0f} events/s")
                loopline_get(log, app, args.entities, backend)
                if backend == backends[0]:  # reads are in memory: the backend does not matter
                    wide = wide_app(f"bench-{run_id}-wide-{backend}", topic)
                    loopline_run(log, wide, n)
                    loopline_get(log, wide, args.entities, f"{backend}, 20 features")
            out = os.path.join(tmp, f"loopline-{backend}.parquet")
            phases: dict[str, float] | None = {} if args.phases else None
            ds_app = dataset_app(f"bench-{run_id}-ds-{backend}", topic)
            if args.repeats < 2:
                builds[backend] = loopline_dataset(log, ds_app, spine_path, out, phases)
                print(f"loopline dataset build ({backend}): {builds[backend]:.1f} s")
            else:
                pandas_out = os.path.join(tmp, f"pandas-{backend}.parquet")
                ours, theirs, ratios = [], [], []
                for i in range(args.repeats):  # taking turns, each first in every other round
                    for who in ("pandas", "loopline") if i % 2 else ("loopline", "pandas"):
                        if who == "pandas":
                            theirs.append(pandas_from_log(log, topic, spine_path, pandas_out))
                        else:
                            ours.append(loopline_dataset(log, ds_app, spine_path, out, phases))
                    ratios.append(theirs[-1] / ours[-1])
                from_log[backend], builds[backend] = median(theirs), median(ours)
                print(
                    f"pandas merge_asof dataset build, reading the log ({backend}): "
                    f"{spread(theirs)}"
                )
                print(f"loopline dataset build ({backend}): {spread(ours)}")
                print(
                    f"ratio pandas (reading the log) / loopline dataset build ({backend}), "
                    f"median of {args.repeats} rounds: {median(ratios):.2f} "
                    f"[{min(ratios):.2f}-{max(ratios):.2f}]"
                )
                if phases is not None:
                    phases = {label: seconds / args.repeats for label, seconds in phases.items()}
                    builds[backend] = sum(ours) / args.repeats  # the phases are means
            if phases is not None:
                rest = builds[backend] - sum(phases.values())
                parts = [f"{label} {seconds:.2f} s" for label, seconds in phases.items()]
                print(
                    f"loopline dataset build phases ({backend}): {', '.join(parts)}, "
                    f"other {rest:.2f} s"
                )
            log.close()

        if not args.skip_quix and args.only is None and "kafka" in backends:
            if "hopping" not in quix_windows:
                print(
                    "note: quix streams runs sliding/tumbling 1h and 24h windows, not hopping "
                    "1h/1m and 24h/1h (84 window updates per event: too slow for 1M events)"
                )
            try:
                import quixstreams  # noqa: F401
            except ImportError:
                quix_windows = []
                print(
                    "note: Quix Streams is not installed: pip install quixstreams, then "
                    "pip install -U 'confluent-kafka>=2.13' (it asks for an older one, but "
                    "runs with loopline's)"
                )
            for windows in quix_windows:
                quix, late = quix_run(args.kafka, topic, n, windows)
                print(f"quix streams ({windows} windows): {quix:,.0f} events/s")
                if late:
                    print(f"note: quix streams ({windows}) dropped {late:,} late window updates")
                if "kafka" in rates:
                    ratio = rates["kafka"] / quix
                    print(
                        f"ratio loopline features run (kafka) / quix streams ({windows}): "
                        f"{ratio:.2f}"
                    )

        frame = events.frame()
        pandas_out = os.path.join(tmp, "pandas.parquet")
        start = time.perf_counter()
        expected = pandas_dataset(frame, spine_path, pandas_out)
        pandas_seconds = time.perf_counter() - start
        print(f"pandas merge_asof dataset build, events already in memory: {pandas_seconds:.1f} s")
        for backend, seconds in builds.items():
            ratio = pandas_seconds / seconds
            print(f"ratio pandas (in memory) / loopline dataset build ({backend}): {ratio:.2f}")
            ratio = from_log[backend] / seconds
            print(
                f"ratio pandas (reading the log) / loopline dataset build ({backend}): {ratio:.2f}"
            )
            actual = pd.read_parquet(os.path.join(tmp, f"loopline-{backend}.parquet"))
            bad = mismatches(expected, actual, names, 2_000)
            print(f"dataset rows differing from pandas ({backend}, of 2,000 sampled): {bad}")


if __name__ == "__main__":
    main()
