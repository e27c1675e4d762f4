"""The prediction service over HTTP: predict, rank, health, readiness, metrics, OpenAPI.

``POST /v1/predict`` ``{"entity": ID, "context": {...}}`` answers
``{"decision_id", "model", "version", "score"}``; ``POST /v1/rank``
``{"entity": ID, "candidates": [ID, ...], "k": N, "context": {...}}``
answers the candidates best first, ``{"decision_id", "model", "version",
"items": [{"id", "score"}, ...]}``. Every answer is one decision on the
decisions topic, under the id the answer carries.

``GET /healthz`` answers while the process runs; ``GET /readyz`` is 200 once
the online features reflect the sources and a model serves, and while
decisions reach the log (503 saying what it waits for otherwise); it names
the experiment (and its revision) the process routes by, if one;
``GET /metrics`` is Prometheus' text format (requests are counted
as ``loopline_http_requests_total{server="serving:APP"}``); ``/docs`` and
``/openapi.json`` describe the API. With ``token`` set, predict and rank need
``Authorization: Bearer TOKEN`` (health, readiness, metrics and the API
document do not). Auth, body limit and metrics are `loopline.http`'s.

Bad requests never cause a 5xx: a body that is not JSON is 400, unknown
fields and wrong types are 422 naming the place, an entity the online
features hold nothing of is 404, a body over
``max_body_bytes`` or more candidates than the limit is 413, a body still
arriving after the server's body timeout is 408.

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from loopline.app import App
>>> from loopline.contracts import LogRegistry
>>> from loopline.features import Entity, FeatureSet, Table, TableFeature
>>> from loopline.log import open_log
>>> from loopline.models.declarations import Model
>>> from loopline.models.trainers import LightGBMTrainer
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("profiles")
>>> app = App("shop", features=FeatureSet(tables=[
...     Table("profiles", Entity("member", "member_id"), [TableFeature("age", "age", default=30)])]),
...     models=[Model("churn", trainer=LightGBMTrainer, entity="member")])
>>> service = PredictionService(log, app, LogRegistry(log), state_dir=tempfile.mkdtemp())
>>> token = "a-serving-token-0123"
>>> with TestClient(create_app(service, token=token)) as client:
...     client.get("/readyz").json()["waiting_for"][-1]
...     client.post("/v1/predict", json={"entity": "m-1"}).status_code
...     client.post("/v1/predict", json={"entity": "m-1"},
...                 headers={"Authorization": f"Bearer {token}"}).json()["error"][:10]
"no version of model 'churn' is at alias 'production' yet"
401
'not ready:'
>>> log.close()
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from loopline.http.auth import public
from loopline.http.metrics import metrics_response
from loopline.http.middleware import protect
from loopline.serving.requests import (
    PredictRequest,
    RankRequest,
    ServingError,
    decode,
    schema,
)
from loopline.serving.service import PredictionService

__all__ = ["create_app"]

DESCRIPTION = """\
Scores for one entity (`/v1/predict`) or an ordering of candidates (`/v1/rank`), from the
online features and the model version the alias points at. Every answer is written to the
decisions topic under the `decision_id` the answer carries (contract `loopline.decision`).
"""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON."},
    401: {"description": "A bearer token is required (`Authorization: Bearer TOKEN`)."},
    404: {
        "description": "Unknown entity: the online features hold nothing of it "
        "(unless the service scores unknown entities on their defaults)."
    },
    413: {"description": "The body is too large, or there are more candidates than the limit."},
    422: {
        "description": "An unknown field, a value of the wrong type, or a request the model "
        "cannot answer (e.g. rank with a model that reads no candidate features)."
    },
    503: {
        "description": "Not ready: no model serves yet, or the features are loading; "
        "or the answer's decision could not be recorded."
    },
}


def _body(kind: type, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema(kind)["body"], "example": example}},
        }
    }


def _error(status: int, message: str, headers: Mapping[str, str]) -> Response:
    return ServingError(status, message, dict(headers)).response()


def create_app(
    service: PredictionService,
    *,
    token: str | None = None,
    max_body_bytes: int = 1_048_576,
) -> FastAPI:
    """The HTTP app of `service`; starting the app starts the service, stopping closes it.

    A `token` shorter than 16 characters raises `loopline.http.tokens.WeakToken`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await run_in_threadpool(service.close)

    app = FastAPI(
        title=f"loopline serving: {service.app.name}",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    open_paths = ("/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect")
    protect(
        app,
        server=f"serving:{service.app.name}",
        token=token,
        max_body_bytes=max_body_bytes,
        is_public=public(*open_paths, "/openapi.json"),
        shape=_error,
    )

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, exc: ServingError) -> JSONResponse:
        return exc.response()

    async def answer(request: Request, kind: type, run: Callable[[Any, float], dict]) -> dict:
        started = time.perf_counter()
        parsed = decode(await request.body(), kind)
        # Inline, not in a thread pool: the answer is a millisecond of GIL-bound work
        # with no I/O (the decision is queued), and the hop to a pool thread and back
        # cost as much again (bench/serving.py: 1.2-1.4 -> 0.65 ms CPU per predict).
        answered = run(parsed, started)
        await service.recorded()  # the answer leaves once its decision is on disk
        return answered

    @app.post(
        "/v1/predict",
        summary="Score one entity",
        responses=_ERRORS,
        openapi_extra=_body(PredictRequest, {"entity": "m-42", "context": {"page": "home"}}),
    )
    async def predict(request: Request) -> dict[str, Any]:
        """The score of the entity; `decision_id` names the decision recorded for it."""
        return await answer(request, PredictRequest, service.predict)

    @app.post(
        "/v1/rank",
        summary="Order candidates for an entity",
        responses=_ERRORS,
        openapi_extra=_body(
            RankRequest, {"entity": "m-42", "candidates": ["i-1", "i-2", "i-3"], "k": 2}
        ),
    )
    async def rank(request: Request) -> dict[str, Any]:
        """The candidates best first (the best `k`), with scores; every score is recorded."""
        return await answer(request, RankRequest, service.rank)

    @app.get("/healthz", summary="Liveness check")
    def healthz() -> dict[str, str]:
        """``{"status": "ok"}`` while the process runs."""
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness check", responses={503: {"description": "Not ready"}})
    def readyz() -> JSONResponse:
        """200 once the features are loaded and a model serves; 503 with what it waits for."""
        waiting = service.readiness()
        served = service.served
        body: dict[str, Any] = {"ready": not waiting, "waiting_for": waiting}
        if served is not None:
            body["model"], body["version"] = served.name, served.number
        if (routing := service.routes.routing) is not None:  # what this process routes by now
            body["experiment"] = routing.routes.experiment
            body["revision"] = routing.routes.revision
        return JSONResponse(body, 200 if not waiting else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        """Every loopline metric of this process, in Prometheus' text format."""
        return metrics_response()

    openapi = app.openapi

    def with_request_schemas() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = openapi()
            found = document.setdefault("components", {}).setdefault("schemas", {})
            for kind in (PredictRequest, RankRequest):
                found.update(schema(kind)["components"])
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = with_request_schemas  # type: ignore[method-assign]
    return app
