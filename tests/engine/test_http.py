"""HttpServer on a real port on 127.0.0.1, fed with real anonymized frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time

import aiohttp
import cv2
import numpy as np
import pytest
from conftest import FrameFeed
from faceanon.detect import load_detector
from faceanon.detect.plan import DetectPlan, Scanner
from faceanon.publish.http import HttpServer
from yarl import URL

pytestmark = pytest.mark.timeout(60)
VERSION = "1.2.3"
TIMEOUT = aiohttp.ClientTimeout(total=10)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


@contextlib.asynccontextmanager
async def serving(feeds, ingress_peer: str = "172.30.32.2", **http):
    server = HttpServer({"host": "127.0.0.1", "port": 0, **http}, feeds, VERSION, ingress_peer=ingress_peer)
    await server.start()
    try:
        yield server, f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def session(source: str = "127.0.0.1"):
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as s:
        yield s


async def test_routes(anonymized_frames):
    lobby, door = FrameFeed("lobby"), FrameFeed("back_door")
    frame = next(f for f in anonymized_frames if f.faces >= 2)
    lobby.push(frame)
    async with serving([lobby, door]) as (_server, url), session() as http:
        async with http.get(f"{url}/api/health") as r:
            assert r.status == 200
            assert await r.json() == {"status": "starting", "version": VERSION, "cameras": 2, "degraded": [],
                                      "offline": [], "warnings": []}
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Cache-Control"] == "no-store"

        async with http.get(f"{url}/api/cameras") as r:
            body = await r.json()
        assert body["version"] == VERSION
        assert [c["name"] for c in body["cameras"]] == ["lobby", "back_door"]
        first = body["cameras"][0]
        assert first["faces"] == frame.faces and first["online"] is True and first["model"] == "centerface"
        assert set(first) >= {"name", "online", "privacy_degraded", "faces", "fps", "detect_ms_p50", "detect_ms_p95",
                              "dropped_frames", "fail_closed_frames", "masks_held", "model", "provider", "width",
                              "height", "last_frame_age_s"}

        async with http.get(f"{url}/api/lobby/latest.jpg") as r:
            assert r.status == 200 and r.content_type == "image/jpeg"
            jpeg = await r.read()
        assert jpeg == frame.jpeg
        assert len(Scanner(load_detector(), DetectPlan()).scan(decode(jpeg)).boxes) == 0

        async with http.get(f"{url}/api/lobby/latest.jpg?h=135") as r:
            assert r.status == 200
            assert decode(await r.read()).shape[:2] == (135, 240)
        for tall in ("270", "2000", "99999999"):  # never scaled up
            async with http.get(f"{url}/api/lobby/latest.jpg?h={tall}") as r:
                assert r.status == 200 and await r.read() == frame.jpeg
        for bad in ("abc", "0", "-5", "1.5", ""):
            async with http.get(f"{url}/api/lobby/latest.jpg", params={"h": bad}) as r:
                assert r.status == 400, bad

        async with http.get(f"{url}/api/back_door/latest.jpg") as r:  # no anonymized frame yet
            assert r.status == 503 and r.headers["Retry-After"] == "1"
            assert r.content_type == "application/json"

        door.push(anonymized_frames[0])
        async with http.get(f"{url}/api/health") as r:
            assert (await r.json())["status"] == "ok"
        door.privacy_degraded = True
        async with http.get(f"{url}/api/health") as r:
            assert await r.json() == {"status": "degraded", "version": VERSION, "cameras": 2, "degraded": ["back_door"],
                                      "offline": [], "warnings": []}

        async with http.get(f"{url}/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert "stream.mjpeg" in await r.text()
        async with http.get(f"{url}/nothing-here") as r:
            assert r.status == 404


@pytest.mark.parametrize("path", [
    "/api/..%2Flatest.jpg", "/api/..%2F..%2Fetc%2Fpasswd/latest.jpg", "/api/%2e%2e/latest.jpg", "/api/LOBBY/latest.jpg",
    "/api/Lobby/stream.mjpeg", "/api/unknown/latest.jpg", "/api/lob-by/latest.jpg", "/api/lobby%00/latest.jpg",
    "/api/lobby%2F/latest.jpg", "/api/" + "a" * 65 + "/latest.jpg", "/api/lobby/../latest.jpg"])
async def test_bad_camera_names_are_404(path, anonymized_frames):
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    async with serving([feed]) as (_server, url), session() as http, \
            http.get(URL(url + path, encoded=True)) as r:
        assert r.status == 404
        assert r.content_type == "application/json"
        assert b"\xff\xd8" not in await r.read()


async def test_bearer_token(anonymized_frames):
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    token = "s3cret-token_42"
    async with serving([feed], token=token) as (_server, url), session() as http:
        async with http.get(f"{url}/api/health") as r:
            assert r.status == 200  # the watchdog's route stays open
        # The page holds no camera data: a browser gets it, and it asks for the token (the API's 401 tells it to).
        async with http.get(f"{url}/") as r:
            page = await r.text()
            assert r.status == 200 and 'id="login"' in page and "\xff\xd8" not in page
        for path in ("/api/cameras", "/api/lobby/latest.jpg", "/api/lobby/stream.mjpeg", "/metrics",
                     "/api/lobby/controls"):
            async with http.get(url + path) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
                assert b"\xff\xd8" not in await r.read()
            for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": f"Basic {token}"},
                          {"Authorization": f"Bearer {token}x"}):
                async with http.get(url + path, headers=wrong) as r:
                    assert r.status == 401, (path, wrong)
        async with http.get(f"{url}/api/cameras", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        async with http.get(f"{url}/api/lobby/latest.jpg", params={"token": token}) as r:  # <img src=...?token=>
            assert r.status == 200 and await r.read() == anonymized_frames[0].jpeg
        async with http.get(f"{url}/api/lobby/latest.jpg", params={"token": "wrong"}) as r:
            assert r.status == 401
        async with http.get(f"{url}/metrics", params={"token": token}) as r:
            assert r.status == 200


async def read_parts(response: aiohttp.ClientResponse, count: int) -> list[bytes]:
    assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    reader = aiohttp.MultipartReader.from_response(response)
    parts = []
    while len(parts) < count:
        part = await asyncio.wait_for(reader.next(), 10)
        assert part is not None and part.headers["Content-Type"] == "image/jpeg"
        parts.append(bytes(await part.read()))
    return parts


async def test_mjpeg_stream(anonymized_frames):
    feed = FrameFeed("lobby")
    playing = asyncio.create_task(feed.play(anonymized_frames, fps=10, count=60))
    try:
        async with serving([feed]) as (server, url):
            async with session() as http, http.get(f"{url}/api/lobby/stream.mjpeg") as r:
                assert r.status == 200
                parts = await read_parts(r, 4)
                assert "faceanon_http_streams 1" in server.metrics_text()
            jpegs = {f.jpeg for f in anonymized_frames}
            assert all(p in jpegs for p in parts)
            assert len(set(parts)) >= 2  # new frames are pushed, not one frame repeated
            for p in parts:
                decode(p)
            # The client hung up: the server notices and frees the stream.
            deadline = time.monotonic() + 8
            while "faceanon_http_streams 0" not in server.metrics_text() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert "faceanon_http_streams 0" in server.metrics_text()
    finally:
        playing.cancel()


async def test_stop_closes_open_streams(anonymized_frames):
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    server = HttpServer({"host": "127.0.0.1", "port": 0}, [feed], VERSION)
    await server.start()
    async with session() as http, http.get(f"http://127.0.0.1:{server.port}/api/lobby/stream.mjpeg") as r:
        assert (await read_parts(r, 1)) == [anonymized_frames[0].jpeg]
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 3
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.wait_for(r.content.read(), 5)  # returns (or fails): the server closed the stream


SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? '
                    r'(-?[0-9.]+(e[+-]?[0-9]+)?|NaN|[+-]Inf)$')


async def test_metrics_exposition(anonymized_frames):
    lobby, door = FrameFeed("lobby"), FrameFeed("back_door")
    for frame in anonymized_frames[:3]:
        lobby.push(frame)
    door.privacy_degraded = True
    async with serving([lobby, door], token="tok") as (_server, url), session() as http, \
            http.get(f"{url}/metrics", headers={"Authorization": "Bearer tok"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await r.text()
    assert text.endswith("\n")
    declared: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "summary", "histogram", "untyped"}
            assert name not in declared, f"{name} declared twice"
            declared[name] = kind
        else:
            assert SAMPLE.match(line), f"not exposition format: {line!r}"
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            assert name in declared, f"{name} has no TYPE line before it"
            samples[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    assert samples['faceanon_frames_total{camera="lobby"}'] == 3
    assert samples['faceanon_faces{camera="lobby"}'] == anonymized_frames[2].faces
    assert samples['faceanon_masks_held{camera="lobby"}'] == 2
    assert samples['faceanon_fail_closed_frames_total{camera="lobby"}'] == 1
    assert samples['faceanon_dropped_frames_total{camera="lobby"}'] == 3
    assert samples['faceanon_detect_latency_seconds{camera="lobby",quantile="0.5"}'] == pytest.approx(0.0215)
    assert samples['faceanon_detect_latency_seconds{camera="lobby",quantile="0.95"}'] == pytest.approx(0.04025)
    assert samples['faceanon_privacy_degraded{camera="back_door"}'] == 1
    assert samples['faceanon_privacy_degraded{camera="lobby"}'] == 0
    assert samples[f'faceanon_info{{version="{VERSION}"}}'] == 1
    assert all(k.endswith("_total") for k, v in declared.items() if v == "counter")


async def test_ingress_only(anonymized_frames):
    """The Supervisor's proxy (here 127.0.0.2 stands in for 172.30.32.2) gets in without a token; others do not."""
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    async with serving([feed], ingress_only=True, ingress_peer="127.0.0.2") as (_server, url):
        async with session("127.0.0.2") as proxy:
            for path in ("/api/cameras", "/api/lobby/latest.jpg", "/metrics", "/"):
                async with proxy.get(url + path) as r:
                    assert r.status == 200, path
            async with proxy.get(f"{url}/", headers={"X-Ingress-Path": "/api/hassio_ingress/Ab-c_1"}) as r:
                assert '<base href="/api/hassio_ingress/Ab-c_1/">' in await r.text()
            async with proxy.get(f"{url}/", headers={"X-Ingress-Path": '/x"><script>alert(1)</script>'}) as r:
                page = await r.text()
                assert "<base " not in page and "alert(1)" not in page
        async with session("127.0.0.1") as other:
            async with other.get(f"{url}/api/health") as r:
                assert r.status == 200
            for path in ("/api/cameras", "/api/lobby/latest.jpg", "/"):
                async with other.get(url + path) as r:
                    assert r.status == 403, path

    async with serving([feed], ingress_only=True, token="tok", ingress_peer="127.0.0.2") as (_server, url):
        async with session("127.0.0.1") as other:
            async with other.get(f"{url}/api/lobby/latest.jpg") as r:
                assert r.status == 401
            async with other.get(f"{url}/api/lobby/latest.jpg", headers={"Authorization": "Bearer tok"}) as r:
                assert r.status == 200
        async with session("127.0.0.2") as proxy, proxy.get(f"{url}/api/lobby/latest.jpg") as r:
            assert r.status == 200


async def test_with_the_pipeline_camera_feed(anonymized_frames):
    """The pipeline's own CameraFeed (the real contract), fed through its only door for frames."""
    from faceanon.feed import CameraFeed, anonymize
    from faceanon.mask import MaskStyle

    feed = CameraFeed("lobby", model="centerface", provider="cpu")
    async with serving([feed]) as (_server, url), session() as http:
        async with http.get(f"{url}/api/lobby/latest.jpg") as r:
            assert r.status == 503
        async with http.get(f"{url}/api/lobby/stream.mjpeg") as r:
            frame = decode(anonymized_frames[1].jpeg)
            boxes = np.array(anonymized_frames[1].boxes, np.float32)
            for _ in range(3):
                feed._publish(anonymize(frame.copy(), boxes, MaskStyle("fill")))
                await asyncio.sleep(0.05)
            asyncio.get_running_loop().call_later(0.3, feed._publish,
                                                  anonymize(frame.copy(), boxes, MaskStyle("fill")))
            parts = await read_parts(r, 2)
        assert all(p == feed.latest_jpeg for p in parts)
        async with http.get(f"{url}/api/lobby/latest.jpg") as r:
            assert await r.read() == feed.latest_jpeg
        async with http.get(f"{url}/api/cameras") as r:
            (status,) = (await r.json())["cameras"]
        assert status == {**feed.status(), "last_frame_age_s": None, "fps": status["fps"]}


async def test_a_client_that_stops_reading_is_dropped(anonymized_frames, monkeypatch):
    """One frame in flight per client: a stalled reader blocks only its own stream, then is dropped."""
    import socket

    import faceanon.publish.http as http_module

    monkeypatch.setattr(http_module, "STREAM_WRITE_TIMEOUT", 1.0)
    feed = FrameFeed("lobby")
    big = cv2.imencode(".png", decode(anonymized_frames[0].jpeg))[1].tobytes()  # ~200 kB parts fill buffers fast
    async with serving([feed]) as (server, url):
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"GET /api/lobby/stream.mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            deadline = time.monotonic() + 15
            while "faceanon_http_streams 1" not in server.metrics_text() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            sent = 0
            while "faceanon_http_streams 0" not in server.metrics_text() and time.monotonic() < deadline:
                feed.push(big)
                sent += 1
                await asyncio.sleep(0.01)
            assert "faceanon_http_streams 0" in server.metrics_text(), "the stalled stream was never dropped"
            # Meanwhile another client is served normally.
            async with session() as http, http.get(f"{url}/api/lobby/latest.jpg") as r:
                assert r.status == 200
        finally:
            stalled.close()


async def raw_request(port: int, request: bytes) -> bytes:
    """Bytes on the wire, as a hostile client sends them (no client library to tidy them up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_hostile_requests_get_4xx_and_leave_no_secret_in_the_log(anonymized_frames, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    token = "s3cret-token_42"
    async with serving([feed], token=token) as (server, url):
        answer = await raw_request(server.port, b"GET /api/cameras HTTP/1.1\r\nHost: x\r\n"
                                                b"Authorization: Bearer \xe9\xe9\xff\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
        answer = await raw_request(server.port, b"GET /api/lobby/latest.jpg?h=%C2%B2&token=" + token.encode()
                                                + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]  # "²" is a digit to Python, not a height
        answer = await raw_request(server.port, b"GET /api/cameras?token=" + token.encode() + b"&pad="
                                                + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:80]  # the line is too long
        async with session() as http, http.get(f"{url}/api/health") as r:
            assert r.status == 200  # still serving
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert token not in logged, [line for line in logged.splitlines() if token in line]
    assert "Traceback" not in logged


class BigCamera(FrameFeed):
    def status(self) -> dict:
        return {**super().status(), "width": 3840, "height": 2160, "min_face_px": 60}


async def test_health_says_what_a_camera_cannot_see(anonymized_frames):
    big, small = BigCamera("yard"), FrameFeed("lobby")
    big.push(anonymized_frames[0])
    small.push(anonymized_frames[0])
    async with serving([big, small]) as (_server, url), session() as http, http.get(f"{url}/api/health") as r:
        body = await r.json()
    assert body["status"] == "ok"
    assert body["warnings"] == ["yard: still faces under 60 px are found only while they move"]


async def test_half_open_connections_are_bounded_and_slow_heads_dropped(anonymized_frames, monkeypatch):
    """Slowloris and a flood of half-open connections from one address: at most 16 of them wait (the rest are
    closed at once), each is dropped when its request head has not arrived in time, and a client that talks is
    served throughout."""
    from faceanon.publish import guard

    monkeypatch.setattr(guard, "HEADER_TIMEOUT_S", 3.0)
    lobby = FrameFeed("lobby")
    lobby.push(anonymized_frames[0])
    async with serving([lobby]) as (server, url):
        port = server.port
        flood = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
        for _reader, writer in flood:
            writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        await asyncio.sleep(0.3)

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), 0.1) == b""
            except (TimeoutError, ConnectionError):
                return isinstance(reader.exception(), ConnectionError)

        async def count_closed() -> int:
            return sum(await asyncio.gather(*(closed(reader) for reader, _ in flood)))

        assert await count_closed() == 40 - guard.MAX_WAITING_PER_PEER  # refused as they came
        async with session("127.0.0.2") as http, http.get(f"{url}/api/health") as r:  # another address: served
            assert r.status == 200
        await asyncio.sleep(3.5)  # past the head timeout: the 16 waiting ones are dropped too
        assert await count_closed() == 40
        assert server.guard.timed_out == guard.MAX_WAITING_PER_PEER and server.guard.waiting == 0
        async with session() as http, http.get(f"{url}/metrics") as r:
            text = await r.text()
        assert 'faceanon_http_connections_refused_total{reason="timeout"} 16' in text
        for _reader, writer in flood:
            writer.close()


async def test_a_service_with_no_camera_running_is_idle_not_ok():
    async with serving([]) as (_server, url), session() as http, http.get(f"{url}/api/health") as r:
        assert (await r.json())["status"] == "idle"


async def test_the_integration_claims_the_service(anonymized_frames, tmp_path):
    from faceanon.claim import IntegrationClaim

    claim = IntegrationClaim(tmp_path)
    heard: list[bool] = []
    claim.subscribe(heard.append)
    lobby = FrameFeed("lobby")
    lobby.push(anonymized_frames[0])
    server = HttpServer({"host": "127.0.0.1", "port": 0, "token": "tok"}, [lobby], VERSION, claim=claim)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/api/integration"
    auth = {"Authorization": "Bearer tok"}
    try:
        async with session() as http:
            async with http.put(url, json={"claimed": True}) as r:
                assert r.status == 401  # like every route but health
            for bad in ({"claimed": "yes"}, [], {"other": 1}):
                async with http.put(url, json=bad, headers=auth) as r:
                    assert r.status == 400, bad
            async with http.put(url, data=b"{not json", headers=auth) as r:
                assert r.status == 400
            async with http.put(url, json={"claimed": True}, headers=auth) as r:
                assert r.status == 200 and await r.json() == {"claimed": True}
            async with http.get(url, headers=auth) as r:
                assert await r.json() == {"claimed": True}
            async with http.put(url, json={"claimed": False}, headers=auth) as r:
                assert await r.json() == {"claimed": False}
    finally:
        await server.stop()
    assert heard == [True, False]


async def test_events_push_a_change_at_once(anonymized_frames):
    """`/api/events`: the cameras at once on connecting, then a change of a face count within a second; the token
    is needed like everywhere else."""
    lobby = FrameFeed("lobby")
    lobby.push(anonymized_frames[0], faces=1)
    async with serving([lobby], token="tok") as (_server, url), session() as http:
        async with http.get(f"{url}/api/events") as r:
            assert r.status == 401
        async with http.get(f"{url}/api/events", headers={"Authorization": "Bearer tok"}) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"

            async def next_event() -> dict:
                event = None
                while True:
                    line = (await asyncio.wait_for(r.content.readline(), 5)).decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "cameras":
                        return json.loads(line[6:])

            first = await next_event()
            assert [(c["name"], c["faces"]) for c in first["cameras"]] == [("lobby", 1)]
            start = time.monotonic()
            lobby.push(anonymized_frames[1], faces=3)
            changed = await next_event()
            assert changed["cameras"][0]["faces"] == 3 and time.monotonic() - start < 1.0


async def test_login_exchanges_the_token_for_a_session_cookie(anonymized_frames):
    """The web page's login: a right token gets an HttpOnly SameSite=Strict cookie that lets the page and its <img>
    streams in; a wrong one is refused (slowly); logging out ends the session. The token never goes in a URL."""
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    async with serving([feed], token="tok-123") as (_server, url), session() as http:
        async with http.get(f"{url}/favicon.ico") as r:
            assert r.status == 200 and r.content_type == "image/svg+xml"
        started = time.monotonic()
        async with http.post(f"{url}/api/login", json={"token": "wrong"}) as r:
            assert r.status == 401 and "Set-Cookie" not in r.headers
        assert time.monotonic() - started >= 0.9  # each wrong guess costs a second
        async with http.post(f"{url}/api/login", data=b"not json") as r:
            assert r.status == 401
        async with http.get(f"{url}/api/lobby/latest.jpg") as r:
            assert r.status == 401
        async with http.post(f"{url}/api/login", json={"token": "tok-123"}) as r:
            assert r.status == 200
            cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "tok-123" not in cookie
        # What a browser sends back (aiohttp's own jar keeps no cookies of an IP address)
        jar = {"Cookie": cookie.split(";", 1)[0]}
        async with http.get(f"{url}/api/lobby/latest.jpg", headers=jar) as r:
            assert r.status == 200 and await r.read() == anonymized_frames[0].jpeg
        async with http.get(f"{url}/api/service", headers=jar) as r:
            body = await r.json()
        assert body["version"] == VERSION and body["cameras"] == ["lobby"] and body["integration"] is False
        async with http.post(f"{url}/api/logout", headers=jar) as r:
            assert r.status == 200 and "Max-Age=0" in r.headers["Set-Cookie"]
        async with http.get(f"{url}/api/lobby/latest.jpg", headers=jar) as r:
            assert r.status == 401
        async with http.get(f"{url}/api/cameras", headers={"Cookie": "faceanon_session=forged"}) as r:
            assert r.status == 401
    async with serving([feed]) as (_server, url), session() as http, \
            http.post(f"{url}/api/login", json={"token": "x"}) as r:
        assert r.status == 400  # no token: nothing to log in to


async def test_dns_rebinding_and_cross_site_requests_are_refused(anonymized_frames):
    """Without a token, a Host name a DNS-rebinding page would send (the attacker's domain, resolved to this
    service) gets 403 on every route, while IPs, localhost, single-label and .local names and names the owner lists
    are answered. A state change sent by another site's page (its Origin) is refused with or without a token."""
    feed = FrameFeed("lobby")
    feed.push(anonymized_frames[0])
    changes: list[dict] = []

    async def set_controls(name: str, body: dict, source: str = "") -> dict:
        changes.append(body)
        return body

    async with serving([feed], allowed_hosts=["cams.example.net"]) as (server, url), session() as http:
        server.set_controls = set_controls
        port = server.port
        for host in ("attacker.example.com", f"rebind.evil.test:{port}", "192.168.1.5.nip.io"):
            for method, path in (("GET", "/api/lobby/latest.jpg"), ("GET", "/api/cameras"),
                                 ("PUT", "/api/lobby/controls")):
                async with http.request(method, f"{url}{path}", headers={"Host": host}, json={"plan": "fast"}) as r:
                    assert r.status == 403, (host, path)
                    assert "DNS rebinding" in (await r.json())["error"]
        assert changes == []
        for host in (f"127.0.0.1:{port}", "localhost", "[::1]:8099", "192.168.1.5", "faceanon", "nvr.local:8099",
                     "cams.example.net", "CAMS.EXAMPLE.NET."):
            async with http.get(f"{url}/api/cameras", headers={"Host": host}) as r:
                assert r.status == 200, host
        # Cross-site: another origin's page may not PUT, even to an allowed host; the same origin may.
        async with http.put(f"{url}/api/lobby/controls", json={"plan": "fast"},
                            headers={"Origin": "http://attacker.example.com"}) as r:
            assert r.status == 403 and "another site" in (await r.json())["error"]
        async with http.put(f"{url}/api/lobby/controls", json={"plan": "fast"},
                            headers={"Origin": f"http://127.0.0.1:{port}"}) as r:
            assert r.status == 200
        assert changes == [{"plan": "fast"}]
    # With a token the Host does not matter (the attacker has no token); Origin still does.
    async with serving([feed], token="tok") as (_server, url), session() as http:
        auth = {"Authorization": "Bearer tok"}
        async with http.get(f"{url}/api/cameras", headers={**auth, "Host": "anything.example.com"}) as r:
            assert r.status == 200
        async with http.put(f"{url}/api/integration", json={"claimed": True},
                            headers={**auth, "Origin": "https://evil.example"}) as r:
            assert r.status == 403


async def test_json_nested_too_deep_is_a_400_not_a_500(anonymized_frames, tmp_path):
    from faceanon.claim import IntegrationClaim

    feed = FrameFeed("lobby")

    async def set_controls(name: str, body: dict, source: str = "") -> dict:
        return body

    deep = "[" * 100_000 + "]" * 100_000
    async with serving([feed]) as (server, url), session() as http:
        server.set_controls = set_controls
        server.claim = IntegrationClaim(tmp_path)
        for path in ("/api/lobby/controls", "/api/integration"):
            async with http.put(f"{url}{path}", data=deep, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400, path
                assert "error" in await r.json()
    async with serving([feed], token="t") as (_server, url), session() as http, \
            http.post(f"{url}/api/login", data=deep) as r:
        assert r.status == 401


async def test_wrong_logins_in_parallel_wait_in_line(anonymized_frames):
    """Five wrong guesses sent at once take five seconds in all, not one: a guesser gets one a second."""
    feed = FrameFeed("lobby")
    async with serving([feed], token="tok-123") as (_server, url), session() as http:
        async def guess(token: str) -> tuple[int, float]:
            async with http.post(f"{url}/api/login", json={"token": token}) as r:
                return r.status, time.monotonic()

        started = time.monotonic()
        results = await asyncio.gather(*(guess(f"wrong-{i}") for i in range(5)))
        assert [status for status, _ in results] == [401] * 5
        assert max(t for _, t in results) - started >= 4.5


async def test_listening_on_the_network_without_a_token_is_said_at_start_and_in_health(anonymized_frames, caplog):
    feed = FrameFeed("lobby")
    server = HttpServer({"host": "0.0.0.0", "port": 0}, [feed], VERSION)
    caplog.set_level("WARNING", "faceanon")
    await server.start()
    try:
        assert any("without a token" in r.getMessage() for r in caplog.records)
        async with session() as http, http.get(f"http://127.0.0.1:{server.port}/api/health") as r:
            assert any("without a token" in w for w in (await r.json())["warnings"])
    finally:
        await server.stop()
    for quiet in ({"host": "127.0.0.1"}, {"host": "0.0.0.0", "token": "t"}, {"host": "0.0.0.0", "ingress_only": True}):
        assert not HttpServer({**quiet, "port": 0}, [feed], VERSION).open_to_network, quiet
