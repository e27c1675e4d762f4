"""Moving an alias as an operator does: the checks ``loopline models promote`` and the
dashboard share, so a version one refuses the other refuses too.

`promote` checks the version exists and, when a verification key is
configured, that its artifact verifies (a version serving would refuse is
not promoted); an alias already there is left alone. `roll_back` moves the
alias one step back. Both sign the move; a process that verifies alias moves
but holds no signing key does not write one it would refuse itself, and a
move this process refuses once written (its key is not trusted here) is an
error (docs/decisions/0038).

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
>>> reader = ModelRegistry(registry.log, verifier=signer.verifier())  # verifies, cannot sign
>>> roll_back(reader, "churn", "production")
Traceback (most recent call last):
...
loopline.models.registry.SigningKeyMissing: cannot move alias 'production' of model 'churn' unsigned: processes that verify alias moves (this one too) would refuse it; set LOOPLINE_SIGNING_KEY (a shared HMAC secret) or LOOPLINE_SIGNING_KEY_FILE (an Ed25519 private key)
>>> reader.close()
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline.models.registry import ModelRegistry, ModelRegistryError, SigningKeyMissing
from loopline.models.registry_records import AliasChange
from loopline.models.signing import SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV

__all__ = ["Promotion", "check_signer", "promote", "roll_back"]


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
    check_signer(registry, name, alias)
    return Promotion(
        _applied(registry.promote(name, version, alias, reason=reason), name, alias), verified
    )


def roll_back(
    registry: ModelRegistry, name: str, alias: str, *, reason: str | None = None
) -> AliasChange:
    """Point `alias` of model `name` back at the version it held before the current one."""
    registry.versions(name)  # an unknown model is named as such, not as an alias never set
    check_signer(registry, name, alias)
    return _applied(registry.rollback(name, alias, reason=reason), name, alias)


def check_signer(registry: ModelRegistry, name: str, alias: str) -> None:
    """Raise `SigningKeyMissing` if `registry` verifies alias moves but cannot sign one."""
    if registry.signer is None and registry.verifier is not None:
        raise SigningKeyMissing(
            f"cannot move alias {alias!r} of model {name!r} unsigned: processes that verify "
            f"alias moves (this one too) would refuse it; set {SIGNING_KEY_ENV} (a shared HMAC "
            f"secret) or {SIGNING_KEY_FILE_ENV} (an Ed25519 private key)"
        )


def _applied(change: AliasChange, name: str, alias: str) -> AliasChange:
    if change.refused is not None:
        raise ModelRegistryError(
            f"the move of alias {alias!r} of model {name!r} to v{change.version} was written, "
            f"but this process refuses it (and so do those that trust the same keys): "
            f"{change.refused}"
        )
    return change
