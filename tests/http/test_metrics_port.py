"""``--metrics-port`` of a long-running stage is a loopline HTTP server like the others."""

from __future__ import annotations

import os

import httpx
from servers import SRC, cli_server, free_port

from loopline.log import open_log

APP_MODULE = """
from loopline.app import App
from loopline.features import Entity, FeatureSet, Table, TableFeature

app = App("metricshop", features=FeatureSet(tables=[
    Table("profiles", Entity("member", "member_id"), [TableFeature("age", "age", default=30)])
]))
"""


def test_features_run_serves_metrics_through_loopline_http(tmp_path) -> None:
    (tmp_path / "metricshop.py").write_text(APP_MODULE)
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("profiles")
    log.close()
    port = free_port()
    args = ["--log", f"embedded:{tmp_path / 'log'}", "features", "run", "metricshop:app"]
    env = {"PYTHONPATH": SRC + os.pathsep + str(tmp_path)}
    with cli_server(*args, "--metrics-port", str(port), port=port, env=env, ready="/metrics") as (
        url,
        _,
    ):
        text = httpx.get(url + "/metrics").text
        # loopline's own request metrics: the server is loopline.http's, not prometheus-client's
        assert "loopline_http_requests_total" in text
        assert httpx.get(url + "/nothing").status_code == 404
