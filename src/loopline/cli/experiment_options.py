"""How ``loopline experiments start`` reads its options: arms, weights, guardrails, ramps.

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
click.exceptions.BadParameter: arm 'v7=7.5': give NAME=version:N or NAME=alias:ALIAS (e.g. control=alias:production, v7=version:7)
"""

from __future__ import annotations

import math

import click

from loopline.experiments.records import METRICS, Arm, Guardrail

__all__ = ["default_weights", "parse_arm", "parse_guardrail", "parse_ramp", "parse_weights"]


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
    raise click.BadParameter(
        f"arm {text!r}: give NAME=version:N or NAME=alias:ALIAS "
        "(e.g. control=alias:production, v7=version:7)",
        param_hint="'--arm'",
    )


def _number(text: str, what: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise click.BadParameter(f"{what} {text!r} is not a number", param_hint=f"'{option}'")
    return value


def parse_weights(text: str, names: list[str]) -> dict[str, float]:
    """``0.9,0.1`` (in the order of the arms) or ``control=0.9,v7=0.1``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if parts and all("=" not in p for p in parts):
        if len(parts) != len(names):
            raise click.BadParameter(
                f"{len(parts)} weights for {len(names)} arms ({', '.join(names)}): give one "
                "per arm, in the order of --arm, or NAME=WEIGHT pairs",
                param_hint="'--weights'",
            )
        return {n: _number(p, "weight", "--weights") for n, p in zip(names, parts, strict=True)}
    weights = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in names:
            raise click.BadParameter(
                f"{part!r}: give NAME=WEIGHT with NAME one of the arms ({', '.join(names)})",
                param_hint="'--weights'",
            )
        weights[name.strip()] = _number(value, "weight", "--weights")
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
        raise click.BadParameter(
            f"guardrail {text!r}: unknown metric {metric!r} (metrics: {', '.join(METRICS)})",
            param_hint="'--guardrail'",
        )
    return Guardrail(metric, _number(margin, "margin", "--guardrail") if margin else 0.0)  # type: ignore[arg-type]


def parse_ramp(text: str) -> tuple[float, ...]:
    """``0.01,0.05,0.25,0.5``: the canary treatment's weights, one step at a time."""
    return tuple(_number(p.strip(), "ramp step", "--ramp") for p in text.split(",") if p.strip())
