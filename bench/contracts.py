"""Contracts: encode+decode throughput of loopline's typed records, and file ingest, in one run.

Encode+decode (validated both ways) of the same record, per encoding:

- loopline JSON (`JsonCodec`, msgspec Struct) against plain `json` + a dataclass
  and against msgspec alone with no contract check (the bare encoder);
- loopline Avro (`AvroCodec`, Confluent wire format) against fastavro alone.

Ingest of a 1,000,000-row CSV (`loopline.connectors.files.ingest_file`, with a
contract) against a hand-written `csv` + confluent-kafka loop, to the same
broker, and on the embedded log.

    bash scripts/kafka.sh start
    python bench/contracts.py --kafka 127.0.0.1:9092
    python bench/contracts.py --skip-ingest --baseline-ref main  # codecs before and after

Encode+decode figures are the median of `--repeats` rounds (the range in
brackets), in records per second of CPU time; each round times every
contender once, one after the other, so that a neighbour's load on a shared
machine falls on all of them alike. With
`--baseline-ref`, the Avro codec of that git ref (its
``src/loopline/contracts/codecs.py``) runs in the same rounds.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable

import fastavro
import msgspec

from loopline.contracts import AvroCodec, JsonCodec, LogRegistry, avro_schema
from loopline.log import TopicConfig, open_log


class Click(msgspec.Struct):
    member_id: str
    item: int
    score: float
    page: str
    at: datetime.datetime
    tags: list[str] = []
    referrer: str | None = None


@dataclasses.dataclass
class ClickDC:
    member_id: str
    item: int
    score: float
    page: str
    at: str
    tags: list[str]
    referrer: str | None


def rate(fn: Callable[[], object], n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    for _ in range(n):
        fn()
    return n / (clock() - start)


def rounds(contenders: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, list]:
    """Records/s of each contender in each of `repeats` rounds, timed one after the other (in
    turn first), by the CPU time of this thread: one-threaded work whose wall time on a
    shared machine says more about the neighbours than about the code."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for i in range(repeats):
        turn = names[i % len(names) :] + names[: i % len(names)]
        for name in turn:
            rates[name].append(rate(contenders[name], n, time.thread_time))
    return rates


def median(values: list[float]) -> str:
    """The median of `values` and their range, as a bench line prints them."""
    return f"{statistics.median(values):,.0f} records/s [{min(values):,.0f}-{max(values):,.0f}]"


def cost(contract: list[float], bare: list[float]) -> str:
    """Time per record of `contract` over `bare`: the median of the rounds' ratios and range."""
    ratios = [b / c - 1 for c, b in zip(contract, bare, strict=True)]
    return (
        f"{statistics.median(ratios):+.0%} time per record [{min(ratios):+.0%}..{max(ratios):+.0%}]"
    )


def baseline_codecs(ref: str) -> types.ModuleType:
    """`loopline.contracts.codecs` as it is at git `ref`, loaded beside the current one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(
        ["git", "show", f"{ref}:src/loopline/contracts/codecs.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("loopline_baseline_codecs")
    sys.modules[module.__name__] = module  # dataclasses and msgspec look types up by module
    exec(compile(source, f"{ref}:codecs.py", "exec"), module.__dict__)
    return module


def codec_figures(n: int, repeats: int, baseline_ref: str | None) -> None:
    at = datetime.datetime(2026, 11, 24, 8, 0, tzinfo=datetime.UTC)
    click = Click("member-42", 7, 0.25, "feed", at, ["a", "b"], None)
    dc = ClickDC("member-42", 7, 0.25, "feed", at.isoformat(), ["a", "b"], None)

    json_codec = JsonCodec(Click)
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(Click)

    def stdlib() -> ClickDC:
        return ClickDC(**json.loads(json.dumps(dataclasses.asdict(dc))))

    schema = avro_schema(Click)
    avro_codec = AvroCodec(Click, schema, 1, lambda _id: schema)
    parsed = fastavro.parse_schema(schema)
    as_dict = {
        "member_id": "member-42",
        "item": 7,
        "score": 0.25,
        "page": "feed",
        "at": at,
        "tags": ["a", "b"],
        "referrer": None,
    }

    def plain_avro() -> dict:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, as_dict)
        buf.seek(0)
        return fastavro.schemaless_reader(buf, parsed, None)

    contenders: dict[str, Callable[[], object]] = {
        "loopline json": lambda: json_codec.decode(json_codec.encode(click)),
        "bare msgspec": lambda: decoder.decode(encoder.encode(click)),
        "json + dataclass": stdlib,
        "loopline avro": lambda: avro_codec.decode(avro_codec.encode(click)),
        "fastavro": plain_avro,
    }
    if baseline_ref is not None:
        old = baseline_codecs(baseline_ref).AvroCodec(Click, schema, 1, lambda _id: schema)
        contenders[f"loopline avro at {baseline_ref}"] = lambda: old.decode(old.encode(click))
    r = rounds(contenders, n, repeats)
    print(f"encode+decode: median of {repeats} interleaved rounds of {n:,} records [range]")
    print(f"loopline json encode+decode: {median(r['loopline json'])}")
    print(f"bare msgspec json encode+decode (no contract check): {median(r['bare msgspec'])}")
    print(f"json + dataclass encode+decode: {median(r['json + dataclass'])}")
    print(f"loopline avro encode+decode: {median(r['loopline avro'])}")
    if baseline_ref is not None:
        print(
            f"loopline avro encode+decode at {baseline_ref}: "
            f"{median(r[f'loopline avro at {baseline_ref}'])}"
        )
    print(f"fastavro encode+decode: {median(r['fastavro'])}")
    print(f"contract cost json vs bare msgspec: {cost(r['loopline json'], r['bare msgspec'])}")
    ratio = statistics.median(
        a / b for a, b in zip(r["loopline json"], r["json + dataclass"], strict=True)
    )
    print(f"ratio loopline json / json+dataclass: {ratio:.2f}")
    print(f"contract cost avro vs fastavro: {cost(r['loopline avro'], r['fastavro'])}")
    if baseline_ref is not None:
        was = cost(r[f"loopline avro at {baseline_ref}"], r["fastavro"])
        print(f"contract cost avro vs fastavro at {baseline_ref}: {was}")


# -- ingest -----------------------------------------------------------------------------

INGEST_SCHEMA = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "event_id", "type": "long"},
        {"name": "member_id", "type": "string"},
        {"name": "item", "type": "long"},
        {"name": "score", "type": "double"},
        {"name": "page", "type": "string"},
    ],
}


def write_csv(path: str, rows: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event_id", "member_id", "item", "score", "page"])
        for i in range(rows):
            w.writerow([i, f"member-{i % 100_000}", i % 5000, (i % 997) / 997, "feed"])


def hand_written_ingest(path: str, bootstrap: str, topic: str) -> int:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    n = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            value = json.dumps(
                {
                    "event_id": int(row["event_id"]),
                    "member_id": row["member_id"],
                    "item": int(row["item"]),
                    "score": float(row["score"]),
                    "page": row["page"],
                }
            ).encode()
            while True:
                try:
                    producer.produce(topic, value, row["member_id"].encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            n += 1
    producer.flush(120)
    return n


def ingest_figures(rows: int, bootstrap: str) -> None:
    from loopline.connectors.files import ingest_file

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.csv")
        write_csv(path, rows)
        results = {}
        for name, url in (("embedded", f"embedded:{tmp}/log"), ("kafka", f"kafka://{bootstrap}")):
            log = open_log(url)
            registry = LogRegistry(log)
            contract = f"bench-events-{uuid.uuid4().hex[:8]}"
            registry.register(contract, INGEST_SCHEMA)
            topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
            log.create_topic(topic, TopicConfig(partitions=4))
            start = time.perf_counter()
            report = ingest_file(
                log, path, topic, contract=contract, key="member_id", registry=registry
            )
            results[name] = rows / (time.perf_counter() - start)
            assert report.produced == rows, report
            print(f"loopline ingest ({name}, contract-checked): {results[name]:,.0f} rows/s")
            registry.close()
            log.close()
        kafka = open_log(f"kafka://{bootstrap}")
        topic = f"bench-hand-{uuid.uuid4().hex[:8]}"
        kafka.create_topic(topic, TopicConfig(partitions=4))
        start = time.perf_counter()
        hand_written_ingest(path, bootstrap, topic)
        hand = rows / (time.perf_counter() - start)
        kafka.close()
        print(f"hand-written csv + confluent-kafka ingest: {hand:,.0f} rows/s")
        print(f"ratio hand-written / loopline ingest on kafka: {hand / results['kafka']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=20_000, help="records per encode+decode round"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows for ingest")
    parser.add_argument(
        "--kafka", default=os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--repeats", type=int, default=25, help="interleaved encode+decode rounds")
    parser.add_argument(
        "--baseline-ref", help="also time the Avro codec of this git ref (e.g. main), interleaved"
    )
    args = parser.parse_args()
    codec_figures(args.records, args.repeats, args.baseline_ref)
    if not args.skip_ingest:
        ingest_figures(args.rows, args.kafka)


if __name__ == "__main__":
    main()
