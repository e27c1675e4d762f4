"""A polled batch of decisions counted into its windows column-wise.

Counting one decision at a time costs a Python call per served value (20
features: ~30 µs a decision). `count_decisions` counts a whole batch at
once, and counts exactly what one at a time counts (the monitor's tests
recompute every window offline; the sums are added in order, so a batch
split anywhere, as after a restart, gives the same totals):

1. the watermark each decision sees is the running maximum of the event
   times before it (`numpy.maximum.accumulate`), so a decision is late for a
   window size exactly when it would be one at a time;
2. the decisions of one model version share its `Baseline`: their
   candidates' values of each feature are classified as one column
   (`FeatureCounter.column`) once, whatever the number of window sizes;
3. per window size, decisions are grouped by window (key and start), and
   each group's rows of those columns are added to its `DecisionWindow`.

>>> import datetime
>>> from loopline.monitor.state import MonitorState
>>> from loopline.serving.decisions import Candidate, Decision
>>> at = datetime.datetime(2024, 5, 1, 12, 0, 30, tzinfo=datetime.UTC)
>>> d = Decision(
...     decision_id="d-1", at=at, kind="predict", model="m", model_version=1,
...     entity_name="member", entity="e-1", context={},
...     candidates=[Candidate("e-1", 0.5, {"x": 2.0})], returned=[], latency_ms=3.0,
... )
>>> state, baselines = MonitorState(), {}
>>> late = count_decisions(state, [d], [60_000], 0, None, lambda m, v: Baseline(None))
>>> (late, state.watermark["decisions"], len(state.windows))
(0, 1714564830000, 1)
>>> window = next(iter(state.windows.values()))
>>> window.decisions, window.candidates, window.features["x"].total
(1, 1, 2.0)
"""

from __future__ import annotations

import datetime
import itertools
import operator
from collections.abc import Callable, Sequence

import numpy as np

from loopline.monitor.baselines import Baseline
from loopline.monitor.features import NUMBERS, FeatureCounts, number_bins, running_sum
from loopline.monitor.sketch import bucket
from loopline.monitor.state import WATERMARK, MonitorState
from loopline.monitor.windows import DecisionWindow, WindowKey
from loopline.serving.decisions import Decision, is_unknown_entity

__all__ = ["count_decisions"]

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MS = datetime.timedelta(milliseconds=1)
SOURCE = "decisions"


def count_decisions(
    state: MonitorState,
    batch: Sequence[Decision],
    sizes: Sequence[int],
    lateness: int,
    segment: str | None,
    baseline: Callable[[str, int], Baseline],
) -> int:
    """Count `batch` (in log order) into `state`'s windows of each of `sizes` (ms), and
    advance its ``decisions`` watermark (`lateness` ms behind the newest); `segment` is
    the context field segmenting the windows. Returns how many (decision, size) pairs
    were late (their window closed already)."""
    if not batch:
        return 0
    at = np.fromiter(((d.at - EPOCH) // MS for d in batch), dtype=np.int64, count=len(batch))
    marks = np.maximum.accumulate(at - lateness)
    before = state.watermark.get(SOURCE)
    if before is not None:
        marks = np.maximum(marks, before)
    if before is None or marks[-1] > before:
        state.watermark[SOURCE] = int(marks[-1])
        state.changed.add(WATERMARK + SOURCE)
    versions: dict[tuple[str, int], list[int]] = {}
    for i, d in enumerate(batch):
        versions.setdefault((d.model, d.model_version), []).append(i)
    late = 0
    for (model, version), rows in versions.items():
        one = _Version([batch[i] for i in rows], baseline(model, version), segment)
        late += one.count(state, at[rows], marks[rows], sizes)
    return late


class _Version:
    """The decisions of one model version in a batch, as columns (see the module)."""

    def __init__(self, decisions: list[Decision], baseline: Baseline, segment: str | None) -> None:
        self.decisions, self.baseline = decisions, baseline
        model, version = decisions[0].model, decisions[0].model_version
        ids: dict[tuple[str, str], int] = {}  # (arm, segment) -> its number in this batch
        self.key = np.array(
            [
                ids.setdefault(
                    (d.arm, "" if segment is None else str(d.context.get(segment, ""))), len(ids)
                )
                for d in decisions
            ],
            dtype=np.int64,
        )
        self.keys = [(model, version, arm, seg) for arm, seg in ids]
        failed = [d.error for d in decisions if d.error]
        if failed:
            unknown = [bool(d.error) and is_unknown_entity(d.error) for d in decisions]
            self.unknown = np.array(unknown, dtype=bool)
            self.errors = np.array([bool(d.error) for d in decisions], dtype=bool) & ~self.unknown
        else:
            self.unknown = self.errors = np.zeros(len(decisions), dtype=bool)
        # the latency bucket of each answered decision (-1: failed)
        self.latency = np.array(
            [-1 if d.error else bucket(d.latency_ms) for d in decisions], dtype=np.int64
        )
        candidates = [c for d in decisions for c in d.candidates]
        self.owner = np.repeat(
            np.arange(len(decisions)), [len(d.candidates) for d in decisions]
        )  # the decision of each candidate
        self.scores = np.array([c.score for c in candidates], dtype=np.float64)
        edges = baseline.score_edges
        self.score_bins = None if edges is None else number_bins(edges, self.scores)
        self.columns = self._features([c.features for c in candidates])

    def _features(self, served: list[dict]) -> dict:
        """Each feature served to these candidates as a `Column`, with the rows holding it
        (None: every row does)."""
        same = _same_names(served)
        if same is not None:  # every candidate has the same features: numbers at once?
            names, flat = same
            types = set(map(type, flat))
            counters = [self.baseline.counter(name) for name in names]
            if types <= NUMBERS and all(c.takes_numbers for c in counters):
                matrix = np.array(flat, dtype=np.float64).reshape(len(served), len(names))
                columns = {
                    c.name: (c, c.numbers(matrix[:, j], int in types), None)
                    for j, c in enumerate(counters)
                }
                if all(column is not None for _, column, _ in columns.values()):
                    return columns
        layouts = set(map(tuple, served))
        names = list(dict.fromkeys(n for layout in layouts for n in layout))
        columns = {}
        for name in names:
            counter = self.baseline.counter(name)
            column = counter.column([f.get(name) for f in served])
            held = None
            if len(layouts) > 1:
                held = np.fromiter((name in f for f in served), dtype=bool, count=len(served))
            columns[name] = (counter, column, held)
        return columns

    def count(
        self, state: MonitorState, at: np.ndarray, marks: np.ndarray, sizes: Sequence[int]
    ) -> int:
        late = 0
        for size in sizes:
            starts = at - at % size
            on_time = starts + size > marks
            late += int(np.count_nonzero(~on_time))
            members_of = np.flatnonzero(on_time)
            if not len(members_of):
                continue
            # a window is a (key, start): numbered key * (number of starts) + start's rank
            begins, rank = np.unique(starts[members_of], return_inverse=True)
            windows, which = np.unique(
                self.key[members_of] * len(begins) + rank.reshape(-1), return_inverse=True
            )
            which = which.reshape(-1)
            for g, window in enumerate(windows.tolist()):
                model, version, arm, segment = self.keys[window // len(begins)]
                start = int(begins[window % len(begins)])
                key = WindowKey(SOURCE, size, start, model, version, arm, segment)
                w = state.windows.get(key)
                if w is None:
                    w = state.windows[key] = DecisionWindow()
                state.changed.add(key)
                self._add(w, members_of[which == g])  # type: ignore[arg-type]
        return late

    def _add(self, w: DecisionWindow, members: np.ndarray) -> None:
        w.decisions += len(members)
        w.unknown += int(np.count_nonzero(self.unknown[members]))
        w.errors += int(np.count_nonzero(self.errors[members]))
        buckets, counts = np.unique(self.latency[members], return_counts=True)
        for b, c in zip(buckets.tolist(), counts.tolist(), strict=True):
            if b >= 0:
                w.latency[b] = w.latency.get(b, 0) + c
        everyone = len(members) == len(self.key)
        rows = np.arange(len(self.owner)) if everyone else np.flatnonzero(
            np.isin(self.owner, members)
        )  # fmt: skip
        edges = self.baseline.score_edges
        if edges is not None:  # the score bins, even of a window without candidates
            width = len(edges) + 1 if edges else 1
            if w.score_bins is None:
                w.score_bins = [0] * width
            if len(rows):
                added = np.bincount(self.score_bins[rows], minlength=width).tolist()
                w.score_bins = [a + b for a, b in zip(w.score_bins, added, strict=True)]
        if not len(rows):
            return
        w.candidates += len(rows)
        scores = self.scores[rows]
        finite = scores[np.isfinite(scores)]
        w.scores += len(finite)
        w.score_sum = running_sum(w.score_sum, finite)
        w.score_squares = running_sum(w.score_squares, finite * finite)
        for name, (counter, column, held) in self.columns.items():
            mine = rows if held is None else rows[held[rows]]
            if not len(mine):
                continue
            counts = w.features.get(name)
            if counts is None:
                counts = w.features[name] = FeatureCounts()
            counter.add_column(counts, column if everyone and held is None else column.take(mine))


def _same_names(served: list[dict]) -> tuple[tuple[str, ...], list] | None:
    """When every dict of `served` has the same keys (and at least one): those keys in the
    first one's order, and every dict's values in that order, one after the other.

    >>> _same_names([{"a": 1, "b": 2.0}, {"b": 4.0, "a": 3}])
    (('a', 'b'), [1, 2.0, 3, 4.0])
    >>> _same_names([{"a": 1}, {"b": 2}]) is None, _same_names([{"a": 1}, {}]) is None
    (True, True)
    """
    if not served or not served[0]:
        return None
    names = tuple(served[0])
    if set(map(len, served)) != {len(names)}:
        return None
    get = operator.itemgetter(*names)
    try:
        if len(names) == 1:
            return names, list(map(get, served))
        return names, list(itertools.chain.from_iterable(map(get, served)))
    except KeyError:  # as many keys, not the same
        return None
