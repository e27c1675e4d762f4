"""The monitor's measures recomputed in batch with pandas and scikit-learn: the reference."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from loopline.models.profiles import Profile
from loopline.monitor.drift import feature_drift, psi

NAMES = {60_000: "1m", 3_600_000: "1h"}


def ms(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)


def nearest_rank(values: np.ndarray, q: float) -> float:
    return float(np.sort(values)[max(1, math.ceil(q * len(values))) - 1])


def decision_windows(decisions: list[dict], sizes, profiles: dict[int, Profile], segment: str):
    """{(window, start, key): measures} of the decisions, per window size."""
    rows = pd.DataFrame(
        {
            "at": [ms(d["at"]) for d in decisions],
            "model": [d["model"] for d in decisions],
            "version": [d["model_version"] for d in decisions],
            "arm": [d["arm"] for d in decisions],
            "segment": [d["context"].get(segment, "") for d in decisions],
            "latency": [d["latency_ms"] for d in decisions],
            "error": [d.get("error", "") for d in decisions],
            "candidates": [d["candidates"] for d in decisions],
        }
    )
    out = {}
    for size in sizes:
        rows["start"] = rows["at"] - rows["at"] % size
        for (start, model, version, arm, seg), group in rows.groupby(
            ["start", "model", "version", "arm", "segment"]
        ):
            cands = pd.DataFrame([c for cs in group["candidates"] for c in cs])
            feats = pd.DataFrame(list(cands["features"]))
            profile = profiles.get(version)
            answered = group[group["error"] == ""]
            unknown = int(group["error"].str.startswith("404: ").sum())
            m = {
                "decisions": len(group),
                "errors": len(group) - len(answered) - unknown,
                "error_rate": (len(group) - len(answered) - unknown) / len(group),
                "unknown": unknown,
                "unknown_rate": unknown / len(group),
                "candidates": len(cands),
                "latency": {
                    q: nearest_rank(answered["latency"].to_numpy(), q) for q in (0.5, 0.95, 0.99)
                },
                "score_mean": cands["score"].mean(),
                "score_std": cands["score"].std(),
                "score_psi": None,
                "features": {},
            }
            if profile is not None:
                h = profile.predictions.histogram
                m["score_psi"] = psi(h.counts, h.count(cands["score"].to_numpy()))
            trained = {f.name for f in profile.features} if profile is not None else set()
            for name in feats.columns:  # what was served: features of the profile or not
                column = feats[name].astype(object).where(feats[name].notna(), None)
                values = list(column)
                present = [v for v in values if v is not None]
                numbers = [float(v) for v in present if not isinstance(v, str)]
                f = {
                    "coverage": len(present) / len(values),  # no default declared but the profile's
                    "mean": float(np.mean(numbers)) if numbers else None,
                }
                if name in trained:
                    d = feature_drift(profile.feature(name), values)
                    f.update(
                        coverage=d.coverage,
                        psi=d.psi,
                        jensen_shannon=d.jensen_shannon,
                        wasserstein=d.wasserstein,
                        bins=list(d.counts),
                        bins_id=profile.feature(name).histogram.bins_id(),
                    )
                m["features"][name] = f
            out[(NAMES[size], int(start), f"{model}:{version}:{arm}:{seg}")] = m
    return out


def label_windows(examples: list[dict], sizes):
    rows = pd.DataFrame(examples)
    out = {}
    for size in sizes:
        rows["start"] = rows["closed_at"] - rows["closed_at"] % size
        for (start, model, version, arm), g in rows.groupby(
            ["start", "model", "model_version", "arm"]
        ):
            scored = g[g["score"].notna()]
            y, p = scored["label"].to_numpy(), scored["score"].to_numpy(dtype=float)
            both = len(set(y)) == 2
            index = np.minimum((p * 10).astype(int), 9)
            ece = (
                sum(abs(y[index == b].sum() - p[index == b].sum()) for b in range(10)) / len(p)
                if len(p)
                else None
            )
            out[(NAMES[size], int(start), f"{model}:{version}:{arm}:")] = {
                "labels": len(g),
                "scored": len(scored),
                "label_mean": g["label"].mean(),
                "auc": roc_auc_score(y, p) if both else None,
                "log_loss": log_loss(y, p, labels=[0, 1]) if len(p) else None,
                "calibration_error": ece,
            }
    return out
