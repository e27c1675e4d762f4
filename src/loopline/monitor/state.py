"""The monitor's state in its changelog: open windows and the watermarks, one entry each.

Everything the monitor has counted and not yet written is a window
(`loopline.monitor.windows`) under its `WindowKey` (JSON array), and how far
each input's event time has gone is an entry ``watermark:<source>``. A
closed window becomes a tombstone. `MonitorState` remembers what changed
since the last checkpoint so only that is written.

>>> s = MonitorState()
>>> s.watermark["decisions"] = 60_000; s.changed.add("watermark:decisions")
>>> entries = list(Codec().dump(0, s))
>>> restored = MonitorState()
>>> for key, value in entries:
...     Codec().load(restored, key, value)
>>> restored.watermark
{'decisions': 60000}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from loopline.monitor.feeds import FEEDS, FeedWindow
from loopline.monitor.judge import AlertStatus
from loopline.monitor.sources import SourceState
from loopline.monitor.windows import DecisionWindow, LabelWindow, WindowKey
from loopline.stream.state import StateCodec

__all__ = ["Codec", "MonitorState"]

WATERMARK = "watermark:"
ALERT = "alert:"
SOURCE = "source:"
NO_TIME = -(2**62)


class MonitorState:
    """Open windows, the watermark of each source, and what changed (see the module)."""

    def __init__(self) -> None:
        self.windows: dict[WindowKey, DecisionWindow | LabelWindow | FeedWindow] = {}
        self.watermark: dict[str, int] = {}
        self.alerts: dict[str, AlertStatus] = {}
        self.sources: dict[str, SourceState] = {}
        self.changed: set[Any] = set()  # WindowKey, or "watermark:<source>", "alert:<id>", ...


_key = msgspec.json.Decoder(WindowKey)
_types = {
    "decisions": msgspec.json.Decoder(DecisionWindow),
    "labelled": msgspec.json.Decoder(LabelWindow),
    FEEDS: msgspec.json.Decoder(FeedWindow),
}
_encode = msgspec.json.Encoder().encode
_status = msgspec.json.Decoder(AlertStatus)
_source = msgspec.json.Decoder(SourceState)


class Codec(StateCodec[int, MonitorState]):
    """How `MonitorState` goes to and comes from the changelog."""

    def new(self, unit: int) -> MonitorState:
        return MonitorState()

    def load(self, state: MonitorState, key: bytes, value: bytes | None) -> None:
        for prefix, held, decode in (
            (ALERT, state.alerts, _status.decode),
            (SOURCE, state.sources, _source.decode),
        ):
            if key.startswith(prefix.encode()):
                name = key[len(prefix) :].decode()
                if value is None:
                    held.pop(name, None)
                else:
                    held[name] = decode(value)
                return
        if key.startswith(WATERMARK.encode()):
            if value is not None:
                state.watermark[key[len(WATERMARK) :].decode()] = int(value)
            return
        window = _key.decode(key)
        if value is None:
            state.windows.pop(window, None)
        else:
            state.windows[window] = _types[window.source].decode(value)

    def settle(self, state: MonitorState) -> None:
        state.changed.clear()

    def dump(self, unit: int, state: MonitorState) -> Iterable[tuple[bytes, bytes | None]]:
        for changed in sorted(state.changed, key=str):
            if isinstance(changed, str) and not changed.startswith(WATERMARK):
                held = state.alerts if changed.startswith(ALERT) else state.sources
                entry = held.get(changed.partition(":")[2])
                yield changed.encode(), None if entry is None else _encode(entry)
            elif isinstance(changed, str):
                source = changed[len(WATERMARK) :]
                yield changed.encode(), str(state.watermark[source]).encode()
            else:
                window = state.windows.get(changed)
                yield _encode(changed), None if window is None else _encode(window)
        state.changed.clear()
