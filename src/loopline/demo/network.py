"""The simulated business behind ``loopline demo``: a professional network.

Members have a profile (industry, city, seniority: what the application can
see) and a hidden sociability. Whether a member accepts a suggested
connection depends on the true factors: the same industry matters most,
then a small seniority gap, then the same city, and the candidate's hidden
sociability. Sociability is never published, but it shows in behaviour:
sociable members are active more often (they view profiles and search), so
a model that reads activity features can find it. The starting heuristic
(people from the same city, senior ones first) gets only part of this.

>>> network = Network(members=50, seed=1)
>>> len(network.profiles()), sorted(network.profiles()[0])
(50, ['city', 'industry', 'member_id', 'seniority'])
>>> p = network.acceptance("m-0", "m-1")
>>> 0.0 < p < 1.0
True
>>> network.acceptance("m-0", "m-1") == Network(members=50, seed=1).acceptance("m-0", "m-1")
True
>>> import random
>>> sorted(network.activity(random.Random(3), at=1_000))
['at', 'kind', 'member_id', 'target']
"""

from __future__ import annotations

import itertools
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

    @property
    def activity(self) -> float:
        """How often this member is active, relative to others (hidden; up to ~12x apart)."""
        return (0.1 + self.sociability) ** 2


class Network:
    """`members` simulated members and the true chance that one accepts another.

    Everything is drawn from `seed`: the same seed gives the same members.
    """

    def __init__(self, members: int = 400, seed: int = 7) -> None:
        if members < 2:
            raise ValueError(f"a network needs at least 2 members, not {members}")
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
        self._ids = [m.member_id for m in self.members]
        self._active = list(itertools.accumulate(m.activity for m in self.members))

    def __getitem__(self, member_id: str) -> Member:
        return self._by_id[member_id]

    def ids(self) -> list[str]:
        """Every member's id."""
        return list(self._ids)

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
            -3.8
            + 2.2 * (a.industry == b.industry)
            + 0.5 * (a.city == b.city)
            - 0.7 * abs(a.seniority - b.seniority)
            + 3.0 * b.sociability
        )
        return 1.0 / (1.0 + math.exp(-logit))

    def activity(self, rng: random.Random, at: int) -> dict:
        """One activity event at `at` (ms): a member, chosen by how active they are, views a
        profile or searches."""
        who = rng.choices(self._ids, cum_weights=self._active)[0]
        kind = "search" if rng.random() < 0.3 else "view"
        target = rng.choice(self._ids) if kind == "view" else ""
        return {"member_id": who, "kind": kind, "target": target, "at": at}
