"""The versions an experiment's arms need, loaded and verified before any request is routed to them.

`ArmModels` turns the targets of a `loopline.serving.routing.Routes`
snapshot into `ServedModel`\\ s, in the service's background thread: a
version target is looked up in the model registry, an alias target is
resolved to the version it holds now (the alias the service follows is the
version already serving, refusals and all). Each version is read with the
registry's verified loading (`ModelRegistry.load_artifact`: signature and
SHA-256) and checked by `load_served`, once; a refused one is remembered
with its reason and not tried again. `resolve` gives every target's model,
or None while one is missing or refused (`waiting` says which and why): the
service then serves as without an experiment, and no request claims an arm
it could not be answered by. `RoutingFollower` applies what the router
says to the service, a whole `Routing` snapshot at a time.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.models.registry import ModelRegistry
>>> from loopline.models.signing import HmacSigner
>>> from loopline.serving.routing import Target
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = ModelRegistry(log, signer=HmacSigner(b"a shared secret of at least 16 bytes"))
>>> v1 = registry.publish("churn", b"v1", format="bytes", trainer="demo", features=[])
>>> arms = ArmModels(registry, "churn", "production", lambda data, version: data)
>>> arms.resolve((Target(version=1), Target(version=2)), None) is None, arms.waiting
(True, "model 'churn' has no version 2 (versions: 1)")
>>> arms.resolve((Target(version=1), Target(alias="production")), b"serving")
{Target(version=1, alias=None): b'v1', Target(version=None, alias='production'): b'serving'}
>>> registry.close(); log.close()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopline.models.registry import ModelNotFound, ModelRegistry
from loopline.models.registry_records import ModelVersion
from loopline.models.signing import ModelLoadError
from loopline.serving.routing import Router, Routes, Target

__all__ = ["ArmModels", "Routing", "RoutingFollower"]

logger = logging.getLogger(__name__)


class ArmModels:
    """The loaded model of each arm target of model `name` (see the module docstring).

    `decode` turns verified artifact bytes into the served object (the
    service passes `load_served`); `followed` is the alias the service
    follows, whose target is the version serving already.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        name: str,
        followed: str,
        decode: Callable[[bytes, ModelVersion], Any],
    ) -> None:
        self.registry = registry
        self.name = name
        self.followed = followed
        self.decode = decode
        self.loaded: dict[int, Any] = {}
        self.refused: dict[int, str] = {}
        self.waiting: str | None = None  # why the last `resolve` gave None

    def resolve(self, targets: Sequence[Target], serving: Any) -> dict[Target, Any] | None:
        """Every target's model (`serving` for the followed alias), or None (see `waiting`)."""
        found: dict[Target, Any] = {}
        self.waiting = None
        for target in targets:
            if target.alias == self.followed:
                if serving is None:
                    self.waiting = f"no version of model {self.name!r} serves yet"
                    return None
                found[target] = serving
                continue
            version = self._version(target)
            if version is None:
                return None
            model = self._load(version)
            if model is None:
                return None
            found[target] = model
        wanted = {t.version for t in targets if t.version is not None}
        for number in [n for n in self.loaded if n not in wanted]:
            if not any(m is self.loaded[number] for m in found.values()):
                del self.loaded[number]  # no arm needs it any more
        return found

    def _version(self, target: Target) -> ModelVersion | None:
        try:
            if target.version is not None:
                return self.registry.version(self.name, target.version)
            version = self.registry.alias(self.name, target.alias or "")
        except ModelNotFound as exc:
            self.waiting = str(exc)
            return None
        if version is None:
            self.waiting = f"alias {target.alias!r} of model {self.name!r} points at no version"
        return version

    def _load(self, version: ModelVersion) -> Any:
        number = version.version
        if number in self.loaded:
            return self.loaded[number]
        if number in self.refused:
            self.waiting = self.refused[number]
            return None
        try:
            model = self.decode(self.registry.load_artifact(version), version)
        except ModelLoadError as exc:
            self.refused[number] = self.waiting = str(exc)
            logger.error("%s; no request is routed to it", exc)
            return None
        self.loaded[number] = model
        return model


@dataclass(frozen=True)
class Routing:
    """What a request is routed by: one `Routes` snapshot and the loaded model of each target."""

    routes: Routes
    models: Mapping[Target, Any]


class RoutingFollower:
    """The `Routing` that `router` says now, with every arm's version loaded by `arms`.

    The service's background thread calls `follow` every 0.1 s; `routing` is
    replaced by one assignment once every arm is loaded, and is None with no
    experiment, while an arm's version is missing or refused, or after the
    router failed (the alias's version answers then).
    """

    def __init__(self, router: Router | None, arms: ArmModels) -> None:
        self.router, self.arms = router, arms
        self.routing: Routing | None = None
        self._key: tuple | None = None  # (experiment, revision) last said

    def follow(self, serving: Any, swapped: bool) -> None:
        """Apply what the router says now; `swapped`: the alias's version (`serving`) changed."""
        try:
            self._apply(serving, swapped)
        except Exception:
            logger.exception("cannot route by the experiment; the alias's version answers")
            self.routing, self._key = None, None

    def _apply(self, serving: Any, swapped: bool) -> None:
        routes = self.router.current() if self.router is not None else None
        if routes is None:
            if self.routing is not None:
                logger.info("no experiment routes model %r now", self.arms.name)
            self.routing, self._key = None, None
            return
        key = (routes.experiment, routes.revision)
        if self.routing is not None and self.routing.routes is routes and not swapped:
            return
        models = self.arms.resolve(routes.targets, serving)
        if models is None:  # tried again every 0.1 s; said once per revision
            if self._key != key:
                logger.warning(
                    "experiment %r (revision %d) does not route here yet: %s",
                    routes.experiment,
                    routes.revision,
                    self.arms.waiting,
                )
            self.routing, self._key = None, key
            return
        self.routing = Routing(routes, models)  # one assignment, read once per request
        self._key = key
        arms = ", ".join(f"{t.describe()}=v{m.number}" for t, m in models.items())
        logger.info(
            "experiment %r (revision %d) routes now: %s", routes.experiment, routes.revision, arms
        )
