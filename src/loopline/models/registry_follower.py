"""Following an alias: keep the model it points at loaded, and keep it if a new one is refused.

A serving process holds an `AliasFollower` per model it serves and calls
`refresh` now and then (or from a background thread). When the alias moves,
the new version is loaded and verified *before* it replaces the current one;
a version that is unsigned, tampered with, signed by an unknown key or
unreadable is refused with its reason, and the current model keeps serving.
So is a move of the alias that the registry refused (unsigned, or signed by
a key this process does not trust: docs/decisions/0038): the alias did not
move, and the refusal is in `refused` under the version it named.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.models.registry import ModelNotFound, ModelRegistry
>>> from loopline.models.signing import HmacSigner
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> signer = HmacSigner(b"a shared secret of at least 16 bytes")
>>> registry = ModelRegistry(log, signer=signer)
>>> v1 = registry.publish("churn", b"v1", format="bytes", trainer="demo", features=[])
>>> _ = registry.promote("churn", 1, "production")
>>> follower = AliasFollower(registry, "churn", "production")
>>> follower.refresh(), follower.version.version, follower.model
(True, 1, b'v1')
>>> stranger = ModelRegistry(log, signer=HmacSigner(b"someone else's secret, 16+ bytes"))
>>> v2 = stranger.publish("churn", b"v2", format="bytes", trainer="demo", features=[])
>>> _ = stranger.promote("churn", 2, "production")
>>> follower.refresh(), follower.version.version, follower.model
(False, 1, b'v1')
>>> print(follower.refused[2])  # doctest: +ELLIPSIS
model 'churn': the move of alias 'production' to v2 refused: it is signed with hmac-sha256 key '...', which this process does not trust ...
>>> stranger.close(); registry.close(); log.close()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from loopline.models import artifacts
from loopline.models.registry import ModelNotFound, ModelRegistry
from loopline.models.registry_records import ModelVersion
from loopline.models.signing import ModelLoadError

logger = logging.getLogger(__name__)


class AliasFollower:
    """The model that `alias` of model `name` points at, loaded, verified and kept current.

    `decode` turns verified artifact bytes into the object served (default:
    by the version's format, see `loopline.models.artifacts`). A refused
    version is remembered in `refused` (version -> reason) and not tried
    again until the alias moves to it again.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        name: str,
        alias: str = "production",
        *,
        decode: Callable[[bytes, ModelVersion], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.name = name
        self.alias = alias
        self.decode = decode or (
            lambda data, version: artifacts.decode(data, version.format, verified=True)
        )
        self.version: ModelVersion | None = None
        self.model: Any = None
        self.refused: dict[int, str] = {}
        self._last_target: int | None = None
        self._moves_seen = 0  # of the alias's history, refused moves included

    def refresh(self) -> bool:
        """Catch up with the registry; return True if a new version now serves."""
        self.registry.refresh()
        self._note_refused_moves()
        try:
            target = self.registry.alias(self.name, self.alias)
        except ModelNotFound as exc:  # an alias record naming a version nobody published
            logger.error("%s; the current model keeps serving", exc)
            return False
        if target is None or (self.version is not None and target.version == self.version.version):
            self._last_target = None if target is None else target.version
            return False
        if target.version in self.refused and target.version == self._last_target:
            return False
        self._last_target = target.version
        try:
            model = self.decode(self.registry.load_artifact(target), target)
        except ModelLoadError as exc:
            self.refused[target.version] = str(exc)
            current = f"v{self.version.version}" if self.version else "no model"
            logger.error("%s; %s keeps serving", exc, current)
            return False
        self.version, self.model = target, model
        self.refused.pop(target.version, None)
        return True

    def _note_refused_moves(self) -> None:
        history = self.registry.alias_history(self.name, self.alias)
        for change in history[self._moves_seen :]:
            if change.refused is not None:
                reason = (
                    f"model {self.name!r}: the move of alias {self.alias!r} to "
                    f"v{change.version} refused: {change.refused}"
                )
                self.refused[change.version] = reason
                current = f"v{self.version.version}" if self.version else "no model"
                logger.error("%s; %s keeps serving", reason, current)
        self._moves_seen = len(history)
