"""What ``loopline train`` prints for each version it published: one line, and warnings.

The line (`summary`) goes to stdout, so a script can read it; warnings about
the data (`warn_derived_errors`) go to stderr.
"""

from __future__ import annotations

import click

from loopline.models.training import TrainResult


def metrics_text(metrics: dict[str, float]) -> str:
    """``auc 0.81, log_loss 0.4``: a version's metrics on one line."""
    return ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()) or "no metrics"


def seconds_text(seconds: float) -> str:
    """``0.25 s``, ``12.3 s``."""
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def summary(result: TrainResult) -> str:
    """The line printed for a version `loopline train` published."""
    v = result.version
    moved = f"; alias {result.alias} -> v{v.version}" if result.alias else ""
    steps = ", ".join(f"{step} {seconds_text(s)}" for step, s in result.timings.items())
    return (
        f"published {v.name} v{v.version} ({v.trainer}; {result.train_rows:,} train / "
        f"{result.test_rows:,} test rows): {metrics_text(result.metrics)}{moved}; {steps}"
    )


def warn_derived_errors(result: TrainResult) -> None:
    """Say on stderr which derived features raised while the training data was built."""
    errors = (result.version.manifest or {}).get("derived_errors") or {}
    for name, count in errors.items():
        click.echo(
            f"warning: derived feature {name!r} raised on {count} of the data's rows, which got "
            f"its default: check its function (recorded in v{result.version.version}'s manifest)",
            err=True,
        )
