"""What ``loopline serve`` says while it runs: each model swap and each refusal, on stderr.

The service logs through `logging` (a library never prints); the command
shows the serving and model-following loggers' lines, one per event, with
the time: ``2026-05-01 12:00:00 info: serving model 'churn' v3 (alias 'production')``.
A swap is rare, so the lines never crowd the request path.

>>> import logging
>>> show_serving_log()
>>> logging.getLogger("loopline.serving").level == logging.INFO
True
"""

from __future__ import annotations

import logging

import click

from loopline.models import ModelNotFound, ModelRegistry

# The service's swaps (info), the alias follower's refusals (error), and the online
# store's warnings (a derived feature that raises).
_SHOWN = ("loopline.serving", "loopline.models.registry_follower", "loopline.features.store")


class _Echo(logging.Handler):
    # click.echo finds stderr at each call: the one of the command running now.
    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def show_serving_log() -> None:
    """Show the serving loggers' lines at info and above on stderr (once per process)."""
    for name in _SHOWN:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not any(isinstance(h, _Echo) for h in logger.handlers):
            handler = _Echo()
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
            )
            # Propagation stays on: with this handler found, Python's last-resort one is
            # not used, and a host application's root handlers still see the records.
            logger.addHandler(handler)


def warn_if_alias_missing(models: ModelRegistry, name: str, alias: str) -> None:
    """Say on start when `alias` of model `name` points nowhere: nothing can be served yet."""
    models.refresh()
    try:
        if alias in models.aliases(name):
            return
    except ModelNotFound:
        pass
    click.echo(
        f"warning: model {name!r} has no alias {alias!r} yet: nothing is served (/readyz is "
        f"503) until `loopline models promote {name} VERSION --alias {alias}`",
        err=True,
    )
