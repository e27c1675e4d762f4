"""The join state of one partition: open decisions, outcomes waiting for theirs, watermarks.

`JoinState` is pure: it takes decoded decisions and outcomes with their
event times (ms), and returns what to write (labelled examples, late
outcomes). Every change of an entry is remembered (`take_changes`) so that
the joiner writes it to the changelog in the same transaction, and `load`
rebuilds the state from the changelog after a restart.

Time is event time. The partition's watermark is the smaller of the two
streams' largest times (decisions and outcomes), minus the allowed
lateness: a window closes only when *both* streams have moved past its end,
and a waiting outcome is joined only once the decisions have passed its
time. So the result does not depend on how a consumer interleaved the two
topics (tested with hypothesis). `close_until(now)` closes by wall clock as
well, for a quiet stream. A decision whose window had already closed when it
arrived is not opened (`late_decisions`): its outcomes were already sent
late, so its examples would all be wrong negatives.

Windows close in order of their end (a heap), so a record costs
O(log open decisions), not a scan of every open decision.

>>> state = JoinState(Outcomes(window="1m"))
>>> decision = {"decision_id": "d-1", "kind": "predict", "model": "churn", "model_version": 1,
...     "entity": "m-1", "candidates": [{"id": "m-1", "score": 0.3, "features": {"x": 1}}],
...     "returned": [{"id": "m-1", "score": 0.3, "probability": 1.0}]}
>>> state.decision(decision, 1_000)
([], [])
>>> state.outcome({"entity": "m-1", "type": "churned", "decision_id": "d-1", "item": "",
...                "value": 1.0}, 5_000)
([], [])
>>> examples, late = state.decision({**decision, "decision_id": "d-2"}, 200_000)
>>> [(e["decision_id"], e["label"]) for e in examples], late
([], [])
>>> examples, late = state.outcome({"entity": "m-9", "type": "x", "decision_id": "", "item": "",
...                                 "value": 1.0}, 200_000)
>>> [(e["decision_id"], e["label"]) for e in examples]
[('d-1', 1.0)]
>>> [why for _, _, why in state.close_until(10**6)[1]]  # m-9 had no decision
['no open decision to join']
"""

from __future__ import annotations

import bisect
import heapq
from typing import Any

from loopline.outcomes.declarations import Outcomes
from loopline.outcomes.labelled import examples as examples_of

__all__ = ["JoinState", "Late"]

Late = tuple[dict[str, Any], int, str]
"""An outcome that joins no decision: the outcome, its time, and why."""

NO_DECISION = "no open decision to join"


class JoinState:
    """Open decisions and waiting outcomes of one partition (see the module docstring)."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes
        self.window, self.lateness = outcomes.window_ms, outcomes.lateness_ms
        # decision id -> {"decision": dict, "at": ms, "matched": [[type, item, value], ...]}
        self.open: dict[str, dict[str, Any]] = {}
        self.closed: dict[str, int] = {}  # decision id -> its window's end (kept to see repeats)
        self.waiting: dict[str, dict[str, Any]] = {}  # key -> {"outcome": dict, "at": ms}
        self.latest: list[int | None] = [None, None]  # largest time seen: decisions, outcomes
        self.closed_until: int | None = None  # every window that ended by then is closed
        self._ends: list[tuple[int, str]] = []  # (end, id) of open decisions: a heap
        self._forget: list[tuple[int, str]] = []  # (end, id) of closed ones: a heap
        self._queue: list[tuple[int, str]] = []  # (time, key) of waiting outcomes: a heap
        # (entity, item) -> (time, id) of the open decisions that returned it, sorted
        self._by_item: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._changed: set[str] = set()
        self.duplicates = 0  # decisions read again
        self.late_decisions = 0  # decisions read after their window had closed
        self.joined = 0  # outcomes joined to a decision

    # -- the two streams -----------------------------------------------------------------

    def decision(self, decision: dict[str, Any], at: int) -> tuple[list[dict], list[Late]]:
        """Open `decision` (a repeat of a known one, or one already past its window, is not)."""
        did = decision["decision_id"]
        self._saw(0, at)
        if did in self.open or did in self.closed:
            self.duplicates += 1
        elif self.closed_until is not None and at + self.window <= self.closed_until:
            self.late_decisions += 1
        else:
            self._open(did, {"decision": decision, "at": at, "matched": []})
            self._changed.add("d/" + did)
        return self._advance()

    def outcome(
        self, outcome: dict[str, Any], at: int, key: str | None = None
    ) -> tuple[list[dict], list[Late]]:
        """Keep `outcome` until its decision is known, then join it (or send it late).

        An outcome is joined once the decisions stream has passed its time:
        then every decision before it is known, so the most recent one that
        returned its item is the same whichever topic was read first. `key`
        names it in the changelog (the joiner uses the record's offset).
        """
        self._saw(1, at)
        key = key or f"{at}/{len(self.waiting)}"
        self.waiting[key] = {"outcome": outcome, "at": at}
        heapq.heappush(self._queue, (at, key))
        self._changed.add("o/" + key)
        return self._advance()

    def close_until(self, now: int) -> tuple[list[dict], list[Late]]:
        """Close every window that ended by `now` - lateness (wall clock: a quiet stream)."""
        mark = now - self.lateness
        late = self._resolve(max(mark, self._decisions_mark()))
        return self._close(mark), late

    # -- changelog ------------------------------------------------------------------------

    def take_changes(self) -> list[tuple[str, Any]]:
        """(key, value or None) of every entry changed since the last call, and the meta entry."""
        out: list[tuple[str, Any]] = []
        for key in sorted(self._changed):
            kind, name = key[0], key[2:]
            if kind == "d":
                value = self.open.get(name)
                if value is None and name in self.closed:
                    value = {"closed": self.closed[name]}
            else:
                value = self.waiting.get(name)
            out.append((key, value))
        self._changed.clear()
        out.append(("m", {"latest": self.latest, "closed_until": self.closed_until}))
        return out

    def load(self, key: str, value: Any) -> None:
        """Restore one changelog entry (the latest per key, in log order)."""
        if key == "m":
            self.latest = list(value["latest"])
            self.closed_until = value.get("closed_until")
            return
        kind, name = key[0], key[2:]
        if kind == "d":
            entry = self.open.pop(name, None)
            self.closed.pop(name, None)
            if entry is not None:
                self._unindex(name, entry)
            if value is None:
                return
            if "closed" in value:
                self.closed[name] = value["closed"]
                heapq.heappush(self._forget, (value["closed"], name))
            else:
                self._open(name, value)
        elif value is None:
            self.waiting.pop(name, None)
        else:
            self.waiting[name] = value
            heapq.heappush(self._queue, (value["at"], name))
        # Entries replaced or removed leave stale heap items behind: each heap pop checks.

    # -- inside ---------------------------------------------------------------------------

    def _open(self, did: str, entry: dict[str, Any]) -> None:
        self.open[did] = entry
        heapq.heappush(self._ends, (entry["at"] + self.window, did))
        decision, made = entry["decision"], (entry["at"], did)
        for returned in decision["returned"]:
            bisect.insort(self._by_item.setdefault((decision["entity"], returned["id"]), []), made)

    def _saw(self, stream: int, at: int) -> None:
        latest = self.latest[stream]
        if latest is None or at > latest:
            self.latest[stream] = at

    def watermark(self) -> int | None:
        """Event time up to which both streams are complete (None until both have a record)."""
        decisions, outcomes = self.latest
        if decisions is None or outcomes is None:
            return None
        return min(decisions, outcomes) - self.lateness

    def _decisions_mark(self) -> int:
        latest = self.latest[0]
        return -(2**62) if latest is None else latest - self.lateness

    def _advance(self) -> tuple[list[dict], list[Late]]:
        late = self._resolve(self._decisions_mark())
        mark = self.watermark()
        if mark is None:
            return [], late
        return self._close(mark), late

    def _resolve(self, decisions_mark: int) -> list[Late]:
        """Join (or send late) every waiting outcome whose time the decisions have passed."""
        late: list[Late] = []
        queue = self._queue
        while queue and queue[0][0] < decisions_mark:
            at, key = heapq.heappop(queue)
            waiting = self.waiting.get(key)
            if waiting is None or waiting["at"] != at:
                continue  # joined already (a stale item left by a restore)
            del self.waiting[key]
            self._changed.add("o/" + key)
            outcome = waiting["outcome"]
            did = outcome.get("decision_id") or ""
            target = self._find(outcome, at)
            if target is not None and at < self.open[target]["at"] + self.window:
                entry = self.open[target]
                entry["matched"].append(_match(outcome, entry["decision"]))
                self.joined += 1
                self._changed.add("d/" + target)
            elif target is None and did and did in self.open:
                late.append((outcome, at, "before its decision"))
            elif target is not None or (did and did in self.closed):
                late.append((outcome, at, f"after its decision's window ({self.window} ms)"))
            else:
                late.append((outcome, at, NO_DECISION))
        return late

    def _close(self, mark: int) -> list[dict]:
        """Close every open window that ended by `mark`, in order of their end."""
        if self.closed_until is None or mark > self.closed_until:
            self.closed_until = mark
        out: list[dict] = []
        ends = self._ends
        while ends and ends[0][0] <= mark:
            end, did = heapq.heappop(ends)
            entry = self.open.get(did)
            if entry is None or entry["at"] + self.window != end:
                continue  # closed already (a stale item left by a restore)
            out += examples_of(
                entry["decision"],
                entry["at"],
                [tuple(m) for m in entry["matched"]],  # type: ignore[misc]
                self.outcomes,
                closed_at=end,
            )
            del self.open[did]
            self._unindex(did, entry)
            self.closed[did] = end
            heapq.heappush(self._forget, (end, did))
            self._changed.add("d/" + did)
        horizon = mark - self.window - self.lateness  # a repeat this much later is not expected
        forget = self._forget
        while forget and forget[0][0] < horizon:
            end, did = heapq.heappop(forget)
            if self.closed.get(did) == end:
                del self.closed[did]
                self._changed.add("d/" + did)
        return out

    def _find(self, outcome: dict[str, Any], at: int) -> str | None:
        """The open decision `outcome` is about: made at or before it, by id or by item."""
        did = outcome.get("decision_id") or ""
        if did:
            entry = self.open.get(did)
            return did if entry is not None and entry["at"] <= at else None
        item = outcome.get("item") or outcome["entity"]
        made = self._by_item.get((outcome["entity"], item))
        if not made:
            return None
        i = bisect.bisect_right(made, at, key=lambda m: m[0])  # the most recent; ties by id
        return made[i - 1][1] if i else None

    def _unindex(self, did: str, entry: dict[str, Any]) -> None:
        decision, made = entry["decision"], (entry["at"], did)
        for returned in decision["returned"]:
            key = (decision["entity"], returned["id"])
            ids = self._by_item.get(key)
            if ids:
                i = bisect.bisect_left(ids, made)
                if i < len(ids) and ids[i] == made:
                    del ids[i]
                if not ids:
                    del self._by_item[key]


def _match(outcome: dict[str, Any], decision: dict[str, Any]) -> list[Any]:
    """(type, item, value) of an outcome joined to `decision` (a predict's item: its entity)."""
    item = outcome.get("item") or decision["entity"]
    if not outcome.get("item") and decision["kind"] == "rank" and decision["returned"]:
        item = decision["returned"][0]["id"]  # no item named: the top of the answer
    return [outcome["type"], item, float(outcome.get("value", 1.0))]
