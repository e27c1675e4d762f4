"""Where the CLI's log is and how to reach it: the URL, Kafka settings, and their secrets.

Kafka settings come from ``--kafka-config-file`` (a Java properties file) and
``--kafka-config key=value`` (which wins). Values of settings whose name looks
secret are never shown: every error message goes through `redact`.

>>> settings = LogSettings("kafka://broker:9092", {"sasl.password": "hunter2"})
>>> settings.redact("could not log in with hunter2")
'could not log in with ***'
>>> [name for name in settings.kafka_config if is_secret(name)]
['sasl.password']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from loopline.cli.errors import CLIError
from loopline.http.urls import url_secrets
from loopline.log import Log, default_log_url, log_missing, open_log

SECRET_MARKERS = ("password", "secret", "token", "key", "jaas", "credential")
REDACTED = "***"


def is_secret(name: str) -> bool:
    """Whether the setting `name` may hold a secret (``sasl.password``, ``ssl.key.pem``, ...)."""
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``key=value`` strings as a dict; later keys win.

    The offending text is never echoed: it may be a password.

    >>> parse_pairs(["acks=all", "linger.ms = 5"], "--kafka-config")
    {'acks': 'all', 'linger.ms': '5'}
    """
    out: dict[str, str] = {}
    for number, pair in enumerate(pairs, 1):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(
                f"value number {number} is not of the form key=value", param_hint=f"'{option}'"
            )
        out[name] = value.strip()
    return out


def read_properties(path: str) -> dict[str, str]:
    """Settings of a Java-style properties file: ``key=value`` (or ``key: value``) lines.

    Blank lines and lines starting with ``#`` or ``!`` are comments. Line
    continuations and escapes are not supported. A bad line is named by its
    number only, never by its text (it may hold a secret).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path!r}: {exc.strerror}", param_hint="'--kafka-config-file'"
        ) from None
    out: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise click.BadParameter(
                f"{path}, line {number}: expected key=value", param_hint="'--kafka-config-file'"
            )
        out[line[:cut].strip()] = line[cut + 1 :].strip()
    return out


@dataclass
class LogSettings:
    """The log the CLI works on: its URL and, for Kafka, librdkafka settings."""

    url: str = field(default_factory=default_log_url)
    kafka_config: dict[str, str] = field(default_factory=dict)
    schema_registry: str | None = None

    @property
    def secrets(self) -> list[str]:
        """Values that must never be printed, longest first (so no secret is half-replaced)."""
        values = {v for k, v in self.kafka_config.items() if v and is_secret(k)}
        for url in (self.url, self.schema_registry or ""):
            values.update(url_secrets(url))  # http://user:PASSWORD@host
        return sorted(values, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    @contextmanager
    def open(self, *, read_only: bool = False) -> Iterator[Log]:
        """Open the log for the length of a ``with`` block.

        With `read_only`, an embedded log that does not exist is an error naming
        where it was looked for, instead of a new empty log made by reading.
        """
        # Kafka settings on an embedded log are refused by open_log, a clearer error first.
        missing = log_missing(self.url) if read_only and not self.kafka_config else None
        if missing is not None:
            raise CLIError(
                f"no log at {self.url} ({missing}): nothing was ever written there; "
                "pass --log embedded:PATH or set LOOPLINE_LOG to the log you mean"
            )
        try:
            log = open_log(self.url, kafka_config=self.kafka_config or None)
        except ImportError as exc:
            # The Kafka backend needs confluent-kafka; say so instead of a traceback.
            raise CLIError(f"cannot load the log backend for {self.url}: {exc}") from None
        try:
            yield log
        finally:
            log.close()
