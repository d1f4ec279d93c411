"""Anonymized frames to H.264 access units (libx264 through PyAV), for the RTSP restream.

One encoder per camera, however many RTSP clients watch: the stream is encoded once and fanned out. Annex B output
with SPS/PPS in front of every keyframe, so a client that joins mid-stream can start at the next keyframe.
"""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np

# Live settings: no B-frames and no lookahead (zerolatency); ultrafast on one thread per camera: 13 ms of CPU per
# 720p frame against 28 for veryfast, at the same size on masked surveillance footage (measured; models/README.md),
# and no encoder threads competing with the detector on a saturated box.
PRESET = "ultrafast"
CRF = "23"
THREADS = "1"


def live_x264(fps: float, keyframe_seconds: float) -> tuple[Fraction, int, dict[str, str]]:
    """Frame rate, keyframe interval (frames) and libx264 options of a live stream: the built-in server's
    encoder and the push (publish/restream.py) use the same."""
    rate = Fraction(fps).limit_denominator(1001)
    gop = max(1, round(float(rate) * keyframe_seconds))
    options = {"preset": PRESET, "tune": "zerolatency", "crf": CRF, "threads": THREADS,
               "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
    return rate, gop, options


# The largest picture a stream carries: 4K UHD. H.264 levels up to 5.2 allow about 8.9 MP, so a bigger camera's
# stream would play nowhere, and libx264 holds several frames of it (a 38.5 MP camera took 1.2 GB more RAM with an
# RTSP client; bigger frames are scaled down to fit, aspect kept).
MAX_STREAM_PIXELS = 3840 * 2160


def stream_size(width: int, height: int) -> tuple[int, int]:
    """The even width and height a camera's frames are encoded at: their own, or scaled to MAX_STREAM_PIXELS."""
    scale = min(1.0, (MAX_STREAM_PIXELS / max(width * height, 1)) ** 0.5)
    w, h = max(2, int(width * scale)), max(2, int(height * scale))
    return w - w % 2, h - h % 2


def picture_of(image: np.ndarray, size: tuple[int, int]) -> av.VideoFrame:
    """A BGR frame as the encoder's yuv420p picture of `size` (cropped to even sides, or scaled down to it)."""
    h, w = image.shape[:2]
    if (w - w % 2, h - h % 2) == size:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h - h % 2, :w - w % 2]),
                                          format="bgr24").reformat(format="yuv420p")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
    return frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="AREA")


class H264Encoder:
    """BGR frames of one size in, H.264 access units (Annex B bytes) out; `force_keyframe()` makes the next frame
    an IDR."""

    def __init__(self, width: int, height: int, fps: float, keyframe_seconds: float = 2.0) -> None:
        self.width, self.height = width, height  # of the frames that come in
        self.size = stream_size(width, height)  # of the pictures that go out
        rate, gop, options = live_x264(fps, keyframe_seconds)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = self.size
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = 1 / rate
        ctx.framerate = rate
        ctx.gop_size = gop
        ctx.options = {**options, "repeat-headers": "1"}  # SPS/PPS on every keyframe: clients join mid-stream
        ctx.open()
        self.ctx = ctx
        self.frames = 0
        self._keyframe_next = False
        self.encode_ms = 0.0  # total time spent encoding, for `bench service`

    def force_keyframe(self) -> None:
        self._keyframe_next = True

    def encode(self, image: np.ndarray) -> list[bytes]:
        start = time.perf_counter()
        picture = picture_of(image, self.size)
        picture.pts = self.frames
        if self._keyframe_next:
            picture.pict_type = av.video.frame.PictureType.I
            self._keyframe_next = False
        self.frames += 1
        units = [bytes(packet) for packet in self.ctx.encode(picture)]
        self.encode_ms += (time.perf_counter() - start) * 1000
        return units
