"""A closed window as its `MonitorRecord`: the counts turned into measures.

>>> from loopline.monitor.windows import LabelWindow, WindowKey
>>> key = WindowKey("labelled", 60_000, 0, "churn", 1, "", "")
>>> w = LabelWindow(labels=4, label_sum=2.0, pairs=[(0.1, 0), (0.4, 0), (0.35, 1), (0.8, 1)])
>>> r = label_record(key, w, Baseline(None))
>>> r.labels, r.label_mean, r.auc, r.end
(4, 0.5, 0.75, 60000)
"""

from __future__ import annotations

import math

from loopline.monitor import quality
from loopline.monitor.baselines import Baseline
from loopline.monitor.drift import psi
from loopline.monitor.features import FeatureCounts
from loopline.monitor.records import MonitorRecord
from loopline.monitor.sketch import LatencySketch
from loopline.monitor.windows import DecisionWindow, LabelWindow, WindowKey, mean_std

__all__ = ["decision_record", "label_record", "window_name"]


def window_name(ms: int) -> str:
    """A window's size as written in the record: ``1m``, ``1h``, ``30s``, ``1d`` or ``250ms``.

    >>> window_name(60_000), window_name(3_600_000), window_name(90_000)
    ('1m', '1h', '90s')
    """
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _common(key: WindowKey) -> dict:
    return {
        "source": key.source,
        "window": window_name(key.size),
        "start": key.start,
        "end": key.start + key.size,
        "model": key.model,
        "model_version": key.model_version,
        "arm": key.arm,
        "segment": key.segment,
    }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def decision_record(key: WindowKey, w: DecisionWindow, baseline: Baseline) -> MonitorRecord:
    """The record of decision window `key`."""
    sketch = LatencySketch(w.latency)
    mean, std = mean_std(w.scores, w.score_sum, w.score_squares)
    predictions = baseline.predictions
    score_psi, interval = None, (None, None)
    if predictions is not None and w.scores:
        served = w.score_bins or [0] * len(predictions.histogram.counts)
        score_psi = _finite(psi(predictions.histogram.counts, served))
        interval = predictions.score.interval(w.scores)
    names = list(baseline.profiled) + sorted(n for n in w.features if n not in baseline.profiled)
    features = []
    for name in names:
        counts = w.features.get(name)
        counts = counts if counts is not None else FeatureCounts()
        features.append(baseline.counter(name).stats(counts, w.candidates))
    return MonitorRecord(
        **_common(key),
        decisions=w.decisions,
        errors=w.errors,
        error_rate=w.errors / w.decisions if w.decisions else None,
        unknown=w.unknown,
        unknown_rate=w.unknown / w.decisions if w.decisions else None,
        candidates=w.candidates,
        latency_p50=sketch.quantile(0.5),
        latency_p95=sketch.quantile(0.95),
        latency_p99=sketch.quantile(0.99),
        score_count=w.scores,
        score_mean=mean,
        score_std=std,
        score_psi=score_psi,
        score_low=interval[0],
        score_high=interval[1],
        features=features,
    )


def label_record(key: WindowKey, w: LabelWindow, baseline: Baseline) -> MonitorRecord:
    """The record of labelled window `key`."""
    scores = [s for s, _ in w.pairs]
    labels = [y for _, y in w.pairs]
    predictions = baseline.predictions
    interval: tuple[float | None, float | None] = (None, None)
    if predictions is not None and w.labels:
        interval = predictions.label.interval(w.labels)
    return MonitorRecord(
        **_common(key),
        labels=w.labels,
        scored=len(w.pairs),
        label_mean=w.label_sum / w.labels if w.labels else None,
        label_low=interval[0],
        label_high=interval[1],
        log_loss=quality.log_loss(scores, labels),
        auc=quality.auc(scores, labels),
        calibration_error=quality.calibration_error(scores, labels),
    )
