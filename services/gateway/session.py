"""Browser sign-in: a token entered once becomes an HttpOnly, SameSite=Strict session cookie.

The cookie holds the token sealed with AES-GCM under a key kept in MODELOG_HOME (every gateway process
of one installation shares it), so no session table is needed and the services still see a bearer
token. Writes made with the cookie need the CSRF token (double-submit: a readable cookie the page
echoes in `X-CSRF-Token`) and an Origin naming this server, so another site cannot act for the user.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from eventlog.errors import InvalidArgument, ModelogError, PermissionDenied, Unauthenticated
from modelog_services.gateway.errors import api_error
from modelog_services.gateway.upstream import Caller, Upstream

SESSION = "modelog_session"
CSRF = "modelog_csrf"
MAX_AGE_S = 12 * 3600
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Sessions:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def at(cls, home: Path) -> Sessions:
        """The installation's key (made once, owner-only), so every gateway process reads the cookie."""
        path = home / "session-key"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".session-key.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=256))
            try:
                os.link(tmp, path)  # first writer wins; the others read its key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return cls(path.read_bytes())

    def seal(self, token: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time()).to_bytes(8, "big")
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, token.encode(), issued)
        return base64.urlsafe_b64encode(issued + nonce + sealed).decode().rstrip("=")

    def open(self, cookie: str, now: float | None = None) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            issued, nonce, sealed = raw[:8], raw[8:20], raw[20:]
            token = self._aead.decrypt(nonce, sealed, issued).decode()
        except (ValueError, InvalidTag, UnicodeDecodeError):
            return None
        age = (now if now is not None else time.time()) - int.from_bytes(issued, "big")
        return token if 0 <= age <= MAX_AGE_S else None

    def token(self, request: Request) -> str:
        """The token of a signed-in browser; refuses a cross-site or unconfirmed write."""
        token = self.open(request.cookies.get(SESSION, ""))
        if token is None:
            raise Unauthenticated("the session has expired or is not valid: sign in again")
        if request.method not in SAFE:
            csrf = request.cookies.get(CSRF, "")
            sent = request.headers.get("x-csrf-token", "")
            if not csrf or not hmac.compare_digest(csrf, sent):
                raise PermissionDenied("missing or wrong X-CSRF-Token: reload the page")
            origin = request.headers.get("origin")
            if origin is not None and origin != _own_origin(request):
                raise PermissionDenied(f"a write from {origin} is not accepted with this session")
        return token

    def sign_in(self, response: Response, token: str, secure: bool) -> None:
        response.set_cookie(
            SESSION,
            self.seal(token),
            max_age=MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )
        response.set_cookie(
            CSRF,
            secrets.token_urlsafe(24),
            max_age=MAX_AGE_S,
            httponly=False,
            samesite="strict",
            secure=secure,
            path="/",
        )

    @staticmethod
    def sign_out(response: Response) -> None:
        response.delete_cookie(SESSION, path="/")
        response.delete_cookie(CSRF, path="/")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def routes(upstream: Upstream, sessions: Sessions) -> list[BaseRoute]:
    """POST /auth/session {"token"} signs in (checked with WhoAmI), GET says who is signed in,
    DELETE signs out."""
    from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
    from modelog_services.gateway.http import caller  # http reads our cookie name: import late

    stub = upstream.stub(identity_pb2_grpc.IdentityStub)

    async def whoami(who: Caller) -> dict[str, object]:
        got = await upstream.call(stub.WhoAmI, identity_pb2.WhoAmIRequest(), who)
        return {"actor": got.actor, "roles": list(got.roles)}

    async def session(request: Request) -> Response:
        try:
            if request.method == "POST":
                try:
                    body = json.loads(await request.body() or b"{}")
                except (ValueError, RecursionError):
                    raise InvalidArgument("the request body is not valid JSON") from None
                token = body.get("token") if isinstance(body, dict) else None
                if not isinstance(token, str) or not token.strip():
                    raise InvalidArgument.field("token", "paste a Modelog token (modelog token create ...)")
                me = await whoami(Caller(token.strip(), request.client.host if request.client else ""))
                response = JSONResponse(me)
                sessions.sign_in(response, token.strip(), secure=request.url.scheme == "https")
                return response
            if request.method == "DELETE":
                response = JSONResponse({})
                sessions.sign_out(response)
                return response
            return JSONResponse(await whoami(caller(request)))
        except ModelogError as err:
            return api_error(err)

    return [Route("/auth/session", session, methods=["GET", "POST", "DELETE"])]
