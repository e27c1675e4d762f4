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
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import json
import os
import tempfile
import time
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


def rate(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def codec_figures(n: int) -> None:
    at = datetime.datetime(2026, 11, 24, 8, 0, tzinfo=datetime.UTC)
    click = Click("member-42", 7, 0.25, "feed", at, ["a", "b"], None)
    dc = ClickDC("member-42", 7, 0.25, "feed", at.isoformat(), ["a", "b"], None)

    json_codec = JsonCodec(Click)
    ll_json = rate(lambda: json_codec.decode(json_codec.encode(click)), n)
    print(f"loopline json encode+decode: {ll_json:,.0f} records/s")

    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(Click)
    bare = rate(lambda: decoder.decode(encoder.encode(click)), n)
    print(f"bare msgspec json encode+decode (no contract check): {bare:,.0f} records/s")

    def stdlib() -> ClickDC:
        return ClickDC(**json.loads(json.dumps(dataclasses.asdict(dc))))

    std = rate(stdlib, n)
    print(f"json + dataclass encode+decode: {std:,.0f} records/s")

    schema = avro_schema(Click)
    avro_codec = AvroCodec(Click, schema, 1, lambda _id: schema)
    ll_avro = rate(lambda: avro_codec.decode(avro_codec.encode(click)), n)
    print(f"loopline avro encode+decode: {ll_avro:,.0f} records/s")

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

    fa = rate(plain_avro, n)
    print(f"fastavro encode+decode: {fa:,.0f} records/s")
    print(f"contract cost json vs bare msgspec: {bare / ll_json - 1:+.0%} time per record")
    print(f"ratio loopline json / json+dataclass: {ll_json / std:.2f}")
    print(f"contract cost avro vs fastavro: {fa / ll_avro - 1:+.0%} time per record")


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
    parser.add_argument("--records", type=int, default=200_000, help="records for encode+decode")
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows for ingest")
    parser.add_argument(
        "--kafka", default=os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    codec_figures(args.records)
    if not args.skip_ingest:
        ingest_figures(args.rows, args.kafka)


if __name__ == "__main__":
    main()
