"""What every loopline HTTP server shares: auth, body limits, metrics, server limits, URLs.

The ingest server (`loopline.connectors.http`), the schema registry
(`loopline.contracts.registry_http`), the prediction service
(`loopline.serving.http`) and the dashboard to come are FastAPI apps that
call `middleware.protect` once and run through `server.serve` (or
`server.running` in tests), so they refuse the same requests the same way.
One module per concept, imported by name (the CLI imports the light ones
without loading a web framework):

- `tokens`: a token fit to protect a server (16+ printable characters);
- `auth`: ``Authorization: Bearer TOKEN`` middleware, public paths per server;
- `body`: body size (413) and arrival time (408) middleware;
- `metrics`: ``loopline_http_requests_total`` and ``loopline_http_request_seconds``;
- `middleware`: `protect`, which stacks the three on an app;
- `limits` and `server`: uvicorn with deadlines for request heads and bodies,
  idle keep-alive and a connection limit;
- `errors`: `Refused` and the error shapes;
- `urls`: URLs printed without their credentials.

This package sits left of `loopline.contracts` in the layers and imports
only `loopline.log` (and third-party libraries).
"""
