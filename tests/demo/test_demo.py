"""`loopline demo`: the simulation, and the whole loop as a newcomer runs it (smoke tests).

The smoke tests run the real command in subprocesses (all at once) for 50 s, on the embedded
log and on the Kafka broker, and read what it printed: decisions logged,
labelled examples, a learned version published and serving, the summary, and
no alert from the monitor on this clean run. They do not ask the learned model
to win: 50 s is too short to promise it.

The seed's story (issue 15): with --break-feature the profile pipeline
breaks a feature for 40% of the members, and the monitor must open a coverage
alert naming it within 60 s of traffic after the break, on both backends.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from loopline.cli import cli
from loopline.demo.network import Network
from loopline.demo.stats import DemoStats, VersionStats
from loopline.demo.traffic import history
from loopline.demo.view import verdict
from loopline.log import open_log
from support import selected

# -- the simulation ------------------------------------------------------------------------


def _pairs(network: Network, same: str) -> tuple[list[float], list[float]]:
    """Acceptance of pairs that agree on `same` and of pairs that do not."""
    alike, unlike = [], []
    for a in network.ids()[:40]:
        for b in network.ids()[40:200]:
            agree = getattr(network[a], same) == getattr(network[b], same)
            (alike if agree else unlike).append(network.acceptance(a, b))
    return alike, unlike


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_acceptance_follows_the_hidden_factors() -> None:
    network = Network(members=400, seed=3)
    industry, other_industry = _pairs(network, "industry")
    assert _mean(industry) > 3 * _mean(other_industry)
    city, other_city = _pairs(network, "city")
    assert _mean(city) > 1.2 * _mean(other_city)
    # Sociability is never shown, yet a sociable candidate is accepted more often.
    by_sociability = sorted(network.members, key=lambda m: m.sociability)
    shy, sociable = by_sociability[:50], by_sociability[-50:]
    a = network.ids()[0]
    assert _mean([network.acceptance(a, m.member_id) for m in sociable if m.member_id != a]) > (
        3 * _mean([network.acceptance(a, m.member_id) for m in shy if m.member_id != a])
    )
    assert all("sociability" not in profile for profile in network.profiles())


def test_sociable_members_are_more_active() -> None:
    network = Network(members=200, seed=5)
    events = Counter(e["member_id"] for e in history(network, random.Random(1), 300, 100, now_ms=0))
    by_sociability = sorted(network.members, key=lambda m: m.sociability)
    shy, sociable = by_sociability[:40], by_sociability[-40:]
    assert sum(events[m.member_id] for m in sociable) > 5 * sum(events[m.member_id] for m in shy)


def test_the_simulation_is_reproducible_with_a_seed() -> None:
    assert Network(seed=3).profiles() == Network(seed=3).profiles()
    assert Network(seed=3).profiles() != Network(seed=4).profiles()
    assert Network(seed=3).acceptance("m-1", "m-2") == Network(seed=3).acceptance("m-1", "m-2")
    runs = [list(history(Network(seed=3), random.Random(9), 5, 20, now_ms=10_000)) for _ in "ab"]
    assert runs[0] == runs[1]


def test_the_verdict_names_the_heuristic_by_its_version() -> None:
    stats = DemoStats("demo-1", "kafka://x", 60.0, heuristic=5)
    stats.versions = {5: VersionStats(5, 100, 300, 45), 6: VersionStats(6, 100, 300, 30, 20.0)}
    assert verdict(stats).startswith("the learned model (v6) does not beat the starting heuristic")
    assert "(v5)" in verdict(stats)


def test_demo_help_shows_the_options_and_examples() -> None:
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    for text in ("--duration", "--log", "--seed", "--no-live", "loopline demo --duration 60"):
        assert text in result.output


# -- the whole loop ------------------------------------------------------------------------

DURATION = 50
BAD_MODEL_AT = 3  # before the first retraining: the broken version's canary starts at once


def _command(*args: str, duration: int = DURATION, demo: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "loopline",
        *args,
        "demo",
        "--duration",
        str(duration),
        "--bad-model-at",
        str(BAD_MODEL_AT),
        "--no-live",
        *demo,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


class _Run:
    """One `loopline demo` subprocess, started now."""

    def __init__(self, *args: str, demo: tuple[str, ...] = (), duration: int = DURATION):
        self.duration, self.started = duration, time.monotonic()
        self.process = subprocess.Popen(
            _command(*args, duration=duration, demo=demo),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.out: str | None = None

    def output(self) -> str:
        """What it printed; it ran to the end, in time."""
        if self.out is None:
            out, err = self.process.communicate(timeout=240)
            took = time.monotonic() - self.started
            assert self.process.returncode == 0, out[-3000:] + err[-3000:]
            # Start-up (the processor catches up two minutes of activity history) and shutdown.
            assert took < self.duration + 60, f"the demo took {took:.0f} s\n{out}"
            self.out = out
        return self.out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def _figure(name: str, out: str) -> int:
    found = re.search(rf"{name}\s+([\d,]+)", out)
    assert found, f"no {name!r} in:\n{out}"
    return int(found.group(1).replace(",", ""))


def _check(out: str) -> None:
    assert _figure("decisions logged", out) > 200, out
    assert _figure("labelled examples", out) > 200, out
    # the deliberately broken version (v2) is rolled back by its canary's guardrail before
    # its ramp reaches 50%, and never becomes production
    broken = re.search(
        r"the deliberately broken v2 was rolled back by its guardrail; it reached ([\d,]+)\s+"
        r"members \(([\d.]+)% of requests\)",
        out,
    )
    assert broken, out
    assert int(broken.group(1).replace(",", "")) > 0 and float(broken.group(2)) < 20.0, out
    assert "v2 (deliberately broken) ramps to 50%" not in out, out
    assert not re.search(r"model in production\s+demo-[0-9a-f]{8}\.pymk v2\b", out), out
    # learned versions are published, and one enters a canary of its own (answering requests)
    assert re.search(r"v([3-9]) trained on [\d,]+ examples", out), out
    assert re.search(r"│\s+v[3-9] │\s+\d+s │\s+[1-9]", out), out
    assert "the starting heuristic (v1)" in out or "run longer" in out, out
    assert "(0 failed)" in out, out
    # a clean run: the monitor watched it and opened no alert
    assert "alerts open: none" in out and " opened " not in out, out


BREAK_AT = 15
KAFKA = f"kafka://{os.environ.get('LOOPLINE_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}"
BACKEND_ARGS = {"embedded": (), "kafka": ("--log", KAFKA)}
CLEAN, BROKEN = "test_loopline_demo_runs_clean", "test_a_feature_broken_upstream_opens_an_alert"


@pytest.fixture(scope="module")
def demos(request) -> Iterator[dict[tuple[str, str], _Run]]:
    """The demo runs this module's selected tests read, all started at once: a run waits
    on the clock (about 10 s of CPU in 50 s), so four side by side take the time of one."""
    wanted = selected(request, "backend", (CLEAN, BROKEN))
    runs = {}
    for test, backend in sorted(wanted):
        if test == CLEAN:
            runs[test, backend] = _Run(*BACKEND_ARGS[backend])
        else:
            runs[test, backend] = _Run(
                *BACKEND_ARGS[backend],
                demo=("--break-feature", "same_industry", "--at", str(BREAK_AT)),
                duration=BREAK_AT + 30,
            )
    yield runs
    for (_, backend), run in runs.items():
        run.stop()
        if backend == "kafka" and run.out and (app := _application(run.out)):
            _delete_topics(KAFKA, app)


def _application(out: str) -> str | None:
    found = re.search(r"application (demo-[0-9a-f]{8})", out)
    return found.group(1) if found else None


@pytest.mark.parametrize("backend", ["embedded", "kafka"])
def test_loopline_demo_runs_clean(demos, backend: str) -> None:
    """The whole loop, as a newcomer runs it, on the embedded log and on Kafka."""
    out = demos[CLEAN, backend].output()
    _check(out)
    if backend == "kafka":
        assert "stay on kafka://" in out, out


def _caught(out: str) -> float:
    """The seconds from the pipeline bug to the coverage alert naming its feature."""
    assert "pipeline bug: 160 members' profiles lose 'industry'" in out, out
    caught = re.search(
        r"the pipeline bug broke same_industry; the monitor opened a coverage alert naming it "
        r"([\d.]+) s later \(its window ended ([\d.]+) s after the bug\)",
        out,
    )
    assert caught, out
    # no alert before the bug, and the one it opened names the feature
    assert re.search(r"\d+s  opened coverage_drop same_industry of demo-", out), out
    before = out.split("pipeline bug:")[0]
    assert " opened " not in before, out
    delay = float(caught.group(1))
    assert delay <= 60.0, out
    print(f"alert {delay:.1f} s after the bug (window end +{caught.group(2)} s)")
    return delay


@pytest.mark.parametrize("backend", ["embedded", "kafka"])
def test_a_feature_broken_upstream_opens_an_alert(demos, backend: str) -> None:
    """The seed's story: a coverage alert naming the feature within a minute of the bug."""
    _caught(demos[BROKEN, backend].output())


def test_the_demo_refuses_a_feature_it_cannot_break() -> None:
    result = CliRunner().invoke(cli, ["demo", "--break-feature", "c_activity"])
    assert result.exit_code == 2, result.output
    assert "cannot break 'c_activity'" in result.output and "same_industry" in result.output


def _delete_topics(url: str, app: str) -> None:
    """The run's topics, so that test runs do not pile up on a shared broker."""
    log = open_log(url)
    try:
        for topic in log.list_topics():
            if topic.startswith(f"{app}.") or topic.startswith(f"{app}-"):
                with contextlib.suppress(Exception):
                    log.delete_topic(topic)
    finally:
        log.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_stops_the_demo_early_and_still_shows_the_summary() -> None:
    demo = subprocess.Popen(
        _command(duration=120),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # wait until the simulated business runs
            if line.startswith("application demo-"):
                break
        time.sleep(2)
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, out + err
    assert "stopped early, after" in out, out
    assert _figure("decisions logged", out) > 0, out
