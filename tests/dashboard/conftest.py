"""A headless Debian Chromium (Playwright) shared by a module of browser tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dashboard.browser import CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
