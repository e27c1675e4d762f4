"""`loopline monitor APP` and `loopline alerts APP [--follow]` as a user runs them, on both backends."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from click.testing import CliRunner

from loopline.app import App
from loopline.cli import cli
from loopline.models.signing import SIGNING_KEY_ENV
from loopline.monitor.baselines import profiles_from
from loopline.monitor.task import Monitor
from monitor.helpers import MINUTE, T0, make_decisions, produce, training_profile
from monitor.test_monitor import publish_v1
from support import unique

APP = """
from loopline import App

app = App({name!r})
"""


def test_loopline_monitor_writes_windows_and_alerts_lists_them(
    log, log_url, tmp_path, monkeypatch
) -> None:
    name, module = unique("shop"), unique("shop_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(APP.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(SIGNING_KEY_ENV, "k" * 32)  # the key the versions were signed with
    models, model = publish_v1(log, training_profile())
    models.close()
    log.create_topic(f"{name}.decisions")
    broken = (T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    produce(log, f"{name}.decisions", make_decisions(3000, step=100, broken=broken, model=model))
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--log", log_url, "monitor", f"{module}:app", "--window", "1m", "--until-caught-up"]
    )
    assert result.exit_code == 0, result.output
    assert "read 3,000 decisions" in result.output or "read 3000 decisions" in result.output
    listed = runner.invoke(cli, ["--log", log_url, "alerts", f"{module}:app"])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "coverage_drop" in line]
    assert [line.split()[1] for line in lines] == ["opened", "opened", "resolved", "resolved"]
    assert f"{model}:1:a: x" in lines[0] or f"{model}:1:a: x" in lines[1]
    as_json = runner.invoke(cli, ["--log", log_url, "alerts", f"{module}:app", "--json"])
    first = json.loads(as_json.output.splitlines()[0])
    assert {"id", "state", "value", "baseline", "rows", "window", "start"} <= set(first)


def test_loopline_alerts_follow_prints_an_alert_as_it_opens_and_stops_on_ctrl_c(
    log, log_url, tmp_path
) -> None:
    name, module = unique("shop"), unique("shop_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(APP.format(name=name))
    models, model = publish_v1(log, training_profile())
    monitor = Monitor(
        log, App(name), profiles_from(models), windows=["1m"], clock=lambda: T0 + 60 * MINUTE
    )  # the monitor creates the alerts topic
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    follow = subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", log_url, "alerts", f"{module}:app", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in follow.stdout], daemon=True).start()
    try:
        time.sleep(2)  # following, with nothing to print yet
        assert follow.poll() is None and lines.empty(), follow.stderr.read()
        broken = (T0 + 2 * MINUTE, T0 + 3 * MINUTE)
        produce(
            log, monitor.decisions_topic, make_decisions(1800, step=100, broken=broken, model=model)
        )
        monitor.run(until_caught_up=True)
        line = lines.get(timeout=30)
        assert line.split()[1:3] == ["opened", "coverage_drop"] and f"{model}:1:" in line, line
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=20)
    finally:
        monitor.close()
        models.close()
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert "Traceback" not in err, err
