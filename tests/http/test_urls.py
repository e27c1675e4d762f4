"""Credentials in URLs are never printed; an unreachable registry is one line, not a traceback."""

from __future__ import annotations

import pytest
from servers import free_port, run_loopline

from loopline.contracts import ContractNotFound, LogRegistry
from loopline.contracts.external import ConfluentRegistry
from loopline.contracts.registry_http import create_registry_app
from loopline.http.server import running
from loopline.log import open_log

PASSWORD = "pa55-w0rd-nobody-sees"


@pytest.mark.parametrize("command", [["contracts", "list"], ["topics", "list"]])
def test_an_unreachable_registry_is_one_line_without_the_password(tmp_path, command) -> None:
    url = f"http://admin:{PASSWORD}@127.0.0.1:{free_port()}/"
    open_log(f"embedded:{tmp_path / 'log'}").close()  # reading commands refuse a missing log
    done = run_loopline(
        "--log", f"embedded:{tmp_path / 'log'}", "--schema-registry", url, *command, timeout=60
    )
    if command[0] == "topics":  # needs no registry: works
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "cannot reach the schema registry at http://admin:***@127.0.0.1:" in line
    assert PASSWORD not in done.stderr + done.stdout


def test_registry_errors_show_the_url_without_the_password(tmp_path) -> None:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    registry = LogRegistry(log)
    with running(create_registry_app(registry)) as url:
        external = ConfluentRegistry(url.replace("http://", f"http://admin:{PASSWORD}@"))
        with pytest.raises(ContractNotFound) as raised:
            external.latest("missing")
        external.close()
    assert PASSWORD not in str(raised.value)
    assert "admin:***@" in str(raised.value)
    assert PASSWORD not in repr(external.url)
    registry.close()
    log.close()


@pytest.mark.parametrize(
    "log_url", [f"kafka://admin:{PASSWORD}@127.0.0.1:9092", f"http://admin:{PASSWORD}@host/log"]
)
def test_a_log_url_with_credentials_is_refused_without_echoing_them(log_url) -> None:
    done = run_loopline("--log", log_url, "topics", "list", timeout=60)
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "credentials" in line or "unknown log URL" in line
    assert PASSWORD not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
