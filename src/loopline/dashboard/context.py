"""`Dashboard`: what the pages read from, opened once per server.

The model and experiment registries (compacted topics read as tables,
refreshed when a page asks), the schema registry (contracts of topics), and
three followers with threads of their own: the monitor's aggregates
(`MonitorFeed`), the topics' end offsets (`TopicRates`) and the consumer
groups' committed offsets against them (`ConsumerLags`); and the
experiments' reports, computed when a page asks (`ExperimentReports`). The registries
are the dashboard's own even inside a process that holds some already
(``loopline demo``): `refresh` hands each change to one reader, and serving
must not lose the changes a page read. Such a process passes its
`signer` and `verifier`, so a promotion is signed, and checked, as its
serving checks it (otherwise they come from the environment, like the CLI's).
"""

from __future__ import annotations

import contextlib
from typing import Any

from loopline.app import App
from loopline.contracts import LogRegistry
from loopline.dashboard.consumer_lags import ConsumerLags
from loopline.dashboard.experiment_reports import ExperimentReports
from loopline.dashboard.monitor_feed import MonitorFeed
from loopline.dashboard.topic_rates import TopicRates
from loopline.experiments.records import Experiment
from loopline.experiments.registry import EXPERIMENTS_TOPIC, ExperimentRegistry
from loopline.log import Log
from loopline.models.registry import MODELS_TOPIC, ModelNotFound, ModelRegistry
from loopline.models.signing import Signer, Verifier
from loopline.stream import names

__all__ = ["Dashboard"]


class Dashboard:
    """The data behind the pages of application `app` on `log`."""

    def __init__(
        self,
        log: Log,
        app: App,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        sample_interval: float = 1.0,
    ) -> None:
        self.log, self.app = log, app
        self._owned: list[Any] = []
        self.models = self._own(ModelRegistry(log, signer=signer, verifier=verifier))
        self.experiments = self._own(ExperimentRegistry(log))
        self.schemas = self._own(LogRegistry(log))
        self.feed = self._own(MonitorFeed(log, app.name))
        self.rates = self._own(
            TopicRates(
                log, (f"{app.name}.",), (MODELS_TOPIC, EXPERIMENTS_TOPIC), interval=sample_interval
            )
        )
        self.lags = self._own(ConsumerLags(log, list(self.consumers().values()), self.rates))
        self.reports = self._own(ExperimentReports(log, app.name))

    def consumers(self) -> dict[str, str]:
        """The application's consumer groups by the stage they run: features, joiner, watcher,
        monitor, an online trainer per model (a group that never committed shows nothing)."""
        app = self.app.name
        groups = {}
        if self.app.features.sources:
            groups["features"] = names.features_group(app, self.app.features.fingerprint())
        groups["joiner"] = names.outcomes_group(app)
        groups["experiments"] = names.experiments_group(app)
        groups["monitor"] = names.monitor_group(app)
        for model in self.app.models:
            groups[f"trainer {model.name}"] = names.trainer_group(app, model.name)
        return groups

    def _own(self, part: Any) -> Any:
        self._owned.append(part)
        return part

    # -- the application's models and experiments ------------------------------------------

    def model_names(self) -> list[str]:
        """The models the application declares, and any other of its name in the registry."""
        declared = [m.name for m in self.app.models]
        self.models.refresh()
        prefix = f"{self.app.name}."
        others = [n for n in self.models.names() if n.startswith(prefix) and n not in declared]
        return declared + others

    def has_versions(self, name: str) -> bool:
        try:
            self.models.versions(name)
        except ModelNotFound:
            return False
        return True

    def app_experiments(self) -> list[Experiment]:
        """The experiments on the application's models, running ones first, newest first."""
        self.experiments.refresh()
        models = set(self.model_names())
        mine = [e for e in self.experiments.list() if e.model in models]
        return sorted(mine, key=lambda e: (e.state != "running", -e.changed_at))

    def close(self) -> None:
        for part in reversed(self._owned):
            with contextlib.suppress(Exception):
                part.close()
