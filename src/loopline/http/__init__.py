"""What every loopline HTTP server shares: auth, body limits, metrics, server limits, URLs.

The ingest server (`loopline.connectors.http`), the schema registry
(`loopline.contracts.registry_http`), the prediction service
(`loopline.serving.http`) and the dashboard to come are FastAPI apps that
call `protect` once and run through `serve` (or `running` in tests), so
they refuse the same requests the same way:

- `auth`: ``Authorization: Bearer TOKEN`` (constant-time; an empty or short
  token is refused at start), with public paths per server;
- `limits`: body size (413) and body arrival time (408);
- `metrics`: ``loopline_http_requests_total`` and
  ``loopline_http_request_seconds`` by server, route, method and status;
- `server`: uvicorn with deadlines for request heads and bodies, idle
  keep-alive and a connection limit (`ServerLimits`);
- `urls`: URLs printed without their credentials.

This package sits left of `loopline.contracts` in the layers and imports
only `loopline.log` (and its third-party libraries).
"""

from loopline.http.auth import MIN_TOKEN_LENGTH, BearerAuth, WeakToken, check_token, public
from loopline.http.errors import Refused, Shape, error_json
from loopline.http.limits import BodyLimit, size_text
from loopline.http.metrics import RequestMetrics, metrics_response
from loopline.http.middleware import protect
from loopline.http.server import ServerLimits, running, serve, server_config
from loopline.http.urls import redact_url, url_secrets

__all__ = [
    "MIN_TOKEN_LENGTH",
    "BearerAuth",
    "BodyLimit",
    "Refused",
    "RequestMetrics",
    "ServerLimits",
    "Shape",
    "WeakToken",
    "check_token",
    "error_json",
    "metrics_response",
    "protect",
    "public",
    "redact_url",
    "running",
    "serve",
    "server_config",
    "size_text",
    "url_secrets",
]
