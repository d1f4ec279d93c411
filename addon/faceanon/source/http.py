"""HTTP(S) cameras: an MJPEG stream (multipart/x-mixed-replace) or a snapshot URL that returns one JPEG a request.

Which one it is comes from the response's Content-Type, as in Frigate's and Home Assistant's generic camera.
"""

from __future__ import annotations

import time
import urllib.request

import cv2
import numpy as np

from faceanon.source.base import Source, SourceError, redact
from faceanon.source.mjpeg import MAX_PART, boundary_of, mjpeg_parts

TIMEOUT_S = 10.0


def decode_jpeg(data: bytes) -> np.ndarray | None:
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class HttpSource(Source):
    kind = "http"

    def _stream(self) -> None:
        with urllib.request.urlopen(self.url, timeout=TIMEOUT_S) as resp:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.lower().startswith("multipart/"):
                self.kind = "mjpeg"
                for part in mjpeg_parts(resp, boundary_of(ctype)):
                    if self.stopping.is_set():
                        return
                    if self._due():  # decode only the frames we take
                        self._offer(decode_jpeg(part))
                raise SourceError(f"{redact(self.url)} closed the MJPEG stream")
            if not ctype.lower().startswith("image/"):
                raise SourceError(f"{redact(self.url)} answered {ctype or 'no Content-Type'}, "
                                  "expected an MJPEG stream or a JPEG snapshot")
            self.kind = "snapshot"
            self._offer(decode_jpeg(resp.read(MAX_PART)))
        self._poll()

    def _poll(self) -> None:
        """Snapshot URL: fetch one JPEG every 1/detect_fps seconds."""
        period = 1.0 / self.fps
        due = time.monotonic() + period
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            due += period
            with urllib.request.urlopen(self.url, timeout=TIMEOUT_S) as resp:
                self._offer(decode_jpeg(resp.read(MAX_PART)))
            due = max(due, time.monotonic())  # a slow camera sets the pace; no burst to catch up
