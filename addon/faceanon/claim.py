"""Whether Home Assistant's faceanon integration has this service. While it does, the service withdraws its own
MQTT discovery of the same cameras, so Home Assistant shows one device per camera, not one from MQTT discovery
and one from the integration. The integration claims the service when it is set up and lets go when its entry is
deleted; the claim is kept in the state folder, so a restart of either side changes nothing."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from faceanon.media import MediaError, write_atomic

log = logging.getLogger("faceanon.service")

CLAIM_FILE = "integration_claim.json"


class IntegrationClaim:
    def __init__(self, directory: Path) -> None:
        self.path = directory / CLAIM_FILE
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bool], None]] = []
        try:
            self.claimed = bool(json.loads(self.path.read_text(encoding="utf-8")).get("claimed"))
        except (OSError, ValueError, AttributeError):
            self.claimed = False  # never claimed, or an unreadable file: MQTT discovery as configured

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def set(self, claimed: bool) -> None:
        """Record the claim (kept across restarts when the folder is writable) and tell the listeners."""
        with self._lock:
            if claimed == self.claimed:
                return
            self.claimed = claimed
            try:
                write_atomic(self.path, json.dumps({"claimed": claimed}).encode())
            except MediaError as err:
                log.warning("integration claim: not kept (%s); it holds until the service restarts", err.line())
        log.info("Home Assistant's faceanon integration %s this service: MQTT discovery %s", "has" if claimed else
                 "let go of", "withdrawn (one device per camera)" if claimed else "published again")
        for listener in list(self._listeners):
            listener(claimed)
