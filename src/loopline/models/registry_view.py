"""The model registry as its topic says it: versions, aliases and their history, in log order.

`RegistryView.apply` is the decode hook through which `ModelRegistry` reads
``_loopline_models`` (a `loopline.stream.table.Table`): each record is decoded
as a typed record (`registry_records.decode_record`) and applied, or raises,
and the table logs, counts and skips it. A malformed record never changes the
view nor stops the reading of the records after it.

With a `verifier`, an alias move applies only if its signature verifies
(`AliasRecord.statement`) and it is not older than the move holding the alias
now (a copy of an earlier move); otherwise it stays in the history with the
reason it was refused, and the alias keeps pointing where it did. Without one
(a process that trusts no key, and so loads no model either) every move
applies, unverified (docs/decisions/0038).

>>> from loopline.log import Record
>>> view = RegistryView("_loopline_models")
>>> alias = b'{"kind": "alias", "version": 2, "action": "promote", "time": 5}'
>>> view.apply(Record("_loopline_models", 0, 0, 5, b"alias/churn/production/e1", alias))
>>> view.aliases["churn"]["production"].stack
[2]
>>> from loopline.models.signing import HmacSigner
>>> checking = RegistryView("_loopline_models", HmacSigner(b"a secret of 16 bytes or more").verifier())
>>> checking.apply(Record("_loopline_models", 0, 0, 5, b"alias/churn/production/e1", alias))
>>> checking.aliases["churn"]["production"].stack, checking.alias_events["e1"].refused[:20]
([], 'the move is unsigned')
>>> view.apply(Record("_loopline_models", 0, 1, 6, b"version/churn/9/x", b"[]"))
Traceback (most recent call last):
...
msgspec.ValidationError: Expected `object`, got `array`
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec

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
from loopline.models.signing import (
    SIGNING_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    UntrustedModel,
    Verifier,
)

logger = logging.getLogger(__name__)


@dataclass
class AliasState:
    """Where an alias points, what rollback returns to, and every change of it."""

    stack: list[int] = field(default_factory=list)  # what rollback returns to, newest last
    history: list[AliasChange] = field(default_factory=list)  # refused moves too

    def current(self) -> AliasChange | None:
        """The move that holds the alias now (the last one applied), or None."""
        return next((c for c in reversed(self.history) if c.refused is None), None)


class RegistryView:
    """Versions and aliases of every model, as the records of `topic` applied so far say."""

    def __init__(self, topic: str, verifier: Verifier | None = None) -> None:
        self.topic = topic
        self.verifier = verifier
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
        refused = self._refusal(name, alias, event_id, entry, state)
        if refused is not None:
            logger.info(
                "model %r: the move of alias %r to v%d is refused: %s",
                name,
                alias,
                version,
                refused,
            )
        elif version in state.stack and action == "rollback":
            # Back to how things were when `version` last held the alias.
            del state.stack[len(state.stack) - state.stack[::-1].index(version) :]
        elif previous != version:
            state.stack.append(version)
        key_id = entry.signature.key_id if entry.signature else None
        verified = self.verifier is not None and refused is None
        change = AliasChange(
            entry.time, version, previous, action, entry.by, entry.reason, key_id, verified, refused
        )
        state.history.append(change)
        self.alias_events[event_id] = change
        if refused is None:
            self.events.append(RegistryEvent("alias", name, version, alias, change.time_ms))

    def _refusal(
        self, name: str, alias: str, event_id: str, entry: AliasRecord, state: AliasState
    ) -> str | None:
        """Why this process does not apply the move (None: it applies)."""
        if self.verifier is None:
            return None
        if entry.signature is None:
            return (
                "the move is unsigned (written without a signing key, or before loopline signed "
                f"alias moves): move the alias again with {SIGNING_KEY_ENV} or "
                f"{SIGNING_KEY_FILE_ENV} set, e.g. `loopline models promote {name} "
                f"{entry.version} --alias {alias}`"
            )
        # Signed as the move of the model, alias and event its key names, and of no other.
        signed = msgspec.structs.replace(entry, name=name, alias=alias)
        try:
            self.verifier.verify(signed.statement(event_id), entry.signature.signature())
        except UntrustedModel as exc:
            return str(exc)
        current = state.current()
        if current is not None and entry.time < current.time_ms:
            return (
                f"it is older (time {entry.time}) than the move that holds the alias now "
                f"(v{current.version}, time {current.time_ms}): a copy of an earlier move; "
                "move the alias again"
            )
        return None
