"""Drive a real loopline HTTP server with schemathesis cases drawn from its OpenAPI document."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

Adjust = Callable[[Any, st.DataObject], None]


@dataclass
class Run:
    """What a fuzz run saw: status counts, and the answers, by operation."""

    statuses: Counter[int] = field(default_factory=Counter)
    answers: list[tuple[str, Any, Any]] = field(default_factory=list)  # (operation, case, response)

    def server_errors(self) -> list[str]:
        return [
            f"{label} -> {response.status_code}: {response.text[:300]}"
            for label, _, response in self.answers
            if response.status_code >= 500
        ]


def fuzz(
    url: str,
    document: dict[str, Any],
    *,
    examples: int,
    token: str | None = None,
    adjust: dict[str, Adjust] | None = None,
    skip: tuple[str, ...] = (),
) -> Run:
    """Send `examples` cases (valid and invalid) to each operation of `document` at `url`.

    `adjust[operation label]` may change a drawn case (e.g. name a topic that
    exists); with `token`, most cases carry it. Every response is recorded.
    """
    schema = schemathesis.openapi.from_dict(document)
    run = Run()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label not in skip:
            _fuzz_one(run, url, operation, label, examples, token, (adjust or {}).get(label))
    return run


def _fuzz_one(
    run: Run,
    url: str,
    operation: Any,
    label: str,
    examples: int,
    token: str | None,
    tweak: Adjust | None,
) -> None:
    modes = [operation.as_strategy(GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # an operation with nothing to make invalid
        modes.append(operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(*modes), data=st.data(), authorized=st.sampled_from([True] * 3 + [False]))
    def send(case: Any, data: st.DataObject, authorized: bool) -> None:
        if tweak is not None:
            tweak(case, data)
        headers = {}
        if token is not None and authorized:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = case.call(base_url=url, headers=headers, timeout=30)
        except (ValueError, UnicodeError):
            return  # a header or URL the HTTP client itself refuses to send
        run.statuses[response.status_code] += 1
        run.answers.append((label, case, response))

    send()
