"""The snapshot worker pool on a real mosquitto: three `faceanon serve` processes share Frigate-style snapshot jobs
through an MQTT 5 shared subscription; each job is anonymized once, the work is split, and a worker killed with
SIGKILL halfway loses nothing (a live peer takes over its session)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
import yaml
from conftest import ROOT, Mosquitto, free_port
from faceanon.bench.stages import read_frames
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner
from faceanon.source.jobs import result_topic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

pytestmark = pytest.mark.timeout(240)
SAMPLE = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
JOBS = 60
BITS = 8  # the job number, drawn as 8 black/white blocks in the bottom-left corner (no face there)
BLOCK = 12


def mark(image: np.ndarray, number: int) -> np.ndarray:
    image = image.copy()
    h = image.shape[0]
    for bit in range(BITS):
        value = 255 if number >> bit & 1 else 0
        image[h - BLOCK:h, bit * BLOCK:(bit + 1) * BLOCK] = value
    return image


def read_mark(image: np.ndarray) -> int:
    h = image.shape[0]
    bits = [image[h - BLOCK + 3:h - 3, b * BLOCK + 3:(b + 1) * BLOCK - 3].mean() > 128 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


class Results:
    """Subscribes to every result topic; keeps (job number, worker, image) per result message."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[tuple[int, str, np.ndarray]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"results-{time.time_ns()}",
                                  protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _message(self, _c, _u, msg: paho.MQTTMessage) -> None:
        if msg.retain:  # the retained copy a late subscriber gets is not a new result
            return
        image = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_COLOR)
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        with self.lock:
            self.got.append((read_mark(image), props.get("worker", "?"), image))

    def count(self) -> int:
        with self.lock:
            return len(self.got)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_worker(tmp: Path, broker: Mosquitto, name: str, **jobs: object) -> subprocess.Popen:
    cfg = {"mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
           "http": {"port": free_port()}, "rtsp": {"enabled": False},
           # the fast plan keeps the test short on 2 cores; the default (the image plan) is the same code path
           "jobs": {"enabled": True, "worker": name, "plan": "fast", "style": "fill", "shape": "box", **jobs},
           "cameras": []}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - the process writes it until the test ends
    return subprocess.Popen([sys.executable, "-m", "faceanon.service", str(path)], stdout=log, stderr=log,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_online(broker: Mosquitto, names: list[str], timeout: float = 60.0) -> None:
    seen: dict[str, str] = {}
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"presence-{time.time_ns()}",
                         protocol=paho.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe("faceanon/workers/+", 1)
    client.on_message = lambda _c, _u, m: seen.__setitem__(m.topic.rsplit("/", 1)[1], m.payload.decode())
    client.connect("127.0.0.1", broker.port, 30)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not all(seen.get(n) == "online" for n in names):
            assert time.monotonic() < deadline, f"workers not online after {timeout}s: {seen}"
            time.sleep(0.1)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture(scope="module")
def snapshots() -> list[bytes]:
    frames = [cv2.resize(f, None, fx=2, fy=2) for f in read_frames(SAMPLE)]
    out = []
    for i in range(JOBS):
        ok, buf = cv2.imencode(".jpg", mark(frames[i % len(frames)], i), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        out.append(buf.tobytes())
    return out


def test_result_topics_follow_frigate() -> None:
    assert result_topic("frigate/front/person/snapshot", "faceanon", "frigate") == \
        ("faceanon/front/person/snapshot", True)
    assert result_topic("faceanon/jobs/abc", "faceanon", "frigate") == ("faceanon/anonymized/abc", False)


def test_three_workers_share_the_jobs_and_a_killed_one_loses_nothing(tmp_path: Path, snapshots: list[bytes]):
    broker = Mosquitto(tmp_path)
    names = ["w1", "w2", "w3"]
    workers = {n: start_worker(tmp_path, broker, n) for n in names}
    results = Results(broker.port, "faceanon/+/+/snapshot")
    try:
        wait_online(broker, names)
        publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="frigate", protocol=paho.MQTTv5)
        publisher.connect("127.0.0.1", broker.port, 30)
        publisher.loop_start()
        for i, jpeg in enumerate(snapshots):  # as Frigate does: retained, one topic per camera and object
            publisher.publish(f"frigate/cam{i % 3}/person/snapshot", jpeg, qos=1, retain=True).wait_for_publish(5)
        deadline = time.monotonic() + 90
        while results.count() < JOBS // 2:
            assert time.monotonic() < deadline, f"only {results.count()} results"
            time.sleep(0.02)
        # Kill the worker that has done the least so far: it still holds queued jobs in its session.
        with results.lock:
            done_by = collections.Counter(w for _, w, _ in results.got)
        victim = min(names, key=lambda n: done_by.get(n, 0))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        deadline = time.monotonic() + 120
        while len({n for n, _, _ in results.got}) < JOBS:
            assert time.monotonic() < deadline, (
                f"{len({n for n, _, _ in results.got})} of {JOBS} jobs came out; missing "
                f"{sorted(set(range(JOBS)) - {n for n, _, _ in results.got})}")
            time.sleep(0.1)
        time.sleep(2.0)  # anything duplicated would arrive by now
        numbers = [n for n, _, _ in results.got]
        assert set(numbers) == set(range(JOBS))  # every job
        # Exactly once, but for the edge README names: a kill in the instant between a result reaching the broker
        # and its job's acknowledgement runs that one job again (a worker has one job in hand at a time).
        twice = [n for n, count in collections.Counter(numbers).items() if count > 1]
        assert len(twice) <= 1 and len(numbers) <= JOBS + 1, collections.Counter(numbers).most_common(3)
        if twice:
            assert victim in {w for n, w, _ in results.got if n == twice[0]}, "only the killed worker's job repeats"
        by_worker = collections.Counter(w for _, w, _ in results.got)
        assert set(by_worker) <= set(names) and all(by_worker[n] > 0 for n in names), by_worker
        # every result is anonymized: where the raw snapshot had faces, the detector finds none now
        scan = Scanner(load_detector("centerface"), DetectPlan(), threshold=0.5)
        raw = {i: cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for i, j in enumerate(snapshots)}
        assert sum(len(scan.scan(raw[i])) for i in range(0, JOBS, 6)) >= 10
        for number, _worker, image in results.got[::6]:
            assert image.shape == raw[number].shape
            assert len(scan.scan(image)) == 0, number
        # The burst queued about a third of the jobs per worker: the victim died with some of them still queued in
        # its session, and the first live worker by name took them over.
        rescuer = sorted(set(names) - {victim})[0]
        log = (tmp_path / f"{rescuer}.log").read_text()
        assert f"worker {victim} is offline; {rescuer} takes over its queued jobs" in log
        assert f"worker {victim}'s jobs are done; its session is closed" in log
    finally:
        results.close()
        for proc in workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in workers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()


def test_a_job_with_a_response_topic_gets_its_answer_there(tmp_path: Path, snapshots: list[bytes]):
    """MQTT 5 request/response: the result goes to the job's Response Topic with its Correlation Data; a payload
    that is not an image is dropped (acknowledged, nothing published)."""
    broker = Mosquitto(tmp_path)
    worker = start_worker(tmp_path, broker, "solo")
    answers: list[tuple[str, bytes | None, bytes]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="asker", protocol=paho.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe([("replies/#", 1), ("faceanon/anonymized/#", 1)])
    client.on_message = lambda _c, _u, m: answers.append(
        (m.topic, getattr(m.properties, "CorrelationData", None), bytes(m.payload)))
    try:
        wait_online(broker, ["solo"])
        client.connect("127.0.0.1", broker.port, 30)
        client.loop_start()
        time.sleep(0.5)
        client.publish("faceanon/jobs/junk", b"not a jpeg", qos=1).wait_for_publish(5)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "replies/me"
        props.CorrelationData = b"req-7"
        client.publish("faceanon/jobs/req7", snapshots[7], qos=1, properties=props).wait_for_publish(5)
        client.publish("faceanon/jobs/plain", snapshots[8], qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 60
        while len(answers) < 2:
            assert time.monotonic() < deadline, answers
            time.sleep(0.05)
        time.sleep(1.0)
        topics = {t: c for t, c, _ in answers}
        assert topics == {"replies/me": b"req-7", "faceanon/anonymized/plain": None}
        log = (tmp_path / "solo.log").read_text()
        assert "faceanon/jobs/junk: dropped, not a usable JPEG" in log
    finally:
        client.loop_stop()
        client.disconnect()
        worker.terminate()
        worker.wait(20)
        broker.stop()


def test_a_worker_whose_detector_fails_publishes_nothing(tmp_path: Path, snapshots: list[bytes]):
    """Fail closed: with a model that cannot load, a job is never answered with its raw image (nor anything else);
    it waits, unacknowledged, in the broker."""
    broker = Mosquitto(tmp_path)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model" * 100)
    worker = start_worker(tmp_path, broker, "broken", model=str(broken), plan=None)
    got: list[str] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="asker", protocol=paho.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe("faceanon/anonymized/#", 1)
    client.on_message = lambda _c, _u, m: got.append(m.topic)
    try:
        wait_online(broker, ["broken"])
        client.connect("127.0.0.1", broker.port, 30)
        client.loop_start()
        time.sleep(0.5)
        client.publish("faceanon/jobs/held", snapshots[3], qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 30
        log = tmp_path / "broken.log"
        while "detector unavailable, jobs wait" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(3.0)
        assert got == []
    finally:
        client.loop_stop()
        client.disconnect()
        worker.terminate()
        worker.wait(30)
        broker.stop()


def test_sigterm_with_jobs_queued_stops_in_seconds_and_a_peer_does_the_rest(tmp_path: Path, snapshots: list[bytes]):
    """A stop with a backlog finishes the job in hand, leaves the rest in its session for the pool and exits in
    seconds (a container gets 10 s between SIGTERM and SIGKILL; it took 10-14 s). A peer started later does every
    job left: nothing is lost."""
    broker = Mosquitto(tmp_path)
    first = start_worker(tmp_path, broker, "first", plan="max")  # the slow still plan: a real backlog
    results = Results(broker.port, "faceanon/anonymized/+")
    second = None
    try:
        wait_online(broker, ["first"])
        publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="jobs", protocol=paho.MQTTv5)
        publisher.connect("127.0.0.1", broker.port, 30)
        publisher.loop_start()
        for i, jpeg in enumerate(snapshots[:30]):
            publisher.publish(f"faceanon/jobs/j{i}", jpeg, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 60
        while results.count() < 1:
            assert time.monotonic() < deadline, "no job was done"
            time.sleep(0.05)
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        first.wait(30)
        took = time.monotonic() - started
        assert first.returncode == 0 and took < 6.0, took
        done_first = results.count()
        assert done_first < 30, "the backlog was finished before the stop: the test proved nothing"
        second = start_worker(tmp_path, broker, "second", plan="fast")
        deadline = time.monotonic() + 120
        while len({n for n, _, _ in results.got}) < 30:
            assert time.monotonic() < deadline, f"{len({n for n, _, _ in results.got})} of 30 jobs came out"
            time.sleep(0.1)
        publisher.loop_stop()
        publisher.disconnect()
    finally:
        results.close()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        broker.stop()
