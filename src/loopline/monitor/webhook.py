"""Alerts sent to a URL as JSON, once their record is committed to ``<app>.alerts``.

`Webhook` POSTs each `AlertRecord` as a JSON object (``Content-Type:
application/json``) to `url`. A failed POST is logged and counted, never a
stop: the alerts topic is the record; the webhook is a notification.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import msgspec

from loopline.monitor.alerts import AlertRecord

__all__ = ["Webhook"]

logger = logging.getLogger(__name__)


class Webhook:
    """POSTs alerts to `url` (http or https), `timeout` seconds each."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL starts with http:// or https://, not {url!r}")
        self.url, self.timeout = url, timeout
        self.sent = self.failed = 0

    def __call__(self, alert: AlertRecord) -> None:
        request = urllib.request.Request(
            self.url,
            data=msgspec.json.encode(alert),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
            self.sent += 1
        except (urllib.error.URLError, OSError) as exc:
            self.failed += 1
            logger.warning("monitor: webhook %s refused alert %s: %s", self.url, alert.id, exc)
