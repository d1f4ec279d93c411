"""Anonymized frames to H.264 access units (libx264 through PyAV), for the RTSP restream.

One encoder per camera, however many RTSP clients watch: the stream is encoded once and fanned out. Annex B output
with SPS/PPS in front of every keyframe, so a client that joins mid-stream can start at the next keyframe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

# Live settings: no B-frames and no lookahead (zerolatency); ultrafast on one thread per camera: 13 ms of CPU per
# 720p frame against 28 for veryfast, at the same size on masked surveillance footage (measured; models/README.md),
# and no encoder threads competing with the detector on a saturated box.
PRESET = "ultrafast"
CRF = "23"
THREADS = "1"


@dataclass(frozen=True)
class AccessUnit:
    data: bytes  # Annex B, SPS/PPS included on keyframes
    keyframe: bool
    pts: int  # in frames since the encoder started


class H264Encoder:
    """BGR frames of one size in, H.264 access units out; `force_keyframe()` makes the next frame an IDR."""

    def __init__(self, width: int, height: int, fps: float, keyframe_seconds: float = 2.0,
                 preset: str = PRESET, crf: str = CRF) -> None:
        self.width, self.height = width, height
        rate = Fraction(fps).limit_denominator(1001)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width - width % 2, height - height % 2  # 4:2:0 needs even sizes
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = 1 / rate
        ctx.framerate = rate
        ctx.gop_size = max(1, round(float(rate) * keyframe_seconds))
        ctx.options = {"preset": preset, "tune": "zerolatency", "crf": crf, "threads": THREADS, "repeat-headers": "1",
                       "x264-params": f"keyint={ctx.gop_size}:min-keyint={ctx.gop_size}:scenecut=0"}
        ctx.open()
        self.ctx = ctx
        self.frames = 0
        self._keyframe_next = False
        self.encode_ms = 0.0  # total time spent encoding, for `bench service`

    def force_keyframe(self) -> None:
        self._keyframe_next = True

    def encode(self, image: np.ndarray) -> list[AccessUnit]:
        start = time.perf_counter()
        if image.shape[1] != self.ctx.width or image.shape[0] != self.ctx.height:
            image = image[:self.ctx.height, :self.ctx.width]
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24").reformat(
            format="yuv420p")
        picture.pts = self.frames
        if self._keyframe_next:
            picture.pict_type = av.video.frame.PictureType.I
            self._keyframe_next = False
        self.frames += 1
        units = [AccessUnit(bytes(p), bool(p.is_keyframe), int(p.pts or 0)) for p in self.ctx.encode(picture)]
        self.encode_ms += (time.perf_counter() - start) * 1000
        return units
