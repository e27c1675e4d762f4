"""`collector_paused`: the one pause of the garbage collector every batch decoder uses."""

import gc
import threading

import pytest

from loopline.log.collector import collector_paused


def test_the_collector_comes_back_after_an_error_in_the_block():
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("a record that does not decode")
    assert gc.isenabled()


def test_pauses_nest_and_leave_a_stopped_collector_stopped():
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # the user's choice stands
    finally:
        gc.enable()


def test_threads_pausing_at_once_never_leave_the_collector_off():
    start = threading.Barrier(8)

    def decode_batches() -> None:
        start.wait()
        for _ in range(2_000):
            with collector_paused():
                [(i, str(i)) for i in range(20)]

    threads = [threading.Thread(target=decode_batches) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()
