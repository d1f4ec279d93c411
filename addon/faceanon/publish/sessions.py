"""Browser sessions for the web page. The token typed into the login form is exchanged for a random session id in an
HttpOnly, SameSite=Strict cookie: the token never travels in a URL (which proxies, logs and browser history keep),
the page's scripts never hold it, and the `<img>` tags of the live streams are let in by the cookie. Sessions live
in memory: a restart of the service logs browsers out."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

COOKIE = "faceanon_session"
MAX_SESSIONS = 64  # the oldest is dropped first: a script logging in in a loop cannot grow the table
LIFETIME_S = 30 * 24 * 3600.0
FAILED_LOGIN_DELAY_S = 1.0  # each wrong token costs its sender this long: guessing is slow


class Sessions:
    def __init__(self, lifetime_s: float = LIFETIME_S, limit: int = MAX_SESSIONS) -> None:
        self.lifetime_s, self.limit = lifetime_s, limit
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def new(self) -> str:
        session = secrets.token_urlsafe(32)
        self._expiry[session] = time.monotonic() + self.lifetime_s
        while len(self._expiry) > self.limit:
            self._expiry.popitem(last=False)
        return session

    def valid(self, session: str | None) -> bool:
        if not session:
            return False
        expiry = self._expiry.get(session)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._expiry[session]
            return False
        return True

    def drop(self, session: str | None) -> None:
        if session:
            self._expiry.pop(session, None)

    def cookie_header(self, session: str) -> str:
        return f"{COOKIE}={session}; Path=/; Max-Age={int(self.lifetime_s)}; HttpOnly; SameSite=Strict"

    @staticmethod
    def expired_cookie_header() -> str:
        return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
