"""Tiled event-time windows, and the error of a declaration that cannot be computed.

Every aggregated feature reads one window (docs/decisions/0008): a length cut
into tiles, so that the online processor merges whole tiles and the offline
builder finds the same window start.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline.log import parse_duration

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


class DeclarationError(ValueError):
    """A feature declaration that cannot be computed (says which and why)."""


@dataclass(frozen=True)
class Window:
    """A tiled event-time window: `length` ms cut into tiles of `tile` ms (None: lifetime).

    >>> Window.parse("10m")
    Window(name='10m', length=600000, tile=60000)
    >>> Window.parse("lifetime").start(123) is None
    True
    """

    name: str
    length: int | None
    tile: int | None

    @classmethod
    def parse(cls, text: str) -> Window:
        if text == "lifetime":
            return cls("lifetime", None, None)
        length = parse_duration(text)
        if length is None or length <= 0:
            raise DeclarationError(f"window {text!r} must be a positive duration or 'lifetime'")
        tile = MINUTE if length <= HOUR else HOUR if length <= 7 * DAY else DAY
        if length % tile:
            raise DeclarationError(
                f"window {text!r} must be a whole number of {tile // MINUTE} minute tiles"
            )
        return cls(text, length, tile)

    def start(self, at: int) -> int | None:
        """First event time (ms) inside the window read at `at`; None for lifetime."""
        if self.length is None or self.tile is None:
            return None
        return (at // self.tile) * self.tile - self.length + self.tile
