"""``loopline contracts``: list, show, register and check contracts kept in the log.

A contract file is an Avro schema (``.avsc``) or a JSON Schema (``.json``), so
contracts can live in a repository and be reviewed like code, then checked
and registered from CI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import fastavro

from loopline.cli.errors import CLIError
from loopline.cli.output import echo_table, is_terminal
from loopline.cli.settings import LogSettings
from loopline.contracts import (
    ContractNotFound,
    IncompatibleSchema,
    LogRegistry,
    SchemaError,
    json_schema_to_avro,
)
from loopline.contracts.registry import MODES
from loopline.log import Log


@contextmanager
def opened_registry(
    settings: LogSettings, *, read_only: bool = False
) -> Iterator[tuple[Log, LogRegistry]]:
    """The log and its schema registry (the log's own, or ``--schema-registry``).

    With `read_only`, a missing embedded log is an error (see `LogSettings.open`).
    """
    with settings.open(read_only=read_only) as log:
        if not settings.schema_registry:
            registry = LogRegistry(log)
            try:
                yield log, registry
            except ContractNotFound as exc:
                raise CLIError(str(exc)) from None
            finally:
                registry.close()
            return
        import httpx
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        from loopline.contracts.external import ConfluentRegistry

        external = ConfluentRegistry(settings.schema_registry)
        try:
            yield log, external  # type: ignore[misc]
        except ContractNotFound as exc:
            raise CLIError(str(exc)) from None
        except httpx.HTTPError as exc:  # unreachable, TLS, timeouts: one line, not a traceback
            raise CLIError(f"cannot reach the schema registry at {external.url}: {exc}") from None
        except SchemaRegistryError as exc:
            raise CLIError(f"the schema registry at {external.url} refused: {exc}") from None
        finally:
            external.close()


def read_schema(path: str, name: str) -> dict:
    """The Avro schema in `path`: an ``.avsc`` file, or a JSON Schema (``.json``) converted."""
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CLIError(f"{path} is not valid JSON: {exc}") from None
    try:
        is_json_schema = file.suffix == ".json" and (
            "$schema" in document or document.get("type") == "object"
        )
        record_name = document.get("title") or name
        schema = json_schema_to_avro(document, record_name) if is_json_schema else document
        fastavro.parse_schema(schema)
    except SchemaError as exc:
        raise CLIError(f"{path}: {exc}") from None
    except Exception as exc:  # fastavro's own schema errors
        raise CLIError(f"{path} is not a valid Avro schema: {exc}") from None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise CLIError(f'{path}: a contract must be an Avro record schema ("type": "record")')
    return schema


@click.group()
def contracts() -> None:
    """Contracts: the versioned schemas that topics' records must follow.

    \b
    Examples:
      loopline contracts register clicks --schema contracts/clicks.avsc
      loopline contracts check clicks --schema contracts/clicks.avsc
      loopline contracts show clicks
      loopline topics create clicks --contract clicks --encoding avro
    """


@contracts.command("list")
@click.pass_obj
def list_contracts(settings: LogSettings) -> None:
    """List contracts with their latest version and compatibility mode."""
    with opened_registry(settings, read_only=True) as (_, registry):
        rows = []
        for name in registry.names():
            latest = registry.latest(name)
            rows.append([name, str(latest.version), str(latest.schema_id), registry.mode(name)])
    if is_terminal():
        echo_table("contracts", ["contract", "version", "schema id", "compatibility"], rows)
    else:
        for row in rows:
            click.echo("\t".join(row))


@contracts.command("show")
@click.argument("name")
@click.option("--version", "version", type=int, help="A version (default: the latest).")
@click.pass_obj
def show_contract(settings: LogSettings, name: str, version: int | None) -> None:
    """Show a contract version's schema, id and compatibility mode."""
    with opened_registry(settings, read_only=True) as (_, registry):
        v = registry.version(name, version) if version else registry.latest(name)
        mode = registry.mode(name)
        all_versions = [x.version for x in registry.versions(name)]
    click.echo(
        json.dumps(
            {
                "contract": v.name,
                "version": v.version,
                "versions": all_versions,
                "schema_id": v.schema_id,
                "compatibility": mode,
                "schema": v.schema,
            },
            indent=2,
        )
    )


@contracts.command("register")
@click.argument("name")
@click.option(
    "--schema",
    "schema_file",
    required=True,
    metavar="FILE",
    help="An Avro schema (.avsc) or a JSON Schema (.json).",
)
@click.option(
    "--compatibility",
    type=click.Choice(MODES),
    help="Set the contract's compatibility mode first (default: backward).",
)
@click.pass_obj
def register_contract(
    settings: LogSettings, name: str, schema_file: str, compatibility: str | None
) -> None:
    """Register FILE as the next version of contract NAME, if it is compatible."""
    schema = read_schema(schema_file, name)
    with opened_registry(settings) as (_, registry):
        if compatibility:
            registry.set_mode(name, compatibility)  # type: ignore[arg-type]
        try:
            version = registry.register(name, schema)
        except IncompatibleSchema as exc:
            raise CLIError(str(exc)) from None
    click.echo(f"contract {name!r} v{version.version} (schema id {version.schema_id})")


@contracts.command("check")
@click.argument("name")
@click.option(
    "--schema",
    "schema_file",
    required=True,
    metavar="FILE",
    help="An Avro schema (.avsc) or a JSON Schema (.json).",
)
@click.pass_obj
def check_contract(settings: LogSettings, name: str, schema_file: str) -> None:
    """Check whether FILE could be registered as the next version of NAME (exit 1 if not)."""
    schema = read_schema(schema_file, name)
    with opened_registry(settings) as (_, registry):
        known = name in registry.names()
        problems = registry.check(name, schema) if known else []
        mode = registry.mode(name)
    if not known:
        click.echo(f"contract {name!r} does not exist yet: FILE would be its v1")
        return
    if problems:
        for problem in problems:
            click.echo(f"incompatible ({mode}): {problem.message}", err=True)
        raise SystemExit(1)
    click.echo(f"compatible ({mode}) with contract {name!r}")
