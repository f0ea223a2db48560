"""AutoTune Web: the read-only web UI, served by the tuner server on its own port.

Pages are static files (tuner_server/web/); they fetch JSON from ``/ui/api/...`` and draw
with the vendored ECharts build, so nothing is built or templated at run time and no
secret can end up in a page (one exception: the login page shown with a 429 carries the
server's own "try again in N seconds" sentence). Who may look: a browser session made by logging in with the
viewer (or admin) token, see ui_auth.py; scripts may instead send that token as a bearer
token. Every route here only reads. Too many failed log-ins from one address get 429 for a
while (failed_logins.py).
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuner_server.engine import Engine, Hosted
from tuner_server.failed_logins import FailedLogins, client_key, retry_after_header
from tuner_server.importance import from_trials as importance_from_trials
from tuner_server.importance import report as importance_report
from tuner_server.ui_auth import LoginCodes, Role, Session, Sessions, TokenCheck, matches_any
from tuner_server.ui_changes import revision, trials_since

WEB = Path(__file__).parent / "web"
COOKIE = "autotune_ui"
LOG_TAIL_BYTES = 1 << 20  # a trial log can be huge; the page shows its end
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class UiOptions:
    """What the embedding process knows beyond the engine.

    ``trial_log`` finds a trial's log file (local mode writes them); ``phase`` tells an
    experiment's phase when the process runs its controller (the tuner server alone only
    sees trials). Without them the UI says how to get the log and derives an activity label.
    """

    viewer_token: str | None = None
    trial_log: Callable[[str, str], Path | None] | None = None
    phase: Callable[[str], str | None] | None = None
    session_ttl: float = 12 * 3600
    login_code_ttl: float = 600


@dataclass
class UiState:
    tokens: TokenCheck
    sessions: Sessions
    codes: LoginCodes
    options: UiOptions = field(default_factory=UiOptions)
    failed: FailedLogins = field(default_factory=FailedLogins)


def derived_phase(summary: dict[str, Any]) -> str:
    """The tuner server alone does not know the controller's phase; say what it can see."""
    c = summary.get("trials") or {}
    if c.get("running", 0) or c.get("waiting", 0):
        return "RUNNING"
    return "IDLE" if c.get("total", 0) else "PENDING"


def _search_space(h: Hosted) -> Any:
    try:
        return json.loads(h.config.searchSpace)
    except ValueError:
        return None


def _safe_next(value: str | None) -> str:
    """Only redirect within the UI after login (no open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def _same_origin(request: Request) -> bool:
    """Refuse a form posted from another site (login CSRF). Browsers send Sec-Fetch-Site
    and Origin on a POST; a client that sends neither (curl, a script) is not a browser
    that could be tricked.

    A browser's Sec-Fetch-Site decides alone (pages cannot forge it): behind a reverse proxy
    that sends its own Host upstream (nginx's proxy_pass by default) the Origin names the
    proxy, and comparing it with Host refused every log-in. Origin vs Host is for browsers
    too old to send Sec-Fetch-Site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc == request.headers.get("host", "")
    return True


def client_address(request: Request) -> str:
    """Whom failed log-ins are counted against: the TCP peer (behind a proxy, the proxy).
    X-Forwarded-For is never read: any client could send a new one with every guess."""
    return client_key(request.client.host if request.client else None)


def count_unless_known(failed: FailedLogins, engine: Engine, known: Iterable[str], address: str, token: str) -> None:
    """Count a refused token as a failed log-in unless the server knows it (``known``, or an
    experiment's own token): a known token in the wrong place is a caller's bug, not a guess."""
    if token and not matches_any(token, [*known, *(h.stored.token for h in engine.list())]):
        failed.failed(address)


def too_many_failures_message(seconds: float) -> str:
    return (f"too many failed log-ins (wrong tokens or login codes) from your address; try again in "
            f"{retry_after_header(seconds)} seconds (until then even the right token is refused)")


def too_many_failures(seconds: float) -> HTTPException:
    """429 for a JSON route: the detail says why and when; Retry-After says when."""
    return HTTPException(429, too_many_failures_message(seconds), headers={"Retry-After": retry_after_header(seconds)})


LOGIN_ERROR = '<p id="login-error" class="error" hidden></p>'


def _too_many_failures_page(seconds: float) -> Response:
    """The login form and link are opened by a browser: the login page again, saying why and for
    how long, so the user is not left on a bare status text. The page's script cannot read the
    response's status, hence the one sentence filled in here (digits and fixed text only)."""
    message = too_many_failures_message(seconds).capitalize() + "."
    headers = {"Retry-After": retry_after_header(seconds), "Cache-Control": "no-store"}
    page = (WEB / "login.html").read_text(encoding="utf-8")
    if LOGIN_ERROR not in page:  # login.html changed shape (a unit test guards this): say it plainly
        return PlainTextResponse(message + "\n", status_code=429, headers=headers)
    shown = f'<p id="login-error" class="error" role="alert">{html.escape(message)}</p>'
    return HTMLResponse(page.replace(LOGIN_ERROR, shown), status_code=429, headers=headers)


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip() == "https"


class UiHeaders:
    """Security headers on every /ui response. Plain ASGI: the API's own requests pass
    straight through (an http middleware would add a task per request to all of them)."""

    HEADERS = (
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        # A login code in the address bar must never travel to another site as a Referer.
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/ui"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(name: str) -> FileResponse:
    return FileResponse(WEB / name, media_type="text/html", headers={"Cache-Control": "no-store"})


def install_ui(app: FastAPI, engine: Engine, admin_token: str, options: UiOptions | None = None,
               failed: FailedLogins | None = None) -> UiState:
    """Add the UI's routes and static files to ``app``; returns its state (to issue login codes).

    ``failed`` is shared with the API's bearer check, so guesses at either count together."""
    opts = options or UiOptions()
    state = UiState(TokenCheck(admin_token, opts.viewer_token), Sessions(ttl=opts.session_ttl),
                    LoginCodes(ttl=opts.login_code_ttl), opts, failed or FailedLogins())
    router = APIRouter()

    app.add_middleware(UiHeaders)

    def session_of(request: Request) -> Session | None:
        # A stale cookie (server restarted, session expired) is not a guess: a session id is
        # 256 random bits, and counting it would lock out a page that polls every 2 s.
        return state.sessions.get(request.cookies.get(COOKIE))

    def viewer(request: Request) -> Role:
        """A session cookie, or the viewer/admin token as a bearer token (for scripts)."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            address = client_address(request)
            wait = state.failed.retry_after(address)
            if wait is not None:
                raise too_many_failures(wait)
            token = auth[7:].strip()
            role = state.tokens.role(token)
            if role is None:
                count_unless_known(state.failed, engine, (), address, token)
                raise HTTPException(403, "token not valid for the web UI (use the viewer or admin token)")
            # No reset on success: a script's steady reads would wipe an attacker's count
            # on a shared address. Only a login (below) clears failures.
            return role
        s = session_of(request)
        if s is None:
            raise HTTPException(401, "log in at /ui/login", headers={"WWW-Authenticate": "Bearer"})
        return s.role

    Viewer = Depends(viewer)

    def start_session(role: Role, request: Request, to: str) -> RedirectResponse:
        r = RedirectResponse(to, status_code=303)
        r.set_cookie(
            COOKIE, state.sessions.create(role), max_age=int(state.sessions.ttl), path="/ui",
            httponly=True, samesite="strict", secure=_secure(request),
        )
        return r

    # ----- pages -----
    @router.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @router.get("/ui/", include_in_schema=False)
    def index(request: Request) -> Response:
        if session_of(request) is None:
            return RedirectResponse("/ui/login", status_code=303)
        return _page("index.html")

    @router.get("/ui/experiments/{exp_id}", include_in_schema=False)
    def experiment_page(exp_id: str, request: Request) -> Response:
        if session_of(request) is None:
            return RedirectResponse("/ui/login?next=" + request.url.path, status_code=303)
        return _page("experiment.html")

    @router.get("/ui/login", include_in_schema=False)
    def login_page(request: Request, code: str | None = None, next: str | None = None) -> Response:
        if code is not None:
            address = client_address(request)
            wait = state.failed.retry_after(address)
            if wait is not None:  # refused before redeeming: a blocked guesser learns nothing
                return _too_many_failures_page(wait)
            role = state.codes.redeem(code)
            if role is None:
                state.failed.failed(address)
                return RedirectResponse("/ui/login?error=code", status_code=303)
            state.failed.succeeded(address)
            # Redirect at once: the code leaves the address bar (and the history entry).
            return start_session(role, request, _safe_next(next))
        return _page("login.html")

    @router.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            raise HTTPException(403, "cross-site login refused")
        address = client_address(request)
        wait = state.failed.retry_after(address)
        if wait is not None:  # even the right token is refused now, so guesses tell nothing
            return _too_many_failures_page(wait)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        nxt = _safe_next((form.get("next") or [None])[0])
        role = state.tokens.role(token) if token else None
        if role is None:
            count_unless_known(state.failed, engine, (), address, token)
            return RedirectResponse("/ui/login?error=token", status_code=303)
        state.failed.succeeded(address)
        return start_session(role, request, nxt)

    @router.post("/ui/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        if not _same_origin(request):
            raise HTTPException(403, "cross-site logout refused")
        state.sessions.end(request.cookies.get(COOKIE))
        r = RedirectResponse("/ui/login", status_code=303)
        r.delete_cookie(COOKIE, path="/ui")
        return r

    # ----- read-only JSON for the pages -----
    def with_phase(summary: dict[str, Any]) -> dict[str, Any]:
        phase = opts.phase(summary["experimentId"]) if opts.phase else None
        return {**summary, "phase": phase or summary.get("phase") or derived_phase(summary)}

    def no_store(content: Any) -> JSONResponse:
        return JSONResponse(_nan_as_null(content), headers={"Cache-Control": "no-store"})

    @router.get("/ui/api/experiments", dependencies=[Viewer])
    def experiments() -> JSONResponse:
        return no_store([with_phase(s) for _, s in engine.summaries()])

    @router.get("/ui/api/experiments/{exp_id}", dependencies=[Viewer])
    def experiment(exp_id: str) -> JSONResponse:
        h = engine.get(exp_id)
        cfg = h.config
        return no_store({
            **with_phase(engine.summary(exp_id)),
            "revision": revision(engine, exp_id),
            "searchSpace": _search_space(h),
            "tuner": cfg.tuner.name,
            "assessor": cfg.assessor.name if cfg.assessor else None,
            "logs": "file" if opts.trial_log else "kubectl",
        })

    @router.get("/ui/api/experiments/{exp_id}/trials", dependencies=[Viewer])
    def trials(exp_id: str, rev: str | None = None) -> JSONResponse:
        """All trials, or with ``rev`` (what the page holds) only those changed since."""
        return no_store(trials_since(engine, exp_id, rev))

    # One answer per experiment, kept until its revision changes: the page asks on every new
    # revision while the panel shows, and 1,000 trials take ~20 ms to evaluate.
    importance_cache: dict[str, tuple[str, dict[str, Any]]] = {}

    @router.get("/ui/api/experiments/{exp_id}/importance", dependencies=[Viewer])
    def importance(exp_id: str) -> JSONResponse:
        """Which parameters mattered (PED-ANOVA, tuner_server/importance.py), per objective."""
        h = engine.get(exp_id)
        rev = revision(engine, exp_id)
        cached = importance_cache.get(exp_id)
        if cached is None or cached[0] != rev:
            objectives = [(o.name, o.optimizeMode) for o in h.objectives] or None
            results = importance_from_trials(h.space, engine.trials_view(exp_id), h.mode, objectives)
            cached = (rev, {**importance_report(results), "revision": rev})
            if len(importance_cache) >= 256:  # deleted experiments' answers must not pile up
                importance_cache.clear()
            importance_cache[exp_id] = cached
        return no_store(cached[1])

    @router.get("/ui/api/experiments/{exp_id}/trials/{trial_id}/log", dependencies=[Viewer])
    def trial_log(exp_id: str, trial_id: str) -> Response:
        h = engine.get(exp_id)
        engine.trial(exp_id, trial_id)  # 404 for a trial that is not in this experiment
        path = opts.trial_log(exp_id, trial_id) if opts.trial_log else None
        if path is None:
            hint = (
                f"The tuner server does not hold trial logs on a cluster. The trial runs as the workload "
                f"'{trial_id}' in the namespace of experiment '{h.stored.name}':\n"
                f"  kubectl logs -n <namespace> -l autotune.tensorstack.dev/trial={trial_id} --all-containers --prefix\n"
            )
            return PlainTextResponse(hint, status_code=404, headers={"Cache-Control": "no-store"})
        if not path.is_file():
            return PlainTextResponse(f"no log yet for {trial_id} (the trial has not started)\n", status_code=404)
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > LOG_TAIL_BYTES:
                f.seek(size - LOG_TAIL_BYTES)
            data = f.read(LOG_TAIL_BYTES)
        prefix = f"[... first {size - LOG_TAIL_BYTES} bytes left out ...]\n".encode() if size > LOG_TAIL_BYTES else b""
        return Response(prefix + data, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})

    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=WEB / "static"), name="ui-static")
    return state


def _nan_as_null(v: Any) -> Any:
    """NaN and +-Infinity as null, as the API's answers give them. A trial may report them
    beside its objective ({"default": 0.9, "loss": nan} when the loss diverged), and one
    such value made every page of its experiment a 500."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _nan_as_null(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_nan_as_null(x) for x in v]
    return v


def local_trial_log(output: Path) -> Callable[[str, str], Path | None]:
    """Local mode's logs: ``<output>/trials/<trial>/trial.log`` (see executors/local.py)."""
    root = output.resolve()

    def find(exp_id: str, trial_id: str) -> Path | None:
        p = (root / "trials" / trial_id / "trial.log").resolve()
        # trial ids come from the engine, but never follow one out of the output folder
        return p if os.path.commonpath([root, p]) == str(root) else None

    return find


def local_phase(output: Path) -> Callable[[str], str | None]:
    """Local mode's phase: the controller writes it to ``<output>/status.json``."""
    status = output / "status.json"

    def phase(exp_id: str) -> str | None:
        try:
            value = json.loads(status.read_text(encoding="utf-8")).get("phase")
        except (OSError, ValueError, AttributeError):
            return None  # not written yet, or mid-replace
        return value if isinstance(value, str) else None

    return phase
