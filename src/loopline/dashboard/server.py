"""`dashboard_app`: the dashboard's routes, its refusals as pages, and its protection.

Pages (GET, HTML): ``/loop``, ``/models``, ``/models/{model}``,
``/models/{model}/{version}``, ``/experiments``, ``/experiments/{name}``,
``/features``, ``/alerts``, ``/topics``, ``/topics/{topic}``; the parts
that refresh by themselves: ``/live/loop``, ``/live/alerts``,
``/live/report/{name}`` (an experiment's report); data for
programs: ``/api/loop``, ``/api/alerts``, ``/api/models``; actions (POST,
`loopline.dashboard.actions`): ``/actions/{name}``. An unknown model,
version, experiment or topic is a 404 page. With a token, everything but
``/login``, ``/healthz`` and ``/static/`` needs it (`loopline.http.protect`:
the bearer check of every loopline server; a browser signs in once through
``/login``, `loopline.dashboard.token_cookie`).

>>> import tempfile
>>> from starlette.testclient import TestClient
>>> from loopline.app import App
>>> from loopline.log import open_log
>>> board = Dashboard(open_log("embedded:" + tempfile.mkdtemp()), App("shop"))
>>> client = TestClient(dashboard_app(board))
>>> client.get("/loop").status_code, client.get("/models/nope").status_code
(200, 404)
>>> board.close()
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from loopline.dashboard import csrf
from loopline.dashboard.actions import ACTIONS, ActionError
from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import card, esc, page
from loopline.dashboard.page_alerts import alerts_body, alerts_json
from loopline.dashboard.page_experiments import experiment_body, experiments_body
from loopline.dashboard.page_features import features_body
from loopline.dashboard.page_loop import loop_body, loop_json, loop_live
from loopline.dashboard.page_models import model_body, models_body, version_body
from loopline.dashboard.page_report import report_live
from loopline.dashboard.page_topics import topic_body, topics_body
from loopline.dashboard.token_cookie import COOKIE as TOKEN_COOKIE
from loopline.dashboard.token_cookie import TokenCookie
from loopline.experiments.records import Experiment
from loopline.experiments.registry import ExperimentNotFound
from loopline.http.middleware import protect
from loopline.log import LogError
from loopline.models import ModelNotFound

__all__ = ["Dashboard", "dashboard_app"]

NOTICE = "loopline_notice"
MAX_FORM = 64 * 1024
PUBLIC = ("/login", "/healthz", "/favicon.ico")


def _is_public(method: str, path: str) -> bool:
    return path in PUBLIC or path.startswith("/static/")


def _page(request: Request, title: str, active: str, body: str, status: int = 200) -> Response:
    """An HTML page; it carries this browser's CSRF cookie (made on its first page)."""
    board: Dashboard = request.app.state.dashboard
    notice = unquote(request.cookies.get(NOTICE, ""))
    response = HTMLResponse(page(title, active, board.app.name, body, notice=notice), status)
    if notice:
        response.delete_cookie(NOTICE, path="/")
    if not request.cookies.get(csrf.COOKIE):
        response.set_cookie(
            csrf.COOKIE, request.state.csrf, httponly=True, samesite="strict", path="/"
        )
    return response


def _csrf(request: Request) -> str:
    token = request.cookies.get(csrf.COOKIE) or csrf.new_token()
    request.state.csrf = token
    return token


def _html(
    render: Callable[..., str | tuple[str, str]], title: str, active: str
) -> Callable[[Request], Any]:
    """A page endpoint: `render(board, request)` in a worker thread (the registries block)."""

    async def endpoint(request: Request) -> Response:
        board: Dashboard = request.app.state.dashboard
        _csrf(request)
        body = await run_in_threadpool(render, board, request)
        if isinstance(body, tuple):  # (its own title, body): a page about one named thing
            return _page(request, body[0], active, body[1])
        return _page(request, title, active, body)

    return endpoint


def _model(board: Dashboard, name: str) -> str:
    if name not in board.model_names() or not board.has_versions(name):
        raise HTTPException(404, f"application {board.app.name!r} has no model {name!r}")
    return name


def _model_page(board: Dashboard, request: Request) -> tuple[str, str]:
    name = _model(board, request.path_params["model"])
    return name, model_body(board, name, request.state.csrf)


def _version_page(board: Dashboard, request: Request) -> tuple[str, str]:
    name = _model(board, request.path_params["model"])
    text = request.path_params["version"].removeprefix("v")
    try:
        version = board.models.version(name, int(text))
    except (ValueError, ModelNotFound):
        raise HTTPException(404, f"model {name!r} has no version {text!r}") from None
    return f"{name} v{version.version}", version_body(board, version)


def _experiment_page(board: Dashboard, request: Request) -> tuple[str, str]:
    name = request.path_params["name"]
    experiment = _experiment(board, name)
    return f"Experiment {name}", experiment_body(board, experiment, request.state.csrf)


def _topic_page(board: Dashboard, request: Request) -> tuple[str, str]:
    topic = request.path_params["topic"]
    prefix = f"{board.app.name}."
    mine = topic.startswith(prefix) or topic in board.rates.extra
    try:
        info = board.log.describe_topic(topic) if mine else None
    except LogError:
        info = None
    if info is None:
        raise HTTPException(404, f"application {board.app.name!r} has no topic {topic!r}")
    return topic, topic_body(board, topic, info, request.state.csrf)


def _experiment(board: Dashboard, name: str) -> Experiment:
    board.experiments.refresh()
    try:
        experiment = board.experiments.get(name)
    except ExperimentNotFound:
        experiment = None
    if experiment is None or experiment.model not in board.model_names():
        raise HTTPException(404, f"application {board.app.name!r} has no experiment {name!r}")
    return experiment


async def _live_report(request: Request) -> Response:
    board: Dashboard = request.app.state.dashboard

    def render() -> str:
        return report_live(board, _experiment(board, request.path_params["name"]))

    return HTMLResponse(await run_in_threadpool(render))


async def _live(request: Request) -> Response:
    board: Dashboard = request.app.state.dashboard
    render = {"loop": loop_live, "alerts": alerts_body}.get(request.path_params["part"])
    if render is None:
        raise HTTPException(404, "no such live part")
    return HTMLResponse(await run_in_threadpool(render, board))


async def _api(request: Request) -> Response:
    board: Dashboard = request.app.state.dashboard
    what = request.path_params["what"]
    if what == "loop":
        return JSONResponse(await run_in_threadpool(loop_json, board))
    if what == "alerts":
        return JSONResponse(await run_in_threadpool(alerts_json, board))
    if what == "models":

        def models() -> dict[str, Any]:
            return {
                n: board.models.aliases(n) for n in board.model_names() if board.has_versions(n)
            }

        return JSONResponse(await run_in_threadpool(models))
    raise HTTPException(404, f"no API {what!r}: there are loop, alerts and models")


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ActionError(413, "the form is too large")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _origin_host(request: Request) -> str:
    return request.headers.get("host", "")


async def _action(request: Request) -> Response:
    board: Dashboard = request.app.state.dashboard
    run = ACTIONS.get(request.path_params["name"])
    _csrf(request)
    if run is None:
        raise HTTPException(404, f"no action {request.path_params['name']!r}")
    try:
        form = await _form(request)
        problem = csrf.problem(
            form, request.cookies, origin=request.headers.get("origin"), host=_origin_host(request)
        )
        if problem is not None:
            raise ActionError(403, problem)
        done = await run_in_threadpool(run, board, form)
    except ActionError as exc:
        return _page(request, "Not done", "", card("Not done", f"<p>{esc(exc)}</p>"), exc.status)
    response = RedirectResponse(done.back, 303)
    response.set_cookie(NOTICE, quote(done.message), httponly=True, samesite="strict", path="/")
    return response


def _login_form(message: str, next_path: str = "/loop") -> str:
    return card(
        "Sign in",
        f"<p>{esc(message)}</p>"
        '<form method="post" action="/login" class="action">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label>token <input type="password" name="token" autocomplete="current-password" '
        'size="34" required></label><button type="submit">Sign in</button></form>',
    )


async def _login(request: Request) -> Response:
    board: Dashboard = request.app.state.dashboard
    if request.method == "GET":
        body = _login_form("This dashboard needs its token (--token, $LOOPLINE_DASHBOARD_TOKEN).")
        return HTMLResponse(page("Sign in", "", board.app.name, body))
    origin = request.headers.get("origin")
    if origin and csrf.problem({"csrf": "x"}, {csrf.COOKIE: "x"}, origin=origin,
                               host=_origin_host(request)):  # fmt: skip
        return HTMLResponse(page("Sign in", "", board.app.name, _login_form("refused")), 403)
    form = await _form(request)
    next_path = form.get("next", "/loop")
    if not next_path.startswith("/") or next_path.startswith("//"):
        next_path = "/loop"
    response = RedirectResponse(next_path, 303)
    # Checked by BearerAuth on the next request, as every token is; a wrong one comes back here.
    response.set_cookie(
        TOKEN_COOKIE, form.get("token", ""), httponly=True, samesite="strict", path="/"
    )
    return response


def _refusal(app_name: str) -> Callable[[int, str, Any], Response]:
    """How the shared middleware's refusals look here: a page (401: the sign-in form)."""

    def shape(status: int, message: str, headers: Any) -> Response:
        if status == 401:
            body = _login_form(message)
        else:
            body = card(HTTPStatus(status).phrase, f"<p>{esc(message)}</p>")
        return HTMLResponse(
            page(HTTPStatus(status).phrase, "", app_name, body), status, dict(headers)
        )

    return shape


def dashboard_app(board: Dashboard, *, token: str | None = None) -> Starlette:
    """The ASGI app of `board`'s pages; with `token`, every page and action needs it."""
    static = str(importlib.resources.files("loopline.dashboard") / "static")

    async def home(request: Request) -> Response:
        return RedirectResponse("/loop", 307)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/login", _login, methods=["GET", "POST"]),
        Route("/loop", _html(lambda b, r: loop_body(b), "Loop", "Loop")),
        Route("/models", _html(lambda b, r: models_body(b, r.state.csrf), "Models", "Models")),
        Route("/models/{model:path}/{version}", _html(_version_page, "Model version", "Models")),
        Route("/models/{model}", _html(_model_page, "Model", "Models")),
        Route(
            "/experiments",
            _html(lambda b, r: experiments_body(b, r.state.csrf), "Experiments", "Experiments"),
        ),
        Route("/experiments/{name}", _html(_experiment_page, "Experiment", "Experiments")),
        Route("/features", _html(lambda b, r: features_body(b), "Features", "Features")),
        Route("/alerts", _html(lambda b, r: alerts_body(b), "Alerts", "Alerts")),
        Route("/topics", _html(lambda b, r: topics_body(b), "Topics", "Topics")),
        Route("/topics/{topic}", _html(_topic_page, "Topic", "Topics")),
        Route("/live/report/{name}", _live_report),
        Route("/live/{part}", _live),
        Route("/api/{what}", _api),
        Route("/actions/{name}", _action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or HTTPStatus(status).phrase
        if status == 404 and detail == "Not Found":
            detail = f"nothing at {request.url.path}"
        title = HTTPStatus(status).phrase
        body = card(title, f"<p>{esc(detail)}</p><p><a href='/loop'>Back to the loop</a></p>")
        return HTMLResponse(page(title, "", board.app.name, body), status)

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.dashboard = board
    protect(
        app,
        server=f"dashboard:{board.app.name}",
        token=token,
        max_body_bytes=MAX_FORM,
        is_public=_is_public,
        shape=_refusal(board.app.name),
    )
    app.add_middleware(TokenCookie)
    return app
