"""The DuckDB tables behind an experiment report, and the aggregates the report asks of them.

`ReportTables` registers a `ReportData`'s decisions and labelled examples in a
DuckDB connection and builds three tables: ``d``, the decisions deduplicated
by decision id (delivery is at least once); ``firsts``, each unit's first
decision; ``ex``, the labelled examples joined to their decisions, with the
unit, the arm, the log loss of the score and the exposure-age bucket. Its
methods group them by arm and, optionally, a segment column or ``age``:
`counts`, `summaries` (one value per unit, then mean and variance over units),
`aucs` (DeLong per arm).

>>> import duckdb, pyarrow as pa
>>> ids, arms = list("abcd"), ["control", "control", "v2", "v2"]
>>> decisions = pa.table({"at": [0, 0, 0, 0], "decision_id": ids, "arm": arms,
...     "unit": list("uvwx"), "latency_ms": [1.0] * 4, "returned": [1, 1, 1, 0]})
>>> examples = pa.table({"at": [0] * 3, "decision_id": ids[:3], "arm": arms[:3],
...     "label": [1.0, 0.0, 1.0], "score": [0.9, 0.2, 0.6]})
>>> with duckdb.connect() as con:
...     tables = ReportTables(con, ReportData(decisions, examples, 4, 3, 0), [])
...     counts, summaries = tables.counts(), tables.summaries()
>>> counts[(None, "v2")]["units"], counts[(None, "v2")]["exposures"], counts[(None, "v2")]["examples"]
(2, 1, 1)
>>> summaries[(None, "control")]["mean_label"]
Summary(n=2, mean=0.5, variance=0.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import duckdb

from loopline.experiments.auc import AUC, delong
from loopline.experiments.novelty import AGE_BUCKETS
from loopline.experiments.report_data import ReportData, Segment
from loopline.experiments.statistics import Summary

__all__ = ["ReportTables"]

_EPS = 1e-15  # scores are clipped to [eps, 1 - eps] for the log loss, as scikit-learn does


class ReportTables:
    """The DuckDB tables of one report: deduplicated decisions, each unit's first decision,
    and the labelled examples joined to their decisions."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        data: ReportData,
        segments: Sequence[Segment],
        weights_since: int = 0,
    ) -> None:
        self.con = con
        self.weights_since = weights_since
        con.register("decisions", data.decisions)
        con.register("examples", data.examples)
        context = [s for s in segments if s.kind == "context"]
        extra = "".join(f', any_value("{s.column}") AS "{s.column}"' for s in context)
        con.execute(
            "CREATE TEMP TABLE d AS SELECT decision_id, any_value(arm) AS arm, "
            'any_value(unit) AS unit, min("at") AS "at", any_value(returned) AS returned, '
            f"any_value(latency_ms) AS latency_ms{extra} FROM decisions GROUP BY decision_id"
        )
        con.execute(
            'CREATE TEMP TABLE firsts AS SELECT unit, min("at") AS first_at FROM d GROUP BY unit'
        )
        flags = con.execute(
            "SELECT count(*), coalesce(bool_and(label IN (0, 1)), false), "
            "count(score) = count(*) AND coalesce(bool_and(score BETWEEN 0 AND 1), false) "
            "FROM examples"
        ).fetchone()
        self.binary = bool(flags[0]) and bool(flags[1])
        self.probabilities = self.binary and bool(flags[2])
        ll = (
            f"-(e.label * ln(greatest(e.score, {_EPS})) + (1 - e.label) * "
            f"ln(greatest(1 - e.score, {_EPS})))"
            if self.probabilities
            else "NULL::DOUBLE"
        )
        buckets = " ".join(
            f"WHEN e.\"at\" - f.first_at >= {low} THEN '{name}'"
            for name, low in reversed(AGE_BUCKETS)
        )
        segs = "".join(
            f', d."{s.column}"' if s.kind == "context" else f', e."{s.column}"' for s in segments
        )
        con.execute(
            "CREATE TEMP TABLE ex AS SELECT d.arm, d.unit, e.label, e.score, "
            f"{ll} AS ll, CASE {buckets} ELSE '{AGE_BUCKETS[0][0]}' END AS age{segs} "
            "FROM examples e JOIN d USING (decision_id) JOIN firsts f USING (unit)"
        )
        self.examples = int(con.sql("SELECT count(*) FROM ex").fetchall()[0][0])

    def counts(self, by: str | None = None) -> dict[tuple[Any, str], dict[str, Any]]:
        """Units, decisions, exposures and p99 latency per (segment value, arm)."""
        key = f'"{by}"' if by else "NULL"
        # units first seen since the weights last changed: the ones the current weights assigned
        since = self.weights_since
        srm_units = f"count(DISTINCT unit) FILTER (WHERE first_at >= {since})" if since else "0"
        source = "d JOIN firsts USING (unit)" if since else "d"
        rows = self.con.sql(
            f"SELECT {key} AS g, arm, count(DISTINCT unit), count(*), "
            "count(*) FILTER (WHERE returned > 0), quantile_cont(latency_ms, 0.99), "
            f"{srm_units} FROM {source} GROUP BY ALL"
        ).fetchall()
        examples = dict(
            ((g, arm), n)
            for g, arm, n in self.con.sql(
                f"SELECT {key} AS g, arm, count(*) FROM ex GROUP BY ALL"
            ).fetchall()
        )
        return {
            (g, arm): {
                "units": units,
                "decisions": decisions,
                "exposures": exposures,
                "examples": examples.get((g, arm), 0),
                "latency_p99_ms": p99,
                "srm_units": srm if since else units,
            }
            for g, arm, units, decisions, exposures, p99, srm in rows
        }

    def summaries(self, by: str | None = None) -> dict[tuple[Any, str], dict[str, Summary]]:
        """Each unit metric's `Summary` per (group value, arm); a unit's value is the mean
        over its examples in the group."""
        key = f'"{by}"' if by else "NULL"
        rows = self.con.sql(
            "SELECT g, arm, count(*), avg(y), var_samp(y), count(l), avg(l), var_samp(l) FROM "
            f"(SELECT {key} AS g, arm, unit, avg(label) AS y, avg(ll) AS l FROM ex GROUP BY ALL) "
            "GROUP BY ALL"
        ).fetchall()
        out: dict[tuple[Any, str], dict[str, Summary]] = {}
        for g, arm, n, y, vy, nl, ll, vl in rows:
            metrics = {"mean_label": _summary(n, y, vy)}
            if self.probabilities:
                metrics["log_loss"] = _summary(nl, ll, vl)
            out[(g, arm)] = metrics
        return out

    def aucs(self, by: str | None = None) -> dict[tuple[Any, str], AUC]:
        """The DeLong AUC per (group value, arm), when labels are 0/1 and every example has
        a score."""
        if not (self.binary and self.examples):
            return {}
        key = f'"{by}"' if by else "NULL"
        order = "ORDER BY g NULLS LAST, arm"
        table = self.con.sql(
            f"SELECT {key}::VARCHAR AS g, arm, label, score FROM ex {order}"
        ).to_arrow_table()
        if table.column("score").null_count:
            return {}
        sizes = self.con.sql(
            f"SELECT {key}::VARCHAR AS g, arm, count(*) FROM ex GROUP BY ALL {order}"
        ).fetchall()
        labels = table.column("label").to_numpy()
        scores = table.column("score").to_numpy()
        out: dict[tuple[Any, str], AUC] = {}
        start = 0
        for g, arm, n in sizes:
            out[(g, arm)] = delong(labels[start : start + n], scores[start : start + n])
            start += n
        return out


def _summary(n: int, mean: float | None, variance: float | None) -> Summary:
    return Summary(
        int(n or 0),
        math.nan if mean is None else float(mean),
        math.nan if variance is None else float(variance),
    )
