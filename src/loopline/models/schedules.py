"""Training on a schedule: ``loopline train APP --model NAME --every 15m``.

`train_every` runs `train_once` now and then at a fixed rate until stopped;
every run pins the newest data, so each version is trained on what the log
holds then. A run whose data is not usable yet (no rows, one class) is
reported and the schedule goes on (decision 0014).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from loopline.app import App
from loopline.contracts.registry import SchemaRegistry
from loopline.log import Log, LogError
from loopline.models.evaluation import DataError
from loopline.models.registry import ModelRegistry
from loopline.models.training import TrainingError, TrainResult, check_signer, train_once
from loopline.models.training_examples import Progress

__all__ = ["train_every"]


def train_every(
    interval_s: float,
    stop: threading.Event,
    log: Log,
    app: App,
    model_name: str,
    *,
    spine: str | Path | None = None,
    labelled_topic: str | None = None,
    registry: ModelRegistry,
    alias: str | None = None,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
    on_result: Callable[[TrainResult], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    runs: int | None = None,
    allow_missing_history: bool = False,
    entities: Mapping[str, str] | None = None,
) -> list[TrainResult]:
    """Run `train_once` now and then every `interval_s` seconds until `stop` is set (or
    `runs` trainings were attempted); return the results.

    Every run pins the data again, so it trains on the newest records. The
    schedule is fixed-rate: a run that takes longer than the interval delays
    the next one, and missed ticks are skipped, not made up. `on_result` sees
    each published version; a run whose data is not usable (a `DataError` or
    `DatasetError`: no rows yet, one class) goes to `on_error` and the
    schedule goes on, as it does when the log cannot be reached for a while
    (a `LogError`); without `on_error` it is raised.
    """
    from loopline.features.offline.events import BuildError

    if interval_s <= 0:
        raise TrainingError(f"the interval must be positive, not {interval_s} s")
    check_signer(registry, app.model(model_name).name)
    results: list[TrainResult] = []
    attempts = 0
    first = time.monotonic()
    while not stop.is_set():
        try:
            result = train_once(
                log,
                app,
                model_name,
                spine=spine,
                labelled_topic=labelled_topic,
                registry=registry,
                alias=alias,
                schemas=schemas,
                progress=progress,
                allow_missing_history=allow_missing_history,
                entities=entities,
            )
        except (DataError, BuildError, LogError) as exc:
            if on_error is None:
                raise
            on_error(exc)
        else:
            results.append(result)
            if on_result is not None:
                on_result(result)
        attempts += 1
        if runs is not None and attempts >= runs:
            break
        elapsed = time.monotonic() - first
        stop.wait(interval_s - elapsed % interval_s)
    return results
