"""A recorder-friendly MQTT output, on the real mosquitto: two services on one broker play the sample clip for two
minutes; neither knocks the other off (unique client ids), and the messages per topic stay under bounds that keep
Home Assistant's recorder under 1,000 rows per camera per hour."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from conftest import free_port
from faceanon.config import SAMPLE_CLIP, validate
from faceanon.service import Service
from test_service import Retained

pytestmark = pytest.mark.timeout(240)
SECONDS = 120


class Counting(Retained):
    """Counts every message per topic (retained ones delivered on subscribe included)."""

    def __init__(self, port: int, topic: str) -> None:
        self.counts: Counter[str] = Counter()
        self.payloads: dict[str, list[bytes]] = {}
        super().__init__(port, topic)

    def _on_message(self, _c, _u, msg) -> None:
        with self.lock:
            self.counts[msg.topic] += 1
            self.payloads.setdefault(msg.topic, []).append(bytes(msg.payload))


def config(broker: int, prefix: str) -> dict:
    return validate({"mqtt": {"host": "127.0.0.1", "port": broker, "topic_prefix": prefix},
                     "http": {"host": "127.0.0.1", "port": free_port()}, "rtsp": {"enabled": False},
                     "cameras": [{"name": "walk", "url": str(SAMPLE_CLIP)}]})


async def test_two_services_share_a_broker_quietly(mosquitto) -> None:
    watchers = {prefix: Counting(mosquitto.port, f"{prefix}/#") for prefix in ("faceanon", "upstairs")}
    services = [Service(config(mosquitto.port, prefix)) for prefix in watchers]
    for service in services:
        await service.start()
    try:
        ids = {s.publishers[0].client_id for s in services}
        assert len(ids) == 2, ids  # derived per process and prefix, never the one constant
        started = time.monotonic()
        await asyncio.sleep(SECONDS)
        elapsed = time.monotonic() - started
    finally:
        for service in services:
            await service.stop()
    for prefix, watch in watchers.items():
        counts, available = watch.counts, watch.payloads.get(f"{prefix}/available", [])
        watch.close()
        # One connection for the whole run: every (re)connect would publish `online` again.
        assert available[0] == b"online" and available.count(b"online") == 1 and b"offline" not in available[:-1]
        frames = counts[f"{prefix}/walk/snapshot"]
        assert 2 <= frames <= SECONDS / 10 + 4, counts  # snapshot_interval 10 s, plus debounced count changes
        assert 1 <= counts[f"{prefix}/walk/faces"] <= 6, counts  # the raw count flaps 2 <-> 3 ~25 times a minute
        assert 1 <= counts[f"{prefix}/walk/state"] <= SECONDS / 30 + 4, counts
        assert counts[f"{prefix}/walk/info"] <= 3 and counts[f"{prefix}/walk/privacy_degraded"] <= 2, counts
        # Recorder rows: faces, privacy, the camera's attributes (info) one each; state feeds two sensors.
        rows = (counts[f"{prefix}/walk/faces"] + counts[f"{prefix}/walk/privacy_degraded"]
                + counts[f"{prefix}/walk/info"] + 2 * counts[f"{prefix}/walk/state"])
        assert rows * 3600 / elapsed < 1000, (rows, counts)
