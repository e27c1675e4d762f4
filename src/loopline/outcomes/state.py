"""The join state of one partition: open decisions, outcomes waiting for theirs, watermarks.

`JoinState` is pure: it takes decoded decisions and outcomes with their
times, and returns what to write (labelled examples, late outcomes). Every
change of an entry is remembered (`take_changes`) so that the joiner writes
it to the changelog in the same transaction, and `load` rebuilds the state
from the changelog after a restart.

Time is event time. The partition's watermark is the smaller of the two
streams' largest times (decisions and outcomes), minus the allowed
lateness: a window closes only when *both* streams have moved past its end,
so the join does not depend on which topic a consumer happened to read
first. `close_until(now)` closes by wall clock as well, for a quiet stream.

>>> import datetime
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
"""

from __future__ import annotations

from typing import Any

from loopline.outcomes.declarations import Outcomes
from loopline.outcomes.labelled import examples as examples_of

__all__ = ["JoinState", "Late"]

Late = tuple[dict[str, Any], int, str]
"""An outcome that joins no decision: the outcome, its time, and why."""


class JoinState:
    """Open decisions and waiting outcomes of one partition (see the module docstring)."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes
        self.window, self.lateness = outcomes.window_ms, outcomes.lateness_ms
        # decision id -> {"decision": dict, "at": ms, "matched": [[type, item, value], ...]}
        self.open: dict[str, dict[str, Any]] = {}
        self.closed: dict[str, int] = {}  # decision id -> its window's end (kept to see repeats)
        self.waiting: dict[str, dict[str, Any]] = {}  # key -> {"outcome": dict, "at": ms}
        self.latest = [None, None]  # largest time seen: decisions, outcomes
        self._by_item: dict[tuple[str, str], list[str]] = {}
        self._changed: set[str] = set()
        self.duplicates = 0
        self.joined = 0  # outcomes joined to a decision

    # -- the two streams -----------------------------------------------------------------

    def decision(self, decision: dict[str, Any], at: int) -> tuple[list[dict], list[Late]]:
        """Open `decision` (a repeat of a known one is ignored)."""
        did = decision["decision_id"]
        self._saw(0, at)
        if did in self.open or did in self.closed:
            self.duplicates += 1
        else:
            entry = {"decision": decision, "at": at, "matched": []}
            self.open[did] = entry
            self._index(did, entry)
            self._changed.add("d/" + did)
        return self._advance()

    def outcome(
        self, outcome: dict[str, Any], at: int, key: str | None = None
    ) -> tuple[list[dict], list[Late]]:
        """Keep `outcome` until its decision is known, then join it (or send it late).

        An outcome is joined once the decisions stream has passed its time:
        then every decision before it is known, so the most recent one that
        returned its item is the same whichever topic was read first.
        """
        self._saw(1, at)
        key = key or f"{at}/{len(self.waiting)}"
        self.waiting[key] = {"outcome": outcome, "at": at}
        self._changed.add("o/" + key)
        return self._advance()

    def close_until(self, now: int) -> tuple[list[dict], list[Late]]:
        """Close every window that ended before `now` - lateness (wall clock, a quiet stream)."""
        mark = now - self.lateness
        late = self._resolve(max(mark, self._decisions_mark()))
        examples, expired = self._close(mark)
        return examples, late + expired

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
        out.append(("m", {"latest": self.latest}))
        return out

    def load(self, key: str, value: Any) -> None:
        """Restore one changelog entry (the latest per key, in log order)."""
        if key == "m":
            self.latest = list(value["latest"])
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
            else:
                self.open[name] = value
                self._index(name, value)
        elif value is None:
            self.waiting.pop(name, None)
        else:
            self.waiting[name] = value

    # -- inside ---------------------------------------------------------------------------

    def _saw(self, stream: int, at: int) -> None:
        latest = self.latest[stream]
        if latest is None or at > latest:
            self.latest[stream] = at

    def watermark(self) -> int | None:
        if self.latest[0] is None or self.latest[1] is None:
            return None
        return min(self.latest) - self.lateness  # type: ignore[type-var]

    def _decisions_mark(self) -> int:
        latest = self.latest[0]
        return -(2**62) if latest is None else latest - self.lateness

    def _advance(self) -> tuple[list[dict], list[Late]]:
        late = self._resolve(self._decisions_mark())
        mark = self.watermark()
        if mark is None:
            return [], late
        examples, expired = self._close(mark)
        return examples, late + expired

    def _resolve(self, decisions_mark: int) -> list[Late]:
        """Join (or send late) every waiting outcome whose time the decisions have passed."""
        late: list[Late] = []
        ready = [(w["at"], k) for k, w in self.waiting.items() if w["at"] < decisions_mark]
        for _, key in sorted(ready):
            waiting = self.waiting.pop(key)
            self._changed.add("o/" + key)
            outcome, at = waiting["outcome"], waiting["at"]
            did = outcome.get("decision_id") or ""
            target = self._find(outcome, at)
            if target is not None and at < self.open[target]["at"] + self.window:
                entry = self.open[target]
                entry["matched"].append(_match(outcome, entry["decision"]))
                self.joined += 1
                self._changed.add("d/" + target)
            elif target is not None or (did and did in self.closed):
                late.append((outcome, at, f"after its decision's window ({self.window} ms)"))
            else:
                late.append((outcome, at, "no open decision to join"))
        return late

    def _close(self, mark: int) -> tuple[list[dict], list[Late]]:
        out: list[dict] = []
        for did, entry in list(self.open.items()):
            end = entry["at"] + self.window
            if end <= mark:
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
                self._changed.add("d/" + did)
        horizon = mark - self.window - self.lateness
        for did, end in list(self.closed.items()):
            if end < horizon:  # a repeat this much later is not expected any more
                del self.closed[did]
                self._changed.add("d/" + did)
        return out, []

    def _find(self, outcome: dict[str, Any], at: int) -> str | None:
        did = outcome.get("decision_id") or ""
        if did:
            return did if did in self.open else None
        item = outcome.get("item") or outcome["entity"]
        best = None
        for candidate in self._by_item.get((outcome["entity"], item), ()):
            entry = self.open[candidate]
            if entry["at"] <= at and (best is None or entry["at"] > self.open[best]["at"]):
                best = candidate
        return best

    def _index(self, did: str, entry: dict[str, Any]) -> None:
        decision = entry["decision"]
        for returned in decision["returned"]:
            self._by_item.setdefault((decision["entity"], returned["id"]), []).append(did)

    def _unindex(self, did: str, entry: dict[str, Any]) -> None:
        decision = entry["decision"]
        for returned in decision["returned"]:
            ids = self._by_item.get((decision["entity"], returned["id"]))
            if ids and did in ids:
                ids.remove(did)
                if not ids:
                    del self._by_item[(decision["entity"], returned["id"])]


def _match(outcome: dict[str, Any], decision: dict[str, Any]) -> list[Any]:
    """(type, item, value) of an outcome joined to `decision` (a predict's item: its entity)."""
    item = outcome.get("item") or decision["entity"]
    if not outcome.get("item") and decision["kind"] == "rank" and decision["returned"]:
        item = decision["returned"][0]["id"]  # no item named: the top of the answer
    return [outcome["type"], item, float(outcome.get("value", 1.0))]
