"""How the CLI fails: one line ``error: <message>`` on stderr and exit code 1.

Every `LogError` a backend raises is an error a user can act on, so it is shown
as its message, never as a traceback. No message ever shows a secret Kafka
setting (see `loopline.cli.settings.LogSettings.redact`).
"""

from __future__ import annotations

import traceback
from typing import IO, Any

import click

from loopline.log.errors import LogError


class CLIError(click.ClickException):
    """A failure the user can act on, shown as ``error: <message>`` with exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def _has_secrets(ctx: click.Context) -> bool:
    # ctx.obj is the LogSettings made by the root command, once its options are read.
    return bool(getattr(ctx.obj, "secrets", None))


def _redact(ctx: click.Context, text: str) -> str:
    redact = getattr(ctx.obj, "redact", None)
    return redact(text) if redact is not None else text


class LogErrorGroup(click.Group):
    """A command group that turns every `LogError` of its commands into a `CLIError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LogError as exc:
            raise CLIError(_redact(ctx, str(exc))) from None
        except click.ClickException as exc:
            exc.message = _redact(ctx, exc.message)
            raise
        except (click.exceptions.Exit, click.Abort, KeyboardInterrupt, EOFError):
            raise
        except Exception:
            # A bug: its traceback is worth seeing, but Kafka client errors may quote
            # settings, so when secrets are configured the traceback is redacted first.
            if not _has_secrets(ctx):
                raise
            click.echo(_redact(ctx, traceback.format_exc()), err=True, nl=False)
            ctx.exit(1)
