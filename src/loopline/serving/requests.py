"""The bodies of ``/v1/predict`` and ``/v1/rank``, and how a bad one is answered.

Bodies are decoded by msgspec against these types, so a body that is not
JSON (400), has an unknown field or a value of the wrong type (422) is
refused with a message naming the offending place, before any work.

>>> decode(b'{"entity": "m-1", "context": {"page": "home"}}', PredictRequest)
PredictRequest(entity='m-1', context={'page': 'home'})
>>> decode(b'{"entity": 42}', PredictRequest)
Traceback (most recent call last):
...
loopline.serving.requests.ServingError: Expected `str`, got `int` - at `$.entity`
>>> def status(body):
...     try:
...         decode(body, RankRequest)
...     except ServingError as exc:
...         return exc.status, exc.message
>>> status(b'{"entity": "m-1", "candidates": ["i-1"], "top": 3}')
(422, 'Object contains unknown field `top`')
>>> status(b'{"entity": ')[0]
400

The checks that need the limit or the model answer the same way:

>>> def refused(check, *args):
...     try:
...         check(*args)
...     except ServingError as exc:
...         return exc.status, exc.message
>>> refused(check_candidates, ["i-1", "i-2", "i-1"], 1000)
(422, "candidate 'i-1' is listed more than once")
>>> refused(check_candidates, ["i-1", "i-2"], 1)
(413, '2 candidates in one request; the limit is 1')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec
from fastapi.responses import JSONResponse

from loopline.serving.decisions import Value

if TYPE_CHECKING:
    from loopline.serving.models import ServedModel

__all__ = [
    "Id",
    "PredictRequest",
    "RankRequest",
    "ServingError",
    "check_answers",
    "check_candidates",
    "decode",
    "schema",
]

T = TypeVar("T")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Score one entity: its id, and what the caller knows about the request."""

    entity: Id
    context: dict[str, Value] = {}


class RankRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Order `candidates` for `entity`; `k` keeps the best k (default: all)."""

    entity: Id
    candidates: list[Id]
    k: Annotated[int, msgspec.Meta(ge=1)] | None = None
    context: dict[str, Value] = {}


class ServingError(Exception):
    """A request that cannot be answered: HTTP status and a message saying what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, self.status, headers=self.headers)


def decode(body: bytes, kind: type[T]) -> T:
    """`body` as a `kind`, or `ServingError` 400 (not JSON) / 422 (not a valid `kind`)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ServingError(422, str(exc)) from None
    except Exception as exc:  # DecodeError, RecursionError, UnicodeError, ...
        raise ServingError(400, f"the body is not valid JSON: {exc}") from None


def check_candidates(candidates: list[str], limit: int) -> None:
    """`ServingError` 413 for more than `limit` candidates, 422 for none or one listed twice."""
    if len(candidates) > limit:
        raise ServingError(
            413, f"{len(candidates)} candidates in one request; the limit is {limit}"
        )
    if not candidates:
        raise ServingError(422, "candidates is empty: give at least one candidate id")
    if len(set(candidates)) != len(candidates):
        seen: set[str] = set()
        for candidate in candidates:
            if candidate in seen:
                raise ServingError(422, f"candidate {candidate!r} is listed more than once")
            seen.add(candidate)


def check_answers(served: ServedModel, kind: Literal["predict", "rank"]) -> None:
    """`ServingError` 422 when `served` cannot answer a `kind` request (the other endpoint can)."""
    other = served.candidate_entity
    if kind == "predict" and other is not None:
        raise ServingError(
            422,
            f"model {served.name!r} v{served.number} scores a {served.entity} with each "
            f"{other}: use POST /v1/rank with candidates",
        )
    if kind == "rank" and other is None:
        raise ServingError(
            422,
            f"model {served.name!r} v{served.number} reads only {served.entity} features, "
            "so every candidate would score the same: use POST /v1/predict",
        )


def schema(kind: type) -> dict[str, Any]:
    """The JSON Schema of a request type, for the OpenAPI document."""
    (body,), components = msgspec.json.schema_components(
        [kind], ref_template="#/components/schemas/{name}"
    )
    return {"body": body, "components": components}
