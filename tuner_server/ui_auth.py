"""Who may look at the web UI: browser sessions and one-time login codes.

The browser never holds a token. A user types the viewer (or admin) token into the login
form once; the server answers with an opaque random session id in an HttpOnly,
SameSite=Strict cookie. The session id is not the token, so a page, a script or the
browser's history never sees a secret it could leak, and logging out (or restarting the
server) ends it. Sessions only read: every mutating route of the API still needs a bearer
token, so a forged cross-site request has nothing to ride on.

A login code (local mode's clickable link) is a short-lived, single-use value that is
exchanged for a session and then forgotten: a URL in a terminal's scrollback or a browser
history is worthless once it has been opened.

Pure bookkeeping with an injectable clock; no HTTP here.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable


class Role(str, Enum):
    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class Session:
    role: Role
    expires: float


class TokenCheck:
    """Maps a presented token to a role; the admin token is also a viewer token."""

    def __init__(self, admin_token: str, viewer_token: str | None) -> None:
        if viewer_token is not None and len(viewer_token) < 16:
            raise ValueError("the viewer token must be at least 16 characters")
        self._admin = admin_token
        self._viewer = viewer_token

    def role(self, token: str) -> Role | None:
        # compare_digest both ways so the time taken does not tell which one matched.
        is_admin = hmac.compare_digest(token.encode(), self._admin.encode())
        is_viewer = self._viewer is not None and hmac.compare_digest(token.encode(), self._viewer.encode())
        if is_admin:
            return Role.ADMIN
        if is_viewer:
            return Role.VIEWER
        return None


def matches_any(token: str, candidates: Iterable[str]) -> bool:
    """Whether ``token`` is one of ``candidates`` (say, the experiments' own tokens).

    A known token used where it is not valid is a mistake, not a guess: it is not counted
    as a failed log-in (see failed_logins.py)."""
    hit = False
    for c in candidates:
        hit |= hmac.compare_digest(token.encode(), c.encode())  # no early exit: timing tells nothing
    return hit


class Sessions:
    """Session ids -> roles, expiring after ``ttl`` seconds; at most ``limit`` kept."""

    def __init__(self, ttl: float = 12 * 3600, limit: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, role: Role) -> str:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._drop_expired(now)
            if len(self._sessions) >= self.limit:  # a flood of logins must not grow memory forever
                oldest = min(self._sessions, key=lambda k: self._sessions[k].expires)
                del self._sessions[oldest]
            self._sessions[sid] = Session(role, now + self.ttl)
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if s.expires <= self.clock():
                del self._sessions[sid]
                return None
            return s

    def end(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)

    def _drop_expired(self, now: float) -> None:
        for k in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[k]


class LoginCodes:
    """Single-use codes that become a session of a given role; valid for ``ttl`` seconds."""

    def __init__(self, ttl: float = 600, clock: Callable[[], float] = time.time) -> None:
        self.ttl, self.clock = ttl, clock
        self._codes: dict[str, tuple[Role, float]] = {}
        self._lock = threading.Lock()

    def issue(self, role: Role = Role.VIEWER) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = (role, self.clock() + self.ttl)
        return code

    def redeem(self, code: str) -> Role | None:
        """The code's role, once; None for an unknown, used or expired code."""
        with self._lock:
            entry = self._codes.pop(code, None)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]
