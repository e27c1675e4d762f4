"""The demo's declared application: "people you may know".

Topics: ``<name>.profiles`` (a table: a member's industry, city, seniority)
and ``<name>.activity`` (profile views and searches). The model ranks
candidate members for a member. The candidate is a second entity over the
same topics (``candidate``, keyed by ``member_id`` too), so one vector holds
both members' features and the derived ones across the two: same industry,
same city, seniority gap, and the candidate's activity rate.

>>> app = demo_app("demo-x")
>>> app.model("demo-x.pymk").features
('same_industry', 'same_city', 'seniority_gap', 'c_seniority', 'c_activity')
>>> activity_rate(5, 0, 120_000)  # 4 gaps between 5 events in two minutes
2.0
>>> activity_rate(1, 60_000, 60_000), activity_rate(0, None, None)
(0.0, 0.0)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from loopline.app import App
from loopline.features import Aggregations, Derived, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Max, Min
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
from loopline.outcomes import Outcomes

__all__ = ["FEATURES", "activity_rate", "demo_app", "model_name"]

FEATURES = ("same_industry", "same_city", "seniority_gap", "c_seniority", "c_activity")


def model_name(app_name: str) -> str:
    """The model's name in the registry: one per run, so runs on one Kafka never mix."""
    return f"{app_name}.pymk"


def _same(a: object, b: object) -> float:
    return float(a is not None and a == b)


def _gap(a: int | None, b: int | None) -> float:
    return float(abs(a - b)) if a is not None and b is not None else 3.0


def activity_rate(events: int, first: int | None, last: int | None) -> float:
    """Activity events per minute between a member's first and last event (0 if unknown).

    A rate, not a count: a count grows for as long as the demo runs, so a
    model trained early would meet larger counts than it ever saw.
    """
    if events < 2 or first is None or last is None or last <= first:
        return 0.0
    return (events - 1) / ((last - first) / 60_000)


def _is(kind: str) -> Callable[[Mapping[str, Any]], bool]:
    """A filter of activity events: those of `kind`."""
    return lambda event: event.get("kind") == kind


def demo_app(name: str, window: str = "3s") -> App:
    """The application of one demo run; `name` prefixes its topics, `window` is the
    attribution window of outcomes."""
    member = Entity("member", key="member_id")
    candidate = Entity("candidate", key="member_id")
    profiles, activity = f"{name}.profiles", f"{name}.activity"
    fields = ("industry", "city", "seniority")
    windows = ["10m"]
    features = FeatureSet(
        [
            Aggregations(
                activity,
                member,
                [
                    *Count.per_window("views", windows=windows, where=_is("view")),
                    *Count.per_window("searches", windows=windows, where=_is("search")),
                ],
                time="at",
            ),
            Aggregations(
                activity,
                candidate,
                [
                    *Count.per_window("c_actions", windows=windows),
                    *Min.per_window("c_first", field="at", windows=windows),
                    *Max.per_window("c_last", field="at", windows=windows),
                ],
                time="at",
            ),
        ],
        tables=[
            Table(profiles, member, [TableFeature(f, f) for f in fields]),
            Table(profiles, candidate, [TableFeature(f"c_{f}", f) for f in fields]),
        ],
        derived=[
            Derived("same_industry", ("industry", "c_industry"), _same, 0.0),
            Derived("same_city", ("city", "c_city"), _same, 0.0),
            Derived("seniority_gap", ("seniority", "c_seniority"), _gap, 3.0),
            Derived(
                "c_activity", ("c_actions_10m", "c_first_10m", "c_last_10m"), activity_rate, 0.0
            ),
        ],
    )
    trainer = functools.partial(
        LightGBMTrainer, {"num_leaves": 8, "min_data_in_leaf": 10}, num_boost_round=60
    )
    model = Model(model_name(name), trainer=trainer, entity="member", features=list(FEATURES))
    outcomes = Outcomes(window=window, positive=["accepted"])
    return App(name, features=features, models=[model], outcomes=outcomes)
