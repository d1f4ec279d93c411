"""Where one live camera's CPU goes, stage by stage (`faceanon bench service`'s last table).

The camera's own frame path (the live preset's StreamAnonymizer, masks, JPEG) is run on one thread of control over
the bench clip at the camera's fps, each stage's methods wrapped with process-CPU timers. Process CPU, not thread
CPU: onnxruntime runs an inference on its own intra-op threads too. Nothing else runs meanwhile, so each stage's
figure is its own. The service's other costs (the event loop, MQTT, HTTP) are the difference between this total
and the camera's CPU in the concurrent runs above it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from faceanon.anonymizer import StreamAnonymizer, models_for, people_look
from faceanon.detect.shared import Detectors
from faceanon.feed import encode_jpeg
from faceanon.mask import apply_masks
from faceanon.pipeline import camera_preset, camera_threshold, mask_style, stream_plan

STAGES = ("decode", "motion", "whole", "regions", "people", "hold", "mask", "jpeg")


class Costs:
    """CPU seconds per stage, added by the wrappers."""

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(STAGES, 0.0)

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[stage] += time.process_time() - t0
        return wrapper


async def camera_costs(cam: dict, detector_cfg: dict, clip: Path, frames: int = 60) -> dict:
    """{"frames", "ms": {stage: CPU ms per frame}, "total_ms"} for `frames` frames of `clip` taken at the camera's
    detect_fps, after a warm-up of 5."""
    plan = stream_plan(cam, detector_cfg)
    target = cam.get("target") or "face"
    detectors = Detectors(detector_cfg, 1)
    shared = await detectors.get_many(models_for(plan, target))
    anonymizer = StreamAnonymizer(shared, plan, camera_preset(cam).hold(cam["hold_seconds"]),
                                  camera_threshold(cam, detector_cfg), people_look(shared, target))
    style = mask_style(cam)
    costs = Costs()
    scanner = anonymizer.scanner
    if scanner.closely is not None:
        scanner.motion.update = costs.timed("motion", scanner.motion.update)  # type: ignore[method-assign]
        scanner.look_at_all = costs.timed("regions", scanner.look_at_all)  # type: ignore[method-assign]
    scanner.whole.scan = costs.timed("whole", scanner.whole.scan)  # type: ignore[method-assign]
    anonymizer.hold.update = costs.timed("hold", anonymizer.hold.update)  # type: ignore[method-assign]
    if anonymizer.people is not None:
        anonymizer.people.look = costs.timed("people", anonymizer.people.look)  # type: ignore[method-assign]
    cap = cv2.VideoCapture(str(clip))
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or 10.0) / cam["detect_fps"]))
    done, index, t = 0, 0, 0.0
    try:
        while done < frames + 5:
            t0 = time.process_time()
            ok, frame = cap.read()
            spent = time.process_time() - t0
            if not ok:  # loop the clip
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            index += 1
            if done >= 5:
                costs.cpu["decode"] += spent
            if (index - 1) % step:
                continue
            t += 1.0 / cam["detect_fps"]
            if done == 5:  # the warm-up's figures go
                costs.cpu = dict.fromkeys(STAGES, 0.0)
            masks = anonymizer.masks(frame, t)
            masked = costs.timed("mask", apply_masks)(frame, masks.boxes, style)
            costs.timed("jpeg", encode_jpeg)(masked)
            done += 1
    finally:
        cap.release()
    ms = {stage: 1000 * cpu / frames for stage, cpu in costs.cpu.items()}
    return {"frames": frames, "ms": ms, "total_ms": sum(ms.values())}


def print_costs(result: dict, cam: dict, size: tuple[int, int]) -> None:
    total = result["total_ms"] or 1.0
    print(f"\nwhere one camera's CPU goes: {size[0]}x{size[1]} at {cam['detect_fps']:g} fps, the live preset, "
          f"process CPU ms per frame over {result['frames']} frames (decode: every clip frame read for one taken)")
    print("".join(f"{stage:>9}" for stage in (*STAGES, "total")) + f"{'cores at fps':>14}")
    print("".join(f"{result['ms'][stage]:9.1f}" for stage in STAGES) + f"{result['total_ms']:9.1f}"
          f"{result['total_ms'] * cam['detect_fps'] / 1000:14.2f}")
    print("".join(f"{100 * result['ms'][stage] / total:8.0f}%" for stage in STAGES) + f"{100:8.0f}%")


def run_costs(cam: dict, detector_cfg: dict, clip: Path, size: tuple[int, int], frames: int = 60) -> dict:
    result = asyncio.run(camera_costs(cam, detector_cfg, clip, frames))
    print_costs(result, cam, size)
    return result
