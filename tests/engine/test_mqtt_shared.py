"""Several services on one broker and prefix (README: running N instances): each clears only what it published
itself (its service id on every camera's retained info), never another's topics or discovery, across restarts and
the removal of a camera; a third client's retained topics stay too."""

from __future__ import annotations

import asyncio
import json
import logging

import paho.mqtt.client as paho
import pytest
from conftest import FrameFeed
from faceanon.publish.discovery import camera_config_topics
from faceanon.publish.mqtt import MqttPublisher
from paho.mqtt.enums import CallbackAPIVersion
from test_mqtt import VERSION, Listener, config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def watcher(mosquitto):
    sub = Listener(mosquitto.port)
    yield sub
    await asyncio.to_thread(sub.close)


async def started(mosquitto, watcher, service_id: str, cameras: tuple[str, ...], frame) -> MqttPublisher:
    feeds = [FrameFeed(cam) for cam in cameras]
    publisher = MqttPublisher(config(mosquitto, commands=True), feeds, VERSION, service_id=service_id)
    await publisher.start()
    for feed in feeds:
        feed.push(frame)
        info = await watcher.until(f"faceanon/{feed.name}/info", lambda p: p != b"")
        assert json.loads(info)["service"] == service_id
    return publisher


async def fenced(mosquitto, watcher) -> None:
    """Until every service connected so far has handled the retained messages it was sent at its subscribe: a
    `homeassistant/status` sent now reaches each after them, and each answers with its discovery again."""
    before = len(watcher.all("homeassistant/camera/faceanon/lobby_snapshot/config"))
    ha = paho.Client(CallbackAPIVersion.VERSION2, client_id="home-assistant")
    ha.connect("127.0.0.1", mosquitto.port)
    ha.loop_start()
    try:
        ha.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        for _ in range(200):
            if len(watcher.all("homeassistant/camera/faceanon/lobby_snapshot/config")) > before:
                break
            await asyncio.sleep(0.05)
    finally:
        ha.loop_stop()
        ha.disconnect()


def kept(watcher, cameras: tuple[str, ...]) -> list[str]:
    """The topics of these cameras (their retained state and discovery) that someone emptied."""
    topics = [f"faceanon/{cam}/{sub}" for cam in cameras for sub in ("snapshot", "info", "available", "faces")]
    topics += [t for cam in cameras for t in camera_config_topics(cam, "faceanon", "homeassistant")]
    return [t for t in topics if b"" in watcher.all(t)]


async def test_two_services_on_one_broker_never_clear_each_others_topics(mosquitto, watcher, anonymized_frames,
                                                                        caplog) -> None:
    caplog.set_level(logging.INFO, logger="faceanon.publish.mqtt")
    frame = anonymized_frames[0]
    other = paho.Client(CallbackAPIVersion.VERSION2, client_id="third-client")  # a third client's retained topic
    other.connect("127.0.0.1", mosquitto.port)
    other.loop_start()
    other.publish("faceanon/workers/w1", b"online", qos=1, retain=True).wait_for_publish(5)
    a = await started(mosquitto, watcher, "service-a", ("lobby", "garage"), frame)
    b = await started(mosquitto, watcher, "service-b", ("yard",), frame)
    try:
        await fenced(mosquitto, watcher)
        # A restarts without its garage camera: the garage goes, B's yard stays.
        await a.stop()
        a = await started(mosquitto, watcher, "service-a", ("lobby",), frame)
        for topic in ("faceanon/garage/info", *camera_config_topics("garage", "faceanon", "homeassistant")):
            assert await watcher.until(topic, lambda p: p == b"") == b""
        await fenced(mosquitto, watcher)
        assert kept(watcher, ("lobby", "yard")) == []
        assert "camera yard under faceanon/ belongs to another service" in caplog.text
        # B restarts (the same cameras), then without its yard: A's lobby stays both times.
        await b.stop()
        b = await started(mosquitto, watcher, "service-b", ("yard",), frame)
        await fenced(mosquitto, watcher)
        assert kept(watcher, ("lobby", "yard")) == []
        await b.stop()
        b = await started(mosquitto, watcher, "service-b", ("shed",), frame)
        assert await watcher.until("faceanon/yard/info", lambda p: p == b"") == b""
        await fenced(mosquitto, watcher)
        assert kept(watcher, ("lobby",)) == []
        assert b"" not in watcher.all("faceanon/workers/w1")
    finally:
        await asyncio.gather(a.stop(), b.stop())
        other.loop_stop()
        other.disconnect()
