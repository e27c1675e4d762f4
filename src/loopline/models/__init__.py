"""Models: a registry of signed model versions kept in the log, with aliases and history.

Trainers (``loopline.models.trainers``) fit models on pinned datasets and
publish them here; serving follows an alias (``production``) and loads a
version only after its signature verifies. See docs/decisions/0011.
"""

from __future__ import annotations

from loopline.models.artifacts import ArtifactUnavailable
from loopline.models.registry import (
    ARTIFACTS_TOPIC,
    MODELS_TOPIC,
    ModelNotFound,
    ModelRegistry,
    ModelRegistryError,
    SigningKeyMissing,
)
from loopline.models.registry_follower import AliasFollower
from loopline.models.registry_records import AliasChange, ModelVersion, RegistryEvent
from loopline.models.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    HmacSigner,
    HmacVerifier,
    Keyring,
    ModelLoadError,
    Signature,
    UntrustedModel,
    generate_ed25519_keys,
    signer_from_env,
    verifier_from_env,
)

__all__ = [
    "ARTIFACTS_TOPIC",
    "MODELS_TOPIC",
    "AliasChange",
    "AliasFollower",
    "ArtifactUnavailable",
    "Ed25519Signer",
    "Ed25519Verifier",
    "HmacSigner",
    "HmacVerifier",
    "Keyring",
    "ModelLoadError",
    "ModelNotFound",
    "ModelRegistry",
    "ModelRegistryError",
    "ModelVersion",
    "RegistryEvent",
    "Signature",
    "SigningKeyMissing",
    "UntrustedModel",
    "generate_ed25519_keys",
    "signer_from_env",
    "verifier_from_env",
]
