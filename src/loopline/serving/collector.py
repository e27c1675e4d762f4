"""The garbage collector of a serving process: no full passes in the way of requests.

CPython's cyclic collector makes a full pass over every tracked object
once the oldest generation grew by a quarter and ten middle passes have
run. A prediction service holds the online features (hundreds of thousands
to millions of objects, many decoded on the first read of their entity) and
a full pass over them holds the GIL for 50 to 200 ms on a 2-core machine:
every request waiting meanwhile misses its latency budget, and at 500
requests/s that alone is the p99 (bench/serving.py, decision 0013).

`quiet_collector` keeps young and middle passes as they are (they find the
short-lived cycles of requests, in about a millisecond) and asks for 10,000
middle passes, not 10, before a full one: at serving load, one full pass in
tens of minutes instead of one every few seconds. Cyclic garbage that
reached the oldest generation waits that long to be freed; the features
themselves are alive anyway. `loopline serve` calls it; a process embedding
`PredictionService` decides for itself.

>>> import gc
>>> before = gc.get_threshold()
>>> quiet_collector()
>>> gc.get_threshold() == (before[0], before[1], FULL_PASS_AFTER)
True
>>> gc.set_threshold(*before)
"""

from __future__ import annotations

import gc

FULL_PASS_AFTER = 10_000
"""Middle passes before a full pass (CPython's default is 10)."""


def quiet_collector() -> None:
    """Make full passes of the cyclic garbage collector rare in this process."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_AFTER)
