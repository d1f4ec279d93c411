"""MQTT publisher (Frigate-style topics) with Home Assistant discovery.

paho-mqtt runs its network loop in its own thread (`loop_start`), so nothing here blocks the event loop: paho's
`publish()` only queues a packet and wakes that thread. paho reconnects by itself; every (re)connect republishes
availability, discovery and each camera's retained state, because a restarted broker may have lost them all.
Only `feed.latest_jpeg` (a masked or safe frame) is ever published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from faceanon import controls
from faceanon.publish import CameraFeed, json_default, snapshot_interval
from faceanon.publish.discovery import (
    STATE_PERIOD,
    camera_config_topics,
    control_payload,
    control_value,
    discovery_configs,
    node_id,
)
from faceanon.source.base import shown
from faceanon.source.broker import BrokerConfigError, apply_credentials

log = logging.getLogger(__name__)

# Recorder-friendly: the state JSON (fps, latencies: the diagnostic sensors) every 30 s, not on every change, so
# that every entity of a camera writes well under 1,000 recorder rows an hour (tests/engine/test_mqtt_quiet.py).
# Retained, per camera; each control also has `<camera>/<control>/state` (and takes `<camera>/<control>/set`).
CAMERA_TOPICS = ("snapshot", "faces", "people", "state", "info", "available", "privacy_degraded",
                 *(f"{key}/state" for key in controls.CONTROL_KEYS))
MAX_COMMAND = 256  # bytes: the longest `<control>/set` payload read (a plan spec is a few dozen characters)


INFO_KEYS = ("model", "provider", "width", "height", "rtsp_port")  # `<camera>/info`: the camera's attributes
FACE_SNAPSHOT_GAP = 1.0  # a face-count change publishes a snapshot, at most this often
POLL = 1.0  # how long a camera's follower waits for a frame before it looks at the status again
KEEPALIVE = 30
QUEUE_LIMIT = 64  # paho's outgoing queue: bounded, so a slow broker cannot pile up JPEGs in memory


class MqttConfigError(ValueError):
    """The mqtt section cannot be used (the message names the setting and the reason)."""


@dataclass
class _Published:
    """What was last published for one camera; None forces a republish (after a (re)connect)."""

    snapshot_seq: int | None = None
    snapshot_at: float = 0.0
    snapshot_faces: int | None = None
    faces: int | None = None
    people: str | None = None
    degraded: bool | None = None
    state_at: float | None = None
    info: str | None = None
    online: bool | None = None
    controls: dict[str, str] | None = None

    def reset(self) -> None:
        self.snapshot_seq = self.snapshot_faces = self.faces = self.degraded = self.state_at = self.info = None
        self.people = None
        self.online = self.controls = None


def ours_to_clear(info: bytes, service_id: str) -> bool:
    """A removed camera's retained `info` says this service published it: its `service` is ours, or absent (an
    earlier release wrote none, and every running service has stamped its own since it connected)."""
    try:
        owner = json.loads(info).get("service")
    except (ValueError, AttributeError):
        return False
    return not owner or owner == service_id


def config_camera(payload: bytes, prefix: str) -> str | None:
    """The camera a retained discovery config is for: the level after the prefix in its topics."""
    try:
        config = json.loads(payload)
        topic = next(config[k] for k in ("topic", "state_topic", "command_topic") if isinstance(config.get(k), str))
    except (ValueError, AttributeError, StopIteration):
        return None
    return topic[len(prefix) + 1:].split("/", 1)[0] if topic.startswith(f"{prefix}/") else None


def default_client_id(topic_prefix: str) -> str:
    """Unique per process: two services on one broker (or a restart racing its old session) never share an id,
    which would make the broker drop one of them every time the other connects."""
    return f"{node_id(topic_prefix)}-{socket.gethostname()}-{os.getpid()}"[:64]


class MqttPublisher:
    """Publishes every camera's anonymized snapshot, face count, state and privacy flag, plus HA discovery."""

    def __init__(self, mqtt_config: dict[str, Any], feeds: Iterable[CameraFeed], version: str,
                 claimed: Callable[[], bool] | None = None,
                 set_controls: Callable[..., Awaitable[dict[str, Any]]] | None = None,
                 service_id: str = "") -> None:
        cfg = mqtt_config or {}
        # Stamped on every camera's retained `info`: the clean-up of cameras no longer configured clears only the
        # topics this service published, never those of another service on the same broker and prefix.
        self.service_id = service_id
        self.feeds = list(feeds)
        self.version = version
        self.host: str = cfg.get("host") or "127.0.0.1"
        tls = bool(cfg.get("tls"))
        self.port = int(cfg.get("port") or (8883 if tls else 1883))
        self.prefix: str = (cfg.get("topic_prefix") or "faceanon").rstrip("/")
        self.discovery_prefix: str = (cfg.get("discovery_prefix") or "homeassistant").rstrip("/")
        self.discovery = bool(cfg.get("discovery", True))
        # True while Home Assistant's faceanon integration has the service (faceanon.claim): the integration's
        # devices are the cameras' devices then, and this discovery is withdrawn.
        self.claimed: Callable[[], bool] = claimed or (lambda: False)
        # Commands on `<camera>/<control>/set` go to the service's (faceanon.service.Service.set_controls).
        self.set_controls = set_controls
        self.commands = bool(cfg.get("commands"))  # mqtt.commands: the owner lets broker clients change controls
        self._refused_commands: set[str] = set()  # topics already said to be off (one log line each)
        self.client_id: str = cfg.get("client_id") or default_client_id(self.prefix)
        self.available_topic = f"{self.prefix}/available"
        self.ha_status_topic = f"{self.discovery_prefix}/status"
        self._node = node_id(self.prefix)
        self._configs = discovery_configs(self.feeds, self.prefix, self.discovery_prefix, version,
                                          commands=self.commands)
        self._published = {feed.name: _Published() for feed in self.feeds}
        self._cameras = {feed.name for feed in self.feeds}
        self._others: set[str] = set()  # cameras under our prefix that another service publishes (logged once)
        self._connected = threading.Event()
        self._stopping = False
        self._unreachable_logged = self._refused_logged = False  # log a failing broker once, not every retry
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client = self._build_client(cfg, tls)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _build_client(self, cfg: dict[str, Any], tls: bool) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        try:
            apply_credentials(client, cfg)
        except BrokerConfigError as err:
            raise MqttConfigError(str(err)) from err
        client.will_set(self.available_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 10)
        client.max_queued_messages_set(QUEUE_LIMIT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        # connect_async only records the target; the paho thread connects and keeps retrying, even when the
        # broker is down at start-up.
        self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE)
        self._client.loop_start()
        self._tasks = [asyncio.create_task(self._follow(feed), name=f"mqtt-{feed.name}") for feed in self.feeds]
        log.info("mqtt: publishing %d camera(s) to %s:%d under %s/", len(self.feeds), self.host, self.port,
                 self.prefix)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.connected:
            info = self._client.publish(self.available_topic, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                await asyncio.to_thread(info.wait_for_publish, 3.0)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected.clear()

    # paho thread -------------------------------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            level = logging.DEBUG if self._refused_logged else logging.ERROR
            log.log(level, "mqtt: broker %s:%d refused the connection: %s", self.host, self.port, reason)
            self._refused_logged = True
            return
        self._unreachable_logged = self._refused_logged = False
        log.info("mqtt: connected to %s:%d", self.host, self.port)
        client.publish(self.available_topic, "online", qos=1, retain=True)
        # Retained topics of cameras no longer configured are found by their `info` and cleared when this service
        # published them (ours_to_clear).
        client.subscribe(f"{self.prefix}/+/info", 1)
        if self.set_controls is not None:
            client.subscribe(f"{self.prefix}/+/+/set", 1)
        if self.discovery:
            client.subscribe([(self.ha_status_topic, 1), (f"{self.discovery_prefix}/+/{self._node}/+/config", 1)])
        self._connected.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._republish)

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        level = logging.DEBUG if self._unreachable_logged else logging.WARNING
        log.log(level, "mqtt: cannot reach the broker at %s:%d; retrying", self.host, self.port)
        self._unreachable_logged = True

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was_connected = self.connected
        self._connected.clear()
        if was_connected and not self._stopping:
            log.warning("mqtt: lost the broker at %s:%d (%s); reconnecting", self.host, self.port, reason)

    def _on_message(self, client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        levels = msg.topic.split("/")
        if msg.topic.startswith(f"{self.prefix}/") and levels[-1] == "set" and len(levels) >= 3:
            self._command(levels[-3], levels[-2], msg.payload)
            return
        if msg.topic.startswith(f"{self.prefix}/"):
            camera = msg.topic[len(self.prefix) + 1:].split("/", 1)[0]
            if msg.payload and msg.retain and camera not in self._cameras:
                if ours_to_clear(msg.payload, self.service_id):
                    log.info("mqtt: clearing the retained topics of camera %s, no longer configured", camera)
                    for topic in (*(f"{self.prefix}/{camera}/{sub}" for sub in CAMERA_TOPICS),
                                  *self._config_topics(camera)):
                        client.publish(topic, b"", qos=1, retain=True)
                elif camera not in self._others:
                    self._others.add(camera)
                    log.info("mqtt: camera %s under %s/ belongs to another service; left as it is", camera,
                             self.prefix)
            return
        if msg.topic == self.ha_status_topic:
            if msg.payload == b"online" and self._loop is not None:
                self._loop.call_soon_threadsafe(self._publish_discovery)
        elif (msg.payload and msg.topic not in self._configs
              and config_camera(msg.payload, self.prefix) in self._cameras):
            # A retained config of one of our cameras that we no longer publish (an entity renamed or withdrawn):
            # clear it, so Home Assistant removes the entity. A removed camera's configs go with its topics (above);
            # another service's cameras under the same node are left alone.
            log.info("mqtt: removing a discovery config no longer published: %s", msg.topic)
            client.publish(msg.topic, b"", qos=1, retain=True)

    def _command(self, camera: str, key: str, payload: bytes) -> None:
        """`<prefix>/<camera>/<control>/set`: change the control on the service's loop; a refused value is one log
        line and the control's state is published again, so Home Assistant shows what acts."""
        if camera not in self._cameras or key not in controls.CONTROL_KEYS or self.set_controls is None:
            log.warning("mqtt: ignoring a command for an unknown camera or control: %s/%s/set", camera[:64], key[:40])
            return
        if not self.commands:
            topic = f"{camera}/{key}"
            if topic not in self._refused_commands and len(self._refused_commands) < 256:
                self._refused_commands.add(topic)
                log.warning("mqtt: %s/%s/set changes nothing: MQTT commands are off, since any client of the broker "
                            "could send them (the owner turns them on with mqtt.commands: true)", camera, key)
            return
        if len(payload) > MAX_COMMAND:  # no control value is this long; and a log line must not carry megabytes
            log.warning("mqtt: %s: %s/set refused (a payload of %d bytes; a control value is at most %d)", camera,
                        key, len(payload), MAX_COMMAND)
            return
        try:
            value = control_value(key, payload)
        except (ValueError, UnicodeDecodeError) as err:
            log.warning("mqtt: %s: %s/set refused (%s)", camera, key, err)
            return
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._apply_command(camera, key, value), self._loop)

    async def _apply_command(self, camera: str, key: str, value: Any) -> None:
        assert self.set_controls is not None
        try:
            await self.set_controls(camera, {key: value}, source="mqtt")
        except controls.ControlError as err:
            log.warning("mqtt: %s: %s/set %s refused (%s)", camera, key, shown(value), shown(err, 200))
        except Exception as err:  # the command must never take the publisher down
            log.error("mqtt: %s: %s/set %s failed (%s)", camera, key, shown(value), shown(err, 200))
        self._published[camera].controls = None  # publish every control's state again
        feed = next(f for f in self.feeds if f.name == camera)
        self._publish_camera(feed, feed.seq)

    # event loop --------------------------------------------------------------------------------------------

    def _send(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = True) -> bool:
        if not self.connected:
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def _config_topics(self, camera: str) -> list[str]:
        """Every discovery config topic a camera of this name has (or had, with MQTT commands on)."""
        if not self.discovery:
            return []
        return camera_config_topics(camera, self.prefix, self.discovery_prefix)

    def _publish_discovery(self) -> None:
        if not self.discovery:
            return
        withdrawn = self.claimed()
        for topic, payload in self._configs.items():
            self._send(topic, b"" if withdrawn else json.dumps(payload), qos=1)  # empty retained: entity removed

    def claim_changed(self, _claimed: bool) -> None:
        """From any thread: the integration took or released the service; withdraw or republish discovery."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish_discovery)

    def _republish(self) -> None:
        self._publish_discovery()
        for feed in self.feeds:
            self._published[feed.name].reset()
            self._publish_camera(feed, feed.seq)

    async def _follow(self, feed: CameraFeed) -> None:
        seq = feed.seq
        failing = False
        while True:
            try:
                seq = await feed.wait_frame(seq, POLL)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a broken feed must not stop the other cameras' publishing
                if not failing:
                    log.warning("mqtt: camera %s: waiting for a frame failed: %s", feed.name, err)
                failing = True
                await asyncio.sleep(POLL)
            self._publish_camera(feed, seq)

    def _publish_camera(self, feed: CameraFeed, seq: int) -> None:
        if not self.connected:
            return
        try:
            status = feed.status()
        except Exception as err:
            log.warning("mqtt: camera %s: status failed: %s", feed.name, err)
            return
        jpeg = feed.latest_jpeg
        done = self._published[feed.name]
        base = f"{self.prefix}/{feed.name}"
        now = time.monotonic()
        faces = int(status.get("faces") or 0)
        degraded = bool(status.get("privacy_degraded"))
        if jpeg is not None and seq != done.snapshot_seq:
            since = now - done.snapshot_at
            due = (done.snapshot_seq is None or since >= snapshot_interval(feed)
                   or (faces != done.snapshot_faces and since >= FACE_SNAPSHOT_GAP))
            if due and self._send(f"{base}/snapshot", jpeg):
                done.snapshot_seq, done.snapshot_at, done.snapshot_faces = seq, now, faces
        people = "" if status.get("people") is None else str(int(status["people"]))  # "": unknown (target face)
        # The state (and the occupancy read from it) follows a count or privacy change at once.
        changed = faces != done.faces or degraded != done.degraded or people != done.people
        if faces != done.faces and self._send(f"{base}/faces", str(faces)):
            done.faces = faces
        if people != done.people and self._send(f"{base}/people", people):
            done.people = people
        if degraded != done.degraded and self._send(f"{base}/privacy_degraded", "ON" if degraded else "OFF"):
            done.degraded = degraded
        if (changed or done.state_at is None or now - done.state_at >= STATE_PERIOD) and self._send(
                f"{base}/state", json.dumps(status, default=json_default)):
            done.state_at = now
        online = bool(status.get("online"))
        if online != done.online and self._send(f"{base}/available", "online" if online else "offline", qos=1):
            done.online = online
        info = json.dumps({**{key: status.get(key) for key in INFO_KEYS}, "service": self.service_id},
                          default=json_default)
        if info != done.info and self._send(f"{base}/info", info):
            done.info = info
        states = {key: control_payload(key, value) for key, value in (status.get("controls") or {}).items()}
        sent = done.controls or {}
        for key, payload in states.items():
            if sent.get(key) != payload and self._send(f"{base}/{key}/state", payload, qos=1):
                sent[key] = payload
        done.controls = sent
