"""Slow and greedy clients against every loopline HTTP server: half-sent heads and bodies, too
many connections. Real servers on 127.0.0.1 ports, real sockets."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from loopline.app import App
from loopline.connectors.http import create_app as ingest_app
from loopline.contracts import LogRegistry
from loopline.contracts.registry_http import create_registry_app
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.http.limits import ServerLimits
from loopline.http.server import running, start_metrics_server
from loopline.log import Log, open_log
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
from loopline.serving.http import create_app as serving_app
from loopline.serving.service import PredictionService

LIMITS = ServerLimits(header_timeout=1, body_timeout=1, keep_alive=1, max_connections=20)
# What a request to each server looks like (POST path, a JSON body it accepts).
POSTS = {
    "ingest": "/v1/topics/events/records",
    "registry": "/subjects/clicks/versions",
    "serving": "/v1/predict",
}


def count(log: Log, topic: str) -> int:
    return sum(p.end - p.start for p in log.describe_topic(topic).partitions)


@contextmanager
def server(kind: str, log: Log, limits: ServerLimits = LIMITS) -> Iterator[str]:
    with ExitStack() as stack:
        registry = LogRegistry(log)
        stack.callback(registry.close)
        if kind == "ingest":
            app = ingest_app(log, registry)
        elif kind == "registry":
            app = create_registry_app(registry)
        else:
            shop = App(
                "slowshop",
                features=FeatureSet(
                    tables=[Table("events", Entity("m", "m"), [TableFeature("a", "a", default=1)])]
                ),
                models=[Model("churn", trainer=LightGBMTrainer, entity="m")],
            )
            service = PredictionService(log, shop, registry, state_dir=tempfile.mkdtemp())
            app = serving_app(service)
        yield stack.enter_context(running(app, limits=limits))


@pytest.fixture
def embedded(tmp_path) -> Iterator[Log]:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    log.create_topic("events")
    yield log
    log.close()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Seconds until the server closed `sock`, and what it sent before."""
    started = time.monotonic()
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {seconds} s; got {received!r}") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - started, received


@pytest.mark.parametrize("kind", sorted(POSTS))
def test_half_sent_heads_are_closed_after_the_header_timeout(embedded, kind) -> None:
    with server(kind, embedded) as url:
        socks = [connect(url) for _ in range(15)]
        for i, sock in enumerate(socks):
            if i % 3:  # and a third send nothing at all
                sock.sendall(f"POST {POSTS[kind]} HTTP/1.1\r\nHost: x\r\nContent-".encode())
        for sock in socks:
            took, received = closed_within(sock, LIMITS.header_timeout + 5)
            assert took < LIMITS.header_timeout + 3
            assert not received or received.startswith(b"HTTP/1.1 408")
            sock.close()
        assert httpx.get(url + "/openapi.json").status_code == 200  # and it still serves


@pytest.mark.parametrize("kind", sorted(POSTS))
def test_a_body_sent_too_slowly_is_refused_with_408(embedded, kind) -> None:
    with server(kind, embedded) as url:
        sock = connect(url)
        head = f"POST {POSTS[kind]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall((head + "Content-Length: 1000\r\n\r\n[").encode())
        time.sleep(0.3)
        sock.sendall(b'{"a"')  # then nothing more for a while
        took, received = closed_within(sock, LIMITS.body_timeout + 8)
        sock.close()
        assert received.startswith(b"HTTP/1.1 408"), received
        assert b"did not arrive within 1 s" in received
        assert took < LIMITS.body_timeout + 3
    assert count(embedded, "events") == 0


def test_a_body_sent_too_slowly_writes_nothing_on_both_backends(log, new_topic) -> None:
    topic = new_topic()
    registry = LogRegistry(log)
    app = ingest_app(log, registry)
    with running(app, limits=LIMITS) as url:
        sock = connect(url)
        record = b'[{"a": 1}, {"a": 2}]'
        head = f"POST /v1/topics/{topic}/records HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
        sock.sendall(head.encode() + record)  # 20 of the 40 bytes announced
        _, received = closed_within(sock, 10)
        sock.close()
    registry.close()
    assert received.startswith(b"HTTP/1.1 408"), received
    assert count(log, topic) == 0


def test_connections_over_the_limit_are_refused_at_once(embedded) -> None:
    limits = ServerLimits(header_timeout=2, body_timeout=2, keep_alive=1, max_connections=5)
    with server("ingest", embedded, limits) as url:
        held = [connect(url) for _ in range(5)]
        time.sleep(0.2)
        extra = connect(url)
        took, received = closed_within(extra, 2)
        assert received.startswith(b"HTTP/1.1 503"), received
        assert b"too many connections" in received
        assert took < 1
        for sock in held:  # closed by the header timeout: room again
            closed_within(sock, 5)
            sock.close()
        assert httpx.get(url + "/healthz").status_code == 200


def test_the_metrics_port_of_long_running_stages_has_the_same_limits() -> None:
    # `features run` / `outcomes run --metrics-port` once used prometheus-client's server:
    # a thread per connection, waiting forever on half a request.
    url = start_metrics_server(0, limits=LIMITS)
    assert "loopline_http_requests_total" in httpx.get(url + "/metrics").text
    sock = connect(url)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    took, received = closed_within(sock, LIMITS.header_timeout + 5)
    sock.close()
    assert received.startswith(b"HTTP/1.1 408") and took < LIMITS.header_timeout + 3
