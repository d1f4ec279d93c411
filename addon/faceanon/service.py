"""The live service: cameras from the config, each through its fail-closed pipeline, out through the publishers.

Runs until SIGINT/SIGTERM. Without an `mqtt` section it starts an embedded broker (amqtt) on 127.0.0.1:1883 so
Home Assistant's MQTT integration (or Frigate-style tooling) has something to talk to. One broken camera never
stops the others: each camera's failures stay in its own pipeline task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, ClassVar

import cv2

import faceanon
from faceanon.claim import IntegrationClaim
from faceanon.config import ConfigError, load_config
from faceanon.controls import ControlError, ControlStore, changed
from faceanon.detect.shared import Detectors
from faceanon.feed import CameraFeed
from faceanon.identity import service_id, state_dir
from faceanon.pipeline import CameraPipeline, control_values
from faceanon.source.base import one_line, redact, shown

log = logging.getLogger("faceanon.service")
EMBEDDED_BROKER = {"host": "127.0.0.1", "port": 1883}


def setup_logging(level: str) -> None:
    # Frigate-like lines: time, level, logger, then the camera name leads the message.
    logging.basicConfig(level=level.upper(), format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", force=True)
    # OpenCV's own warnings (each failed FFmpeg open) would repeat our one-line errors.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class EmbeddedBroker:
    """amqtt on its own event loop in a daemon thread, so the service's loop never waits on the broker (nor the
    broker on a busy service loop), and a broker that hangs on shutdown cannot keep the process alive."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._broker = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="mqtt-broker", daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        """Listen on host:port; raise (with the reason) when it cannot."""
        async def run() -> None:  # built on its own loop: amqtt binds its queues and tasks to the running loop
            listen = {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}
            self._broker = matching_broker()({"listeners": listen, "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}})
            await self._broker.start()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


def port_free(host: str, port: int) -> bool:
    """Nothing listens on host:port (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def matching_broker() -> type:
    """amqtt's Broker, sending retained messages only for the subscriptions a client made itself.

    amqtt (0.12) offers every client that connects the retained messages matching anyone's subscription: with a
    `#` subscriber around, a client subscribed to `nomatch/#` got every retained topic. Its subscribe path passes
    the client's own subscription, its connect path every filter of every client; a session only ever gets
    messages of filters it holds. Started as a task, so amqtt's loop over the shared filters never waits while
    another client subscribes (which made it fail with "dictionary changed size during iteration")."""
    from amqtt.broker import Broker

    class MatchingBroker(Broker):  # type: ignore[misc]
        _sending: ClassVar[set[asyncio.Task[None]]] = set()

        async def _publish_retained_messages_for_subscription(self, subscription: Any, session: Any) -> None:
            holders = self._subscriptions.get(subscription[0], [])
            if not any(held is session or held.client_id == session.client_id for held, _qos in holders):
                return
            task = asyncio.ensure_future(super()._publish_retained_messages_for_subscription(subscription, session))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    return MatchingBroker


def mqtt_defaults(host: str, port: int) -> dict:
    """The mqtt section for the embedded broker, with the documented defaults."""
    from faceanon.config import MQTT

    return MQTT({"host": host, "port": port})


AUDIT_SIZE = 32  # control changes kept for /api/service and diagnostics


def short_provider(provider: str) -> str:
    """CPUExecutionProvider -> CPU; a remote server's URL stays as it is."""
    return provider.removesuffix("ExecutionProvider").upper() if provider.endswith("ExecutionProvider") else provider


def page_urls(host: str, port: int) -> list[str]:
    """Addresses a browser can open: a wildcard bind (0.0.0.0, ::) is no address, so this host's name and loopback."""
    if host in ("0.0.0.0", "::", ""):
        return [f"http://{socket.gethostname()}:{port}/", f"http://127.0.0.1:{port}/"]
    return [f"http://{f'[{host}]' if ':' in host else host}:{port}/"]


class StartError(RuntimeError):
    """A configured output cannot start; the message is the one line `faceanon serve` exits 2 with."""


class Service:
    def __init__(self, cfg: dict, broker_port: int = EMBEDDED_BROKER["port"]) -> None:
        self.cfg = cfg
        self.version = faceanon.version()
        self.started_at = time.monotonic()
        self.service_id = service_id(cfg.get("state_dir"), cfg["http"]["port"])
        self.claim = IntegrationClaim(state_dir(cfg.get("state_dir")))  # Home Assistant's integration has us
        self.broker_port = broker_port
        self.broker = None
        self.mqtt_cfg: dict | None = cfg.get("mqtt")
        # Each camera as the config file says, and as it runs now (the file's values under the kept controls).
        self.file_cameras = {cam["name"]: cam for cam in cfg["cameras"]}
        self.store = ControlStore(state_dir(cfg.get("state_dir")))
        self.cameras = {name: self.store.restore(cam) for name, cam in self.file_cameras.items()}
        self.detectors = Detectors(cfg["detector"], sum(1 for c in self.cameras.values() if c["enabled"]))
        # One feed per configured camera, on or off, for the service's lifetime: publishers hold them.
        self.feed_of = {name: CameraFeed(name, count_hold_s=cam["count_hold_seconds"])
                        for name, cam in self.cameras.items()}
        for name, feed in self.feed_of.items():  # the plan to set back to from a control
            feed.configured_plan = control_values(self.file_cameras[name], cfg["detector"])["plan"]
        self.running: dict[str, tuple[CameraPipeline, asyncio.Task]] = {}
        self.worker = None  # the snapshot job worker (faceanon.worker) when jobs.enabled
        self._worker_task: asyncio.Task | None = None
        self.publishers: list = []
        self._control_locks: dict[str, asyncio.Lock] = {}
        # Who changed which control, and what came of it: the newest AUDIT_SIZE, in /api/service and Home
        # Assistant's diagnostics (every accepted change is a log line too).
        self.audit: deque[dict[str, Any]] = deque(maxlen=AUDIT_SIZE)

    @property
    def feeds(self) -> list[CameraFeed]:
        return list(self.feed_of.values())

    @property
    def pipelines(self) -> list[CameraPipeline]:
        return [pipeline for pipeline, _task in self.running.values()]

    async def start(self) -> None:
        if self.mqtt_cfg is None:
            await self._start_embedded_broker()
        for cam in self.cameras.values():
            if not cam["enabled"]:
                self._switched_off(cam)
                log.info("%s: off (%s)", cam["name"], "in the config" if not self.file_cameras[cam["name"]]["enabled"]
                         else "by its control")
                continue
            self._start_camera(cam)
        if self.cfg["jobs"]["enabled"]:
            from faceanon.worker import SnapshotWorker

            self.worker = SnapshotWorker(self.cfg["jobs"], self.mqtt_cfg, self.detectors)
            self._worker_task = asyncio.create_task(self.worker.run(), name="snapshot-jobs")
        elif not self.pipelines:
            log.warning("no camera is running (all disabled or failing to set up): nothing will be published")
        await self._start_publishers()

    def _start_camera(self, cam: dict) -> bool:
        feed = self.feed_of[cam["name"]]
        try:
            pipeline = CameraPipeline(cam, self.detectors, self.mqtt_cfg, feed=feed)
        except Exception as err:  # a camera that cannot even be set up is skipped, the rest run
            log.error("%s: cannot set up the camera (%s)", cam["name"], one_line(err))
            self._switched_off(cam)
            feed.setup_error = one_line(err)
            return False
        feed.setup_error = None
        log.info("%s: reading %s at %g fps", cam["name"], redact(cam["url"]), cam["detect_fps"])
        self.running[cam["name"]] = (pipeline, asyncio.create_task(self._guard(pipeline), name=f"camera-{cam['name']}"))
        return True

    def _switched_off(self, cam: dict) -> None:
        feed = self.feed_of[cam["name"]]
        feed.switch_off()
        feed.controls = control_values(cam, self.cfg["detector"])

    async def _stop_camera(self, name: str) -> None:
        pipeline, task = self.running.pop(name)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await pipeline.stop()

    async def set_controls(self, name: str, changes: dict, source: str = "unknown") -> dict:
        """Change a camera's controls (faceanon.controls): validated, kept, applied now, and written to the audit
        list with `source` (who sent it). Returns the camera's controls as they act afterwards; ControlError (and
        nothing changed) when the schema or the protection floor refuses a value, or a new plan's model cannot
        load."""
        if name not in self.cameras:
            raise KeyError(name)
        try:
            now = await self._set_controls(name, changes)
        except ControlError as err:
            self._audit(name, changes, source, f"refused: {err}")
            log.warning("%s: controls %s from %s refused (%s)", name, shown(changes), source, shown(err, 300))
            raise
        self._audit(name, changes, source, "accepted")
        log.info("%s: controls now %s, set by %s", name, {k: v for k, v in now.items() if k in changes}, source)
        return now

    def _audit(self, name: str, changes: Any, source: str, result: str) -> None:
        self.audit.append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "camera": name,
                           "changes": changes if isinstance(changes, dict) else str(changes)[:200],
                           "source": source, "result": result})

    async def _set_controls(self, name: str, changes: dict) -> dict:
        async with self._control_locks.setdefault(name, asyncio.Lock()):
            old = self.cameras[name]
            new = changed(old, changes)
            if new["enabled"] and old["enabled"] and name in self.running:
                try:
                    await self.running[name][0].reconfigure(new)
                except Exception as err:  # the new plan's model: nothing changes
                    raise ControlError(f"plan: cannot load its model ({one_line(err)})") from err
            self.cameras[name] = new
            await asyncio.to_thread(self.store.keep, self.file_cameras[name], new)
            if not new["enabled"] and name in self.running:
                await self._stop_camera(name)
                self._switched_off(new)
                log.info("%s: turned off; it reads and publishes nothing", name)
            elif new["enabled"] and name not in self.running:
                if self._start_camera(new):
                    log.info("%s: turned on", name)
            elif not new["enabled"]:
                self._switched_off(new)
            return dict(self.feed_of[name].controls)

    async def _guard(self, pipeline: CameraPipeline) -> None:
        """Keep a camera's pipeline running; a crash restarts it (its sources and threads stay its own)."""
        while True:
            try:
                await pipeline.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.exception("%s: pipeline crashed (%s); restarting in 5s", pipeline.name, one_line(err))
                await asyncio.sleep(5)

    async def _start_restream(self) -> int | None:
        """The RTSP restream (built-in server and pushes) first: the HTTP API tells clients its port."""
        cameras = {c["name"]: c for c in self.cfg["cameras"]}
        if not self.cfg["rtsp"]["enabled"] and not any(c.get("restream") for c in cameras.values()):
            return None
        from faceanon.publish.restream import Restream

        restream = Restream(self.cfg["rtsp"], self.cfg["http"].get("token"), self.feeds, cameras)
        try:
            await restream.start()
        except Exception as err:  # the port is taken, say: a configured output that cannot run
            with contextlib.suppress(Exception):
                await restream.stop()
            raise StartError(f"RTSP output cannot start ({one_line(err)})") from err
        self.publishers.append(restream)
        for feed in self.feeds:  # in every camera's status (HTTP, MQTT attributes): where its stream is
            feed.rtsp_port = restream.port
        return restream.port

    async def _start_embedded_broker(self) -> None:
        """No mqtt section: an embedded broker on 127.0.0.1:1883, or on a free port when 1883 is taken (a broker
        the user runs already). The service never publishes into a broker its config does not name: when the
        embedded one cannot start at all, it runs without MQTT."""
        host, port = EMBEDDED_BROKER["host"], self.broker_port
        if not port_free(host, port):
            port = free_port(host)
            log.warning("port %d on %s is taken (another MQTT broker?): the embedded broker listens on %s:%d instead "
                        "(give an mqtt section to publish into yours)", self.broker_port, host, host, port)
        broker = EmbeddedBroker(host, port)
        try:
            await asyncio.to_thread(broker.start)
        except Exception as err:
            log.error("embedded MQTT broker cannot listen on %s:%d (%s); running without MQTT", host, port,
                      one_line(err))
            return
        self.broker = broker
        log.info("embedded MQTT broker listening on %s:%d (no mqtt section in the config)", host, port)
        self.mqtt_cfg = mqtt_defaults(host, port)

    async def _start_publishers(self) -> None:
        rtsp_port = await self._start_restream()
        makers = []
        try:
            from faceanon.publish.mqtt import MqttPublisher

            def mqtt_publisher() -> MqttPublisher:
                publisher = MqttPublisher(self.mqtt_cfg, self.feeds, self.version, claimed=lambda: self.claim.claimed,
                                          set_controls=self.set_controls, service_id=self.service_id)
                self.claim.subscribe(publisher.claim_changed)
                return publisher

            if self.mqtt_cfg is not None:  # None: the embedded broker could not start (never the default's 1883)
                makers.append(("MQTT", mqtt_publisher))
        except ImportError as err:
            log.error("MQTT publisher unavailable (%s)", one_line(err))
        try:
            from faceanon.publish.http import HttpServer

            def http_server() -> HttpServer:
                server = HttpServer(self.cfg["http"], self.feeds, self.version, rtsp_port=rtsp_port,
                                    service_id=self.service_id, claim=self.claim,
                                    set_controls=self.set_controls, service_info=self.info)
                server.serves_jobs = self.worker is not None
                return server

            makers.append(("HTTP", http_server))
        except ImportError as err:
            log.error("HTTP server unavailable (%s)", one_line(err))
        for label, make in makers:
            try:
                publisher = make()
                await publisher.start()
                self.publishers.append(publisher)
            except Exception as err:  # a configured output that cannot run (busy port, missing TLS file): stop
                raise StartError(f"{label} output cannot start ({one_line(err)})") from err
        http = self.cfg["http"]
        if any(type(p).__name__ == "HttpServer" for p in self.publishers):
            log.info("web page and API on %s", " and ".join(page_urls(http["host"], http["port"])))

    def info(self) -> dict:
        """What the web page's service panel shows: uptime, the MQTT broker and whether it is connected, the
        detectors the cameras run."""
        mqtt = next((p for p in self.publishers if type(p).__name__ == "MqttPublisher"), None)
        detectors = sorted({f"{feed.model} on {short_provider(feed.provider)}" for feed in self.feeds
                            if feed.model and feed.provider})
        return {"uptime_s": round(time.monotonic() - self.started_at, 1), "detectors": detectors,
                "audit": list(self.audit),
                "mqtt": None if mqtt is None else {"host": mqtt.host, "port": mqtt.port, "connected": mqtt.connected,
                                                   "embedded": self.broker is not None}}

    async def stop(self) -> None:
        if self.worker is not None:  # leaves the pool and finishes the jobs it was given (bounded)
            await self.worker.stop(self._worker_task)
        # Publishers first: they announce offline while nothing new is produced.
        for publisher in reversed(self.publishers):
            try:
                await asyncio.wait_for(publisher.stop(), 10)
            except Exception as err:
                log.error("%s did not stop cleanly (%s)", type(publisher).__name__, one_line(err))
        tasks = [task for _pipeline, task in self.running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(p.stop() for p in self.pipelines), return_exceptions=True)
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        log.info("stopped")


async def serve(cfg: dict, stop: asyncio.Event | None = None, broker_port: int = EMBEDDED_BROKER["port"]) -> None:
    """Run the service until `stop` is set (or SIGINT/SIGTERM when no event is given)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    service = Service(cfg, broker_port)
    try:
        await service.start()
        log.info("running %d camera(s); faceanon %s", len(service.pipelines), service.version)
        await stop.wait()
        log.info("shutting down")
    finally:
        await service.stop()
        for sig in handled:
            loop.remove_signal_handler(sig)


def main(config_path: str | None = None) -> int:
    try:
        cfg = load_config(config_path)
    except ConfigError as err:
        print(f"faceanon: invalid configuration: {err}", file=sys.stderr)
        return 2
    setup_logging(cfg["log_level"])
    if config_path is None:
        log.info("no config file given: serving the demo camera on the bundled sample clip")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(cfg))
    except StartError as err:
        print(f"faceanon: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
