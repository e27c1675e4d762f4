"""The limits of a loopline HTTP server, as numbers (`loopline.http.server` applies them).

>>> ServerLimits().summary()
'request heads within 10 s, bodies within 30 s, idle connections closed after 5 s, at most 1000 connections'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerLimits", "size_text"]


@dataclass(frozen=True)
class ServerLimits:
    """Time and connection limits of one HTTP server (see the module docstring)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "keep_alive"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")

    def summary(self) -> str:
        """The limits in one line, for a server's start-up message."""
        return (
            f"request heads within {self.header_timeout:g} s, bodies within "
            f"{self.body_timeout:g} s, idle connections closed after {self.keep_alive:g} s, "
            f"at most {self.max_connections} connections"
        )


def size_text(size: int) -> str:
    """`size` bytes for people: ``1 MiB``, ``64 KiB``, ``1000 bytes``.

    >>> size_text(1_048_576), size_text(65_536), size_text(1000)
    ('1 MiB', '64 KiB', '1000 bytes')
    """
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"
