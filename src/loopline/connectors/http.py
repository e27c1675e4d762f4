"""HTTP ingest: POST a JSON array of records to a topic, validated against its contract.

``POST /v1/topics/{topic}/records`` takes a JSON array of objects. When the
topic is bound to a contract, every record is validated against the
contract's latest version and written in the topic's encoding (JSON or
Confluent-framed Avro); an unbound topic takes any JSON objects as they are.
``?key=FIELD`` names the field whose value becomes the record key (so
records of one entity share a partition, exactly as the Python producer
would place them), ``?time=FIELD`` the field that holds the event time (a
datetime, RFC 3339 text, or epoch seconds or milliseconds).

All or nothing. If any record of a request is bad, the answer is 400 with
every bad record's index and reason, and *nothing* is written: the client
fixes the records and resends the whole request without creating duplicates.
A 200 is sent only after the log acknowledged every record (the producer's
``flush`` returned), so an acknowledged record survives a crash. A 503 means
the log did not acknowledge in time; some records may have been written and a
resend may duplicate them.

No input can cause a 5xx: a body that is not JSON, not an array, too large
(413, over ``max_body_bytes`` or ``max_records``, or a record over
``max_record_bytes`` encoded, which the log would refuse), too deeply
nested, or sent with any Content-Type (curl's ``-d`` sends a form type; the
body is read as JSON regardless) gets a 4xx with a message; a body still
arriving after the server's body timeout is 408 (`loopline.http.server`).
With ``token`` set, requests need ``Authorization: Bearer TOKEN`` (401
otherwise; `/healthz` and the OpenAPI document are open); the token is never
logged. Auth, limits and metrics are `loopline.http`'s, shared with every
loopline server. Topics whose names start with ``_`` are internal (the schema registry lives in
one) and refuse writes (403).

>>> import tempfile, msgspec
>>> from fastapi.testclient import TestClient
>>> from loopline.contracts import LogRegistry, Topic
>>> from loopline.log import open_log
>>> class Click(msgspec.Struct):
...     member_id: str
...     item: int
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = LogRegistry(log)
>>> Topic("clicks", Click, key="member_id").create(log, registry)
>>> client = TestClient(create_app(log, registry))
>>> client.post("/v1/topics/clicks/records?key=member_id",
...             json=[{"member_id": "m-1", "item": 7}]).json()
{'produced': 1, 'topic': 'clicks'}
>>> answer = client.post("/v1/topics/clicks/records",
...                      json=[{"member_id": "m-2", "item": 3}, {"member_id": "m-3"}])
>>> answer.status_code, answer.json()["records"]
(400, [{'index': 1, 'error': 'Object missing required field `item`'}])
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import Binding, SchemaRegistry
from loopline.contracts.schemas import record_type
from loopline.contracts.topics import codec_for, event_time
from loopline.http.auth import public
from loopline.http.limits import ServerLimits
from loopline.http.middleware import protect
from loopline.http.server import serve as serve_app
from loopline.log import Log, LogError, Producer, TopicNotFound

__all__ = ["MAX_RECORD_BYTES", "ContractRegistry", "IngestError", "Ingest", "create_app", "serve"]

# Kafka refuses a record batch over its max.message.bytes (1 MB by default, framing
# included): a record must leave room for that framing, on every backend alike.
MAX_RECORD_BYTES = 999_000

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_MAX_TIMESTAMP = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_REFRESH_EVERY = 1.0  # seconds between looks for new contract versions
# key, value and timestamp of one record, ready for the log
Encoded = tuple[bytes | None, bytes, int | None]

DESCRIPTION = """\
Write records to loopline topics over HTTP.

`POST /v1/topics/{topic}/records` with a JSON array of objects. A topic bound to a
contract validates every record against the contract's latest version.

**All or nothing**: if any record is bad the answer is 400 listing every bad record's
`index` and `error`, and nothing is written, so a client can fix the records and resend
the whole request without creating duplicates. 200 means the log acknowledged every record.
"""

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every record was written and acknowledged by the log."},
    400: {
        "description": "Nothing was written: the body is not a JSON array, a query parameter "
        "is wrong, or records are bad (`records` lists each bad record's `index` and `error`)."
    },
    401: {"description": "A bearer token is required (`Authorization: Bearer TOKEN`)."},
    403: {"description": "The topic is internal (its name starts with `_`)."},
    404: {"description": "No such topic."},
    409: {"description": "The topic's contract cannot be used over HTTP (not an Avro record)."},
    408: {"description": "The body did not arrive in time; nothing was written."},
    413: {
        "description": "Nothing was written: the body is larger than the limit, has too many "
        "records, or holds records too large for the log (`records` lists them)."
    },
    503: {"description": "The log did not acknowledge; some records may have been written."},
}


class ContractRegistry(SchemaRegistry, Protocol):
    """A schema registry that also knows which topic is bound to which contract."""

    def binding(self, topic: str) -> Binding | None: ...


class IngestError(Exception):
    """A request that cannot be served: HTTP status, message, and per-record errors."""

    def __init__(
        self,
        status: int,
        message: str,
        records: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.records, self.headers = status, message, records, headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.records is not None:
            body["records"] = self.records
        return JSONResponse(body, self.status, headers=self.headers)


def _key(value: Any, field: str) -> bytes:
    # Same bytes as TypedProducer (str() of the value), so HTTP and Python agree on partitions.
    if isinstance(value, bytes):
        return value
    if value is None or isinstance(value, dict | list):
        shown = "null" if value is None else type(value).__name__
        raise ContractViolation(f"key field {field!r} must be a string or a number, not {shown}")
    return str(value).encode()


def _timestamp(value: Any, field: str) -> int:
    if isinstance(value, str):
        try:
            value = msgspec.convert(value, datetime.datetime)
        except msgspec.ValidationError:
            raise ContractViolation(
                f"time field {field!r}: {value!r} is not an RFC 3339 datetime"
            ) from None
    if value is None or isinstance(value, bool):
        raise ContractViolation(f"time field {field!r} must be a datetime or an epoch number")
    try:
        ms = event_time(value)
    except (OverflowError, ValueError) as exc:  # inf, nan, and ContractViolation
        raise ContractViolation(f"time field {field!r}: {exc}") from None
    if not 0 <= ms <= _MAX_TIMESTAMP:
        raise ContractViolation(f"time field {field!r}: {value!r} is out of range")
    return ms


class Ingest:
    """Validates, encodes and writes the records of ingest requests (the app's engine).

    Thread-safe: encoding runs in any thread; sending and flushing hold a lock
    because the log's producer is not thread-safe.
    """

    def __init__(
        self,
        log: Log,
        registry: ContractRegistry,
        *,
        max_records: int = 10_000,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.log = log
        self.registry = registry
        self.max_records = max_records
        self.max_record_bytes = max_record_bytes
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._types: dict[int, type] = {}
        self._refreshed = 0.0

    def produce(self, topic: str, body: bytes, key: str | None, time_field: str | None) -> dict:
        """Write every record of `body` to `topic`, or none; the JSON answer or `IngestError`."""
        self._check_topic(topic)
        records = self._records(body)
        encode, label = self._encoder(topic, key, time_field)
        encoded: list[Encoded] = []
        errors: list[dict[str, Any]] = []
        too_large = 0
        for index, record in enumerate(records):
            try:
                one = encode(record)
            except (ContractViolation, msgspec.ValidationError) as exc:
                errors.append({"index": index, "error": str(exc)})
                continue
            except Exception as exc:  # a bad record must never become a 500
                errors.append({"index": index, "error": f"cannot encode: {exc}"})
                continue
            # Checked before anything is sent: the log refusing one record mid-batch
            # would leave the records before it written (on Kafka) despite the error.
            size = len(one[1]) + len(one[0] or b"")
            if size > self.max_record_bytes:
                too_large += 1
                errors.append(
                    {
                        "index": index,
                        "error": f"the record is {size} bytes encoded; the limit per record "
                        f"is {self.max_record_bytes}",
                    }
                )
                continue
            encoded.append(one)
        if errors:
            what = f"break {label}" if label else "are not valid"
            if too_large == len(errors):
                what = "are too large"
            message = f"{len(errors)} of {len(records)} records {what}; nothing was written"
            raise IngestError(413 if too_large == len(errors) else 400, message, errors)
        self._write(topic, encoded)
        return {"produced": len(encoded), "topic": topic}

    def _check_topic(self, topic: str) -> None:
        if not _TOPIC_NAME.fullmatch(topic):
            raise IngestError(
                400, f"{topic!r} is not a topic name: use letters, digits, '.', '_' and '-'"
            )
        if topic.startswith("_"):
            raise IngestError(403, f"topic {topic!r} is internal to loopline or Kafka")
        try:
            self.log.describe_topic(topic)
        except TopicNotFound:
            raise IngestError(
                404, f"no topic named {topic!r}: create it with `loopline topics create {topic}`"
            ) from None
        except LogError as exc:
            raise IngestError(503, f"the log is unavailable: {exc}") from None

    def _records(self, body: bytes) -> list[Any]:
        try:
            records = msgspec.json.decode(body)
        except Exception as exc:  # DecodeError, RecursionError, UnicodeError, ...
            raise IngestError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(records, list):
            raise IngestError(
                400, f"the body must be a JSON array of records, got {type(records).__name__}"
            )
        if len(records) > self.max_records:
            raise IngestError(
                413, f"{len(records)} records in one request; the limit is {self.max_records}"
            )
        return records

    def _encoder(
        self, topic: str, key: str | None, time_field: str | None
    ) -> tuple[Callable[[Any], Encoded], str]:
        """The function that encodes one record of `topic`, and the contract it checks."""
        try:
            binding = self.registry.binding(topic)
            if binding is None:
                return self._plain(key, time_field), ""
            self._refresh()
            version = self.registry.latest(binding.contract)
            cls = self._types.get(version.schema_id)
            if cls is None:
                cls = self._types[version.schema_id] = record_type(version.schema)
            codec = codec_for(cls, version, binding.encoding, self.registry)
        except LogError as exc:
            raise IngestError(503, f"the schema registry is unavailable: {exc}") from None
        except Exception as exc:  # a contract HTTP cannot serve is not a 500
            raise IngestError(
                409, f"topic {topic!r} cannot take records over HTTP: {exc}"
            ) from None
        label = f"contract {version.name!r} v{version.version}"
        fields = cls.__struct_fields__
        for name, what in ((key, "key"), (time_field, "time")):
            if name is not None and name not in fields:
                raise IngestError(
                    400,
                    f"{what} field {name!r} is not a field of {label} "
                    f"(its fields: {', '.join(fields)})",
                )

        def encode(record: Any) -> Encoded:
            value = msgspec.convert(record, cls)
            data = codec.encode(value)
            k = _key(getattr(value, key), key) if key is not None else None
            ts = _timestamp(getattr(value, time_field), time_field) if time_field else None
            return k, data, ts

        return encode, label

    @staticmethod
    def _plain(key: str | None, time_field: str | None) -> Callable[[Any], Encoded]:
        json_encode = msgspec.json.encode

        def encode(record: Any) -> Encoded:
            if not isinstance(record, dict):
                raise ContractViolation(f"expected a JSON object, got {type(record).__name__}")
            for name, what in ((key, "key"), (time_field, "time")):
                if name is not None and name not in record:
                    raise ContractViolation(f"the record has no {what} field {name!r}")
            k = _key(record[key], key) if key is not None else None
            ts = _timestamp(record[time_field], time_field) if time_field else None
            return k, json_encode(record), ts

        return encode

    def _refresh(self) -> None:
        """Look for contract versions registered by other processes, at most once a second."""
        refresh = getattr(self.registry, "refresh", None)
        now = time.monotonic()
        if refresh is not None and now - self._refreshed > _REFRESH_EVERY:
            self._refreshed = now
            refresh()

    def _write(self, topic: str, encoded: list[Encoded]) -> None:
        if not encoded:
            return
        keys = [k for k, _, _ in encoded]
        values = [v for _, v, _ in encoded]
        stamps = [t for _, _, t in encoded]
        with self._lock:
            try:
                if self._producer is None:
                    self._producer = self.log.producer()
                self._producer.send_batch(
                    topic, values, keys, stamps if stamps[0] is not None else None
                )
                self._producer.flush()
            except LogError as exc:
                raise IngestError(
                    503,
                    f"the log did not acknowledge the records ({exc}); some may have "
                    "been written, so a resend may duplicate them",
                    headers={"Retry-After": "1"},
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None


def create_app(
    log: Log,
    registry: ContractRegistry,
    *,
    token: str | None = None,
    max_body_bytes: int = 1_048_576,
    max_records: int = 10_000,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> FastAPI:
    """The ingest app over `log` and `registry`; see the module docstring for the rules.

    A `token` shorter than 16 characters raises `loopline.http.tokens.WeakToken`.
    """
    ingest = Ingest(log, registry, max_records=max_records, max_record_bytes=max_record_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        ingest.close()

    app = FastAPI(title="loopline ingest", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.ingest = ingest
    protect(
        app,
        server="ingest",
        token=token,
        max_body_bytes=max_body_bytes,
        is_public=public("/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"),
    )

    @app.exception_handler(IngestError)
    async def _ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        return exc.response()

    @app.get("/healthz", summary="Liveness check")
    def healthz() -> dict[str, str]:
        """Answers ``{"status": "ok"}`` while the server runs (no token needed)."""
        return {"status": "ok"}

    @app.post(
        "/v1/topics/{topic}/records",
        summary="Write records to a topic (all or nothing)",
        description=DESCRIPTION,
        responses=_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": {"type": "object"}},
                        "example": [{"member_id": "m-42", "item": 7, "at": "2024-05-01T12:00:00Z"}],
                    }
                },
            }
        },
    )
    async def produce(
        topic: str,
        request: Request,
        key: Annotated[
            str | None, Query(description="Field whose value is the record key.")
        ] = None,
        time_field: Annotated[
            str | None,
            Query(alias="time", description="Field that holds the event time (datetime or epoch)."),
        ] = None,
    ) -> dict[str, Any]:
        body = await request.body()
        return await run_in_threadpool(ingest.produce, topic, body, key, time_field)

    return app


def serve(
    log: Log,
    registry: ContractRegistry,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    limits: ServerLimits | None = None,
    **kw: Any,
) -> None:
    """Serve the ingest endpoint until interrupted, with `limits` against slow clients.

    `kw` goes to `create_app` (``token``, ``max_body_bytes``, ``max_records``,
    ``max_record_bytes``) and the rest to uvicorn (``log_level``, ``ssl_certfile``, ...).
    """
    limits = limits or ServerLimits()
    names = ("token", "max_body_bytes", "max_records", "max_record_bytes")
    app_kw = {k: kw.pop(k) for k in names if k in kw}
    app = create_app(log, registry, **app_kw)
    serve_app(app, host, port, limits, **kw)
