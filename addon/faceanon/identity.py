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
OWNER_FILE = "config_file"  # in the shared default folder: which config file's service keeps its state there
INSTANCES = "instances"


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


def instance_state_dir(config_path: str | Path | None) -> Path:
    """The state folder of a service whose config names none: one per config file, so two services on one machine
    never share an id (Home Assistant would take them for one), a controls file or the integration's claim. The
    first config file to start keeps the shared default folder (an existing service keeps its id there); every
    other one gets `instances/<name>-<hash of its path>` under it."""
    base = state_dir()
    mine = str(Path(config_path).resolve()) if config_path is not None else "(the embedded default)"
    marker = base / OWNER_FILE
    try:
        base.mkdir(parents=True, exist_ok=True)
        with open(marker, "x", encoding="utf-8") as out:  # "x": of two services starting at once, one wins
            out.write(mine + "\n")
        return base
    except FileExistsError:
        pass
    except OSError:
        return base  # a folder that cannot be written: the id comes from the host name and port (service_id)
    try:
        owner = marker.read_text(encoding="utf-8").strip()
    except OSError:
        owner = ""
    if owner == mine:
        return base
    stem = Path(config_path).stem if config_path is not None else "default"
    return base / INSTANCES / f"{stem}-{hashlib.sha256(mine.encode()).hexdigest()[:8]}"
