"""The dashboard in a real browser (headless Debian Chromium via Playwright) while a demo runs.

One demo per backend (embedded log, the Kafka broker) serves every test of
this module: pages load with no console error, no failed request and no
request to another host; charts are drawn with their series; the Loop page
moves by itself; promoting on the Models page moves the alias on the log;
a dashboard with a token refuses requests without it. Screenshots of every
page at 1280x800 (and, on the embedded log, 390 px wide: that layout does not
depend on the log) go to a directory the tests print.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import BACKENDS, kafka_url
from dashboard.browser import TOKEN, DemoRun, Watched, wait_until
from loopline.experiments.registry import ExperimentRegistry
from loopline.log import open_log
from loopline.models import ModelRegistry
from support import selected

R = TypeVar("R", bound=Any)

pytestmark = pytest.mark.slow

PAGES = ["loop", "models", "experiments", "features", "alerts", "topics"]
SIZES = ((1280, 800, "1280x800"), (390, 844, "390"))
MAX_PAGE_BYTES = 300_000


@pytest.fixture(scope="module")
def demos(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[dict[str, DemoRun]]:
    """A demo per backend the selected tests use, all started at once: each test's first
    wait (for versions, canaries and monitor windows) then overlaps the other backend's."""
    wanted = sorted(selected(request, "run"))
    runs: dict[str, DemoRun] = {}
    try:
        for backend in wanted:
            if backend == "kafka":
                url = kafka_url()
            else:
                url = f"embedded:{tmp_path_factory.mktemp('dashboard') / 'log'}"
            runs[backend] = DemoRun(url).start()
        yield runs
    finally:
        for demo in runs.values():
            demo.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def run(request: pytest.FixtureRequest, demos: dict[str, DemoRun]) -> Iterator[DemoRun]:
    demo = demos[request.param]
    try:
        yield demo
    finally:
        demo.stop()  # its tests are done: the other backend's demo goes on alone


@pytest.fixture(scope="module")
def shots() -> Path:
    # Outside pytest's own temporary directories, which it prunes after three runs.
    root = Path(os.environ.get("LOOPLINE_TEST_ARTIFACTS") or tempfile.gettempdir())
    where = root / "loopline-dashboard-screenshots"
    where.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots in {where}")
    return where


def _series(page) -> set[str]:
    return set(page.eval_on_selector_all(
        "svg.chart .series", "els => els.map(e => e.getAttribute('data-series'))"
    ))  # fmt: skip


def _drawn(page, name: str) -> bool:
    """A series whose name starts with `name`, with a non-empty path or bars."""
    return page.evaluate(
        """name => [...document.querySelectorAll('svg.chart .series')].some(e =>
            e.getAttribute('data-series').startsWith(name) &&
            ((e.getAttribute('d') || '').length > 10 || e.querySelectorAll('rect').length > 0))""",
        name,
    )


def _lags(page) -> dict[str, str]:
    """The lag shown per stage of the Loop page (the live part redraws every 2 s)."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-lag]')]
            .map(e => [e.getAttribute('data-lag'), e.textContent]))"""
    )


def _wait_lags(page, stages: set[str], timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while not stages <= set(lagged := _lags(page)):
        assert time.monotonic() < deadline, f"no lag shown for {stages - set(lagged)}"
        page.wait_for_timeout(1000)
    return lagged


def _wait_drawn(page, series: str, name: str, timeout: float = 30) -> None:
    """Reload `page` until its chart draws `series` (the monitor's windows take seconds)."""
    deadline = time.monotonic() + timeout
    while not _drawn(page, series):
        assert time.monotonic() < deadline, (
            f"series {series!r} on the {name} page was not drawn (has {_series(page)})"
        )
        page.wait_for_timeout(2000)
        page.reload()


def test_every_page_loads_cleanly_and_draws_its_charts(run: DemoRun, browser, shots) -> None:
    # Versions are trained and canaried from the demo's 15th second; wait for the first one.
    wait_until(
        lambda: httpx.get(f"{run.base}/experiments").text.count("/experiments/demo-") > 0,
        90,
        "an experiment on the demo's model",
    )
    wait_until(lambda: "served" in httpx.get(f"{run.base}/features").text, 60, "monitor windows")
    experiment = httpx.get(f"{run.base}/api/loop").json()["app"]
    assert experiment == run.app
    expected = {
        "loop": ["decisions/s", "outcomes/s"],
        "models": ["production", "v1"],
        "features": ["served v"],
        "experiments": ["production"],
    }
    backend = "kafka" if run.log_url.startswith("kafka") else "embedded"
    # The narrow layout is the same HTML whatever the log: checked once, on the embedded one.
    sizes = SIZES if backend == "embedded" else SIZES[:1]
    for width, height, size in sizes:
        watched = Watched(browser, width, height)
        try:
            links = []
            for name in PAGES:
                response = watched.page.goto(f"{run.base}/{name}")
                assert response is not None and response.status == 200, name
                watched.page.wait_for_load_state("networkidle")
                for series in expected.get(name, []):
                    _wait_drawn(watched.page, series, name)
                assert watched.weight() < MAX_PAGE_BYTES, name
                _fits(watched.page, name, size)
                if name == "loop":
                    # each consumer of the demo shows its lag (records) and freshness
                    lagged = _wait_lags(
                        watched.page, {"Features", "Joiner", "Experiments", "Monitor"}
                    )
                    assert all(v.replace(",", "").isdigit() for v in lagged.values()), lagged
                watched.page.screenshot(
                    path=str(shots / f"{backend}-{name}-{size}.png"),
                    full_page=name in ("loop", "experiments"),
                )
                if name == "experiments":
                    links = watched.page.eval_on_selector_all(
                        "a[href^='/experiments/']", "els => els.map(e => e.getAttribute('href'))"
                    )
            assert links, "the experiments page lists the demo's canaries"
            watched.page.goto(f"{run.base}{links[-1]}")  # the oldest: it has the most windows
            assert {"traffic share per arm", "mean label (acceptance) per arm"} <= set(
                watched.page.eval_on_selector_all(
                    "svg.chart title", "els => els.map(e => e.textContent)"
                )
            )
            # the report, computed in the background: its segment table and lift by exposure age
            watched.page.wait_for_function(
                """() => document.querySelectorAll('.report .segments tbody tr').length > 0
                    && document.querySelectorAll('.report svg.chart.age .series circle').length > 0""",
                timeout=90_000,
            )
            _fits(watched.page, "an experiment's page", size)
            watched.page.screenshot(
                path=str(shots / f"{backend}-experiment-{size}.png"), full_page=True
            )
            # each page's own requests (its icon, a live part) end before the next navigation,
            # which would abort them (a request failed, for the browser)
            watched.page.wait_for_load_state("networkidle")
            watched.page.goto(f"{run.base}/topics/{run.app}.decisions")
            assert "Newest records" in watched.page.content()
            watched.page.wait_for_load_state("networkidle")
            watched.page.goto(f"{run.base}/models/{run.model}/1")
            assert "Training data" in watched.page.content()
            watched.page.wait_for_timeout(2500)  # a round of live refreshes, too
        finally:
            watched.close()
        assert watched.errors == [], watched.errors
        assert watched.failed == [], watched.failed
        server = urlsplit(run.base).netloc
        assert {urlsplit(u).netloc for u in watched.urls} == {server}


def _fits(page, name: str, size: str) -> None:
    """Nothing on the page is wider than the screen: a wide table scrolls in its own box."""
    wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"{name} at {size}: the page is {wide} px wider than the screen"


def test_a_number_on_the_loop_page_changes_within_5_s(run: DemoRun, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{run.base}/loop")
        stage = "[data-stage='Serving']"
        before = watched.page.inner_text(stage)
        watched.page.wait_for_function(
            "([sel, text]) => document.querySelector(sel).innerText !== text",
            arg=[stage, before],
            timeout=5000,
        )
    finally:
        watched.close()
    assert watched.errors == [] and watched.failed == []


@contextlib.contextmanager
def read_back(run: DemoRun, registry: type[R]) -> Iterator[R]:
    """A `registry` (models, experiments) of the run's log, opened apart from the demo's."""
    log = open_log(run.log_url)
    try:
        opened = registry(log)
        try:
            yield opened
        finally:
            opened.close()
    finally:
        log.close()


def test_promoting_on_the_models_page_moves_the_alias_on_the_log(run: DemoRun, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{run.base}/models")
        form = watched.page.locator("form[action='/actions/promote']").first
        form.locator("select[name=version]").select_option("1")
        form.locator("input[name=alias]").fill("staging")
        form.locator("input[name=reason]").fill("from the dashboard test")
        form.locator("button").click()
        watched.page.wait_for_selector(".notice")
        notice = watched.page.inner_text(".notice")
    finally:
        watched.close()
    assert "alias 'staging' now points at v1" in notice
    with read_back(run, ModelRegistry) as registry:
        assert registry.aliases(run.model)["staging"] == 1
        moved = registry.alias_history(run.model, "staging")[-1]
        assert moved.reason == "from the dashboard test"
        assert moved.key_id is not None  # signed with the run's key: its serving follows it


def test_a_bad_experiment_form_is_refused_with_the_clis_message(run: DemoRun, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{run.base}/experiments")
        form = watched.page.locator("form[action='/actions/start-experiment']")
        form.locator("input[name=experiment]").fill("from-the-page")
        form.locator("textarea[name=arms]").fill("control=alias:production\nv2=7.5")
        form.locator("button").click()
        watched.page.wait_for_load_state()
        refusal = watched.page.inner_text("main")
    finally:
        watched.close()
    assert "give NAME=version:N or NAME=alias:ALIAS" in refusal
    with read_back(run, ExperimentRegistry) as registry:
        assert "from-the-page" not in {e.name for e in registry.list()}


def test_a_dashboard_with_a_token_refuses_requests_without_it(run: DemoRun, browser) -> None:
    base = run.token_base
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{base}/loop").status_code == 401
    assert httpx.get(f"{base}/api/loop").status_code == 401
    assert (
        httpx.get(
            f"{base}/loop", headers={"Authorization": "Bearer wrong-token-0123456789"}
        ).status_code
        == 401
    )
    form = {"model": run.model, "version": "1", "alias": "refused", "csrf": "x"}
    assert httpx.post(f"{base}/actions/promote", data=form).status_code == 401
    start = {"experiment": "refused", "model": run.model, "arms": "c=alias:production\nt=1"}
    assert httpx.post(f"{base}/actions/start-experiment", data=start).status_code == 401
    assert httpx.get(f"{base}/api/loop", headers=bearer).json()["app"] == run.app
    # With the token but without this browser's CSRF cookie: refused too.
    assert httpx.post(f"{base}/actions/promote", data=form, headers=bearer).status_code == 403
    assert "refused" not in httpx.get(f"{base}/api/models", headers=bearer).json()[run.model]

    watched = Watched(browser)
    try:
        watched.page.goto(f"{base}/models")
        assert watched.page.locator("input[name=token]").count() == 1  # the sign-in form
        watched.page.fill("input[name=token]", TOKEN)
        watched.page.click("form[action='/login'] button")
        watched.page.wait_for_url(f"{base}/models")
        assert watched.page.locator("form[action='/actions/promote']").count() == 1
    finally:
        watched.close()


def test_unknown_names_in_urls_are_404_pages_and_actions_check_their_input(run: DemoRun) -> None:
    for path in (
        "/models/nope", f"/models/{run.model}/999", f"/models/{run.model}/abc",
        "/experiments/nope", "/topics/nope", f"/topics/{run.app}.nope", "/nope",
    ):  # fmt: skip
        response = httpx.get(f"{run.base}{path}")
        assert response.status_code == 404, path
        assert "<html" in response.text and "Traceback" not in response.text
    with httpx.Client(base_url=run.base) as client:
        client.get("/models")  # this client's CSRF cookie
        csrf = client.cookies["loopline_csrf"]

        def promote(**form: str) -> httpx.Response:
            return client.post("/actions/promote", data={"csrf": csrf, **form})

        bad = promote(model=run.model, version="abc", alias="staging")
        assert bad.status_code == 400 and "is not a whole number" in bad.text
        unknown = promote(model="nope", version="1", alias="staging")
        assert unknown.status_code == 404 and "no model named" in unknown.text
        alias = promote(model=run.model, version="1", alias="no spaces allowed")
        assert alias.status_code == 400
        missing = client.post("/actions/stop-experiment", data={"csrf": csrf, "experiment": "x"})
        assert missing.status_code == 400 and "reason" in missing.text
