"""Fuzzing the ingest endpoint: no input causes a 5xx, and every request is all or nothing.

Random JSON, random bytes, records that half follow the contract, huge and
deeply nested bodies, any Content-Type, missing or wrong tokens: each answer
must be below 500, and at the end each topic holds exactly the records of the
requests answered 200 (nothing from a refused request, nothing lost).
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from collections import Counter

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.connectors.http import create_app
from loopline.contracts import LogRegistry, Topic
from loopline.http.server import running
from loopline.log import Log
from support import consume_all, examples

TOKEN = "fuzz-token-0123456789"
LIMIT = 16_384


class Click(msgspec.Struct):
    member_id: str
    item: int
    at: datetime.datetime
    score: float | None = None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
clicks = st.fixed_dictionaries(
    {
        "member_id": st.one_of(st.text(max_size=10), st.integers(), st.none()),
        "item": st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=5), st.floats()),
        "at": st.one_of(
            st.datetimes(timezones=st.just(datetime.UTC)).map(lambda d: d.isoformat()),
            st.integers(-(2**64), 2**64),
            st.floats(),
            st.text(max_size=10),
        ),
    },
    optional={"score": st.one_of(st.floats(), st.none(), st.text(max_size=3)), "x": json_values},
)

valid_clicks = st.fixed_dictionaries(
    {
        "member_id": st.text(max_size=10),
        "item": st.integers(-(2**63), 2**63 - 1),
        "at": st.datetimes(timezones=st.just(datetime.UTC)).map(lambda d: d.isoformat()),
    },
    optional={"score": st.none() | st.floats(allow_nan=False, allow_infinity=False)},
)


def dumps(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN/Infinity are not JSON: good fuzz


bodies = st.one_of(
    st.lists(valid_clicks, max_size=60).map(dumps),
    st.lists(st.one_of(valid_clicks, valid_clicks, valid_clicks, clicks), max_size=60).map(dumps),
    st.lists(clicks, max_size=60).map(dumps),
    st.lists(st.one_of(clicks, json_values), max_size=10).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(LIMIT, 3 * LIMIT).map(lambda n: b"[" + b"1," * (n // 2) + b"1]"),
    st.text(max_size=50).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "application/octet-stream",
        "application/json; charset=latin-1",
        "\u00e9/\u00e9",
    ]
)
fields = st.one_of(
    st.none(), st.none(), st.sampled_from(["member_id", "item", "at", "nope"]), st.text()
)
auth = st.sampled_from(
    [f"Bearer {TOKEN}"] * 4
    + [None, "Bearer wrong", TOKEN, "Bearer", "bearer  fuzz-token-0123456789"]
)


def count(log: Log, topic: str) -> int:
    return sum(p.end - p.start for p in log.describe_topic(topic).partitions)


def test_no_input_causes_a_5xx_and_every_request_is_all_or_nothing(log, backend, new_topic) -> None:
    registry = LogRegistry(log)
    bound = new_topic(partitions=2)
    Topic(bound, Click, encoding="avro").create(log, registry)
    plain = new_topic(partitions=2)
    known = st.sampled_from([bound] * 4 + [plain] * 4 + ["missing", "_loopline_schemas"])
    anything = st.tuples(
        st.one_of(known, known, known, st.text()), bodies, content_types, fields, fields, auth
    )
    # Requests that mostly pass, so that many are written and all-or-nothing is put to work.
    tidy = st.tuples(
        st.sampled_from([bound, plain]),
        st.lists(st.one_of(valid_clicks, valid_clicks, valid_clicks, clicks), max_size=60).map(
            dumps
        ),
        st.sampled_from([None, "application/json"]),
        st.sampled_from([None, "member_id"]),
        st.sampled_from([None, "at"]),
        st.just(f"Bearer {TOKEN}"),
    )
    produced: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    plain_values: Counter[bytes] = Counter()
    app = create_app(log, registry, token=TOKEN, max_body_bytes=LIMIT, max_records=50)

    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:

        @settings(
            max_examples=examples(backend, embedded=300, kafka=60),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(tidy | anything)
        def request(drawn: tuple) -> None:
            topic, body, content_type, key, time, authorization = drawn
            headers = {}
            if content_type is not None:
                headers["content-type"] = content_type
            if authorization is not None:
                headers["authorization"] = authorization
            params = {k: v for k, v in (("key", key), ("time", time)) if v is not None}
            try:
                answer = client.post(
                    f"/v1/topics/{urllib.parse.quote(topic, safe='')}/records",
                    content=body,
                    params=params,
                    headers=headers,
                )
            except (httpx.LocalProtocolError, UnicodeEncodeError):
                return  # httpx refused to send a header that HTTP cannot carry
            assert answer.status_code < 500, answer.text
            statuses[answer.status_code] += 1
            if answer.status_code == 200:
                result = answer.json()
                assert result["topic"] == topic
                produced[topic] += result["produced"]
                if topic == plain:
                    plain_values.update(msgspec.json.encode(r) for r in msgspec.json.decode(body))
            elif answer.headers.get("content-type") == "application/json":
                assert answer.json()

        request()
    assert statuses[200] and statuses[400], statuses  # the fuzz reached both outcomes

    assert count(log, bound) == produced[bound]
    assert count(log, plain) == produced[plain]
    assert set(produced) <= {bound, plain}
    consumer = log.consumer(None, [plain], reset="earliest")
    records = consume_all(consumer, produced[plain])
    consumer.close()
    assert Counter(r.value for r in records) == plain_values
    typed = Topic(bound, Click, encoding="avro").consumer(
        log, registry, group=None, reset="earliest"
    )
    messages = consume_all(typed, produced[bound])
    typed.close()
    assert len(messages) == produced[bound]
    assert typed.dead_lettered == 0
    registry.close()
