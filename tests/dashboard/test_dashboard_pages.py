"""Dashboard pages over what the monitor wrote, on both backends, without a browser."""

from __future__ import annotations

import re
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


def test_the_features_page_draws_the_distribution_served_beside_the_one_trained_on(log) -> None:
    from loopline.features import Entity, FeatureSet, Table, TableFeature
    from loopline.models import HmacSigner, ModelRegistry
    from loopline.models.declarations import Model
    from loopline.models.trainers import LightGBMTrainer
    from loopline.monitor.features import FeatureCounter, FeatureCounts
    from loopline.monitor.records import MonitorRecord
    from monitor.helpers import training_profile

    profile = training_profile()
    features = FeatureSet(tables=[Table("profiles", Entity("member", "member_id"),
                                        [TableFeature("x", "x")])])  # fmt: skip
    app = App(f"shop-{uuid.uuid4().hex[:8]}", features=features,
              models=[Model(f"m-{uuid.uuid4().hex[:8]}", trainer=LightGBMTrainer, entity="member", features=["x"])])  # fmt: skip
    model = app.models[0].name
    models = ModelRegistry(log, signer=HmacSigner(b"k" * 32))
    v = models.publish(model, b"artifact", format="pickle", trainer="test",
                       features=[("x", "float")], profile=profile.to_dict())  # fmt: skip
    models.promote(model, v.version, "production")
    models.close()
    # What the monitor writes for one window of v1: x served far above its training range.
    counter, counts = FeatureCounter("x", profile.feature("x")), FeatureCounts()
    for value in [1e9] * 30:
        counter.add(counts, value)
    window = MonitorRecord(
        source="decisions", window="1m", start=0, end=60_000, model=model, model_version=1,
        arm="", segment="", decisions=30, candidates=30, features=[counter.stats(counts, 30)],
    )  # fmt: skip
    log.create_topic(names.monitor(app.name), TopicConfig(partitions=1))
    log.create_topic(names.alerts(app.name), TopicConfig(partitions=1))
    producer = log.producer()
    producer.send(names.monitor(app.name), msgspec.json.encode(window), window.key.encode())
    producer.flush()
    producer.close()
    board = Dashboard(log, app)
    try:
        deadline = time.monotonic() + 30
        while board.feed.read < 1:
            assert time.monotonic() < deadline, "the dashboard did not read the window"
            time.sleep(0.1)
        page = TestClient(dashboard_app(board)).get("/features").text
        assert 'data-series="training v1"' in page
        served = page.split('data-series="served v1 now">', 1)[1].split("</g>", 1)[0]
        heights = [float(h) for h in re.findall(r'height="([0-9.]+)"', served)]
        # every value served is in the last bin ("above the training range"): one full bar
        assert heights[-1] > 0 and not any(heights[:-1]), heights
    finally:
        board.close()


def test_the_loop_page_shows_each_consumers_lag_and_freshness(log) -> None:
    app = App(f"shop-{uuid.uuid4().hex[:8]}")
    decisions = names.decisions(app.name)
    log.create_topic(decisions, TopicConfig(partitions=1))
    producer = log.producer()
    for i in range(10):
        producer.send(decisions, b"{}", str(i).encode())
    producer.flush()
    producer.close()
    # The outcome joiner's group has consumed and committed 4 of the 10 decisions.
    joiner = log.consumer(names.outcomes_group(app.name), [decisions], reset="earliest")
    read: list = []
    deadline = time.monotonic() + 30
    while len(read) < 4:
        assert time.monotonic() < deadline, "the consumer read nothing"
        read += joiner.poll(4 - len(read), timeout=1.0)
    joiner.commit({read[3].topic_partition: read[3].offset + 1})
    joiner.close()
    board = Dashboard(log, app, sample_interval=0.2)
    try:
        client = TestClient(dashboard_app(board))
        deadline = time.monotonic() + 30
        while not (stage := _stage(client.get("/api/loop").json(), "Joiner"))["consumers"]:
            assert time.monotonic() < deadline, "the joiner's lag was not measured"
            time.sleep(0.2)
        lag = stage["consumers"][0]
        assert (lag["group"], lag["lag"]) == (names.outcomes_group(app.name), 6)
        assert lag["behind_seconds"] is not None and lag["behind_seconds"] >= 0
        page = client.get("/loop").text
        joiner_lag = re.search(r'data-lag="Joiner"[^>]*>([^<]*)<', page)
        assert joiner_lag is not None and joiner_lag.group(1) == "6"
        assert "behind" in page.split('data-stage="Joiner"', 1)[1].split('data-stage="', 1)[0]
        assert _stage(client.get("/api/loop").json(), "Monitor")["consumers"] == []  # not running
    finally:
        board.close()


def _stage(loop: dict, name: str) -> dict:
    return next(s for s in loop["stages"] if s["name"] == name)


def test_an_experiments_page_shows_its_report_computed_in_the_background(log) -> None:
    from experiments.simulated import simulate
    from loopline.experiments.report import report
    from loopline.experiments.report_data import Segment
    from loopline.experiments.report_html import segment_rows
    from loopline.models.declarations import Model

    sim = simulate(log, units=200, rate={"control": 0.2, "v2": 0.3}, novelty=0.3)
    app = App(sim.app, models=[Model(sim.experiment.model, trainer=object, entity="member")])
    board = Dashboard(log, app)
    try:
        client = TestClient(dashboard_app(board))
        page = client.get(f"/experiments/{sim.experiment.name}")
        assert page.status_code == 200 and "computing the report" in page.text
        live = f"/live/report/{sim.experiment.name}"
        deadline = time.monotonic() + 60
        while "computing the report" in (part := client.get(live).text):
            assert time.monotonic() < deadline, "the report was not computed"
            time.sleep(0.2)
        # the CLI's numbers and rows, drawn by the same code
        expected = report(log, sim.app, sim.experiment.name, [Segment.parse("page")])
        for row in segment_rows(expected):
            assert "".join(f"<td>{c}</td>" for c in row) in part
        assert len(segment_rows(expected)) == part.count("<tr>") - 1 >= 3  # home, profile, search
        assert f"{len(sim.decisions):,} decisions" in part
        chart = part.split('class="chart age"', 1)[1].split("</svg>", 1)[0]
        assert 'data-series="v2"' in chart and chart.count("<circle") >= 2
        assert client.get(f"/experiments/{sim.experiment.name}").text.count("<circle") >= 2
        assert client.get("/live/report/nope").status_code == 404
    finally:
        board.close()


def test_starting_an_experiment_from_the_page_checks_it_as_the_cli_does(log) -> None:
    from loopline.experiments.registry import ExperimentRegistry
    from loopline.models.declarations import Model

    model = f"ranker-{uuid.uuid4().hex[:8]}"
    app = App(
        f"shop-{uuid.uuid4().hex[:8]}", models=[Model(model, trainer=object, entity="member")]
    )
    board = Dashboard(log, app)
    token = "start-test-token-0123456789"
    try:
        client = TestClient(dashboard_app(board, token=token))
        bearer = {"Authorization": f"Bearer {token}"}
        client.get("/experiments", headers=bearer)  # this client's CSRF cookie
        csrf = client.cookies["loopline_csrf"]
        name = f"ab-{uuid.uuid4().hex[:8]}"
        form = {"csrf": csrf, "experiment": name, "model": model, "policy": "split",
                "arms": "control=alias:production\nv2=version:2", "weights": "0.9,0.1",
                "guardrails": "mean_label:0.1", "primary": "mean_label", "unit": "entity"}  # fmt: skip

        def start(headers=bearer, **changed: str):
            return client.post("/actions/start-experiment", data={**form, **changed},
                               headers=headers, follow_redirects=False)  # fmt: skip

        assert start(headers={}).status_code == 401  # the token is needed
        assert start(csrf="forged").status_code == 403
        bad_arm = start(arms="control=production:x\nv2=version:2")
        assert (
            bad_arm.status_code == 400 and "give NAME=version:N or NAME=alias:ALIAS" in bad_arm.text
        )
        weights = start(weights="0.5,0.6")
        assert weights.status_code == 400 and "add up to 1.1, not 1" in weights.text
        guard = start(guardrails="clicks:0.1")
        assert guard.status_code == 400 and "unknown metric &#x27;clicks&#x27;" in guard.text
        assert start(model="nope").status_code == 404
        done = start()
        assert done.status_code == 303 and done.headers["location"] == f"/experiments/{name}"
        registry = ExperimentRegistry(log)
        try:
            started = registry.get(name)
        finally:
            registry.close()
        assert (started.model, started.state, started.weights) == (
            model,
            "running",
            {"control": 0.9, "v2": 0.1},
        )
        assert [g.metric for g in started.guardrails] == ["mean_label"]
        second = start(experiment=f"other-{uuid.uuid4().hex[:8]}")
        assert second.status_code == 400
        assert (
            f"experiment &#x27;{name}&#x27; is running on model &#x27;{model}&#x27;: stop or "
            "conclude it first" in second.text
        )
        page = client.get("/experiments", headers=bearer).text
        assert 'action="/actions/start-experiment"' in page and f"/experiments/{name}" in page
    finally:
        board.close()
