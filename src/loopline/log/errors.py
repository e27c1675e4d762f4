"""Errors of the log. Each says what went wrong and what to do about it."""

from __future__ import annotations


class LogError(Exception):
    """Base class of every error raised by a log backend."""


class InvalidLogURL(LogError, ValueError):
    """The log URL names no backend loopline knows."""


class TopicNotFound(LogError, KeyError):
    """The topic does not exist."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.topic = topic

    def __str__(self) -> str:
        return (
            f"topic {self.topic!r} does not exist: create it with "
            f"`loopline topics create {self.topic}`"
        )


class TopicExists(LogError):
    """A topic of that name already exists."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} already exists")
        self.topic = topic


class InvalidTopicConfig(LogError, ValueError):
    """A topic setting is out of range (partitions < 1, bad retention, ...)."""


class InvalidRecord(LogError, ValueError):
    """A record no log can take (a timestamp before 1970 or over an hour ahead); nothing was sent."""


class DeliveryError(LogError):
    """Some records were not acknowledged by the log; none of them is durable."""

    def __init__(self, message: str, failed: int) -> None:
        super().__init__(message)
        self.failed = failed


class TransactionError(LogError):
    """A transaction was used wrongly or could not commit; nothing of it is visible."""


class GroupMemberConflict(LogError):
    """The embedded log allows one live member per consumer group."""


class LogUnavailable(LogError):
    """The log cannot be reached (broker down, directory not writable, ...)."""
