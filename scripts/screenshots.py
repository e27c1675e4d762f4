"""Regenerate the README's dashboard screenshots (docs/images/dashboard-*.png).

Runs ``loopline demo --dashboard-port 0`` on an embedded log in a temporary
directory (it runs its own monitor), waits until a canary
experiment has run for a while, and photographs the Loop and Experiments
pages at 1280x800 in headless Chromium (Debian's, /usr/bin/chromium, driven
by Playwright: ``pip install -e '.[dev]'``; no browser is downloaded).

    python scripts/screenshots.py            # about a minute
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = os.environ.get("LOOPLINE_CHROMIUM", "/usr/bin/chromium")
SETTLE = 45.0  # seconds of traffic before the photographs: canaries, windows, a rollback


def _loopline(log: str, *args: str, app: str = "") -> subprocess.Popen:
    env = {**os.environ, "LOOPLINE_DEMO_APP": app, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", log, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loopline-screenshots-") as tmp:
        log = f"embedded:{tmp}/log"
        demo = _loopline(log, "demo", "--duration", "120", "--bad-model-at", "10", "--no-live",
                         "--dashboard-port", "0")  # fmt: skip
        running = [demo]
        try:
            app = base = ""
            for line in demo.stdout:  # type: ignore[union-attr]
                if found := re.search(r"application (demo-[0-9a-f]{8})", line):
                    app = found.group(1)
                if found := re.search(r"dashboard on (http://\S+)", line):
                    base = found.group(1)
                    break
            if not base:
                raise SystemExit("the demo did not start its dashboard")
            print(f"demo {app}: dashboard on {base}; {SETTLE:.0f} s of traffic first", flush=True)
            time.sleep(SETTLE)
            names = re.findall(
                r'href="/experiments/([^"]+)"', httpx.get(f"{base}/experiments").text
            )
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                shots = {"dashboard-loop.png": "/loop"}
                if names:
                    shots["dashboard-experiment.png"] = f"/experiments/{names[-1]}"
                for file, path in shots.items():
                    page.goto(base + path)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(IMAGES / file))
                    print(f"wrote {IMAGES / file} ({base}{path})")
                browser.close()
        finally:
            for process in reversed(running):
                process.send_signal(signal.SIGINT)
            for process in running:
                try:
                    process.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
