"""The Models page: versions, aliases and their history, signatures, lineage, live quality.

Per model: where each alias points and its history as a timeline; every
version with its test metrics, who signed it, the data it was trained on;
the live AUC and traffic of each version from the monitor; and the
promote / roll back forms (the same checks as ``loopline models promote``).
A version's own page adds its parameters, full lineage and training profile.
"""

from __future__ import annotations

import time
from typing import Any

from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import DASH, Raw, card, esc, form, iso, link, num, table
from loopline.dashboard.series import by, step
from loopline.dashboard.svg import Series, histogram, line_chart
from loopline.models.profiles import Profile, ProfileError
from loopline.models.registry_records import ModelVersion

__all__ = ["model_body", "models_body", "version_body"]

SHOWN_METRICS = ("auc", "log_loss", "accuracy", "rmse", "train_rows", "test_rows")


def _metrics(v: ModelVersion) -> str:
    shown = [k for k in SHOWN_METRICS if k in v.metrics] or sorted(v.metrics)[:3]
    return ", ".join(
        f"{k} {num(v.metrics[k]) if isinstance(v.metrics[k], int | float) else v.metrics[k]}"
        for k in shown
    )


def _signature(v: ModelVersion) -> str:
    if v.signature is None:
        return "unsigned"
    return f"{v.signature.algorithm} key {v.signature.key_id}"


def _data(v: ModelVersion) -> str:
    m = v.manifest or {}
    parts = m.get("partitions") or []
    ranges = "; ".join(
        f"p{p.get('partition')} {p.get('start')}\u2013{p.get('end')}"
        for p in parts
        if isinstance(p, dict)
    )
    topic = m.get("topic", "")
    return f"{topic} {ranges}".strip() or DASH


def _promote_forms(ctx: Dashboard, name: str, csrf: str) -> str:
    versions = ctx.models.versions(name)
    aliases = ctx.models.aliases(name)
    options = "".join(
        f'<option value="{v.version}">v{v.version}</option>' for v in reversed(versions)
    )
    alias_default = "production"
    promote = form(
        "/actions/promote",
        csrf,
        f'<input type="hidden" name="model" value="{esc(name)}">'
        f'<label>version <select name="version">{options}</select></label>'
        f'<label>alias <input name="alias" value="{alias_default}" size="12" required></label>'
        '<label>reason <input name="reason" size="18" placeholder="optional"></label>',
        "Promote",
        confirm="Move the alias? Serving follows within a second.",
    )
    held = "".join(f'<option value="{esc(a)}">{esc(a)}</option>' for a in sorted(aliases))
    rollback = form(
        "/actions/rollback",
        csrf,
        f'<input type="hidden" name="model" value="{esc(name)}">'
        f'<label>alias <select name="alias">{held}</select></label>'
        '<label>reason <input name="reason" size="18" placeholder="optional"></label>',
        "Roll back",
        confirm="Point the alias back at the version it held before?",
    )
    return f'<div class="actions">{promote}{rollback if aliases else ""}</div>'


def _alias_chart(ctx: Dashboard, name: str) -> str:
    now = int(time.time() * 1000)
    lines = []
    for alias in sorted(ctx.models.aliases(name)):
        history = ctx.models.alias_history(name, alias)
        changes = [(c.time_ms, c.version) for c in history if c.refused is None]
        lines.append(Series(alias, step(changes, now)))
    return line_chart(lines, title="version held by each alias", integer=True)


def _live(ctx: Dashboard, name: str) -> tuple[str, str]:
    mine = lambda r: r.model == name  # noqa: E731
    labelled = ctx.feed.windows("labelled", where=mine)
    decided = ctx.feed.windows("decisions", where=mine)
    version = lambda r: f"v{r.model_version}"  # noqa: E731
    auc = line_chart(by(version, labelled, "auc", weight="scored"), title="live AUC per version")
    traffic = line_chart(
        by(version, decided, "decisions"), title="decisions per window per version", y_min=0
    )
    return auc, traffic


def model_body(ctx: Dashboard, name: str, csrf: str) -> str:
    """One model: aliases, actions, charts, versions."""
    versions = ctx.models.versions(name)
    aliases = ctx.models.aliases(name)
    held: dict[int, list[str]] = {}
    for alias, v in aliases.items():
        held.setdefault(v, []).append(alias)
    rows = [
        [
            link(f"/models/{name}/{v.version}", f"v{v.version}"),
            ", ".join(sorted(held.get(v.version, []))),
            iso(v.created_at),
            v.trainer,
            _metrics(v),
            _data(v),
            _signature(v),
            v.published_by,
        ]
        for v in reversed(versions)
    ]
    auc, traffic = _live(ctx, name)
    return (
        card(
            f"{name}",
            _promote_forms(ctx, name, csrf)
            + table(
                [
                    "version",
                    "aliases",
                    "published",
                    "trainer",
                    "test metrics",
                    "trained on",
                    "signature",
                    "by",
                ],
                rows,
            ),
            anchor=name,
        )
        + '<div class="grid">'
        + card("Aliases over time", _alias_chart(ctx, name))
        + card("Live quality", auc)
        + card("Traffic", traffic)
        + card("Alias history", _history(ctx, name))
        + "</div>"
    )


def _history(ctx: Dashboard, name: str) -> str:
    rows = []
    for alias in sorted(ctx.models.aliases(name)):
        for c in reversed(ctx.models.alias_history(name, alias)):
            was = f"v{c.previous}" if c.previous is not None else DASH
            move = f"{was} → v{c.version}"
            signed = c.key_id or "unsigned"
            rows.append([iso(c.time_ms), alias, move, c.action, c.by, c.reason, signed, c.status])
    return table(
        ["time", "alias", "move", "action", "by", "reason", "signed by", "signature"], rows[:30]
    )


def models_body(ctx: Dashboard, csrf: str) -> str:
    """Every model of the application."""
    out = []
    for name in ctx.model_names():
        if not ctx.has_versions(name):
            out.append(card(name, '<p class="muted">no version published yet</p>'))
            continue
        out.append(model_body(ctx, name, csrf))
    return "".join(out) or '<p class="muted">the application declares no model</p>'


def _kv(items: dict[str, Any]) -> str:
    return table(["", ""], [[k, v] for k, v in items.items()])


def version_body(ctx: Dashboard, v: ModelVersion) -> str:
    """One version: what it is, what it was built from, how its training data looked."""
    m = v.manifest or {}
    lineage = {
        k: m[k]
        for k in ("kind", "topic", "records", "rows", "sha256", "fingerprint", "created_at")
        if k in m
    }
    parts = [
        [p.get("partition"), p.get("start"), p.get("end"), p.get("records"), p.get("sha256")]
        for p in m.get("partitions", [])
        if isinstance(p, dict)
    ]
    about = {
        "published": iso(v.created_at),
        "by": v.published_by,
        "trainer": v.trainer,
        "format": v.format,
        "code version": v.code_version,
        "artifact sha256": v.sha256,
        "size": f"{v.size:,} bytes",
        "signature": _signature(v),
        "features": ", ".join(v.feature_names),
    }
    metrics = {k: (num(x) if isinstance(x, int | float) else x) for k, x in v.metrics.items()}
    body = (
        '<div class="grid">'
        + card("Version", _kv(about))
        + card("Test metrics", _kv(metrics) if metrics else '<p class="muted">none</p>')
        + card(
            "Training data",
            _kv(lineage)
            + table(["partition", "from offset", "to offset", "records", "sha256"], parts),
        )
        + card("Parameters", _kv({k: str(x) for k, x in v.params.items()}))
        + "</div>"
    )
    return body + _profile(v)


def _profile(v: ModelVersion) -> str:
    if v.profile is None:
        return card("Training profile", '<p class="muted">published without a profile</p>')
    try:
        profile = Profile.from_dict(v.profile)
    except ProfileError as exc:
        return card("Training profile", f'<p class="muted">{esc(exc)}</p>')
    rows = [
        [f.name, f.kind, num(f.coverage), num(f.mean), num(f.std), num(f.min), num(f.max)]
        for f in profile.features
    ]
    charts = "".join(
        f"<figure><figcaption>{esc(f.name)}</figcaption>{_bins(f.name, f.histogram)}</figure>"
        for f in profile.features
    )
    return card(
        f"Training profile ({profile.rows:,} rows)",
        table(["feature", "kind", "coverage", "mean", "std", "min", "max"], rows)
        + f'<div class="grid small">{Raw(charts)}</div>',
    )


def _bins(name: str, h: Any) -> str:
    from loopline.dashboard.page_features import bin_labels

    total = sum(h.counts) or 1
    return histogram(bin_labels(h), [("training", [c / total for c in h.counts])], title=name)
