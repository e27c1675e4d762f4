"""A Confluent Schema Registry REST API over loopline's registry, for Kafka ecosystem tools.

Kafka tools find schemas through Confluent's Schema Registry REST API. This
module serves that API on top of a `LogRegistry`, so confluent-kafka's
``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer`` (and
Kafka Connect, ksqlDB, ... configured with ``schema.registry.url``) register
and read the very contracts loopline's producers and consumers use: a record
framed by a Confluent serializer decodes in a loopline consumer and the other
way round. A subject is a contract of the same name (Confluent serializers
name the value subject of topic ``clicks`` ``clicks-value``).

Served (the subset the confluent-kafka Python client calls; unknown query
parameters such as ``normalize``, ``deleted``, ``format`` are accepted and ignored):

====== ================================================== ===================================
GET    /  /schemas/types                                  ``{}``, ``["AVRO"]``
GET    /schemas/ids/{id}[?subject=]                       ``{"schema": "<json>"}``
GET    /schemas/ids/{id}/subjects | /versions             where a schema id is used
GET    /subjects[?subjectPrefix=]                         contract names
POST   /subjects/{subject}/versions                       register -> ``{"id": N}``; 409 if incompatible
POST   /subjects/{subject}                                look a schema up -> subject, id, version, schema
GET    /subjects/{subject}/versions                       ``[1, 2, ...]``
GET    /subjects/{subject}/versions/{version|latest|-1}   subject, id, version, schema
POST   /compatibility/subjects/{subject}/versions[/{v}]   ``{"is_compatible": bool}`` (+ messages)
GET    /config  /config/{subject}                         ``{"compatibilityLevel": "BACKWARD"}``
PUT    /config/{subject}                                  ``{"compatibility": "FULL"}``
====== ================================================== ===================================

Errors have Confluent's shape, ``{"error_code": 40401, "message": "..."}``:
40401 subject, 40402 version, 40403 schema not found; 409 incompatible;
42201 invalid schema; 42202 invalid version; 42203 invalid compatibility
level; 42205 not permitted (the log is append-only: no deletes; the global
level is the registry's ``default_mode``, fixed when the process starts).

The endpoints are `routes`, one function each; `create_registry_app` puts
them behind `loopline.http.middleware.protect` (token, body limit, request metrics).

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from loopline.log import open_log
>>> registry = LogRegistry(open_log("embedded:" + tempfile.mkdtemp()))
>>> client = TestClient(create_registry_app(registry))
>>> schema = '{"type": "record", "name": "Click", "fields": [{"name": "item", "type": "long"}]}'
>>> client.post("/subjects/clicks-value/versions", json={"schema": schema}).json()["id"] > 0
True
>>> client.get("/subjects/clicks-value/versions/latest").json()["version"]
1
>>> client.get("/config/clicks-value").json()
{'compatibilityLevel': 'BACKWARD'}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import fastavro
import msgspec
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopline.contracts.compatibility import (
    Incompatibility,
    IncompatibleSchema,
    Mode,
    can_read,
    check,
)
from loopline.contracts.registry import (
    MODES,
    ContractNotFound,
    ContractVersion,
    LogRegistry,
    canonical,
)
from loopline.contracts.schemas import Schema
from loopline.http.auth import public
from loopline.http.limits import ServerLimits
from loopline.http.middleware import protect
from loopline.http.server import serve as serve_app
from loopline.log import LogError

__all__ = ["RegistryHTTPError", "create_registry_app", "routes", "serve_registry"]

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/vnd.schemaregistry.v1+json": {
                "schema": {
                    "type": "object",
                    "required": ["schema"],
                    "properties": {
                        "schema": {
                            "type": "string",
                            "description": "the Avro schema, as JSON text",
                        },
                        "schemaType": {"type": "string", "enum": ["AVRO"]},
                        "references": {"type": "array", "maxItems": 0},
                    },
                }
            }
        },
    }
}


class RegistryHTTPError(Exception):
    """An error answered in Confluent's shape: HTTP status, Confluent error code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _SchemaBody(msgspec.Struct):
    schema: str
    schemaType: str = "AVRO"
    references: list[Any] = []


def _level(mode: str) -> str:
    return mode.upper()


def _mode(body: Any) -> Mode:
    level = None
    if isinstance(body, dict):
        level = body.get("compatibility") or body.get("compatibilityLevel")
    mode = level.lower() if isinstance(level, str) else None
    if mode not in MODES:
        raise RegistryHTTPError(
            422,
            42203,
            f"invalid compatibility level {level!r}: use one of {', '.join(map(_level, MODES))}",
        )
    return mode  # type: ignore[return-value]


async def _schema(request: Request) -> Schema:
    """The Avro schema of a register / lookup / compatibility request, parsed and checked."""
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw, type=_SchemaBody)
    except Exception as exc:
        raise RegistryHTTPError(
            422, 42201, f'expected {{"schema": "<Avro schema as JSON text>"}}: {exc}'
        ) from None
    if body.schemaType.upper() != "AVRO":
        raise RegistryHTTPError(
            422, 42201, f"loopline's registry holds Avro schemas only, not {body.schemaType}"
        )
    if body.references:
        raise RegistryHTTPError(
            422, 42201, "schema references are not supported: inline the referenced types"
        )
    try:
        schema = json.loads(body.schema)
        fastavro.parse_schema(schema)
        can_read(schema, schema)  # loopline's checker must read it too (it is stricter)
    except Exception as exc:
        raise RegistryHTTPError(422, 42201, f"invalid Avro schema: {exc}") from None
    return schema


def _versions(registry: LogRegistry, subject: str) -> list[ContractVersion]:
    try:
        return registry.versions(subject)
    except ContractNotFound:
        raise RegistryHTTPError(404, 40401, f"Subject '{subject}' not found.") from None


def _version(registry: LogRegistry, subject: str, version: str) -> ContractVersion:
    versions = _versions(registry, subject)
    if version in ("latest", "-1"):
        return versions[-1]
    try:
        number = int(version)
    except ValueError:
        number = 0
    if number < 1:
        raise RegistryHTTPError(
            422, 42202, f"invalid version {version!r}: use a number from 1, or latest"
        )
    for v in versions:
        if v.version == number:
            return v
    raise RegistryHTTPError(404, 40402, f"Version {number} not found.")


def _registered(v: ContractVersion) -> dict[str, Any]:
    return {
        "subject": v.name,
        "id": v.schema_id,
        "version": v.version,
        "schema": json.dumps(v.schema),
    }


def _compatibility(find: Callable[[], list[Incompatibility]], verbose: bool) -> dict[str, Any]:
    try:
        problems = find()
    except IncompatibleSchema as exc:
        problems = exc.problems
    except ValueError as exc:  # a schema the compatibility checker cannot read
        raise RegistryHTTPError(422, 42201, f"invalid Avro schema: {exc}") from None
    out: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        out["messages"] = [p.message for p in problems]
    return out


def _registry(request: Request) -> LogRegistry:
    return request.app.state.registry


def _fresh(request: Request) -> LogRegistry:
    """The registry, refreshed first: other processes may have registered since."""
    registry = request.app.state.registry
    getattr(registry, "refresh", lambda: None)()
    return registry


Registry = Annotated[LogRegistry, Depends(_registry)]
Fresh = Annotated[LogRegistry, Depends(_fresh)]
routes = APIRouter()


@routes.get("/", summary="Root (reachability check)")
def root() -> dict[str, Any]:
    return {}


@routes.get("/healthz", summary="Liveness check")
def healthz() -> dict[str, str]:
    """Answers ``{"status": "ok"}`` while the server runs (no token needed), as every
    loopline server does."""
    return {"status": "ok"}


@routes.get("/schemas/types", summary="Schema types this registry accepts")
def schema_types() -> list[str]:
    return ["AVRO"]


@routes.get("/schemas/ids/{schema_id}", summary="The schema of a schema id")
def schema_by_id(schema_id: str, registry: Registry) -> dict[str, Any]:
    try:
        return {"schema": json.dumps(registry.by_id(int(schema_id)))}
    except (KeyError, ValueError, OverflowError):
        raise RegistryHTTPError(404, 40403, f"Schema {schema_id} not found") from None


def _uses(registry: LogRegistry, schema_id: str) -> list[ContractVersion]:
    found = [
        v
        for name in registry.names()
        for v in registry.versions(name)
        if str(v.schema_id) == schema_id
    ]
    if not found:
        raise RegistryHTTPError(404, 40403, f"Schema {schema_id} not found")
    return found


@routes.get("/schemas/ids/{schema_id}/subjects", summary="Subjects that use a schema id")
def subjects_of_id(schema_id: str, registry: Fresh) -> list[str]:
    return sorted({v.name for v in _uses(registry, schema_id)})


@routes.get("/schemas/ids/{schema_id}/versions", summary="Subject versions that use a schema id")
def versions_of_id(schema_id: str, registry: Fresh) -> list[dict[str, Any]]:
    return [{"subject": v.name, "version": v.version} for v in _uses(registry, schema_id)]


@routes.get("/subjects", summary="Subjects (contract names)")
def subjects(registry: Fresh, subjectPrefix: str = "") -> list[str]:
    return [n for n in registry.names() if n.startswith(subjectPrefix)]


@routes.get("/subjects/{subject}/versions", summary="Version numbers of a subject")
def versions(subject: str, registry: Fresh) -> list[int]:
    return [v.version for v in _versions(registry, subject)]


@routes.get("/subjects/{subject}/versions/{version}", summary="One version of a subject")
def version(subject: str, version: str, registry: Fresh) -> dict[str, Any]:
    return _registered(_version(registry, subject, version))


@routes.post(
    "/subjects/{subject}/versions",
    summary="Register a schema under a subject",
    description="Returns the id of the new (or identical existing) version; 409 if the "
    "schema breaks the subject's compatibility level.",
    openapi_extra=_BODY,
)
async def register(subject: str, request: Request) -> dict[str, Any]:
    schema = await _schema(request)
    registry: LogRegistry = request.app.state.registry
    try:
        return {"id": registry.register(subject, schema).schema_id}
    except IncompatibleSchema as exc:
        raise RegistryHTTPError(409, 409, str(exc)) from None
    except ValueError as exc:  # a schema-id collision: the message says what to change
        raise RegistryHTTPError(422, 42201, str(exc)) from None


@routes.post("/subjects/{subject}", summary="Look a schema up in a subject", openapi_extra=_BODY)
async def lookup(subject: str, request: Request) -> dict[str, Any]:
    schema = await _schema(request)
    registry = _fresh(request)
    wanted = canonical(schema)
    for v in _versions(registry, subject):
        if canonical(v.schema) == wanted:
            return _registered(v)
    raise RegistryHTTPError(404, 40403, f"Schema not found in subject '{subject}'.")


def _verbose(request: Request) -> bool:
    return request.query_params.get("verbose", "").lower() == "true"


@routes.post(
    "/compatibility/subjects/{subject}/versions",
    summary="Can the schema be registered as the next version (per the subject's level)?",
    openapi_extra=_BODY,
)
async def compatible_with_all(subject: str, request: Request) -> dict[str, Any]:
    schema = await _schema(request)
    registry: LogRegistry = request.app.state.registry
    return _compatibility(lambda: registry.check(subject, schema), _verbose(request))


@routes.post(
    "/compatibility/subjects/{subject}/versions/{version}",
    summary="Is the schema compatible with one version (per the subject's level)?",
    openapi_extra=_BODY,
)
async def compatible_with(subject: str, version: str, request: Request) -> dict[str, Any]:
    schema = await _schema(request)
    registry = _fresh(request)
    against = _version(registry, subject, version)
    mode = registry.mode(subject).removesuffix("_transitive")
    return _compatibility(lambda: check(mode, schema, [against.schema]), _verbose(request))  # type: ignore[arg-type]


@routes.get("/config", summary="The default compatibility level")
def global_config(registry: Registry) -> dict[str, Any]:
    return {"compatibilityLevel": _level(registry.default_mode)}


@routes.put("/config", summary="Not permitted: the default level is fixed per process")
def set_global_config(registry: Registry) -> dict[str, Any]:
    raise RegistryHTTPError(
        422,
        42205,
        "the default compatibility level is set when loopline's registry starts "
        f"(now {_level(registry.default_mode)}); set a subject's level with PUT /config/SUBJECT",
    )


@routes.get("/config/{subject}", summary="A subject's compatibility level (else the default)")
def config(subject: str, registry: Fresh) -> dict[str, Any]:
    return {"compatibilityLevel": _level(registry.mode(subject))}


@routes.put("/config/{subject}", summary="Set a subject's compatibility level")
async def set_config(subject: str, request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
        body = None
    mode = _mode(body)
    request.app.state.registry.set_mode(subject, mode)
    return {"compatibility": _level(mode)}


@routes.delete("/subjects/{subject}", summary="Not permitted: the registry is append-only")
@routes.delete("/subjects/{subject}/versions/{version}", summary="Not permitted (append-only)")
def delete(subject: str, version: str | None = None) -> None:
    raise RegistryHTTPError(
        422,
        42205,
        "loopline's registry is append-only (it is a log): register a new, compatible "
        "version instead of deleting one",
    )


def is_read(method: str, path: str) -> bool:
    """Whether a request only reads: a GET, a schema lookup or a compatibility check.

    >>> is_read("POST", "/subjects/clicks"), is_read("POST", "/subjects/clicks/versions")
    (True, False)
    """
    if method in ("GET", "HEAD") or path.startswith("/compatibility/"):
        return True
    return method == "POST" and path.startswith("/subjects/") and path.count("/") == 2


def _confluent_error(status: int, message: str, headers: Mapping[str, str]) -> JSONResponse:
    return JSONResponse({"error_code": status, "message": message}, status, headers=dict(headers))


def create_registry_app(
    registry: LogRegistry,
    *,
    token: str | None = None,
    public_reads: bool = False,
    max_body_bytes: int = 1_048_576,
) -> FastAPI:
    """A FastAPI app serving Confluent's Schema Registry API over `registry` (see module doc).

    With `token`, every request needs it (``Authorization: Bearer TOKEN``, or
    HTTP Basic auth with the token as the password, as Kafka tools send it),
    except reads (`is_read`: GETs, lookups, compatibility checks) when
    `public_reads`; bodies over `max_body_bytes` are 413.
    """
    app = FastAPI(
        title="loopline schema registry",
        version="1",
        description=(
            "Confluent Schema Registry-compatible REST API over loopline's registry, which "
            "lives in the log (topic `_loopline_schemas`). A subject is a loopline contract. "
            "Avro only; append-only (no deletes)."
        ),
    )
    app.state.registry = registry
    documents = public("/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json")
    protect(
        app,
        server="schema-registry",
        token=token,
        max_body_bytes=max_body_bytes,
        is_public=(lambda m, p: documents(m, p) or is_read(m, p)) if public_reads else documents,
        shape=_confluent_error,
        basic=True,
    )

    @app.exception_handler(RegistryHTTPError)
    async def _registry_error(request: Request, exc: RegistryHTTPError) -> JSONResponse:
        return JSONResponse({"error_code": exc.code, "message": exc.message}, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _confluent_error(exc.status_code, str(exc.detail), exc.headers or {})

    @app.exception_handler(LogError)
    async def _log_error(request: Request, exc: LogError) -> JSONResponse:
        # The log is down or refused: the client may retry, the request was fine.
        message = f"the log failed: {exc}"
        return JSONResponse({"error_code": 50301, "message": message}, 503)

    app.include_router(routes)
    return app


def serve_registry(
    registry: LogRegistry,
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    limits: ServerLimits | None = None,
    **kw: Any,
) -> None:
    """Serve `create_registry_app(registry)` until interrupted (8081 is Confluent's port).

    Point Kafka tools at it: ``schema.registry.url=http://HOST:8081``. `kw` goes
    to `create_registry_app` (``token``, ``public_reads``, ``max_body_bytes``)
    and the rest to uvicorn (``log_level``, ``ssl_certfile``, ...).
    """
    limits = limits or ServerLimits()
    names = ("token", "public_reads", "max_body_bytes")
    app_kw = {k: kw.pop(k) for k in names if k in kw}
    app = create_registry_app(registry, **app_kw)
    serve_app(app, host, port, limits, **kw)
