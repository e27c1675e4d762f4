"""`loopline cdc remove` while `loopline cdc run` follows the table: the run stops, saying why.

Removing a capture drops its replication slot; a connector still running
read a slot that was gone and died with psycopg's traceback
(`UndefinedObject: replication slot ... does not exist`). It must end
cleanly instead (exit 0, no traceback), saying the capture was removed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

from click.testing import CliRunner

from cdc.tables import topic_state
from loopline.cli import cli
from loopline.log import TopicNotFound
from support import read_all


def test_removing_a_running_capture_stops_its_run_cleanly(log, log_url, members):
    members.insert(20)
    cdc = ["--log", log_url, "cdc"]
    added = CliRunner().invoke(
        cli, [*cdc, "add", members.table, members.url, "--table", members.table]
    )
    assert added.exit_code == 0, added.output
    run = subprocess.Popen(
        [sys.executable, "-m", "loopline", *cdc, "run", members.table],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        topic = members.source.topic
        deadline, copied = time.monotonic() + 60, {}
        while len(copied) < 20:
            with contextlib.suppress(TopicNotFound):
                copied = topic_state(read_all(log, topic))
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the snapshot did not reach the topic in 60 s"
            time.sleep(0.2)
        removed = CliRunner().invoke(cli, [*cdc, "remove", members.table])
        assert removed.exit_code == 0, removed.output
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert "Traceback" not in err, err
    assert "removed" in out + err and "stopped" in out + err, out + err
