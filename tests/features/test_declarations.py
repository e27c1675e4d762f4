"""Declarations: the fingerprint that names online state and pins datasets changes with any feature."""

from __future__ import annotations

import subprocess
import sys

from loopline.features import Aggregations, Derived, Entity, FeatureSet
from loopline.features.aggregations import Count

member = Entity("member", key="member_id")


def _features(where, fn) -> FeatureSet:
    group = Aggregations(
        "views", member, Count.per_window("long_views", windows=["1h"], where=where)
    )
    return FeatureSet([group], derived=[Derived("twice", ("long_views_1h",), fn)])


def test_the_fingerprint_changes_with_a_filter_or_function_constant():
    base = _features(lambda v: v["s"] > 60, lambda n: n * 2).fingerprint()
    assert _features(lambda v: v["s"] > 60, lambda n: n * 2).fingerprint() == base
    assert _features(lambda v: v["s"] > 90, lambda n: n * 2).fingerprint() != base
    assert _features(lambda v: v["s"] > 60, lambda n: n * 3).fingerprint() != base
    assert _features(lambda v: v["t"] > 60, lambda n: n * 2).fingerprint() != base


def test_the_fingerprint_changes_with_a_value_a_filter_closes_over():
    def declared(limit: int) -> str:
        return _features(lambda v: v["s"] > limit, lambda n: n).fingerprint()

    assert declared(60) == declared(60) != declared(90)


def test_the_fingerprint_is_the_same_in_another_process():
    script = (
        "from loopline.features import Aggregations, Derived, Entity, FeatureSet\n"
        "from loopline.features.aggregations import Count\n"
        "member = Entity('member', key='member_id')\n"
        "group = Aggregations('views', member, Count.per_window('long_views', windows=['1h'],"
        " where=lambda v: v['s'] > 60))\n"
        "print(FeatureSet([group], derived=[Derived('twice', ('long_views_1h',),"
        " lambda n: n * 2)]).fingerprint())\n"
    )
    here = _features(lambda v: v["s"] > 60, lambda n: n * 2).fingerprint()
    runs = {
        subprocess.check_output([sys.executable, "-c", script], text=True).strip() for _ in range(2)
    }
    assert runs == {here}


def test_a_function_reading_attributes_and_globals_has_a_fingerprint():
    features = _features(lambda v: (v.get("s") or 0) > 60, lambda n: max(n, 1))
    assert len(features.fingerprint()) == 64
