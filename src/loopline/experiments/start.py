"""Starting an experiment from its options as people write them: ``loopline experiments start``
and the dashboard's form both call `start` (arms, weights, guardrails, ramps as text).

A mistake in an option is an `OptionError` naming the option (``--arm``),
which the CLI shows as click shows a bad option and the dashboard beside its
form; what `loopline.experiments.records.check` or the registry refuse (the
weights do not add up to 1, another experiment running on the model) is an
`ExperimentError` with the same words for both.

>>> parse_arm("control=alias:production"), parse_arm("v7=version:7"), parse_arm("v8=8")
(Arm(name='control', version=None, alias='production', weight=0.0, control=False), \
Arm(name='v7', version=7, alias=None, weight=0.0, control=False), \
Arm(name='v8', version=8, alias=None, weight=0.0, control=False))
>>> parse_weights("0.9,0.1", ["control", "v7"]), parse_weights("v7=0.25", ["control", "v7"])
({'control': 0.9, 'v7': 0.1}, {'v7': 0.25})
>>> parse_guardrail("mean_label:0.1"), parse_ramp("0.01,0.05,0.25,0.5")
(Guardrail(metric='mean_label', margin=0.1), (0.01, 0.05, 0.25, 0.5))
>>> parse_arm("v7=7.5")
Traceback (most recent call last):
...
loopline.experiments.start.OptionError: arm 'v7=7.5': give NAME=version:N or NAME=alias:ALIAS (e.g. control=alias:production, v7=version:7)
>>> declare("ab", "ranker", ["control=alias:production", "v2=2"], weights="0.9,0.1").weights
{'control': 0.9, 'v2': 0.1}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from loopline.experiments.records import METRICS, Arm, Experiment, ExperimentError, Guardrail
from loopline.experiments.registry import ExperimentRegistry

__all__ = [
    "OptionError",
    "declare",
    "default_weights",
    "parse_arm",
    "parse_guardrail",
    "parse_ramp",
    "parse_weights",
    "start",
]


class OptionError(ExperimentError):
    """A bad value of `option` (``--arm``, ``--weights``, ...)."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


def parse_arm(text: str) -> Arm:
    """``NAME=version:N``, ``NAME=alias:ALIAS``, or ``NAME=N`` (a version)."""
    name, _, target = text.partition("=")
    kind, _, value = target.partition(":")
    if not value:
        kind, value = ("version" if target.isdigit() else ""), target
    if name and kind == "version" and value.isdigit():
        return Arm(name.strip(), version=int(value))
    if name and kind == "alias" and value:
        return Arm(name.strip(), alias=value.strip())
    raise OptionError(
        f"arm {text!r}: give NAME=version:N or NAME=alias:ALIAS "
        "(e.g. control=alias:production, v7=version:7)",
        "--arm",
    )


def number(text: str, what: str, option: str) -> float:
    """`text` as a finite number, or an `OptionError` saying it is not one."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise OptionError(f"{what} {text!r} is not a number", option)
    return value


def parse_weights(text: str, names: list[str]) -> dict[str, float]:
    """``0.9,0.1`` (in the order of the arms) or ``control=0.9,v7=0.1``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if parts and all("=" not in p for p in parts):
        if len(parts) != len(names):
            raise OptionError(
                f"{len(parts)} weights for {len(names)} arms ({', '.join(names)}): give one "
                "per arm, in the order of --arm, or NAME=WEIGHT pairs",
                "--weights",
            )
        return {n: number(p, "weight", "--weights") for n, p in zip(names, parts, strict=True)}
    weights = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in names:
            raise OptionError(
                f"{part!r}: give NAME=WEIGHT with NAME one of the arms ({', '.join(names)})",
                "--weights",
            )
        weights[name.strip()] = number(value, "weight", "--weights")
    return weights


def default_weights(arms: list[Arm], policy: str, ramp: tuple[float, ...]) -> dict[str, float]:
    """Equal shares; for a canary, the first step of the ramp to the treatment, the rest to control.

    >>> arms = [Arm("control", alias="production"), Arm("v7", version=7)]
    >>> default_weights(arms, "split", ()), default_weights(arms, "canary", (0.01, 0.1))
    ({'control': 0.5, 'v7': 0.5}, {'control': 0.99, 'v7': 0.01})
    """
    if policy == "canary" and ramp and len(arms) == 2:
        return {arms[0].name: 1.0 - ramp[0], arms[1].name: ramp[0]}
    return {a.name: 1.0 / len(arms) for a in arms}


def parse_guardrail(text: str) -> Guardrail:
    """``METRIC:MARGIN`` (a relative margin: 0.1 is 10% worse than control) or ``METRIC``."""
    metric, _, margin = text.partition(":")
    if metric not in METRICS:
        raise OptionError(
            f"guardrail {text!r}: unknown metric {metric!r} (metrics: {', '.join(METRICS)})",
            "--guardrail",
        )
    return Guardrail(metric, number(margin, "margin", "--guardrail") if margin else 0.0)  # type: ignore[arg-type]


def parse_ramp(text: str) -> tuple[float, ...]:
    """``0.01,0.05,0.25,0.5``: the canary treatment's weights, one step at a time."""
    return tuple(number(p.strip(), "ramp step", "--ramp") for p in text.split(",") if p.strip())


def declare(
    name: str,
    model: str,
    arms: Sequence[str],
    *,
    weights: str | None = None,
    policy: str = "split",
    ramp: str | None = None,
    ramp_every: int = 500,
    unit: str = "entity",
    guardrails: Sequence[str] = (),
    primary: str = "mean_label",
    alpha: float = 0.05,
    floor: float = 0.05,
    auto_conclude: bool = False,
) -> Experiment:
    """The experiment these options describe (the first arm is the control)."""
    if policy not in ("split", "bandit", "canary"):
        raise OptionError(f"policy {policy!r}: use split, bandit or canary", "--policy")
    if primary not in METRICS:
        raise OptionError(
            f"primary metric {primary!r}: use one of {', '.join(METRICS)}", "--primary"
        )
    parsed = [parse_arm(a) for a in arms]
    steps = parse_ramp(ramp) if ramp else ()
    names = [a.name for a in parsed]
    shares = default_weights(parsed, policy, steps)
    if weights:
        shares.update(parse_weights(weights, names))
    return Experiment(
        name=name,
        model=model,
        arms=tuple(
            msgspec.structs.replace(a, weight=shares[a.name], control=i == 0)
            for i, a in enumerate(parsed)
        ),
        policy=policy,  # type: ignore[arg-type]
        unit=unit,
        primary=primary,  # type: ignore[arg-type]
        guardrails=tuple(parse_guardrail(g) for g in guardrails),
        alpha=alpha,
        floor=floor,
        ramp=steps,
        ramp_every=ramp_every,
        auto_conclude=auto_conclude,
    )


def start(
    registry: ExperimentRegistry,
    name: str,
    model: str,
    arms: Sequence[str],
    *,
    reason: str = "started",
    **options: object,
) -> Experiment:
    """Start the experiment the options (`declare`'s) describe on `registry`: its first
    revision, as the registry wrote it."""
    return registry.start(declare(name, model, arms, **options), reason=reason)  # type: ignore[arg-type]
