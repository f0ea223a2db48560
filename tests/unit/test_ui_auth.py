"""The web UI's sessions and login codes: expiry, single use, roles (no HTTP, fake clock)."""

from __future__ import annotations

import pytest

from tuner_server.ui import _safe_next, derived_phase
from tuner_server.ui_auth import LoginCodes, Role, Sessions, TokenCheck

ADMIN = "admin-token-0123456789"
VIEWER = "viewer-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_map_to_roles_and_the_viewer_token_must_be_long() -> None:
    t = TokenCheck(ADMIN, VIEWER)
    assert t.role(ADMIN) is Role.ADMIN and t.role(VIEWER) is Role.VIEWER
    assert t.role("nope") is None and t.role("") is None
    assert TokenCheck(ADMIN, None).role(VIEWER) is None
    with pytest.raises(ValueError, match="viewer token"):
        TokenCheck(ADMIN, "short")


def test_sessions_expire_end_and_are_not_the_token() -> None:
    clock = Clock()
    s = Sessions(ttl=60, clock=clock)
    sid = s.create(Role.VIEWER)
    assert sid not in (ADMIN, VIEWER) and len(sid) >= 32
    assert s.get(sid).role is Role.VIEWER
    assert s.get("forged") is None and s.get(None) is None
    clock.now += 61
    assert s.get(sid) is None
    sid2 = s.create(Role.ADMIN)
    s.end(sid2)
    assert s.get(sid2) is None


def test_sessions_are_bounded() -> None:
    clock = Clock()
    s = Sessions(ttl=60, limit=3, clock=clock)
    ids = []
    for _ in range(4):
        ids.append(s.create(Role.VIEWER))
        clock.now += 1
    assert s.get(ids[0]) is None and all(s.get(i) for i in ids[1:])


def test_login_codes_work_once_and_expire() -> None:
    clock = Clock()
    c = LoginCodes(ttl=600, clock=clock)
    code = c.issue(Role.ADMIN)
    assert c.redeem(code) is Role.ADMIN
    assert c.redeem(code) is None
    late = c.issue()
    clock.now += 601
    assert c.redeem(late) is None
    assert c.redeem("made-up") is None


@pytest.mark.parametrize("value,expected", [
    ("/ui/experiments/a", "/ui/experiments/a"), (None, "/ui/"), ("https://evil.example/", "/ui/"),
    ("//evil.example/ui/", "/ui/"), ("/ui/\\\\evil", "/ui/"), ("/api/v1/experiments", "/ui/"),
])
def test_login_redirects_only_within_the_ui(value: str | None, expected: str) -> None:
    assert _safe_next(value) == expected


def test_phase_without_a_controller_says_what_the_trials_show() -> None:
    assert derived_phase({"trials": {"total": 0}}) == "PENDING"
    assert derived_phase({"trials": {"total": 3, "running": 1}}) == "RUNNING"
    assert derived_phase({"trials": {"total": 3, "running": 0, "waiting": 0}}) == "IDLE"


def _request(headers: dict[str, str], scheme: str = "http"):
    from starlette.requests import Request

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/ui/login", "scheme": scheme, "headers": raw,
                    "server": ("tuner", 8080), "query_string": b""})


@pytest.mark.parametrize("headers,ok", [
    ({"host": "tuner:8080"}, True),  # curl or a script: no browser to trick
    ({"host": "tuner:8080", "origin": "http://tuner:8080", "sec-fetch-site": "same-origin"}, True),
    ({"host": "tuner:8080", "origin": "null", "sec-fetch-site": "same-origin"}, True),
    ({"host": "tuner:8080", "origin": "https://evil.example", "sec-fetch-site": "cross-site"}, False),
    ({"host": "tuner:8080", "origin": "https://evil.example"}, False),
    ({"host": "tuner:8080", "sec-fetch-site": "same-site"}, False),
])
def test_login_posts_from_another_site_are_refused(headers: dict[str, str], ok: bool) -> None:
    from tuner_server.ui import _same_origin

    assert _same_origin(_request(headers)) is ok


def test_cookie_is_secure_behind_https() -> None:
    from tuner_server.ui import _secure

    assert _secure(_request({}, scheme="https"))
    assert _secure(_request({"x-forwarded-proto": "https"}))
    assert not _secure(_request({}))


def test_matches_any_finds_a_known_token() -> None:
    from tuner_server.ui_auth import matches_any

    assert matches_any(VIEWER, [ADMIN, VIEWER])
    assert not matches_any("guess", [ADMIN, VIEWER]) and not matches_any(VIEWER, [])
    assert not matches_any("tökén", [ADMIN])  # non-ASCII is compared, not a TypeError
