"""RTSP (and go2rtc restreams, which are RTSP) through OpenCV's FFmpeg backend, over TCP."""

from __future__ import annotations

import os

import cv2

from faceanon.source.base import Source, SourceError, redact

# TCP interleaved: no lost UDP packets smearing frames, and it passes NATs and Docker networks. FFmpeg reads this
# when a capture opens; a user's own value wins.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # FFmpeg's fatal only: our log line says why a stream failed
TIMEOUT_MS = 5000


class RtspSource(Source):
    kind = "rtsp"

    def _stream(self) -> None:
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, TIMEOUT_MS])
        try:
            if not cap.isOpened():
                raise SourceError(f"cannot open {redact(self.url)}")
            while not self.stopping.is_set():
                # grab() reads and decodes; retrieve() (the colour conversion) only for frames we take.
                if not cap.grab():
                    raise SourceError(f"no frame from {redact(self.url)} in {TIMEOUT_MS // 1000}s")
                if self._due():
                    ok, image = cap.retrieve()
                    self._offer(image if ok else None)
        finally:
            cap.release()
