"""Which Host and Origin headers the HTTP API answers: the defence against DNS rebinding and cross-site requests.

DNS rebinding: a web page on the attacker's domain makes that domain resolve to the service's LAN address, and the
victim's browser then talks to the service as if it were the attacker's own site (same origin), so it can read the
API and PUT controls. Every such request carries the attacker's name in its Host header. Without a token the service
therefore answers only Host names that no outsider can point a browser at: IP literals, `localhost`, single-label
names (an add-on's or a container's host name, a NetBIOS name), the local-only suffixes (`.local`, `.lan`,
`.home.arpa`, `.internal`, `.localhost`), this machine's own names, and those the owner lists in
`http.allowed_hosts`. With a token the Host does not matter: the attacker has no token, and the session cookie is
bound to the name it was set for.

Cross-site requests: a state-changing request (PUT, POST, DELETE) whose Origin header names another host than the
one it was sent to is refused, token or not (a browser sends Origin on every such request).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

LOCAL_SUFFIXES = (".local", ".lan", ".home.arpa", ".internal", ".localhost")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(header: str) -> str:
    """The name (or IP) of a Host header, without its port and brackets, lower case."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:8099
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def own_names() -> set[str]:
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
    return names


def local_host(name: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a Host name is one only the owner's network can bring a browser to (see the module's doc)."""
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    name = name.rstrip(".")
    return ("." not in name or name.endswith(LOCAL_SUFFIXES) or name in own_names()
            or name in {a.strip().lower().rstrip(".") for a in allowed})


def cross_site(method: str, origin: str | None, host: str) -> bool:
    """A state-changing request from a page of another origin than the service it was sent to."""
    if method.upper() in SAFE_METHODS or not origin:
        return False
    if origin == "null":  # a sandboxed frame, a file: page
        return True
    parts = urlsplit(origin)
    sent_to = host.strip().lower()
    netloc = (parts.netloc or "").lower()
    if netloc == sent_to:
        return False
    # A default port may be written or left out on either side.
    default = {"http": "80", "https": "443"}.get(parts.scheme, "")
    return not (default and (netloc == f"{sent_to}:{default}" or f"{netloc}:{default}" == sent_to))
