"""A stand-alone MJPEG camera for the fault tests (run as its own process, so it can be frozen with SIGSTOP or
killed): the bundled sample clip, looped at 10 fps, on 127.0.0.1:<port>/stream.mjpeg. Stops by itself after
`seconds`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import cv2
from aiohttp import web

CLIP = Path(__file__).resolve().parents[2] / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"


def jpegs() -> list[bytes]:
    cap = cv2.VideoCapture(str(CLIP))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(cv2.imencode(".jpg", frame)[1].tobytes())


async def main(port: int, seconds: float) -> None:
    frames = jpegs()
    end = time.monotonic() + seconds

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await resp.prepare(request)
        i = 0
        while time.monotonic() < end:
            data = frames[i % len(frames)]
            await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                             + data + b"\r\n")
            i += 1
            await asyncio.sleep(0.1)
        return resp

    app = web.Application()
    app.router.add_get("/stream.mjpeg", stream)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("serving", flush=True)
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
