"""`Watched`, the browser tests' recorder of failed requests, against a real HTTP server.

A live part's refresh still in flight when the test moves to the next page is
aborted by the browser (``net::ERR_ABORTED``); that is the page being left, not
a failure. A request the page itself aborts, or one the server answers with
an error, is a failure.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dashboard.browser import Watched

pytestmark = pytest.mark.slow

PAGES = {
    "/live": "<p>live</p><script>fetch('/slow')</script>",
    "/plain": "<p>plain</p>",
    "/cancel": """<p>cancel</p><script>
        const asked = new AbortController();
        fetch('/slow', {signal: asked.signal}).catch(() => {});
        setTimeout(() => asked.abort(), 200);</script>""",
    "/broken": "<p>broken</p><script>fetch('/missing')</script>",
}


class Site:
    """Pages on 127.0.0.1 whose `/slow` answers only when the site closes."""

    def __init__(self) -> None:
        self.slow_asked = threading.Event()
        self.done = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/slow":
                    site.slow_asked.set()
                    site.done.wait(30)
                body = PAGES.get(self.path, "<p>no such page</p>")
                self.send_response(404 if self.path == "/missing" else 200)
                data = body.encode()
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # the browser left
                    self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def _until(watched: Watched, check, what: str, timeout: float = 10) -> None:
    """Let the browser run (its events reach `watched` only then) until `check()` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        watched.page.wait_for_timeout(100)


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


def test_a_request_cut_off_by_going_to_the_next_page_is_not_a_failure(site, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{site.base}/live")
        assert site.slow_asked.wait(10), "the page asked for /slow"
        watched.page.goto(f"{site.base}/plain")
        _until(watched, lambda: watched.left or watched.failed, "the browser to abort /slow")
    finally:
        watched.close()
    assert watched.failed == [], watched.failed
    assert [u.split()[0] for u in watched.left] == [f"{site.base}/slow"]


def test_a_request_cut_off_by_a_reload_is_not_a_failure(site, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{site.base}/live")
        assert site.slow_asked.wait(10), "the page asked for /slow"
        watched.page.reload()
        _until(watched, lambda: watched.left or watched.failed, "the browser to abort /slow")
    finally:
        watched.close()
    assert watched.failed == [], watched.failed


def test_a_request_the_page_aborts_itself_is_a_failure(site, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{site.base}/cancel")
        _until(watched, lambda: watched.failed, "the aborted request to be recorded")
    finally:
        watched.close()
    assert len(watched.failed) == 1 and "ERR_ABORTED" in watched.failed[0], watched.failed
    assert watched.left == []


def test_an_error_answer_is_a_failure(site, browser) -> None:
    watched = Watched(browser)
    try:
        watched.page.goto(f"{site.base}/broken")
        _until(watched, lambda: watched.failed, "the 404 to be recorded")
    finally:
        watched.close()
    assert watched.failed == [f"{site.base}/missing 404"]
