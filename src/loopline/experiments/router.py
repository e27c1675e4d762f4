"""The experiment router ``loopline serve`` runs: requests to arms, by the experiments on the log.

`ExperimentRouter` implements `loopline.serving.routing.Router` for one
model. A background thread reads ``_loopline_experiments`` every 0.25 s
(`ExperimentRegistry.refresh`; never on a request's path) and, when the
experiment running on the model changes, replaces the current
`ExperimentRoutes` by assigning one attribute. So a start, a new weight, a
stop or a rollback reaches every serving process within a second (plus the
service's 0.1 s look at the router), with no restart.

`ExperimentRoutes` is one experiment at one revision. Only ``running``
experiments route; each request's unit (its entity, or the context field
the experiment names) goes through `assign`: sticky, monotone slots for a
split or a canary, a draw for a bandit. A request without the unit's field
(or with a null) cannot be assigned: it goes to control with probability
1.0 (``arm_probability`` 1.0 marks it in the decision, so an analysis can
leave it out) and is counted in `ExperimentRoutes.missing_unit`; the first
one of each revision is logged.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.experiments.records import Arm, Experiment
>>> from loopline.experiments.registry import ExperimentRegistry
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = ExperimentRegistry(log)
>>> router = ExperimentRouter(registry, "ranker")
>>> router.current() is None
True
>>> arms = (Arm("control", alias="production", weight=0.9, control=True), Arm("v2", version=2, weight=0.1))
>>> _ = registry.start(Experiment(name="v2", model="ranker", arms=arms, salt="s", unit="context.user"))
>>> router.refresh()
>>> routes = router.current()
>>> routes.route("m-1", {"user": "u-3"})
Route(experiment='v2', arm='v2', probability=0.1, target=Target(version=2, alias=None))
>>> unassigned = routes.route("m-1", {})
>>> unassigned.arm, unassigned.probability, routes.missing_unit
('control', 1.0, 1)
>>> _ = registry.stop("v2", reason="done"); router.refresh(); router.current() is None
True
>>> router.close(); registry.close(); log.close()
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping

from loopline.experiments.assignment import assign
from loopline.experiments.records import Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.serving.decisions import Value
from loopline.serving.routing import Route, Target

__all__ = ["ExperimentRouter", "ExperimentRoutes"]

logger = logging.getLogger(__name__)

INTERVAL = 0.25
"""Seconds between two reads of the experiments topic."""


class ExperimentRoutes:
    """The routes of `experiment` (one revision): implements `loopline.serving.routing.Routes`."""

    def __init__(self, experiment: Experiment, rng: random.Random | None = None) -> None:
        self.spec = experiment
        self.experiment = experiment.name
        self.revision = experiment.revision
        self.field = None if experiment.unit == "entity" else experiment.unit[len("context.") :]
        self._rng = rng or random.Random()
        self._routes = {
            a.name: Route(experiment.name, a.name, a.weight, Target(a.version, a.alias))
            for a in experiment.arms
        }
        control = experiment.control
        self._unassigned = Route(
            experiment.name, control.name, 1.0, Target(control.version, control.alias)
        )
        self.targets = tuple(dict.fromkeys(r.target for r in self._routes.values()))
        self.missing_unit = 0

    def route(self, entity: str, context: Mapping[str, Value]) -> Route:
        """The arm of the request (see the module docstring)."""
        if self.field is None:
            unit: object = entity
        else:
            unit = context.get(self.field)
            if unit is None:
                self.missing_unit += 1  # under the GIL; a lost count is no harm
                if self.missing_unit == 1:
                    logger.warning(
                        "experiment %r: a request without context field %r goes to control "
                        "(counted in ExperimentRoutes.missing_unit; logged once per revision)",
                        self.experiment,
                        self.field,
                    )
                return self._unassigned
        assigned = assign(self.spec, str(unit), self._rng)
        route = self._routes[assigned.arm.name]
        if route.probability != assigned.probability:  # rounding in a bandit's draw
            return Route(route.experiment, route.arm, assigned.probability, route.target)
        return route


class ExperimentRouter:
    """The experiment running on `model`, followed on `registry` (see the module docstring).

    Reads the registry once on creation, then every `interval` seconds in a
    thread of its own until `close`; `refresh` reads it now (tests, tools).
    """

    def __init__(
        self,
        registry: ExperimentRegistry,
        model: str,
        *,
        interval: float = INTERVAL,
        rng: random.Random | None = None,
        follow: bool = True,
    ) -> None:
        self.registry = registry
        self.model = model
        self.interval = interval
        self._rng = rng
        self._routes: ExperimentRoutes | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refresh()
        self._thread: threading.Thread | None = None
        if follow:
            self._thread = threading.Thread(
                target=self._follow, name="loopline-experiments", daemon=True
            )
            self._thread.start()

    def current(self) -> ExperimentRoutes | None:
        """The routes of the experiment running on the model now (None: none runs)."""
        return self._routes

    def refresh(self) -> None:
        """Read the experiments topic now and apply what changed."""
        with self._lock:
            self.registry.refresh()
            running = self.registry.running(self.model)
            held = self._routes
            if running is None:
                if held is not None:
                    now = self.registry.get(held.experiment)
                    logger.info("experiment %r is %s: %s", now.name, now.state, now.reason)
                self._routes = None
            elif held is None or (held.experiment, held.revision) != (
                running.name,
                running.revision,
            ):
                self._routes = ExperimentRoutes(running, self._rng)
                logger.info(
                    "experiment %r revision %d: %s",
                    running.name,
                    running.revision,
                    ", ".join(f"{a.name}={a.weight:g}" for a in running.arms),
                )

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the log is away: keep routing as last read, try again
                logger.exception("cannot read the experiments; routing as last read")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
