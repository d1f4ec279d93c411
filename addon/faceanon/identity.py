"""The service's stable identity: one id per installation, kept in its state folder, so Home Assistant knows the
same service whatever address it is reached at (localhost, 127.0.0.1, a hostname) and across restarts."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from pathlib import Path

log = logging.getLogger("faceanon.service")

ID_FILE = "service_id"


def state_dir(configured: str | None = None) -> Path:
    """Where the service keeps what must survive restarts: the config's `state_dir`, else
    $XDG_STATE_HOME/faceanon (~/.local/state/faceanon). The add-on uses its /data."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "faceanon"


def service_id(configured_dir: str | None = None, port: int = 0) -> str:
    """The id kept in the state folder, made on first start; when the folder cannot be written, one derived from
    the host name and HTTP port (stable while neither changes), with a log line saying so."""
    folder = state_dir(configured_dir)
    path = folder / ID_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept
    except OSError:
        pass
    new = uuid.uuid4().hex
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(new + "\n", encoding="utf-8")
        return new
    except OSError as err:
        derived = hashlib.sha256(f"{socket.gethostname()}:{port}".encode()).hexdigest()[:32]
        log.info("service id: cannot keep one in %s (%s); using one derived from the host name and port", folder,
                 err.strerror or err)
        return derived
