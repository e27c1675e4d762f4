"""Dashboard pages over what the monitor wrote, on both backends, without a browser."""

from __future__ import annotations

import time
import uuid

import msgspec
from starlette.testclient import TestClient

from loopline.app import App
from loopline.dashboard.context import Dashboard
from loopline.dashboard.server import dashboard_app
from loopline.log import TopicConfig
from loopline.monitor.alerts import AlertRecord
from loopline.stream import names


def _alert(id: str, state: str, at: int, **kw) -> AlertRecord:
    return AlertRecord(id=id, alert=id.split(":")[0], state=state, at=at, opened_at=at, **kw)


def test_the_alerts_page_shows_open_and_resolved_alerts_with_their_evidence(log) -> None:
    app = App(f"shop-{uuid.uuid4().hex[:8]}")
    for topic in (names.monitor(app.name), names.alerts(app.name)):
        log.create_topic(topic, TopicConfig(partitions=1))
    source = f"{app.name}.clicks"
    changes = [
        _alert(f"freshness:{source}", "opened", 1000, metric="freshness", scope=source,
               value=42.0, high=10.0),
        _alert("psi:m:1::x", "opened", 2000, metric="psi", scope="m:1::", feature="x",
               window="1m", start=0, end=60_000, value=0.4, high=0.25, rows=120),
        _alert("psi:m:1::x", "resolved", 3000, metric="psi", scope="m:1::", feature="x",
               window="1m", start=60_000, end=120_000, value=0.1, high=0.25, rows=130),
    ]  # fmt: skip
    producer = log.producer()
    for change in changes:
        producer.send(names.alerts(app.name), msgspec.json.encode(change), change.id.encode())
    producer.flush()
    producer.close()
    board = Dashboard(log, app)
    try:
        deadline = time.monotonic() + 30
        while board.feed.read < len(changes):
            assert time.monotonic() < deadline, "the dashboard did not read the alerts"
            time.sleep(0.1)
        client = TestClient(dashboard_app(board))
        page = client.get("/alerts").text
        assert "Open (1)" in page and "Resolved (1)" in page
        assert f'href="/topics/{source}"' in page  # where the measure is shown
        assert 'href="/features#x"' in page
        alerts = {a["id"]: a["state"] for a in client.get("/api/alerts").json()}
        assert alerts == {f"freshness:{source}": "opened", "psi:m:1::x": "resolved"}
        # The Loop page counts the open one.
        assert client.get("/api/loop").json()["open_alerts"] == 1
    finally:
        board.close()
