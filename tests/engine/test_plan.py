"""Detection plans: shrinking, enlarging and tiling must find the same faces at the same frame coordinates."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from faceanon.detect import box_iou, load_detector
from faceanon.detect.plan import DetectPlan, Scanner, tile_grid

SAMPLE = Path(__file__).resolve().parents[2] / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"


@pytest.fixture(scope="module")
def walking_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(SAMPLE))
    for _ in range(30):  # late in the clip the three walkers are close and their faces clear
        ok, frame = cap.read()
        assert ok
    cap.release()
    return frame


@pytest.fixture(scope="module")
def detector():
    return load_detector("centerface")


@pytest.mark.parametrize(("width", "height", "tile"), [(1920, 1080, 640), (1280, 720, 640), (700, 500, 320)])
def test_tiles_cover_the_frame_with_overlap(width: int, height: int, tile: int) -> None:
    tiles = tile_grid(width, height, tile, 0.2)
    covered = np.zeros((height, width), bool)
    for x, y, w, h in tiles:
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
        covered[y:y + h, x:x + w] = True
    assert covered.all()
    # neighbours share at least the overlap, so a face cut by one tile's edge is whole in the next
    xs = sorted({x for x, _, _, _ in tiles})
    assert all(b - a <= tile * 0.8 + 1 for a, b in itertools.pairwise(xs))


def test_no_tiles_when_one_covers_the_frame() -> None:
    assert tile_grid(640, 360, 640, 0.2) == []
    assert tile_grid(1280, 720, 0, 0.2) == []


def test_tiles_find_small_faces_that_the_shrunken_pass_misses(walking_frame: np.ndarray, detector) -> None:
    native = Scanner(detector, DetectPlan()).scan(walking_frame).above(0.5)  # the two clear faces
    assert len(native) >= 2, "the sample frame shows walkers with clear faces"
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    ox, oy = 1300, 700  # far from the origin, so a wrong offset cannot pass
    canvas[oy:oy + walking_frame.shape[0], ox:ox + walking_frame.shape[1]] = walking_frame
    expected = native.boxes + np.array([ox, oy, ox, oy], np.float32)

    shrunk = Scanner(detector, DetectPlan(max_side=480)).scan(canvas)
    tiled = Scanner(detector, DetectPlan(max_side=480, tile=640)).scan(canvas)

    def found(boxes: np.ndarray) -> int:
        return int((box_iou(expected, boxes).max(axis=1, initial=0) >= 0.5).sum())

    assert found(tiled.boxes) == len(native)
    assert found(shrunk.boxes) < len(native)


def test_round_robin_visits_every_tile(walking_frame: np.ndarray, detector) -> None:
    canvas = np.zeros((720, 1280, 3), np.uint8)
    canvas[400:400 + walking_frame.shape[0], 700:700 + walking_frame.shape[1]] = walking_frame
    scanner = Scanner(detector, DetectPlan(max_side=320, tile=640, tiles_per_call=1))
    n_tiles = len(tile_grid(1280, 720, 640, 0.2))
    counts = [len(scanner.scan(canvas)) for _ in range(n_tiles)]
    assert max(counts) >= 2 and min(counts) < max(counts)


def test_enlarged_pass_keeps_frame_coordinates(walking_frame: np.ndarray, detector) -> None:
    small = cv2.resize(walking_frame, (240, 135), interpolation=cv2.INTER_AREA)
    plain = Scanner(detector, DetectPlan()).scan(small)
    enlarged = Scanner(detector, DetectPlan(min_side=640)).scan(small)
    assert len(enlarged) >= len(plain)
    assert (enlarged.boxes[:, 2] <= 240 + 1).all() and (enlarged.boxes[:, 3] <= 135 + 1).all()
