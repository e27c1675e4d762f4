"""A running experiment on a real server, on both backends: answers from each arm, then stop.

The experiment is started and stopped as a user does it (`loopline experiments`
on the same log); the server is the service over HTTP on a port, following
the experiments topic with `ExperimentRouter` as ``loopline serve`` does.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
import msgspec
import pytest
from click.testing import CliRunner
from river import linear_model

from loopline.cli import cli
from loopline.experiments.records import Arm, Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.router import ExperimentRouter
from loopline.experiments.watcher import ExperimentWatcher
from loopline.models.trainers import RiverTrainer
from serving.helpers import KEY, MEMBERS, decisions, fit, make_shop, publish, serving, wait_ready
from support import unique

UNITS = [f"u-{i}" for i in range(200)]  # scored on defaults: unknown entities are allowed here


class Failing(linear_model.LogisticRegression):
    """A user's River model that raises once `failing` is set (a dependency gone, say)."""

    failing = False

    def predict_proba_one(self, x):
        if Failing.failing:
            raise RuntimeError("the embedding service is gone")
        return super().predict_proba_one(x)


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


@pytest.fixture
def router(shop):
    registry = ExperimentRegistry(shop.log)
    router = ExperimentRouter(registry, shop.scorer)
    yield router
    router.close()
    registry.close()


def experiments(log_url: str, *args: str) -> str:
    done = CliRunner().invoke(cli, ["--log", log_url, "experiments", *args])
    assert done.exit_code == 0, done.output
    return done.output


def answer_all(client: httpx.Client) -> dict[str, int]:
    """The version that answered each unit."""
    out = {}
    for unit in UNITS:
        answer = client.post("/v1/predict", json={"entity": unit})
        assert answer.status_code == 200, answer.text
        out[unit] = answer.json()["version"]
    return out


def test_a_running_experiment_answers_from_each_arm_and_stop_returns_all_within_a_second(
    shop, router, log_url, tmp_path
) -> None:
    publish(shop, shop.scorer, fit(["age"]))  # v1, production
    treatment = fit(["age"], flip=True)
    data, format = treatment.save()
    shop.models.publish(shop.scorer, data, format=format, trainer="t", features=[("age", "float")])
    name = unique("flip")
    with serving(shop, shop.scorer, tmp_path, router=router, unknown_entities="defaults") as (
        client,
        service,
    ):
        wait_ready(client)
        assert set(answer_all(client).values()) == {1}  # no experiment: as today
        experiments(
            log_url, "start", name, "--model", shop.scorer,
            "--arm", "control=alias:production", "--arm", "flipped=version:2",
            "--weights", "0.5,0.5",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while service.routes.routing is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/readyz").json()["experiment"] == name
        during = answer_all(client)
        assert answer_all(client) == during  # sticky: each unit keeps its arm
        experiments(log_url, "stop", name, "--reason", "enough")
        stopped = time.monotonic()
        while service.routes.routing is not None and time.monotonic() - stopped < 5:
            time.sleep(0.01)
        back_after = time.monotonic() - stopped
        after = answer_all(client)
        metrics = client.get("/metrics").text
        recorded = decisions(shop.log, service, 4 * len(UNITS))
    assert back_after < 1.0, f"traffic back to the alias after {back_after:.2f} s"
    assert set(after.values()) == {1}
    shares = Counter(during.values())
    assert set(shares) == {1, 2} and 60 <= shares[2] <= 140, shares
    by_id = {d["decision_id"]: d for d in recorded}
    arms = {(d["experiment"], d["arm"], d["arm_probability"], d["model_version"]) for d in recorded}
    assert arms == {("", "", 1.0, 1), (name, "control", 0.5, 1), (name, "flipped", 0.5, 2)}
    assert len(by_id) == 4 * len(UNITS)
    counted = f'loopline_serving_experiment_requests_total{{app="{shop.app.name}",arm="flipped",'
    counted += f'experiment="{name}",model="{shop.scorer}"}} {shares[2] * 2}.0'
    assert counted in metrics


def test_an_experiment_whose_version_cannot_load_routes_nothing_here(
    shop, router, log_url, tmp_path
) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    name = unique("missing")
    with serving(shop, shop.scorer, tmp_path, router=router, unknown_entities="defaults") as (
        client,
        service,
    ):
        wait_ready(client)
        experiments(
            log_url, "start", name, "--model", shop.scorer,
            "--arm", "control=alias:production", "--arm", "v9=version:9",
        )  # fmt: skip
        deadline = time.monotonic() + 2
        while service.arms.waiting is None and time.monotonic() < deadline:
            time.sleep(0.05)
        answered = answer_all(client)
        recorded = decisions(shop.log, service, len(UNITS))
    assert "no version 9" in service.arms.waiting
    assert set(answered.values()) == {1}
    assert {(d["experiment"], d["arm"]) for d in recorded} == {("", "")}  # no arm claimed


def test_ramping_a_running_split_moves_no_unit_out_of_treatment(shop, router, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    data, format = fit(["age"], flip=True).save()
    shop.models.publish(shop.scorer, data, format=format, trainer="t", features=[("age", "float")])
    registry = router.registry
    arms = (Arm("control", alias="production", control=True), Arm("flipped", version=2))
    name = unique("ramp")
    with serving(shop, shop.scorer, tmp_path, router=router, unknown_entities="defaults") as (
        client,
        service,
    ):
        wait_ready(client)
        treated = []
        for share in (0.1, 0.25, 0.5):
            weights = {"control": 1 - share, "flipped": share}
            if share == 0.1:
                weighted = tuple(msgspec.structs.replace(a, weight=weights[a.name]) for a in arms)
                spec = Experiment(name=name, model=shop.scorer, arms=weighted)
                revision = registry.start(spec).revision
            else:
                revision = registry.set_weights(name, weights, reason=f"ramp {share}").revision
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not (
                service.routes.routing is not None
                and service.routes.routing.routes.revision == revision
            ):
                time.sleep(0.02)
            treated.append({unit for unit, version in answer_all(client).items() if version == 2})
    assert treated[0] <= treated[1] <= treated[2]  # no treated unit went back to control
    assert 5 <= len(treated[0]) < len(treated[1]) < len(treated[2]) <= 140, [
        len(t) for t in treated
    ]


def test_a_request_without_the_unit_field_goes_to_control_with_probability_one(
    shop, router, log_url, tmp_path
) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    data, format = fit(["age"], flip=True).save()
    shop.models.publish(shop.scorer, data, format=format, trainer="t", features=[("age", "float")])
    name = unique("by-user")
    with serving(shop, shop.scorer, tmp_path, router=router) as (client, service):
        wait_ready(client)
        experiments(
            log_url, "start", name, "--model", shop.scorer, "--unit", "context.user",
            "--arm", "control=alias:production", "--arm", "flipped=version:2",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while service.routes.routing is None and time.monotonic() < deadline:
            time.sleep(0.05)
        anonymous = [client.post("/v1/predict", json={"entity": m}).json() for m in MEMBERS]
        recorded = decisions(shop.log, service, len(MEMBERS))
    assert {a["version"] for a in anonymous} == {1}
    assert {(d["experiment"], d["arm"], d["arm_probability"]) for d in recorded} == {
        (name, "control", 1.0)
    }
    assert service.routes.routing.routes.missing_unit == len(MEMBERS)


def test_requests_a_version_fails_are_decisions_with_their_error_and_roll_it_back(
    shop, router, log_url, tmp_path, monkeypatch
) -> None:
    """A treatment that starts raising on every request: its 500s are recorded per arm, and
    the watcher's error_rate guardrail rolls the experiment back."""
    publish(shop, shop.scorer, fit(["age"]))  # v1, production
    treatment = RiverTrainer(Failing())
    for age in (20.0, 40.0, 60.0):
        treatment.learn_one({"age": age}, age > 30)
    data, format = treatment.save()
    shop.models.publish(shop.scorer, data, format=format, trainer="t", features=[("age", "float")])
    name = unique("failing")
    with serving(shop, shop.scorer, tmp_path, router=router, unknown_entities="defaults") as (
        client,
        service,
    ):
        wait_ready(client)
        experiments(
            log_url, "start", name, "--model", shop.scorer,
            "--arm", "control=alias:production", "--arm", "broken=version:2",
            "--weights", "0.5,0.5", "--guardrail", "error_rate:0",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while service.routes.routing is None and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setattr(
            Failing, "failing", True
        )  # loaded and checked; now the model's dependency is gone
        answers = [client.post("/v1/predict", json={"entity": unit}) for unit in UNITS]
        recorded = decisions(shop.log, service, len(UNITS))
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) == {200, 500} and min(statuses.values()) >= 60, statuses
    assert all("failed to score" in a.json()["error"] for a in answers if a.status_code == 500)
    failed = [d for d in recorded if d["error"]]
    assert len(recorded) == len(UNITS) and len(failed) == statuses[500]
    assert {(d["arm"], d["model_version"]) for d in failed} == {("broken", 2)}
    assert all(d["candidates"] == d["returned"] == [] for d in failed)
    assert all(d["error"].startswith("500: model") for d in failed), failed[0]["error"]

    watcher = ExperimentWatcher(shop.log, shop.app, interval=0)
    try:
        stats = watcher.run_until_caught_up()
    finally:
        watcher.close()
    assert stats.decisions == len(UNITS) and stats.rollbacks == 1, stats
    registry = ExperimentRegistry(shop.log)
    try:
        after = registry.get(name)
    finally:
        registry.close()
    assert after.state == "rolled_back", after
    assert (after.verdict.metric, after.verdict.arm) == ("error_rate", "broken"), after.verdict
    assert after.verdict.low > 0 and 60 <= after.verdict.units <= len(UNITS), after.verdict
