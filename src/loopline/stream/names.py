"""Every topic and consumer-group name loopline makes, built here and nowhere else.

One scheme, with ``.`` between the parts of a name:

- an application's topics are ``<app>.<thing>``: ``shop.decisions``,
  ``shop.outcomes``, ``shop.labelled``, and what a stage keeps for itself
  below its own part: ``shop.outcomes.late``, ``shop.outcomes.changelog``,
  ``shop.features.late``, ``shop.features.<fingerprint>.<source>.changelog``;
- a consumer group is ``<app>.<stage>[.<what>]``: ``shop.features.<fingerprint>``,
  ``shop.outcomes.join``, ``shop.serve.<topic>``, ``shop.train.<model>``,
  ``shop.experiments``;
- dead letters of any topic are ``<topic>.dlq``;
- loopline's own compacted topics are ``_loopline_<thing>`` (schemas, models,
  model artifacts, ingest progress, experiments).

The feature names carry the first 10 characters of the declarations'
fingerprint: changed declarations start from a clean state instead of reading
state computed for other features. Names before this scheme (decision 0017)
used ``-`` inside application names (``shop-outcomes-changelog``); see
docs/decisions/0017-topic-names.md for what upgrading means.

>>> decisions("shop"), outcomes_changelog("shop"), features_changelog("shop", "0123456789abcdef", "clicks")
('shop.decisions', 'shop.outcomes.changelog', 'shop.features.0123456789.clicks.changelog')
>>> dead_letters("clicks"), INTERNAL_PREFIX + "models"
('clicks.dlq', '_loopline_models')
"""

from __future__ import annotations

__all__ = [
    "FINGERPRINT_CHARS",
    "INTERNAL_PREFIX",
    "dead_letters",
    "decisions",
    "experiments_changelog",
    "experiments_group",
    "features_changelog",
    "features_group",
    "features_late",
    "internal",
    "labelled",
    "monitor",
    "monitor_changelog",
    "monitor_group",
    "alerts",
    "outcomes",
    "outcomes_changelog",
    "outcomes_group",
    "outcomes_late",
    "scorer_group",
    "trainer_group",
]

FINGERPRINT_CHARS = 10
INTERNAL_PREFIX = "_loopline_"
DLQ_SUFFIX = ".dlq"


def _name(*parts: str) -> str:
    return ".".join(parts)


def internal(thing: str) -> str:
    """A compacted topic of loopline's own (``_loopline_schemas``, ``_loopline_models``...)."""
    return INTERNAL_PREFIX + thing


def dead_letters(topic: str) -> str:
    """Where the records of `topic` that cannot be read go, with the reason."""
    return topic + DLQ_SUFFIX


def decisions(app: str) -> str:
    """Every answer of the prediction service."""
    return _name(app, "decisions")


def outcomes(app: str) -> str:
    """What happened after decisions."""
    return _name(app, "outcomes")


def labelled(app: str) -> str:
    """Labelled examples: decisions joined with their outcomes."""
    return _name(app, "labelled")


def outcomes_late(app: str) -> str:
    """Outcomes that joined no decision, with the reason."""
    return _name(app, "outcomes", "late")


def outcomes_changelog(app: str) -> str:
    """The outcome joiner's state (compacted)."""
    return _name(app, "outcomes", "changelog")


def outcomes_group(app: str) -> str:
    """The outcome joiner's consumer group."""
    return _name(app, "outcomes", "join")


def experiments_changelog(app: str) -> str:
    """The experiment watcher's outcome statistics per arm (compacted)."""
    return _name(app, "experiments", "changelog")


def experiments_group(app: str) -> str:
    """The experiment watcher's consumer group."""
    return _name(app, "experiments")


def _features(app: str, fingerprint: str) -> str:
    return _name(app, "features", fingerprint[:FINGERPRINT_CHARS])


def features_group(app: str, fingerprint: str) -> str:
    """The feature processors' consumer group (on Kafka, members split the sources)."""
    return _features(app, fingerprint)


def features_changelog(app: str, fingerprint: str, source: str) -> str:
    """The online feature state of `source`'s partitions (partition p: source partition p)."""
    return _name(_features(app, fingerprint), source, "changelog")


def features_late(app: str) -> str:
    """Source records that arrived later than the declared lateness, with the reason."""
    return _name(app, "features", "late")


def scorer_group(app: str, source: str) -> str:
    """The consumer group of the stream scorers of the request topic `source`."""
    return _name(app, "serve", source)


def trainer_group(app: str, model: str) -> str:
    """The consumer group of a model's online trainer."""
    return _name(app, "train", model)


def monitor(app: str) -> str:
    """The monitor's records: one per window and key (model, version, arm, segment)."""
    return _name(app, "monitor")


def monitor_changelog(app: str) -> str:
    """The monitor's open windows (compacted)."""
    return _name(app, "monitor", "changelog")


def monitor_group(app: str) -> str:
    """The monitor's consumer group."""
    return _name(app, "monitor", "run")


def alerts(app: str) -> str:
    """Alerts opened, updated and resolved, with their evidence."""
    return _name(app, "alerts")
