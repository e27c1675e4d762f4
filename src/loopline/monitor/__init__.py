"""Monitoring: served features and scores against the training profile of their model version.

`drift` holds the measures (coverage, PSI, Jensen-Shannon, Wasserstein) on
the bins of a version's training profile (`loopline.models.profiles`);
`task.Monitor` is the stream stage (``loopline monitor APP``) that counts
decisions and labelled examples in windows and writes `MonitorRecord`s to
``<app>.monitor``.
"""

from __future__ import annotations

from loopline.monitor.alerts import DEFAULT_ALERTS, Alert, AlertRecord
from loopline.monitor.drift import (
    EPSILON,
    FeatureDrift,
    bin_points,
    coverage,
    feature_drift,
    jensen_shannon,
    psi,
    wasserstein,
)

__all__ = [
    "DEFAULT_ALERTS",
    "Alert",
    "AlertRecord",
    "EPSILON",
    "FeatureDrift",
    "bin_points",
    "coverage",
    "feature_drift",
    "jensen_shannon",
    "psi",
    "wasserstein",
]
