"""How a loopline HTTP server refuses a request: `Refused`, answered in the server's own shape.

Each server keeps the error body its clients expect (the ingest and serving
APIs answer ``{"error": "..."}``, the schema registry Confluent's
``{"error_code": N, "message": "..."}``); the shared middleware refuses
through a `Shape`, a function from (status, message, headers) to a response.

>>> error_json(413, "too large", {"Connection": "close"}).body
b'{"error":"too large"}'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.responses import JSONResponse, Response

__all__ = ["Refused", "Shape", "error_json"]

Shape = Callable[[int, str, Mapping[str, str]], Response]


class Refused(Exception):
    """A request refused before its endpoint ran (or while it read the body)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def error_json(status: int, message: str, headers: Mapping[str, str]) -> Response:
    """The default shape: ``{"error": message}``."""
    return JSONResponse({"error": message}, status, headers=dict(headers))
