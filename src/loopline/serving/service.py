"""The prediction service: features from the online store, a followed model, a decision per answer.

`PredictionService` is what ``loopline serve`` runs behind HTTP
(`loopline.serving.http`). It reads feature vectors from a `FeatureStore`
(an in-memory look-up, no network hop), scores them with the version the
model's alias points at, and hands every answer to the `DecisionLog`.

Hot swap. A background thread refreshes an `AliasFollower` every
`refresh_interval` seconds. When the alias moves, the new version is loaded,
its signature verified and its feature list checked (`load_served`) in that
thread; only a version that passes replaces the one serving, by assigning
one attribute. A request reads that attribute once, so it is scored and
recorded wholly by one version, and no request waits for or fails because of
a swap. A refused version is logged and counted; the old one keeps serving.

Experiments. With a `router` (`loopline.serving.routing`; ``loopline serve``
gives `loopline.experiments.router.ExperimentRouter`), each request is
routed to an arm of the experiment running on the model, and that arm's
version answers. The background thread loads every arm's version
(`ArmModels`, verified like the alias's) and checks the router every 0.1 s;
a snapshot of the routes and their loaded models replaces the previous one
by assigning one attribute once every arm is loaded, and a request reads it
once: it is scored and recorded by one arm's version. Its decision records
the experiment, the arm and the probability the arm was chosen with. With no
experiment (or until its arms are loaded) the service answers as without a
router, and the decision's experiment and arm are empty.

Unknown entities. A request for an entity the online features hold nothing
of (no event, no table row) is refused with a 404 by default: an id from
another system or a typo would otherwise be scored on defaults alone. With
``unknown_entities="defaults"`` (a cold-start policy) it is scored on its
declared defaults. Unknown *candidates* are always scored on defaults: a new
item must be rankable before its first event.

Missing values. The store gives every feature its declared default when an
entity has no value; a value that is still None (a declared default of None)
is counted in ``loopline_serving_missing_features`` and reaches the model as
NaN. The decision records exactly what the model saw.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from loopline.app import App
from loopline.contracts import SchemaRegistry, Topic
from loopline.features.declarations import DeclarationError
from loopline.features.store import FeatureStore
from loopline.log import Log
from loopline.models.registry import ModelRegistry
from loopline.models.registry_follower import AliasFollower
from loopline.models.registry_records import ModelVersion
from loopline.serving import metrics
from loopline.serving.arms import ArmModels, RoutingFollower
from loopline.serving.decision_log import DecisionLog, DecisionNotKept, DecisionTooLarge
from loopline.serving.decisions import (
    Candidate,
    Decision,
    Returned,
    Value,
    decisions_topic,
    unknown_entity_error,
)
from loopline.serving.ids import uuid7
from loopline.serving.models import ServedModel, load_served
from loopline.serving.requests import (
    PredictRequest,
    RankRequest,
    ServingError,
    check_answers,
    check_candidates,
)
from loopline.serving.routing import Route, Router

__all__ = ["PredictionService"]

logger = logging.getLogger(__name__)

ROUTES_INTERVAL = 0.1
"""Seconds between two looks at the router (the router follows the log in its own thread)."""


class PredictionService:
    """Answers predict and rank requests for model `model` of `app` (see the module docstring).

    `model` defaults to the application's only model; `alias` is the alias
    followed. `state_dir` holds the decision journal; with `wait_for_decisions`
    an answer leaves only once its decision is in it (`recorded`). `store`,
    `models` and `decisions` may be given (tests, ``loopline demo``);
    otherwise they are made on `log` and closed by `close`.
    """

    def __init__(
        self,
        log: Log,
        app: App,
        schemas: SchemaRegistry,
        *,
        state_dir: str | Path,
        model: str | None = None,
        alias: str = "production",
        max_candidates: int = 1000,
        unknown_entities: Literal["reject", "defaults"] = "reject",
        refresh_interval: float = 0.5,
        store: FeatureStore | None = None,
        models: ModelRegistry | None = None,
        decisions: DecisionLog | None = None,
        decisions_to: Topic[Decision] | None = None,
        wait_for_decisions: bool = True,
        router: Router | None = None,
    ) -> None:
        if model is None:
            if len(app.models) != 1:
                declared = ", ".join(m.name for m in app.models) or "none"
                raise ValueError(
                    f"application {app.name!r} declares {len(app.models)} models ({declared}): "
                    "say which one to serve"
                )
            model = app.models[0].name
        self.app, self.log = app, log
        self.declaration = app.model(model)
        self.alias = alias
        self.max_candidates = max_candidates
        if unknown_entities not in ("reject", "defaults"):
            raise ValueError(
                f"unknown_entities must be 'reject' or 'defaults', not {unknown_entities!r}"
            )
        self.unknown_entities = unknown_entities
        self.refresh_interval = refresh_interval
        self._owned: list[Any] = []
        try:  # a part that fails to start (a bad signing key...) stops those started before it
            if store is None:
                store = FeatureStore(log, app)
                self._owned.append(store)
            if models is None:
                models = ModelRegistry(log)
                self._owned.append(models)
            if decisions is None:
                decisions = DecisionLog(
                    log,
                    schemas,
                    decisions_to or decisions_topic(app.name),
                    state_dir,
                    label=app.name,
                    wait=wait_for_decisions,
                )
                self._owned.append(decisions)
        except BaseException:
            self._close_owned()
            raise
        self.store, self.models, self.decisions = store, models, decisions

        def decode(data: bytes, version: ModelVersion) -> ServedModel:
            return load_served(data, version, app.features, self.declaration.entity)

        self.follower = AliasFollower(models, model, alias, decode=decode)
        self.served: ServedModel | None = None
        self.router = router
        self.arms = ArmModels(models, model, alias, decode)  # the arms' versions, loaded alike
        self.routes = RoutingFollower(router, self.arms)  # its `routing` is read once per request
        self._arm_requests: dict[tuple[str, str], Any] = {}
        self.features_loaded = False
        self._features_waiting = "the online features are loading"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._labels = (app.name, model)
        self._missing: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the features and the model, and follow the alias, in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="loopline-serve", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set() and not self.features_loaded:
            self.refresh()  # the model loads while the features catch up
            try:
                self.store.catch_up(timeout=self.refresh_interval + 5)
                behind = self.store.unprocessed()
            except TimeoutError:
                continue
            except Exception as exc:
                logger.exception("the online features of %s are not loading", self.app.name)
                self._features_waiting = f"the online features are not loading: {exc}"
                self._stop.wait(1.0)
                continue
            if behind:
                records = ", ".join(f"{n:,} records of {t!r}" for t, n in sorted(behind.items()))
                self._features_waiting = (
                    f"the online features do not reflect {records} yet: is "
                    f"`loopline features run {self.app.name}` running?"
                )
                self._stop.wait(1.0)
            else:
                self.features_loaded = True
        due = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= due:
                self.refresh()
                due = time.monotonic() + self.refresh_interval
            else:
                self.follow_routes()
            self._stop.wait(ROUTES_INTERVAL if self.router is not None else self.refresh_interval)

    def refresh(self) -> bool:
        """Look for a move of the alias now; True when a new version was swapped in."""
        refused = set(self.follower.refused)
        try:
            swapped = self.follower.refresh()
        except Exception:  # a registry hiccup: keep serving, try again next time
            logger.exception("cannot read the model registry; the current model keeps serving")
            return False
        if swapped:
            served: ServedModel = self.follower.model
            self.served = served  # one assignment: requests see the old or the new, whole
            metrics.SWAPS.labels(*self._labels).inc()
            metrics.MODEL_VERSION.labels(*self._labels).set(served.number)
            logger.info("serving model %r v%d (alias %r)", served.name, served.number, self.alias)
        self._follow_routes(swapped)  # after the swap: an arm may be the alias's version
        for _ in set(self.follower.refused) - refused:
            metrics.REFUSED.labels(*self._labels).inc()
        return swapped

    def follow_routes(self) -> None:
        """Apply what the router says now (the background thread calls this every 0.1 s)."""
        self._follow_routes(False)

    def _follow_routes(self, swapped: bool) -> None:
        refused = set(self.arms.refused)
        self.routes.follow(self.served, swapped)
        for _ in set(self.arms.refused) - refused:
            metrics.REFUSED.labels(*self._labels).inc()

    def readiness(self) -> list[str]:
        """What the service still waits for before it can answer (empty: ready)."""
        waiting = []
        if not self.features_loaded:
            waiting.append(self._features_waiting)
        if self.served is None:
            name = self.declaration.name
            refused = "; ".join(self.follower.refused.values())
            waiting.append(
                f"no version of model {name!r} is at alias {self.alias!r} yet"
                + (f" ({refused})" if refused else "")
            )
        if self.decisions.full:
            waiting.append("the decision backlog is full: decisions are being dropped")
        if stuck := self.decisions.stuck:
            waiting.append(f"decisions do not reach the log: {stuck}")
        return waiting

    async def recorded(self) -> None:
        """Wait until the decision of the answer just made is on disk (a 503 if it cannot be)."""
        try:
            await self.decisions.kept()
        except DecisionNotKept as exc:
            raise ServingError(
                503, f"the answer's decision could not be recorded: {exc}", {"Retry-After": "1"}
            ) from None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close_owned()

    def _close_owned(self) -> None:
        for part in reversed(self._owned):
            part.close()
        self._owned = []

    # -- answering -------------------------------------------------------------------------

    def _model(self, entity: str, context: Mapping[str, Value]) -> tuple[ServedModel, Route | None]:
        """The version that answers this request, and its arm (None: the alias's, no experiment)."""
        routing = self.routes.routing  # read once: answered wholly by one snapshot
        if routing is not None:
            route = routing.routes.route(entity, context)
            counter = self._arm_requests.get((route.experiment, route.arm))
            if counter is None:
                counter = self._arm_requests[route.experiment, route.arm] = (
                    metrics.EXPERIMENT_REQUESTS.labels(*self._labels, route.experiment, route.arm)
                )
            counter.inc()
            return routing.models[route.target], route
        served = self.served
        if served is None:
            raise ServingError(
                503,
                "not ready: " + "; ".join(self.readiness() or ["no model"]),
                headers={"Retry-After": "1"},
            )
        return served, None

    def predict(self, request: PredictRequest, started: float) -> dict[str, Any]:
        """Score one entity; the answer carries the decision id."""
        served, route = self._model(request.entity, request.context)
        check_answers(served, "predict")
        self._check_known("predict", served, request.entity, request.context, started, route)
        with self._failures("predict", served, request.entity, request.context, started, route):
            rows = self._vectors(served, [{served.entity: request.entity}])
            score = served.score(rows)[0]
        decision = self._decide(
            "predict",
            served,
            request.entity,
            request.context,
            [Candidate(request.entity, score, rows[0])],
            [Returned(request.entity, score, 1.0)],
            started,
            route,
        )
        return {
            "decision_id": decision.decision_id,
            "model": served.name,
            "version": served.number,
            "score": score,
        }

    def rank(self, request: RankRequest, started: float) -> dict[str, Any]:
        """Order the candidates by score (best first, ties in request order), keep `k`."""
        candidates = request.candidates
        check_candidates(candidates, self.max_candidates)
        served, route = self._model(request.entity, request.context)
        check_answers(served, "rank")
        other = served.candidate_entity
        entity = request.entity
        self._check_known("rank", served, entity, request.context, started, route)
        with self._failures("rank", served, entity, request.context, started, route):
            rows = self._vectors(served, [{served.entity: entity, other: c} for c in candidates])
            scores = served.score(rows)
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])[: request.k]
        returned = [Returned(candidates[i], scores[i], 1.0) for i in order]
        decision = self._decide(
            "rank",
            served,
            entity,
            request.context,
            [Candidate(c, s, r) for c, s, r in zip(candidates, scores, rows, strict=True)],
            returned,
            started,
            route,
        )
        return {
            "decision_id": decision.decision_id,
            "model": served.name,
            "version": served.number,
            "items": [{"id": r.id, "score": r.score} for r in returned],
        }

    def _check_known(
        self,
        kind: str,
        served: ServedModel,
        entity: str,
        context: dict[str, Value],
        started: float,
        route: Route | None,
    ) -> None:
        """A 404 for an entity the online features hold nothing of, recorded as a decision
        (`unknown_entity_error`) so the monitor counts the unknown-entity rate."""
        if self.unknown_entities == "reject" and not self.store.known(served.entity, entity):
            refused = ServingError(
                404,
                f"unknown {served.entity} {entity!r}: the online features hold nothing of it "
                f"(no event, no table row); check the id, and that `loopline features run "
                f"{self.app.name}` runs and has caught up (GET /readyz says)",
            )
            error = unknown_entity_error(f"unknown {served.entity} {entity!r}")
            self._record_refusal(kind, served, entity, context, started, route, error)
            raise refused

    def _vectors(
        self, served: ServedModel, ids: Sequence[dict[str, str]]
    ) -> list[dict[str, Value]]:
        try:
            rows = self.store.vectors(ids, served.features)
        except DeclarationError as exc:  # checked when the version was loaded
            raise ServingError(500, f"cannot read the model's features: {exc}") from None
        defaults = served.defaults
        for row in rows:
            for name, value in row.items():
                if value is None:
                    row[name] = defaults[name]
                    counter = self._missing.get(name)
                    if counter is None:
                        counter = self._missing[name] = metrics.MISSING_FEATURES.labels(
                            *self._labels, name
                        )
                    counter.inc()
        return rows

    @contextlib.contextmanager
    def _failures(
        self,
        kind: str,
        served: ServedModel,
        entity: str,
        context: dict[str, Value],
        started: float,
        route: Route | None,
    ) -> Iterator[None]:
        """Record a request the version failed (a 5xx) as a decision with its `error`, so each
        arm's error rate is counted; the client gets the error as before."""
        try:
            yield
        except ServingError as exc:
            if exc.status >= 500:
                error = f"{exc.status}: {exc.message}"
                self._record_refusal(kind, served, entity, context, started, route, error)
            raise

    def _record_refusal(self, kind, served, entity, context, started, route, error: str) -> None:
        """A request answered with an error, recorded as a decision with it and no candidates;
        the client is answered the error even if recording fails."""
        with contextlib.suppress(ServingError):
            self._decide(kind, served, entity, context, [], [], started, route, error=error)

    def _decide(
        self,
        kind: str,
        served: ServedModel,
        entity: str,
        context: dict[str, Value],
        candidates: list[Candidate],
        returned: list[Returned],
        started: float,
        route: Route | None,
        *,
        error: str = "",
    ) -> Decision:
        decision = Decision(
            decision_id=str(uuid7()),
            at=datetime.datetime.now(datetime.UTC),
            kind=kind,  # type: ignore[arg-type]
            model=served.name,
            model_version=served.number,
            entity_name=served.entity,
            entity=entity,
            context=context,
            candidates=candidates,
            returned=returned,
            latency_ms=(time.perf_counter() - started) * 1000,
            experiment=route.experiment if route else "",
            arm=route.arm if route else "",
            arm_probability=route.probability if route else 1.0,
            error=error,
        )
        try:
            self.decisions.submit(decision)
        except DecisionTooLarge as exc:
            raise ServingError(413, f"the answer cannot be recorded: {exc}") from None
        return decision
