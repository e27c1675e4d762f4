"""What a served model version is compared with: its training profile, made ready to count.

A `Baseline` holds, for one (model, version), a `FeatureCounter` per profiled
feature (more are made for features served but not profiled), the score
histogram's edges, and the held-out `PredictionProfile` (for the score and
label ranges). `profiles_from` reads profiles from a `ModelRegistry`,
verified with the registry's verifier: a version without a profile, unknown
to the registry, or whose signature does not verify gets a baseline without
one (coverage and means, no drift), and the last is logged.

>>> b = Baseline(None)
>>> b.counter("x").profile is None, b.score_edges, b.predictions is None
(True, None, True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from loopline.models.profiles import PredictionProfile, Profile, read_profile
from loopline.models.registry import ModelNotFound, ModelRegistry
from loopline.models.signing import ModelLoadError
from loopline.monitor.features import FeatureCounter

__all__ = ["Baseline", "Profiles", "TestAuc", "profiles_from", "test_auc_from"]

logger = logging.getLogger(__name__)

Profiles = Callable[[str, int], Profile | None]
"""The training profile of (model, version), or None."""

TestAuc = Callable[[str, int], float | None]
"""The test AUC of (model, version) (its published metrics), or None."""


class Baseline:
    """One version's profile made ready for counting (see the module docstring)."""

    def __init__(
        self,
        profile: Profile | None,
        defaults: Mapping[str, Any] | None = None,
        test_auc: float | None = None,
    ) -> None:
        self.profile, self.defaults, self.test_auc = profile, defaults or {}, test_auc
        self.counters: dict[str, FeatureCounter] = {}
        if profile is not None:
            for feature in profile.features:
                self.counters[feature.name] = FeatureCounter(feature.name, feature)
        self.profiled = tuple(self.counters)
        self.predictions: PredictionProfile | None = (
            profile.predictions if profile is not None else None
        )
        h = self.predictions.histogram if self.predictions is not None else None
        self.score_edges: list[float] | None = h.edges if h is not None else None

    def counter(self, name: str) -> FeatureCounter:
        counter = self.counters.get(name)
        if counter is None:
            counter = self.counters[name] = FeatureCounter(name, None, self.defaults.get(name))
        return counter


def profiles_from(models: ModelRegistry) -> Profiles:
    """Profiles read from `models`, verified (see the module docstring)."""

    def profile(model: str, version: int) -> Profile | None:
        try:
            found = models.version(model, version)
        except ModelNotFound:
            models.refresh()
            try:
                found = models.version(model, version)
            except ModelNotFound:
                return None
        try:
            return read_profile(found, models.verifier)
        except ModelLoadError as exc:
            logger.warning("monitor: no baseline for %s v%s: %s", model, version, exc)
            return None

    return profile


def test_auc_from(models: ModelRegistry) -> TestAuc:
    """The ``auc`` of a version's published test metrics in `models` (None without one)."""

    def auc(model: str, version: int) -> float | None:
        try:
            value = models.version(model, version).metrics.get("auc")
        except ModelNotFound:
            return None
        return float(value) if isinstance(value, int | float) else None

    return auc
