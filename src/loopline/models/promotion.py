"""Moving an alias as an operator does: the checks ``loopline models promote`` and the
dashboard share, so a version one refuses the other refuses too.

`promote` checks the version exists and, when a verification key is
configured, that its artifact verifies (a version serving would refuse is
not promoted); an alias already there is left alone. `roll_back` moves the
alias one step back.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.models.registry import ModelRegistry
>>> from loopline.models.signing import HmacSigner
>>> signer = HmacSigner(b"k" * 32)
>>> registry = ModelRegistry(open_log("embedded:" + tempfile.mkdtemp()), signer=signer)
>>> for _ in range(2):
...     _ = registry.publish("churn", b"model", format="bytes", trainer="t", params={},
...         features=[("x", "float")])
>>> promote(registry, "churn", 1, "production").change.version
1
>>> p = promote(registry, "churn", 2, "production", reason="better"); p.change.previous, p.verified
(1, True)
>>> promote(registry, "churn", 2, "production").change is None  # already there
True
>>> roll_back(registry, "churn", "production").version
1
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline.models.registry import ModelRegistry
from loopline.models.registry_records import AliasChange

__all__ = ["Promotion", "promote", "roll_back"]


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: the alias change (None: the alias pointed there already), and
    whether the artifact's signature was checked (False: no verification key configured)."""

    change: AliasChange | None
    verified: bool


def promote(
    registry: ModelRegistry,
    name: str,
    version: int,
    alias: str,
    *,
    reason: str | None = None,
    verify: bool = True,
) -> Promotion:
    """Point `alias` of model `name` at `version`, after checking it (see the module docstring).

    Raises `ModelNotFound` for an unknown model or version, `ModelLoadError`
    for a version whose signature does not verify, `ValueError` for an alias
    name that cannot be used.
    """
    target = registry.version(name, version)
    verified = False
    if verify and registry.verifier is not None:
        registry.load_artifact(target)
        verified = True
    if registry.aliases(name).get(alias) == version:
        return Promotion(None, verified)
    return Promotion(registry.promote(name, version, alias, reason=reason), verified)


def roll_back(
    registry: ModelRegistry, name: str, alias: str, *, reason: str | None = None
) -> AliasChange:
    """Point `alias` of model `name` back at the version it held before the current one."""
    registry.versions(name)  # an unknown model is named as such, not as an alias never set
    return registry.rollback(name, alias, reason=reason)
