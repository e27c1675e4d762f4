"""The Topics page: every topic of the application with partitions, contract, records/s and
retention; a topic's own page shows its newest records, decoded through its contract, and
its dead letters with their reasons, with ``dlq replay`` as a button.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from loopline.contracts.codecs import ContractViolation
from loopline.contracts.schemas import record_type
from loopline.contracts.topics import codec_for
from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import DASH, Raw, ago, card, esc, form, iso, link, num, table
from loopline.log import LogError, Record, TopicInfo
from loopline.stream.deadletters import DeadLetter, dlq_topic

__all__ = ["newest", "topic_body", "topics_body"]

NEWEST = 10


def _contract(ctx: Dashboard, topic: str) -> str:
    binding = ctx.schemas.binding(topic)
    if binding is None:
        return DASH
    try:
        version = ctx.schemas.latest(binding.contract).version
    except Exception:  # a binding whose contract is gone: shown, not fatal
        return f"{binding.contract} ({binding.encoding})"
    return f"{binding.contract} v{version} ({binding.encoding})"


def _retention(info: TopicInfo | None) -> str:
    if info is None:
        return DASH
    c = info.config
    if c.compact:
        return "compacted"
    parts = []
    if c.retention_ms:
        parts.append(ago(c.retention_ms / 1000))
    if c.retention_bytes:
        parts.append(f"{c.retention_bytes:,} B")
    return ", ".join(parts) or "forever"


def topics_body(ctx: Dashboard) -> str:
    rows = []
    for topic in ctx.rates.topics():
        info = ctx.rates.info(topic)
        rows.append(
            [
                link(f"/topics/{topic}", topic),
                len(info.partitions) if info else DASH,
                _contract(ctx, topic),
                num(ctx.rates.rate(topic), 3),
                num(ctx.rates.total(topic)),
                _retention(info),
                f"{ago(ctx.rates.idle(topic))} ago",
            ]
        )
    head = ["topic", "partitions", "contract", "records/s", "records", "retention", "last record"]
    return card("Topics", table(head, rows, empty="no topics yet"))


def newest(ctx: Dashboard, topic: str, n: int = NEWEST) -> list[Record]:
    """The newest `n` records of each partition of `topic`, newest first."""
    info = ctx.log.describe_topic(topic)
    consumer = ctx.log.consumer(None, [topic], reset="earliest")
    try:
        wanted = 0
        for tp in consumer.assignment():
            p = next(p for p in info.partitions if p.partition == tp.partition)
            consumer.seek(tp, max(p.start, p.end - n))
            wanted += min(n, p.end - p.start)
        out: list[Record] = []
        for _ in range(20):  # a compacted or transactional tail may hold fewer: do not wait long
            if len(out) >= wanted:
                break
            batch = consumer.poll(max_records=500, timeout=0.2)
            out += batch
            if not batch and out:
                break
        return sorted(out, key=lambda r: (-r.timestamp, -r.offset))[: n * len(info.partitions)]
    finally:
        consumer.close()


def _decoder(ctx: Dashboard, topic: str):
    binding = ctx.schemas.binding(topic)
    if binding is None:
        return None
    version = ctx.schemas.latest(binding.contract)
    return codec_for(record_type(version.schema), version, binding.encoding, ctx.schemas)


def _shown(codec: Any, value: bytes | None) -> str:
    if value is None:
        return "(tombstone)"
    if codec is not None:
        try:
            return msgspec.json.encode(codec.decode(value)).decode()
        except ContractViolation as exc:
            return f"(does not follow the contract: {exc})"
    try:
        return json.dumps(json.loads(value))
    except ValueError:
        return repr(value[:200])


def _short(text: str, limit: int = 300) -> Raw:
    cut = text if len(text) <= limit else text[:limit] + " …"
    return Raw(f"<code>{esc(cut)}</code>")


def topic_body(ctx: Dashboard, topic: str, info: TopicInfo, csrf: str) -> str:
    try:
        codec = _decoder(ctx, topic)
    except Exception as exc:  # a contract that cannot be read still shows the raw records
        codec, note = None, f"(the contract cannot be read: {exc})"
    else:
        note = ""
    records = [
        [r.partition, r.offset, iso(r.timestamp),
         (r.key or b"").decode(errors="replace"), _short(_shown(codec, r.value))]
        for r in newest(ctx, topic)
    ]  # fmt: skip
    partitions = table(
        ["partition", "first offset", "next offset", "records"],
        [[p.partition, p.start, p.end, p.records] for p in info.partitions],
    )
    about = table(
        ["", ""],
        [
            ["contract", _contract(ctx, topic)],
            ["retention", _retention(info)],
            ["records/s", num(ctx.rates.rate(topic), 3)],
        ],
    )
    body = (
        '<div class="grid">'
        + card("Topic", about + partitions)
        + card(f"Dead letters ({dlq_topic(topic)})", _dead_letters(ctx, topic, csrf), cls="dlq")
        + "</div>"
        + card(
            "Newest records",
            (f'<p class="muted">{esc(note)}</p>' if note else "")
            + table(["partition", "offset", "time", "key", "value"], records, empty="empty"),
        )
    )
    return body


def _dead_letters(ctx: Dashboard, topic: str, csrf: str) -> str:
    dlq = dlq_topic(topic)
    if dlq not in ctx.log.list_topics():
        return '<p class="muted">none: no record of this topic was dead-lettered</p>'
    try:
        letters = [DeadLetter.from_record(r) for r in newest(ctx, dlq)]
    except LogError as exc:
        return f'<p class="muted">cannot read {esc(dlq)}: {esc(exc)}</p>'
    rows = [
        [iso(d.dead_at or d.record.timestamp), d.reason, d.contract,
         f"{d.source_topic}:{d.source_partition}@{d.source_offset}",
         _short(_shown(None, d.record.value), 120)]
        for d in letters
    ]  # fmt: skip
    replay = form(
        "/actions/replay",
        csrf,
        f'<input type="hidden" name="topic" value="{esc(topic)}">',
        "Replay dead letters",
        confirm="Re-submit the pending dead letters its current contract accepts?",
    )
    return (
        replay
        + '<p class="muted">newest first, replayed or not</p>'
        + table(["dead at", "reason", "contract", "from", "record"], rows, empty="empty")
    )
