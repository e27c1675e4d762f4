"""The dashboard's actions: promote, roll back, start and stop an experiment, replay dead letters.

Each is a POST form, refused without the CSRF token (`loopline.dashboard.csrf`)
and, when the dashboard has one, without the bearer token; each checks its
input as the CLI's options do and calls the function the CLI command calls:
`loopline.models.promotion.promote` / `roll_back` (``loopline models
promote`` / ``rollback``), `loopline.experiments.start.start` (``loopline
experiments start``), `ExperimentRegistry.stop` (``loopline experiments
stop``), `loopline.contracts.replay.replay` (``loopline dlq
replay``). What it did, or why not, is said in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from loopline.contracts.replay import replay
from loopline.dashboard.context import Dashboard
from loopline.experiments.records import ExperimentError
from loopline.experiments.registry import ExperimentNotFound
from loopline.experiments.start import OptionError
from loopline.experiments.start import start as start_with_options
from loopline.log import LogError, TopicNotFound
from loopline.models import ModelLoadError, ModelNotFound, ModelRegistryError, promotion

__all__ = ["ACTIONS", "ActionError", "Outcome"]


class ActionError(Exception):
    """An action refused: `status` (400 bad input, 404 unknown name) and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Outcome:
    """What an action did (`message`), and the page to go back to (`back`)."""

    message: str
    back: str


def _field(form: Mapping[str, str], name: str, *, required: bool = True) -> str:
    value = form.get(name, "").strip()
    if required and not value:
        raise ActionError(400, f"missing {name!r}: fill it in and send the form again")
    return value


def _was(previous: int | None) -> str:
    return f"was v{previous}" if previous is not None else "was unset"


def promote(ctx: Dashboard, form: Mapping[str, str]) -> Outcome:
    name, alias = _field(form, "model"), _field(form, "alias")
    text = _field(form, "version")
    try:
        version = int(text)
    except ValueError:
        raise ActionError(400, f"version {text!r} is not a whole number (e.g. 3)") from None
    reason = _field(form, "reason", required=False) or None
    try:
        done = promotion.promote(ctx.models, name, version, alias, reason=reason)
    except ModelNotFound as exc:
        raise ActionError(404, str(exc).strip('"')) from None
    except (ModelRegistryError, ModelLoadError, ValueError) as exc:
        raise ActionError(400, str(exc)) from None
    back = f"/models#{name}"
    if done.change is None:
        return Outcome(f"model {name!r}: alias {alias!r} already points at v{version}", back)
    checked = "" if done.verified else " (signature not checked: no verification key configured)"
    return Outcome(
        f"model {name!r}: alias {alias!r} now points at v{version} "
        f"({_was(done.change.previous)}){checked}",
        back,
    )


def rollback(ctx: Dashboard, form: Mapping[str, str]) -> Outcome:
    name, alias = _field(form, "model"), _field(form, "alias")
    reason = _field(form, "reason", required=False) or None
    try:
        change = promotion.roll_back(ctx.models, name, alias, reason=reason)
    except ModelNotFound as exc:
        raise ActionError(404, str(exc).strip('"')) from None
    except (ModelRegistryError, ValueError) as exc:
        raise ActionError(400, str(exc)) from None
    return Outcome(
        f"model {name!r}: alias {alias!r} rolled back to v{change.version} "
        f"({_was(change.previous)})",
        f"/models#{name}",
    )


T = TypeVar("T", int, float)
_KINDS = {int: "a whole number", float: "a number"}


def _option(form: Mapping[str, str], name: str, default: T, option: str) -> T:
    """Form field `name` read as its `default`'s type (int or float); blank: `default`."""
    text = _field(form, name, required=False)
    if not text:
        return default
    kind = type(default)
    try:
        return kind(text)
    except ValueError:
        raise ActionError(
            400, f"{option} {text!r} is not {_KINDS[kind]} (e.g. {default})"
        ) from None


def _list(text: str) -> list[str]:
    """One item a line or between commas (the CLI repeats the option instead)."""
    return [p.strip() for line in text.splitlines() for p in line.split(",") if p.strip()]


def start_experiment(ctx: Dashboard, form: Mapping[str, str]) -> Outcome:
    name, model = _field(form, "experiment"), _field(form, "model")
    if model not in ctx.model_names():
        raise ActionError(404, f"application {ctx.app.name!r} has no model {model!r}")
    arms = [a for a in _field(form, "arms").splitlines() if a.strip()]
    try:
        started = start_with_options(
            ctx.experiments,
            name,
            model,
            [a.strip() for a in arms],
            reason=_field(form, "reason", required=False) or "started",
            weights=_field(form, "weights", required=False) or None,
            policy=_field(form, "policy", required=False) or "split",
            ramp=_field(form, "ramp", required=False) or None,
            ramp_every=_option(form, "ramp_every", 500, "ramp every"),
            unit=_field(form, "unit", required=False) or "entity",
            guardrails=_list(form.get("guardrails", "")),
            primary=_field(form, "primary", required=False) or "mean_label",
            alpha=_option(form, "alpha", 0.05, "alpha"),
            floor=_option(form, "floor", 0.05, "floor"),
            auto_conclude=form.get("auto_conclude", "") in ("on", "true", "1"),
        )
    except OptionError as exc:
        raise ActionError(400, f"{exc.option.lstrip('-')}: {exc}") from None
    except ExperimentError as exc:
        raise ActionError(400, str(exc)) from None
    arms_text = ", ".join(f"{a.name} {a.weight:g}" for a in started.arms)
    return Outcome(
        f"experiment {name!r} started on model {model!r} ({started.policy}, by {started.unit}): "
        f"{arms_text}; serving routes by it within a second",
        f"/experiments/{name}",
    )


def stop_experiment(ctx: Dashboard, form: Mapping[str, str]) -> Outcome:
    name, reason = _field(form, "experiment"), _field(form, "reason")
    try:
        stopped = ctx.experiments.stop(name, reason=reason)
    except ExperimentNotFound as exc:
        raise ActionError(404, str(exc)) from None
    except ExperimentError as exc:
        raise ActionError(400, str(exc)) from None
    return Outcome(
        f"experiment {name!r} stopped (revision {stopped.revision}): every request is "
        "answered by the alias again within a second",
        f"/experiments/{name}",
    )


def replay_dead_letters(ctx: Dashboard, form: Mapping[str, str]) -> Outcome:
    topic = _field(form, "topic")
    try:
        report = replay(ctx.log, ctx.schemas, topic)
    except TopicNotFound:
        raise ActionError(404, f"topic {topic!r} has no dead letters (no {topic}.dlq)") from None
    except LogError as exc:
        raise ActionError(400, f"cannot replay {topic}'s dead letters: {exc}") from None
    return Outcome(
        f"replayed {report.replayed} to {topic}; {report.returned} still failing, back in "
        f"{topic}.dlq",
        f"/topics/{topic}",
    )


ACTIONS: dict[str, Callable[[Dashboard, Mapping[str, str]], Outcome]] = {
    "promote": promote,
    "rollback": rollback,
    "start-experiment": start_experiment,
    "stop-experiment": stop_experiment,
    "replay": replay_dead_letters,
}
