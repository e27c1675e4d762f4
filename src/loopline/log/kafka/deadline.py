"""librdkafka calls that can wait past their timeout, bounded by loopline's own.

Two calls wait for a group coordinator without limit while it is unreachable:
a transaction's ``send_offsets_to_transaction`` ignores the timeout it is given
(librdkafka issue #5456), and a consumer's synchronous ``commit`` takes none.
A stage blocked in either could not stop, or start again, until the broker
came back. `within` runs such a call in a thread of its own and waits at most
the log's timeout. A call still waiting then raises `TimeoutError`, which the
log's errors make `LogUnavailable`. The call itself goes on in its thread,
holding its client, until librdkafka gives up or the broker answers; the
client that made it is stuck until then (`Stuck`), and is closed only after
it (a consumer then leaves its group).

>>> within(1.0, sum, [1, 2])
3
>>> import threading; late = threading.Event()
>>> within(0.05, late.wait, 5)
Traceback (most recent call last):
...
TimeoutError: still waiting after 0.05 s
>>> late.set()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from loopline.log.kafka.config import logger

T = TypeVar("T")


class Stuck:
    """The calls of a client still running past their deadline."""

    def __init__(self) -> None:
        self.calls: list[threading.Thread] = []

    def __bool__(self) -> bool:
        self.calls = [call for call in self.calls if call.is_alive()]
        return bool(self.calls)

    def then(self, action: Callable[[], object], what: str) -> None:
        """Run `action` (e.g. closing the client) in the background once the calls end."""
        calls = list(self.calls)

        def run() -> None:
            for call in calls:
                call.join()
            try:
                action()
            except Exception as exc:
                logger.warning("%s after a call past its timeout: %s", what, exc)

        threading.Thread(target=run, name="loopline-kafka-close", daemon=True).start()


def within(
    seconds: float, call: Callable[..., T], *args: Any, stuck: Stuck | None = None, **kw: Any
) -> T:
    """`call(*args, **kw)`, or `TimeoutError` if it has not returned after `seconds`.

    The call runs in a daemon thread (librdkafka releases the GIL while it
    waits); a call past its deadline is added to `stuck`.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, call(*args, **kw)))
        except BaseException as exc:  # raised again in the caller's thread
            outcome.append((False, exc))
        done.set()

    thread = threading.Thread(target=run, name="loopline-kafka-call", daemon=True)
    thread.start()
    if not done.wait(seconds):
        if stuck is not None:
            stuck.calls.append(thread)
        raise TimeoutError(f"still waiting after {seconds:g} s")
    returned, value = outcome[0]
    if returned:
        return value
    raise value
