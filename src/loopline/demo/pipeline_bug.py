"""A bug in the simulated business's upstream pipeline: the seed's story, on demand.

``loopline demo --break-feature same_industry --at 60`` makes the members'
profile pipeline, from second 60 on, publish the profiles of 40% of the
members (`SHARE`, drawn once) without the field the feature is computed
from (`BREAKABLE`: ``industry`` for ``same_industry``). Nothing in serving
is touched: the feature processor reads the broken rows like any other, the
feature falls back to its declared default for every pair that involves a
broken member, the model keeps answering, and only the monitor can tell.

>>> from loopline.demo.network import Network
>>> from loopline.demo.stats import DemoStats
>>> sent = []
>>> bug = PipelineBug(lambda rows: sent.extend(rows), Network(members=50, seed=1),
...     DemoStats("demo-1", "embedded:/tmp/x", 60.0), "c_seniority", at=0.0, seed=3)
>>> bug.tick()
>>> len(sent), sent[0]["seniority"], sorted(sent[0])
(20, None, ['city', 'industry', 'member_id', 'seniority'])
>>> bug.tick(); len(sent)  # once
20
>>> PipelineBug(print, Network(members=5), DemoStats("d", "u", 60.0), "c_activity", at=1.0)
Traceback (most recent call last):
...
ValueError: the demo cannot break feature 'c_activity': choose one of c_seniority, same_city, same_industry, seniority_gap (each is computed from a field of the members' profiles)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from loopline.demo.network import Network
from loopline.demo.stats import DemoStats

__all__ = ["BREAKABLE", "SHARE", "PipelineBug"]

SHARE = 0.4  # of the members whose profile rows lose the field

# feature -> the profile field it is computed from (the demo's application)
BREAKABLE = {
    "same_industry": "industry",
    "same_city": "city",
    "seniority_gap": "seniority",
    "c_seniority": "seniority",
}


class PipelineBug:
    """From `at` seconds into the run, `send` (the profiles producer) gets the profiles of
    `SHARE` of the members with `feature`'s field missing (see the module)."""

    def __init__(
        self,
        send: Callable[[list[dict]], None],
        network: Network,
        stats: DemoStats,
        feature: str,
        at: float,
        seed: int = 7,
    ) -> None:
        if feature not in BREAKABLE:
            raise ValueError(
                f"the demo cannot break feature {feature!r}: choose one of "
                f"{', '.join(sorted(BREAKABLE))} (each is computed from a field of the members' "
                "profiles)"
            )
        self.send, self.network, self.stats = send, network, stats
        self.feature, self.field = feature, BREAKABLE[feature]
        self.at: float | None = at
        ids = network.ids()
        self.broken = set(random.Random(seed).sample(ids, round(SHARE * len(ids))))

    def tick(self) -> None:
        if self.at is None or self.stats.elapsed < self.at:
            return
        self.at = None
        rows = [
            {**p, self.field: None}
            for p in self.network.profiles()
            if p["member_id"] in self.broken
        ]
        self.stats.broken_feature, self.stats.broke_at = self.feature, time.time_ns() // 1_000_000
        self.send(rows)
        self.stats.alert_lines.append(
            f"{self.stats.elapsed:6.0f}s  pipeline bug: {len(rows)} members' profiles lose "
            f"{self.field!r} ({self.feature} falls to its default)"
        )
