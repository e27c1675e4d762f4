"""The model registry as its topic says it: versions, aliases and their history, in log order.

`RegistryView.apply` is the decode hook through which `ModelRegistry` reads
``_loopline_models`` (a `loopline.stream.table.Table`): each record is decoded
as a typed record (`registry_records.decode_record`) and applied, or raises,
and the table logs, counts and skips it. A malformed record never changes the
view nor stops the reading of the records after it.

>>> from loopline.log import Record
>>> view = RegistryView("_loopline_models")
>>> alias = b'{"kind": "alias", "version": 2, "action": "promote", "time": 5}'
>>> view.apply(Record("_loopline_models", 0, 0, 5, b"alias/churn/production/e1", alias))
>>> view.aliases["churn"]["production"].stack
[2]
>>> view.apply(Record("_loopline_models", 0, 1, 6, b"version/churn/9/x", b"[]"))
Traceback (most recent call last):
...
msgspec.ValidationError: Expected `object`, got `array`
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopline.log import Record
from loopline.models.registry_records import (
    AliasChange,
    AliasRecord,
    ModelVersion,
    RegistryEvent,
    VersionRecord,
    decode_record,
    parse_key,
)


@dataclass
class AliasState:
    """Where an alias points, what rollback returns to, and every change of it."""

    stack: list[int] = field(default_factory=list)  # what rollback returns to, newest last
    history: list[AliasChange] = field(default_factory=list)


class RegistryView:
    """Versions and aliases of every model, as the records of `topic` applied so far say."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.versions: dict[str, dict[int, ModelVersion]] = {}
        self.aliases: dict[str, dict[str, AliasState]] = {}
        self.alias_events: dict[str, AliasChange] = {}
        self.events: list[RegistryEvent] = []

    def apply(self, record: Record) -> None:
        """Apply one record of the models topic (the decode hook of its `Table`)."""
        # Whatever this raises skips the record only: the table logs and counts it, and a
        # bad record never stops the registry (loading what it names is refused anyway).
        parsed = parse_key(record.key.decode("utf-8", "replace")) if record.key else None
        if parsed is None:
            return  # not ours (e.g. a record written by a newer loopline): leave it
        kind, name, third, fourth = parsed
        if record.value is None:
            return  # tombstone of a version claim that lost a race (see publish)
        entry = decode_record(record.value)
        if kind == "version" and isinstance(entry, VersionRecord):
            version = ModelVersion.from_record(entry)
            if (version.name, str(version.version)) != (name, third):
                raise ValueError(f"key {record.key!r} names another version than its value")
            self._apply_version(version, fourth)
        elif kind == "alias" and isinstance(entry, AliasRecord):
            self._apply_alias(name, third, fourth, entry)
        else:
            other = "an alias" if isinstance(entry, AliasRecord) else "a version"
            raise ValueError(f"key {record.key!r} is a {kind} key, the value {other} record")

    def _apply_version(self, version: ModelVersion, artifact_id: str) -> None:
        if version.artifact_id != artifact_id:
            raise ValueError(f"key names artifact {artifact_id}, value {version.artifact_id}")
        versions = self.versions.setdefault(version.name, {})
        held = versions.get(version.version)
        if held is None:
            versions[version.version] = version
            self.events.append(
                RegistryEvent("version", version.name, version.version, None, version.created_at)
            )
        elif held.artifact_id == artifact_id:
            versions[version.version] = version  # the same key again: the latest value holds
        # else: a publisher that lost the race for this number; it publishes again

    def _apply_alias(self, name: str, alias: str, event_id: str, entry: AliasRecord) -> None:
        if event_id in self.alias_events:
            return
        state = self.aliases.setdefault(name, {}).setdefault(alias, AliasState())
        version = entry.version
        previous = state.stack[-1] if state.stack else None
        action = entry.action
        if version in state.stack and action == "rollback":
            # Back to how things were when `version` last held the alias.
            del state.stack[len(state.stack) - state.stack[::-1].index(version) :]
        elif previous != version:
            state.stack.append(version)
        change = AliasChange(entry.time, version, previous, action, entry.by, entry.reason)
        state.history.append(change)
        self.alias_events[event_id] = change
        self.events.append(RegistryEvent("alias", name, version, alias, change.time_ms))
