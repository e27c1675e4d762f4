"""The simulated business behind ``loopline demo``: a professional network.

Members have a profile (industry, city, seniority: what the application can
see) and a hidden sociability. Whether a member accepts a suggested
connection depends on the true factors: the same industry matters most,
then a small seniority gap, then the same city, and the candidate's hidden
sociability. A model that learns from outcomes can find this; the starting
heuristic (suggest people from the same city) gets only part of it.

>>> network = Network(members=50, seed=1)
>>> len(network.profiles()), sorted(network.profiles()[0])
(50, ['city', 'industry', 'member_id', 'seniority'])
>>> p = network.acceptance("m-0", "m-1")
>>> 0.0 < p < 1.0
True
>>> network.acceptance("m-0", "m-1") == Network(members=50, seed=1).acceptance("m-0", "m-1")
True
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["CITIES", "INDUSTRIES", "Member", "Network"]

INDUSTRIES = ("software", "finance", "health", "retail", "energy")
CITIES = ("Oslo", "Lisbon", "Utrecht", "Porto")


@dataclass(frozen=True)
class Member:
    """One member: the visible profile, and the hidden sociability (0 to 1)."""

    member_id: str
    industry: str
    city: str
    seniority: int
    sociability: float


class Network:
    """`members` simulated members and the true chance that one accepts another."""

    def __init__(self, members: int = 400, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.members = [
            Member(
                f"m-{i}",
                rng.choice(INDUSTRIES),
                rng.choice(CITIES),
                rng.randrange(4),
                rng.random(),
            )
            for i in range(members)
        ]
        self._by_id = {m.member_id: m for m in self.members}

    def profiles(self) -> list[dict]:
        """What the application sees of every member (the profiles table topic)."""
        return [
            {"member_id": m.member_id, "industry": m.industry, "city": m.city,
             "seniority": m.seniority}
            for m in self.members
        ]  # fmt: skip

    def acceptance(self, member: str, candidate: str) -> float:
        """The true probability that `member` accepts a suggested connection to `candidate`."""
        a, b = self._by_id[member], self._by_id[candidate]
        logit = (
            -3.0
            + 2.2 * (a.industry == b.industry)
            + 0.5 * (a.city == b.city)
            - 0.7 * abs(a.seniority - b.seniority)
            + 1.5 * b.sociability
        )
        return 1.0 / (1.0 + math.exp(-logit))

    def ids(self) -> list[str]:
        return [m.member_id for m in self.members]
