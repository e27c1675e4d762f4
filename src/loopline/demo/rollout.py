"""How the demo's new versions reach its members: each through a canary, never by a promote.

A retrained version (or the deliberately broken one of ``--bad-model-at``)
is *proposed*; `Rollout.tick`, once a second, starts the waiting proposal
as a canary experiment when none runs on the model: control is the
``production`` alias, the treatment the new version at 5% of the members,
then 20% and 50% while the acceptance-rate guardrail holds. The experiment
watcher (``loopline experiments run``, a thread of the demo) does the rest:
it rolls a worse version back, or concludes a better one by moving
``production`` to it. A learned version that reaches no verdict within
`patience` seconds gives way to a newer one; the broken one goes first (the
learned canary it interrupts is proposed again after it).

Every change of an experiment becomes a line of the live view, and a
rollback says how many members the version reached before it was stopped.

>>> experiment = canary("demo-1.pymk", 4)
>>> experiment.name, [(a.name, a.weight) for a in experiment.arms], experiment.ramp
('demo-1.pymk.v4', [('production', 0.95), ('v4', 0.05)], (0.05, 0.2, 0.5))
>>> canary("demo-1.pymk", 4, attempt=2).name
'demo-1.pymk.v4.2'
"""

from __future__ import annotations

import threading
import time

from loopline.demo.stats import DemoStats
from loopline.experiments.records import Arm, Experiment, Guardrail
from loopline.experiments.registry import ExperimentRegistry

__all__ = ["RAMP", "Rollout", "canary"]

RAMP = (0.05, 0.2, 0.5)
RAMP_EVERY = 1500  # outcomes of the experiment per step: ~20 s of the demo's traffic


def canary(model: str, version: int, *, broken: bool = False, attempt: int = 1) -> Experiment:
    """The canary experiment of `version` against ``production`` (`attempt` > 1: once more)."""
    reason = "deliberately broken" if broken else "retrained"
    return Experiment(
        name=f"{model}.v{version}" + (f".{attempt}" if attempt > 1 else ""),
        model=model,
        arms=(
            Arm("production", alias="production", weight=1 - RAMP[0], control=True),
            Arm(f"v{version}", version=version, weight=RAMP[0]),
        ),
        policy="canary",
        primary="acceptance_rate",
        guardrails=(Guardrail("acceptance_rate", 0.0),),
        ramp=RAMP,
        ramp_every=RAMP_EVERY,
        auto_conclude=True,
        reason=reason,
    )


class Rollout:
    """One canary at a time for the demo's model (see the module docstring)."""

    def __init__(
        self, experiments: ExperimentRegistry, stats: DemoStats, *, patience: float
    ) -> None:
        self.experiments, self.stats, self.patience = experiments, stats, patience
        self._pending: list[tuple[int, bool]] = []  # (version, broken), broken ones first
        self._lock = threading.Lock()
        self._started_at: dict[str, float] = {}
        self._attempts: dict[int, int] = {}
        self.broken: set[int] = set()

    def propose(self, version: int, *, broken: bool = False) -> None:
        """Queue `version` for a canary (a newer learned version replaces an older waiting one)."""
        with self._lock:
            if broken:
                self.broken.add(version)
                self._pending.insert(0, (version, True))
            else:
                self._pending = [(v, b) for v, b in self._pending if b] + [(version, False)]

    def tick(self) -> None:
        """Say what changed on the log; start the next canary when none runs."""
        for change in self.experiments.refresh():
            if change.model == self.stats.model:
                self._say(change)
        running = self.experiments.running(self.stats.model)
        with self._lock:
            if running is not None and self._pending and not self._is_broken(running):
                age = time.monotonic() - self._started_at.get(running.name, time.monotonic())
                newer, broken = self._pending[0]
                if broken:
                    interrupted = running.treatments[0].version or 0
                    self.experiments.stop(
                        running.name,
                        reason=f"makes way for the deliberately broken v{newer}; proposed again",
                    )
                    self._pending.insert(1, (interrupted, False))
                    running = None
                elif age > self.patience:
                    self.experiments.stop(
                        running.name, reason=f"no verdict in {age:.0f} s; v{newer} is newer"
                    )
                    running = None
            if running is None and self._pending:
                version, broken = self._pending.pop(0)
                attempt = self._attempts[version] = self._attempts.get(version, 0) + 1
                experiment = canary(self.stats.model, version, broken=broken, attempt=attempt)
                self.experiments.start(experiment, reason=experiment.reason)
                self._started_at[experiment.name] = time.monotonic()

    def _is_broken(self, experiment: Experiment) -> bool:
        return any(a.version in self.broken for a in experiment.treatments)

    def _say(self, e: Experiment) -> None:
        treatment = e.treatments[0]
        version = treatment.version or 0
        what = f"v{version}" + (" (deliberately broken)" if version in self.broken else "")
        if e.state == "running" and e.revision == 1:
            line = f"{what} enters a canary at {treatment.weight:.0%} of members"
        elif e.state == "running":
            line = f"{what} ramps to {treatment.weight:.0%} of members"
        elif e.state == "rolled_back":
            reached = self.stats.versions.get(version)
            members = len(reached.members) if reached else 0
            requests = reached.requests if reached else 0
            share = requests / self.stats.requests if self.stats.requests else 0.0
            line = f"{what} rolled back by its guardrail"
            if (v := e.verdict) is not None:
                line += (
                    f": {v.metric.replace('_', ' ')} {v.estimate:+.3f} vs production "
                    f"[{v.low:+.3f}, {v.high:+.3f}], {v.units:,} outcomes"
                )
            line += f"; it reached {members:,} members, {share:.1%} of requests"
            self.stats.rolled_back.append(version)
        elif e.state == "concluded":
            line = f"{what} concluded: {e.reason}"
        else:
            line = f"{what} {e.state.replace('_', ' ')}: {e.reason}"
        self.stats.training.append(f"{self.stats.elapsed:5.0f}s  {line}")
