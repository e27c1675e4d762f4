"""``loopline models``: list and show model versions, move aliases, read alias history, make keys.

Versions are published by trainers; this command reads them and moves the
aliases (``production``, ``candidate``, ...) that serving follows. Every
move is a record in the log, so ``history`` can say which version held an
alias at any moment.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from loopline.cli.errors import CLIError
from loopline.cli.output import echo_table
from loopline.cli.profile_tables import echo_profile
from loopline.cli.settings import LogSettings
from loopline.models import (
    ModelLoadError,
    ModelNotFound,
    ModelRegistry,
    ModelRegistryError,
    ModelVersion,
    generate_ed25519_keys,
    promotion,
)
from loopline.models.profiles import ProfileError, read_profile
from loopline.models.signing import SIGNING_KEY_FILE_ENV, VERIFY_KEY_FILE_ENV


@contextmanager
def opened_models(settings: LogSettings) -> Iterator[ModelRegistry]:
    """The log's model registry, with keys from the environment; registry errors as CLIErrors.

    Every models command needs versions already in the log: a log that does
    not exist is an error, not a new empty one.
    """
    with settings.open(read_only=True) as log:
        try:
            registry = ModelRegistry(log)
        except ValueError as exc:  # a signing key of the environment that cannot be used
            raise CLIError(str(exc)) from None
        try:
            yield registry
        except (ModelNotFound, ModelRegistryError, ModelLoadError, ValueError) as exc:
            raise CLIError(str(exc)) from None
        finally:
            registry.close()


def iso(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC (``2024-05-01T12:00:00.250Z``).

    >>> iso(1714564800250)
    '2024-05-01T12:00:00.250Z'
    """
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_moment(text: str) -> int:
    """``--at``: milliseconds since the epoch, or ISO 8601 (no zone: UTC).

    >>> parse_moment("2024-05-01T12:00:00.250Z"), parse_moment("1714564800250")
    (1714564800250, 1714564800250)
    """
    if text.strip().isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: use ISO 8601 (2024-05-01T12:00:00Z) or epoch milliseconds",
            param_hint="'--at'",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return round(moment.timestamp() * 1000)


def _pick(registry: ModelRegistry, name: str, which: str | None) -> ModelVersion:
    """VERSION as a number, or an alias name; the latest version when absent."""
    if which is None:
        return registry.latest(name)
    if which.isdigit():
        return registry.version(name, int(which))
    version = registry.alias(name, which)
    if version is None:
        registry.versions(name)  # an unknown model says so first
        raise CLIError(
            f"model {name!r} has no alias {which!r} (aliases: "
            f"{', '.join(sorted(registry.aliases(name))) or 'none'}); give a version number"
        )
    return version


def _was(previous: int | None) -> str:
    return f"was v{previous}" if previous is not None else "was unset"


def _unsigned_warning() -> None:
    click.echo(
        f"warning: the move is unsigned (no signing key: set LOOPLINE_SIGNING_KEY or "
        f"{SIGNING_KEY_FILE_ENV}): servers that verify signatures refuse it",
        err=True,
    )


@click.group(
    epilog="""\b
Examples:
  loopline models list
  loopline models show churn
  loopline models show churn production --verify
  loopline models promote churn 7 --alias production --reason "AUC +0.02 on May data"
  loopline models rollback churn --alias production
  loopline models history churn --alias production --at 2024-05-01T12:00:00Z
  loopline models keygen keys/models.key

\b
Signing keys come from the environment: LOOPLINE_SIGNING_KEY (a shared HMAC
secret), or LOOPLINE_SIGNING_KEY_FILE (an Ed25519 private key, publishers)
and LOOPLINE_VERIFY_KEY_FILE (its public key, servers). Alias moves are
signed with the same key; a server refuses a move it cannot verify, and
`history` shows who signed each move and which were refused.""",
)
def models() -> None:
    """Models: signed versions in the log, and the aliases that serving follows."""


@models.command("list")
@click.pass_obj
def list_models(settings: LogSettings) -> None:
    """List models with their number of versions, latest version and aliases."""
    with opened_models(settings) as registry:
        rows = []
        for name in registry.names():
            latest = registry.latest(name)
            aliases = registry.aliases(name)
            rows.append(
                [
                    name,
                    str(len(registry.versions(name))),
                    str(latest.version),
                    iso(latest.created_at),
                    " ".join(f"{a}=v{v}" for a, v in sorted(aliases.items())),
                ]
            )
    echo_table("models", ["model", "versions", "latest", "published", "aliases"], rows)


@models.command(
    "show",
    epilog="""\b
Examples:
  loopline models show churn              # the latest version
  loopline models show churn 3
  loopline models show churn production   # the version an alias points at
  loopline models show churn 3 --verify   # exit 1 if it would be refused
  loopline models show churn --profile    # the training profile, as tables
  loopline models show churn | jq .profile""",
)
@click.argument("name")
@click.argument("version", required=False)
@click.option(
    "--verify",
    is_flag=True,
    help="Read the artifact and check its signature and SHA-256 with this machine's keys; "
    "exit 1 if a server would refuse it.",
)
@click.option(
    "--profile",
    "as_profile",
    is_flag=True,
    help="Print the version's training profile (features, scores, labels) as tables instead "
    'of the version as JSON (which holds it too, under "profile").',
)
@click.pass_obj
def show_model(
    settings: LogSettings, name: str, version: str | None, verify: bool, as_profile: bool
) -> None:
    """Show a version of model NAME (VERSION: a number or an alias; default: the latest)."""
    with opened_models(settings) as registry:
        v = _pick(registry, name, version)
        if as_profile:
            _show_profile(registry, v, verify)
            return
        shown = v.describe()
        shown["created_at"] = iso(v.created_at)
        shown["versions"] = [x.version for x in registry.versions(name)]
        shown["aliases"] = sorted(a for a, n in registry.aliases(name).items() if n == v.version)
        if verify:
            registry.load_artifact(v)
            shown["verified"] = True
    click.echo(json.dumps(shown, indent=2))


def _show_profile(registry: ModelRegistry, v: ModelVersion, verify: bool) -> None:
    if verify:
        registry.load_artifact(v)  # the signature covers the profile too
    try:
        profile = read_profile(v)
    except ProfileError as exc:
        raise CLIError(f"model {v.name!r} v{v.version}: {exc}") from None
    if profile is None:
        raise CLIError(
            f"model {v.name!r} v{v.version} has no training profile: it was published before "
            "profiles, learned online, or not by `loopline train`; train it again to get one"
        )
    echo_profile(profile, f"{v.name} v{v.version}")


@models.command(
    "promote",
    epilog="""\b
Examples:
  loopline models promote churn 7 --alias production
  loopline models promote churn 8 --alias candidate --reason "retrained on May"

\b
With a verification key configured, the version is verified first and a
version that serving would refuse is not promoted.""",
)
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", "alias", required=True, help="The alias to move (e.g. production).")
@click.option("--reason", help="Why, recorded in the alias history.")
@click.option("--no-verify", is_flag=True, help="Promote without checking the signature first.")
@click.pass_obj
def promote_model(
    settings: LogSettings,
    name: str,
    version: int,
    alias: str,
    reason: str | None,
    no_verify: bool,
) -> None:
    """Point ALIAS of model NAME at VERSION."""
    with opened_models(settings) as registry:
        done = promotion.promote(
            registry, name, version, alias, reason=reason, verify=not no_verify
        )
    if not no_verify and not done.verified:
        click.echo(
            "warning: signature not checked: no verification key is configured "
            f"(set LOOPLINE_SIGNING_KEY or {VERIFY_KEY_FILE_ENV})",
            err=True,
        )
    if done.change is not None and done.change.key_id is None:
        _unsigned_warning()
    if done.change is None:
        click.echo(f"model {name!r}: alias {alias!r} already points at v{version}")
        return
    click.echo(
        f"model {name!r}: alias {alias!r} now points at v{version} ({_was(done.change.previous)})"
    )


@models.command(
    "rollback",
    epilog="""\b
Examples:
  loopline models rollback churn --alias production
  loopline models rollback churn --alias production --reason "conversion guardrail"

\b
Each rollback goes one step further back: promote 1, 2, 3, then rollback,
rollback leaves the alias at v1.""",
)
@click.argument("name")
@click.option("--alias", "alias", required=True, help="The alias to move back.")
@click.option("--reason", help="Why, recorded in the alias history.")
@click.pass_obj
def rollback_model(settings: LogSettings, name: str, alias: str, reason: str | None) -> None:
    """Point ALIAS of model NAME back at the version it held before the current one."""
    with opened_models(settings) as registry:
        change = promotion.roll_back(registry, name, alias, reason=reason)
    if change.key_id is None:
        _unsigned_warning()
    click.echo(
        f"model {name!r}: alias {alias!r} rolled back to v{change.version} "
        f"({_was(change.previous)})"
    )


@models.command(
    "history",
    epilog="""\b
Examples:
  loopline models history churn --alias production
  loopline models history churn --alias production --at 2024-05-01T12:00:00Z
  loopline models history churn --alias production --at 1714564800000""",
)
@click.argument("name")
@click.option("--alias", "alias", required=True, help="The alias whose changes to list.")
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Only say which version the alias held at TIME (ISO 8601, or epoch milliseconds).",
)
@click.pass_obj
def alias_history(settings: LogSettings, name: str, alias: str, at: str | None) -> None:
    """Every change of ALIAS of model NAME, oldest first (time, version, action, by, reason,
    the key that signed it, and whether it was verified or refused here)."""
    when = parse_moment(at) if at is not None else None
    with opened_models(settings) as registry:
        registry.versions(name)
        history = registry.alias_history(name, alias)
        held = registry.at(name, alias, when) if when is not None else None
    if when is not None:
        if held is None:
            raise CLIError(
                f"alias {alias!r} of model {name!r} pointed at no version at {iso(when)}"
            )
        click.echo(f"v{held.version}")
        return
    if not history:
        raise CLIError(
            f"alias {alias!r} of model {name!r} was never set: "
            f"`loopline models promote {name} VERSION --alias {alias}`"
        )
    rows = [
        [
            iso(c.time_ms),
            str(c.version),
            c.action,
            "" if c.previous is None else str(c.previous),
            c.by,
            c.reason or "",
            c.key_id or "unsigned",
            c.status,
        ]
        for c in history
    ]
    columns = ["time", "version", "action", "previous", "by", "reason", "signed by", "status"]
    echo_table(f"alias {alias} of {name}", columns, rows)


@models.command(
    "keygen",
    epilog=f"""\b
Examples:
  loopline models keygen keys/models.key     # writes keys/models.key and keys/models.key.pub

\b
Publishers: export {SIGNING_KEY_FILE_ENV}=keys/models.key
Servers:    export {VERIFY_KEY_FILE_ENV}=keys/models.key.pub""",
)
@click.argument("private_key", metavar="KEYFILE", type=click.Path(dir_okay=False))
def keygen(private_key: str) -> None:
    """Make an Ed25519 key pair for signing models: KEYFILE (private) and KEYFILE.pub."""
    path = Path(private_key)
    try:
        if not path.parent.exists():
            # A directory made for the key is private too: only its owner lists it.
            path.parent.mkdir(mode=0o700, parents=True)
        key_id = generate_ed25519_keys(path, path.with_name(path.name + ".pub"))
    except (FileExistsError, OSError) as exc:
        raise CLIError(str(exc)) from None
    click.echo(f"key {key_id}: private {path} (keep it secret), public {path}.pub")
