"""Browser sign-in on the HTTP surface: a token becomes an HttpOnly, SameSite=Strict cookie; writes
with the cookie need the CSRF token and this server's Origin; tampered or expired cookies are refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookies import SimpleCookie

from modelog_services.gateway.session import MAX_AGE_S, Sessions
from tests.integration.gatewayfix import Platform, platform

__all__ = ["platform"]


def call(
    p: Platform, method: str, path: str, body: object = None, **headers: str
) -> tuple[int, dict, list[str]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(p.http + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), resp.headers.get_all("set-cookie") or []
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers.get_all("set-cookie") or []


def sign_in(p: Platform, token: str) -> tuple[dict[str, str], list[str]]:
    status, me, cookies = call(
        p, "POST", "/auth/session", {"token": token}, **{"Content-Type": "application/json"}
    )
    assert status == 200 and me["actor"], me
    jar: dict[str, str] = {}
    for header in cookies:
        c = SimpleCookie()
        c.load(header)
        jar.update({k: m.value for k, m in c.items()})
    return jar, cookies


def test_a_token_signs_in_once_and_the_cookie_is_http_only_and_strict(platform: Platform) -> None:
    jar, headers = sign_in(platform, platform.token)
    session = next(h for h in headers if h.startswith("modelog_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
    assert platform.token not in session  # sealed, never the token in clear
    cookie = f"modelog_session={jar['modelog_session']}; modelog_csrf={jar['modelog_csrf']}"
    status, me, _ = call(platform, "GET", "/auth/session", Cookie=cookie)
    assert status == 200 and me["actor"] == "admin" and "admin" in me["roles"]
    status, got, _ = call(platform, "GET", "/api/2.0/mlflow/experiments/get?experiment_id=0", Cookie=cookie)
    assert status == 200 and got["experiment"]["name"] == "Default"


def test_writes_with_the_cookie_need_the_csrf_token_and_our_origin(platform: Platform) -> None:
    jar, _ = sign_in(platform, platform.token)
    cookie = f"modelog_session={jar['modelog_session']}; modelog_csrf={jar['modelog_csrf']}"
    create = "/api/2.0/mlflow/experiments/create"
    status, body, _ = call(platform, "POST", create, {"name": "csrf-1"}, Cookie=cookie)
    assert status == 403 and "CSRF" in body["message"]
    status, body, _ = call(
        platform,
        "POST",
        create,
        {"name": "csrf-2"},
        Cookie=cookie,
        **{"X-CSRF-Token": jar["modelog_csrf"], "Origin": "http://evil.example"},
    )
    assert status == 403 and "evil.example" in body["message"]
    status, body, _ = call(
        platform,
        "POST",
        create,
        {"name": "csrf-3"},
        Cookie=cookie,
        **{"X-CSRF-Token": jar["modelog_csrf"], "Origin": platform.http},
    )
    assert status == 200 and body["experiment_id"]
    status, body, _ = call(
        platform, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=csrf-1", Cookie=cookie
    )
    assert status == 404  # the refused write wrote nothing


def test_bad_tokens_tampered_and_expired_cookies_and_sign_out(platform: Platform) -> None:
    status, body, cookies = call(platform, "POST", "/auth/session", {"token": "mlg_wrong"})
    assert status == 401 and not cookies
    assert call(platform, "POST", "/auth/session", {"nope": 1})[0] == 400
    jar, _ = sign_in(platform, platform.token)
    value = jar["modelog_session"]
    tampered = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    status, body, _ = call(platform, "GET", "/auth/session", Cookie=f"modelog_session={tampered}")
    assert status == 401 and "sign in again" in body["error"]["message"]
    sessions = Sessions.at(platform.home)  # the installation's key, as every gateway process reads it
    old = sessions.seal(platform.token, now=0)
    assert (
        sessions.open(old) is None
        and sessions.open(sessions.seal("t", now=1e9), now=1e9 + MAX_AGE_S - 1) == "t"
    )
    status, _, _ = call(platform, "GET", "/auth/session", Cookie=f"modelog_session={old}")
    assert status == 401
    status, _, cleared = call(platform, "DELETE", "/auth/session")
    assert status == 200 and any(c.startswith("modelog_session=") and "Max-Age=0" in c for c in cleared)
