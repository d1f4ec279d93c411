"""Snapshot jobs shared by a pool of faceanon workers through MQTT 5 shared subscriptions (`$share/<group>/...`).

Jobs (what comes in) and where the result goes (prefix `faceanon`):
- Frigate's `frigate/<camera>/<object>/snapshot` JPEGs -> `faceanon/<camera>/<object>/snapshot`, retained like
  Frigate's own, so the anonymized snapshot sits where a Frigate user looks for it.
- `faceanon/jobs/<id>`: any JPEG -> `faceanon/anonymized/<id>`, or the job's MQTT 5 Response Topic (with its
  Correlation Data) when it names one.
Every result carries the user property `worker` (who made it).

Delivery, QoS 1 throughout: the broker hands each job to one member of the group. A job is acknowledged only once
the broker holds its result, so a worker that dies while working loses nothing: the job stays in its session.
Each worker has a persistent session (expiry `SESSION_EXPIRY_S`), a retained presence topic
`faceanon/workers/<worker>` (`online`, or `offline` from its last will) and watches its peers' presence. When a
worker goes offline, the first live worker by name takes over its session (connects with its client id), stops
new jobs going to it, finishes what was queued or unacknowledged there, and ends the session. Mosquitto queues
shared-subscription jobs per member as they arrive, so without this a dead worker's backlog would wait for it to
come back. A worker stopped cleanly leaves the group first and finishes its own backlog.

At least once: a job whose result reached the broker but whose acknowledgement did not (a kill in that instant)
is done again by whoever takes the session; results are idempotent (same topic, same kind of image).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from faceanon.source.base import one_line
from faceanon.source.broker import apply_credentials, broker_address

log = logging.getLogger("faceanon.jobs")

SESSION_EXPIRY_S = 3600  # a dead worker's jobs wait this long for a peer (or itself) to take them
RECEIVE_MAXIMUM = 2  # unacknowledged jobs the broker sends one worker at once; the rest wait in its session
DRAIN_IDLE_S = 1.5  # a taken-over session with nothing arriving for this long is empty
PUBLISH_TIMEOUT_S = 30.0
KEEPALIVE_S = 15  # a worker whose machine vanishes is declared offline after 1.5x this


@dataclass
class Job:
    """One JPEG to anonymize, and where its result goes. `finish` publishes the result, then acknowledges."""

    topic: str
    payload: bytes
    result_topic: str
    retain: bool
    session: JobSession
    mid: int
    correlation: bytes | None = None
    received: float = field(default_factory=time.monotonic)

    def finish(self, result: bytes | None) -> bool:
        """Publish `result` (None: nothing, e.g. not an image) and acknowledge the job; False when the session was
        lost first (the job is then done again by whoever holds the session)."""
        return self.session.finish(self, result)


def job_filters(group: str, prefix: str, frigate_prefix: str | None) -> list[str]:
    filters = [f"$share/{group}/{prefix}/jobs/+"]
    if frigate_prefix:
        filters.append(f"$share/{group}/{frigate_prefix}/+/+/snapshot")
    return filters


def result_topic(topic: str, prefix: str, frigate_prefix: str | None) -> tuple[str, bool]:
    """Where a job's result goes, and whether it is retained."""
    parts = topic.split("/")
    if frigate_prefix and len(parts) == 4 and parts[0] == frigate_prefix and parts[3] == "snapshot":
        return f"{prefix}/{parts[1]}/{parts[2]}/snapshot", True
    return f"{prefix}/anonymized/{parts[-1]}", False


class JobSession:
    """One MQTT 5 session (a client id) that receives jobs into a shared queue: a worker's own, or one taken over."""

    def __init__(self, cfg: dict[str, Any], client_id: str, jobs: queue.Queue[Job], prefix: str,
                 frigate_prefix: str | None, worker: str, will: str | None = None,
                 on_connect: Callable[[JobSession, bool], None] | None = None,
                 on_presence: Callable[[str, str], None] | None = None) -> None:
        self.cfg, self.client_id, self.jobs = cfg, client_id, jobs
        self.prefix, self.frigate_prefix, self.worker = prefix, frigate_prefix, worker
        self.open_jobs = 0  # received, not yet finished
        self.last_activity = time.monotonic()  # a job arrived or was finished
        self.connected = threading.Event()
        self.session_present = False
        self.lost = False  # the broker gave this session to another connection (takeover)
        self.on_takeover_stop = on_presence is None  # a taken-over peer session gives up; our own reconnects
        self._on_connect, self._on_presence = on_connect, on_presence
        self._lock = threading.Lock()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                             manual_ack=True)
        apply_credentials(client, cfg)
        if will:
            client.will_set(will, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 10)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        self.client = client

    def start(self, expiry_s: int = SESSION_EXPIRY_S) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        host, port = broker_address(self.cfg)
        self.client.connect_async(host, port, KEEPALIVE_S, clean_start=False, properties=props)
        self.client.loop_start()

    def _connected(self, client: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("jobs: broker refused %s (%s)", self.client_id, reason)
            return
        self.session_present = bool(flags.session_present)
        self.connected.set()
        if self._on_connect:
            self._on_connect(self, self.session_present)

    def _disconnected(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        if getattr(reason, "value", 0) == 142:  # Session taken over: its owner (or another rescuer) came back
            self.lost = True
            if self.on_takeover_stop:
                client.disconnect()  # a taken-over session is not ours to fight for: no reconnect

    def _message(self, client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) == 3 and parts[0] == self.prefix and parts[1] == "workers":
            client.ack(msg.mid, msg.qos)
            if self._on_presence:
                self._on_presence(parts[2], msg.payload.decode("utf-8", "replace"))
            return
        props = getattr(msg, "properties", None)
        response = getattr(props, "ResponseTopic", None) if props is not None else None
        topic, retain = (response, False) if response else result_topic(msg.topic, self.prefix,
                                                                          self.frigate_prefix)
        with self._lock:
            self.open_jobs += 1
            self.last_activity = time.monotonic()
        self.jobs.put(Job(msg.topic, bytes(msg.payload), topic, retain, self, msg.mid,
                          getattr(props, "CorrelationData", None) if props is not None else None))

    def finish(self, job: Job, result: bytes | None) -> bool:
        try:
            if result is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = ("worker", self.worker)
                if job.correlation is not None:
                    props.CorrelationData = job.correlation
                info = self.client.publish(job.result_topic, result, qos=1, retain=job.retain, properties=props)
                info.wait_for_publish(PUBLISH_TIMEOUT_S)  # the broker has the result: only now may the job go
                if not info.is_published():
                    return False
            return self.client.ack(job.mid, 1) == paho.MQTT_ERR_SUCCESS and not self.lost
        except (RuntimeError, ValueError, OSError) as err:  # the connection went while publishing
            log.warning("jobs: %s: result not delivered (%s); the job stays in session %s", job.topic,
                        one_line(err), self.client_id)
            return False
        finally:
            with self._lock:
                self.open_jobs -= 1
                self.last_activity = time.monotonic()

    def subscribe(self, filters: list[str]) -> None:
        self.client.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in filters])

    def leave(self, filters: list[str], timeout: float = 5.0) -> None:
        """Unsubscribe and wait for the broker's answer: after it, no new job is queued for this session."""
        done = threading.Event()
        self.client.on_unsubscribe = lambda *_args: done.set()
        self.client.unsubscribe(filters)
        done.wait(timeout)

    def drained(self) -> bool:
        with self._lock:
            return self.open_jobs == 0 and time.monotonic() - self.last_activity > DRAIN_IDLE_S

    def end(self) -> None:
        """Disconnect and have the broker delete the session (expiry 0)."""
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    def close(self) -> None:
        """Disconnect, keeping the session (and its jobs) for whoever comes next."""
        self.client.disconnect()
        self.client.loop_stop()


class JobPool:
    """This worker's membership of the pool: its own session, its peers' presence, and taking over the sessions
    of peers that died. Jobs from all of them arrive in `jobs`."""

    def __init__(self, cfg: dict[str, Any], group: str, worker: str, prefix: str = "faceanon",
                 frigate_prefix: str | None = "frigate") -> None:
        self.cfg, self.group, self.worker = cfg, group, worker
        self.prefix, self.frigate_prefix = prefix, frigate_prefix
        self.filters = job_filters(group, prefix, frigate_prefix)
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.peers: dict[str, str] = {}  # worker -> its retained presence
        self._rescues: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.own = JobSession(cfg, self.client_id(worker), self.jobs, prefix, frigate_prefix, worker,
                              will=self.presence_topic(worker), on_connect=self._own_connected,
                              on_presence=self._presence)

    def client_id(self, worker: str) -> str:
        return f"{self.prefix}-job-{worker}"[:64]

    def presence_topic(self, worker: str) -> str:
        return f"{self.prefix}/workers/{worker}"

    def start(self) -> None:
        self.own.start()

    def _own_connected(self, session: JobSession, _present: bool) -> None:
        session.client.publish(self.presence_topic(self.worker), "online", qos=1, retain=True)
        session.client.subscribe([(f"{self.prefix}/workers/+", paho.SubscribeOptions(qos=1)),
                                  *((f, paho.SubscribeOptions(qos=1)) for f in self.filters)])
        log.info("jobs: worker %s in group %s (%s)", self.worker, self.group, ", ".join(self.filters))

    # -- peers --
    def _presence(self, worker: str, state: str) -> None:
        with self._lock:
            if state:
                self.peers[worker] = state
            else:
                self.peers.pop(worker, None)
        self._rescue_orphans()

    def _first_live(self) -> bool:
        """Whether this worker comes first by name among the live ones: the one that takes over the dead (the
        caller holds the lock)."""
        return min({w for w, s in self.peers.items() if s == "online"} | {self.worker}) == self.worker

    def _rescue_orphans(self) -> None:
        """Take over every offline peer's session, if this worker is the first live one by name."""
        if self._stopping.is_set():
            return
        with self._lock:
            if not self._first_live():
                return
            for worker, state in self.peers.items():
                if state == "offline" and worker != self.worker and worker not in self._rescues:
                    thread = threading.Thread(target=self._rescue, args=(worker,), name=f"rescue-{worker}",
                                              daemon=True)
                    self._rescues[worker] = thread
                    thread.start()

    def _rescue(self, worker: str) -> None:
        session = JobSession(self.cfg, self.client_id(worker), self.jobs, self.prefix, self.frigate_prefix,
                             self.worker)
        time.sleep(1.0)  # let the retained presence of every peer arrive before deciding who takes it
        with self._lock:
            if not self._first_live() or self.peers.get(worker) != "offline":
                self._rescues.pop(worker, None)
                return
        try:
            session.start(expiry_s=SESSION_EXPIRY_S)
            if not session.connected.wait(10):
                raise ConnectionError("the broker did not answer within 10 s")
        except Exception as err:  # the session (and its jobs) stay for the next try
            log.error("jobs: cannot take over worker %s (%s)", worker, one_line(err))
            session.close()
            with self._lock:
                self._rescues.pop(worker, None)
            return
        try:
            if session.session_present:
                session.leave(self.filters)  # no new job goes to the dead worker's session
                log.warning("jobs: worker %s is offline; %s takes over its queued jobs", worker, self.worker)
                while not (session.drained() or session.lost or self._stopping.is_set()
                           or self.peers.get(worker) == "online"):
                    time.sleep(0.2)
            if session.session_present and (session.lost or not session.drained()):
                session.close()  # its owner is back, or we stop: the session and what is left in it stay
                return
            session.client.publish(self.presence_topic(worker), b"", qos=1, retain=True)  # forget it
            session.end()
            if session.session_present:
                log.info("jobs: worker %s's jobs are done; its session is closed", worker)
            with self._lock:
                self.peers.pop(worker, None)
        except Exception as err:
            log.error("jobs: taking over worker %s failed (%s)", worker, one_line(err))
            session.close()
        finally:
            with self._lock:
                self._rescues.pop(worker, None)

    # -- stopping --
    def leave(self) -> None:
        """Leave the group: no new jobs come to this worker; what it already has still arrives in `jobs`."""
        self._stopping.set()
        if self.own.connected.is_set():
            self.own.leave(self.filters)

    def drained(self) -> bool:
        return self.own.drained()

    def abandon(self) -> None:
        """Stop with jobs unfinished: say `offline` (as the last will would) so a peer takes the session over."""
        if self.own.connected.is_set():
            self.own.client.publish(self.presence_topic(self.worker), "offline", qos=1,
                                    retain=True).wait_for_publish(5)
        self.own.close()

    def stop(self) -> None:
        """After `leave` and the backlog: end the session and clear the presence (a clean stop is not a death)."""
        if self.own.connected.is_set():
            self.own.client.publish(self.presence_topic(self.worker), b"", qos=1, retain=True).wait_for_publish(5)
            self.own.end()
        else:
            self.own.close()
