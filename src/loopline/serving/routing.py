"""Which model version answers a request: the routing protocol the prediction service follows.

Serving knows nothing of experiments (they sit above it in the layers); it
asks a `Router` what routes now. ``router.current()`` is `Routes` or None.
None: every request is answered by the version the service's alias points
at, as without a router. `Routes` is one immutable snapshot (one experiment
at one revision): the `Target` of each arm (a model version or an alias) and
``route(entity, context)``, which names the arm of one request and the
probability with which it was chosen. `loopline.experiments.router` is the
implementation ``loopline serve`` runs; anything with these methods will do.

The service loads every target of a snapshot in its background thread and
starts to route by it only once all of them are loaded (`ArmModels`), so a
request never waits for a load and is scored and recorded by one version.

>>> class Halves:
...     experiment, revision = "ab", 1
...     targets = (Target(alias="production"), Target(version=2))
...     def route(self, entity, context):
...         arm = int(entity[-1]) % 2
...         return Route("ab", ("control", "v2")[arm], 0.5, self.targets[arm])
>>> Halves().route("m-3", {})
Route(experiment='ab', arm='v2', probability=0.5, target=Target(version=2, alias=None))
>>> Target(alias="production").describe(), Target(version=2).describe()
('alias production', 'v2')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from loopline.serving.decisions import Value

__all__ = ["Route", "Router", "Routes", "Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """What answers for an arm: model version `version`, or the version alias `alias` holds."""

    version: int | None = None
    alias: str | None = None

    def describe(self) -> str:
        return f"v{self.version}" if self.version is not None else f"alias {self.alias}"


@dataclass(frozen=True, slots=True)
class Route:
    """One request's arm of `experiment`, chosen with `probability`, answered by `target`."""

    experiment: str
    arm: str
    probability: float
    target: Target


class Routes(Protocol):
    """One experiment at one revision: the targets it needs and the arm of each request."""

    @property
    def experiment(self) -> str: ...

    @property
    def revision(self) -> int: ...

    @property
    def targets(self) -> tuple[Target, ...]: ...

    def route(self, entity: str, context: Mapping[str, Value]) -> Route:
        """The arm of the request for `entity` with `context`; fast, no I/O, never raises."""
        ...


class Router(Protocol):
    """What routes now for one model; followed in the router's own thread, never per request."""

    def current(self) -> Routes | None: ...
