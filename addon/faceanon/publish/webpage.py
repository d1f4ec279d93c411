"""The web page's own routes: the page (`web/index.html`, locked down by a nonce CSP, based under Home Assistant's
ingress prefix), its icon, and the login that exchanges the token for a session cookie (publish/sessions.py).
Everything the page shows comes from the API routes of publish/http.py."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from importlib import resources

from aiohttp import web

from faceanon.publish import json_error, read_json
from faceanon.publish.sessions import COOKIE, FAILED_LOGIN_DELAY_S, Sessions

log = logging.getLogger("faceanon.publish.http")
INGRESS_PATH = re.compile(r"/[A-Za-z0-9_./-]*")
# Routes a browser may fetch without the token: the page (which holds no camera data), its icon, the login.
OPEN_PATHS = ("/", "/favicon.svg", "/favicon.ico", "/api/login", "/api/logout")


class WebPage:
    def __init__(self, token: bytes | None) -> None:
        self._token = token
        self.sessions = Sessions()
        self._turn = asyncio.Lock()  # logins are judged one at a time (_login)
        files = resources.files("faceanon").joinpath("web")
        self._page = files.joinpath("index.html").read_text("utf-8")
        self._icon = files.joinpath("favicon.svg").read_bytes()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/favicon.svg", self._favicon)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)

    def session_ok(self, request: web.Request) -> bool:
        return self._token is not None and self.sessions.valid(request.cookies.get(COOKIE))

    async def _favicon(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._icon, content_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})

    async def _login(self, request: web.Request) -> web.Response:
        """POST {"token"}: the web page's login; a right token gets an HttpOnly session cookie (publish/sessions.py)."""
        if self._token is None:
            return json_error(400, "this service has no token: nothing to log in to")
        try:
            body = await read_json(request)
        except ValueError:
            body = None
        sent = body.get("token") if isinstance(body, dict) else None
        # One login is judged at a time, and a wrong one holds the turn for FAILED_LOGIN_DELAY_S: guesses sent in
        # parallel wait in line, so a guesser gets one a second in all, not one a second per connection.
        async with self._turn:
            if not isinstance(sent, str) or not hmac.compare_digest(sent.encode("utf-8", "replace"), self._token):
                log.warning("http: a wrong token was sent to the login from %s", request.remote)
                await asyncio.sleep(FAILED_LOGIN_DELAY_S)
                return json_error(401, "wrong token")
        response = web.json_response({"ok": True})
        response.headers["Set-Cookie"] = self.sessions.cookie_header(self.sessions.new())
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self.sessions.drop(request.cookies.get(COOKIE))
        response = web.json_response({"ok": True})
        response.headers["Set-Cookie"] = self.sessions.expired_cookie_header()
        return response

    async def _index(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        base = ""
        ingress = request.headers.get("X-Ingress-Path", "")
        if ingress and INGRESS_PATH.fullmatch(ingress) and "//" not in ingress and ".." not in ingress:
            # The page uses relative URLs; under ingress the base makes them resolve below the ingress prefix.
            base = f'<base href="{ingress.rstrip("/")}/">'
        html = self._page.replace("<!--base-->", base).replace("{{nonce}}", nonce)
        csp = (f"default-src 'none'; img-src 'self' data:; connect-src 'self'; style-src 'nonce-{nonce}'; "
               f"script-src 'nonce-{nonce}'; base-uri 'self'; form-action 'none'; frame-ancestors 'self'")
        return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": csp})
