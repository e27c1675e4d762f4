"""What a demo run counts while it runs: the figures of the live view and of the summary.

>>> stats = DemoStats("demo-1", "embedded:/tmp/x", duration=60.0)
>>> v1 = stats.served(1, "m-1", shown=3, accepted=1)
>>> v1 = stats.served(1, "m-2", shown=3, accepted=0)
>>> v1.requests, v1.shown, v1.accepted, f"{v1.rate:.1%}", len(v1.members)
(2, 6, 1, '16.7%', 2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoStats", "VersionStats"]


@dataclass
class VersionStats:
    """How one model version did: requests answered, members reached, suggestions shown and
    accepted."""

    version: int
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    since: float = 0.0  # seconds into the run when it first answered
    members: set[str] = field(default_factory=set)

    @property
    def rate(self) -> float:
        """The share of shown suggestions that were accepted."""
        return self.accepted / self.shown if self.shown else 0.0


@dataclass
class DemoStats:
    """The figures of one run, updated while it runs (read by the view, never written)."""

    app: str
    log_url: str
    duration: float
    model: str = ""
    heuristic: int = 1  # the version number of the starting heuristic
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    events_per_s: float = 0.0
    requests: int = 0
    failed: int = 0
    outcomes: int = 0
    decisions_logged: int = 0
    labelled: int = 0
    positives: int = 0
    production: int = 0
    freshness_ms: float | None = None
    versions: dict[int, VersionStats] = field(default_factory=dict)
    training: list[str] = field(default_factory=list)  # what the trainer and rollouts did
    rolled_back: list[int] = field(default_factory=list)  # versions the guardrails stopped
    broken: int | None = None  # the deliberately broken version (--bad-model-at)
    # the monitor's alerts open now (by id, `loopline.monitor.AlertRecord`s), each opening and
    # resolution as (epoch ms the demo learned of it, the alert), and the lines the view shows
    alerts: dict[str, Any] = field(default_factory=dict)
    alert_log: list[tuple[int, Any]] = field(default_factory=list)
    alert_lines: list[str] = field(default_factory=list)
    broken_feature: str | None = None  # the feature the pipeline bug breaks (--break-feature)
    broke_at: int | None = None  # epoch ms the pipeline bug began
    stopped_early: bool = False

    @property
    def elapsed(self) -> float:
        """Seconds since the simulated business started."""
        return time.monotonic() - self.started

    def served(self, version: int, member: str, *, shown: int, accepted: int) -> VersionStats:
        """Count one ranking request for `member` that `version` answered."""
        vs = self.versions.get(version)
        if vs is None:
            vs = self.versions[version] = VersionStats(version, since=self.elapsed)
        vs.requests += 1
        vs.shown += shown
        vs.accepted += accepted
        vs.members.add(member)
        self.requests += 1
        return vs
