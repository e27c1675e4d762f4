"""The watcher's topics: a changelog made for other partitions is refused with what to do."""

from __future__ import annotations

import pytest

from loopline.app import App, AppError
from loopline.experiments.inputs import ensure_topics
from loopline.log import TopicConfig, open_log


def test_the_watcher_refuses_a_changelog_of_other_partitions(tmp_path) -> None:
    log = open_log(f"embedded:{tmp_path / 'log'}")
    try:
        assert ensure_topics(log, App("shop"), None) == (1, 1)
        log.create_topic("shop2.labelled", TopicConfig(partitions=2))
        log.create_topic("shop2.experiments.changelog", TopicConfig(partitions=2, compact=True))
        with pytest.raises(AppError, match="has 2 partitions, but the watcher keeps one per"):
            ensure_topics(log, App("shop2"), None)
    finally:
        log.close()
