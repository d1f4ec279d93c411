"""Detection plans: shrinking, enlarging, mirroring and tiling must find the same faces at the same frame
coordinates; passes are clamped and deduplicated; specs parse or fail with the reason; merging only adds mask."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from faceanon.detect import Faces, box_iou, load_detector
from faceanon.detect.plan import DetectPlan, Pass, Scanner, hull, tile_grid
from faceanon.detect.plans import PlanError, resolve_plan

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

    shrunk = Scanner(detector, DetectPlan((Pass(1.0, max_side=480),))).scan(canvas)
    tiled = Scanner(detector, DetectPlan((Pass(1.0, max_side=480), Pass(1.0, tile=640)))).scan(canvas)

    def found(boxes: np.ndarray) -> int:
        return int((box_iou(expected, boxes).max(axis=1, initial=0) >= 0.5).sum())

    assert found(tiled.boxes) == len(native)
    assert found(shrunk.boxes) < len(native)


def test_round_robin_visits_every_tile(walking_frame: np.ndarray, detector) -> None:
    canvas = np.zeros((720, 1280, 3), np.uint8)
    canvas[400:400 + walking_frame.shape[0], 700:700 + walking_frame.shape[1]] = walking_frame
    scanner = Scanner(detector, DetectPlan((Pass(1.0, max_side=320), Pass(1.0, tile=640)), tiles_per_call=1))
    n_tiles = len(tile_grid(1280, 720, 640, 0.2))
    counts = [len(scanner.scan(canvas)) for _ in range(n_tiles)]
    assert max(counts) >= 2 and min(counts) < max(counts)


def test_enlarged_pass_keeps_frame_coordinates(walking_frame: np.ndarray, detector) -> None:
    small = cv2.resize(walking_frame, (240, 135), interpolation=cv2.INTER_AREA)
    plain = Scanner(detector, DetectPlan()).scan(small)
    enlarged = Scanner(detector, DetectPlan((Pass(1.0), Pass(1.0, min_side=640)))).scan(small)
    assert len(enlarged) >= len(plain)
    assert (enlarged.boxes[:, 2] <= 240 + 1).all() and (enlarged.boxes[:, 3] <= 135 + 1).all()


def test_passes_are_clamped_and_repeats_skipped() -> None:
    plan = resolve_plan("max")
    # A 400 px photo: half (200 px), native and double (800 px) are three different looks.
    assert [round(s, 2) for _, s in plan.passes_for(400, 300)] == [0.5, 1.0, 2.0]
    # A 4000 px photo: doubling is capped at 3072 px, which no longer enlarges, so that pass is skipped.
    assert [round(s, 3) for _, s in plan.passes_for(4000, 3000)] == [0.5, 1.0]
    # A 100 px thumbnail (or a small region's crop): halving it leaves less than a detector can use.
    assert [s for _, s in plan.passes_for(100, 75)] == [1.0, 2.0]
    # The same scale twice (within 10 %) is one pass; a mirrored look at the same scale is another.
    twice = resolve_plan("1+1.05+1:flip")
    assert [(p.flip, round(s, 2)) for p, s in twice.passes_for(640, 480)] == [(False, 1.0), (True, 1.0)]
    # A tiled pass over a frame that fits one tile is the whole-frame pass.
    assert len(resolve_plan("1+1:tile640").passes_for(640, 360)) == 1
    assert len(resolve_plan("1+1:tile640").passes_for(1280, 720)) == 2


def test_plan_specs_and_their_errors() -> None:
    plan = resolve_plan("centerface@1+yunet@2x<=2048:flip:t0.7+0.5>=320:tile640")
    assert plan.models == ["centerface", "yunet"]
    a, b, c = plan.passes
    assert (a.model, a.scale) == ("centerface", 1.0)
    assert (b.model, b.scale, b.max_side, b.flip, b.threshold) == ("yunet", 2.0, 2048, True, 0.7)
    assert (c.model, c.scale, c.min_side, c.tile) == (None, 0.5, 320, 640)
    assert resolve_plan("fast", "centerface-int8").model == "centerface-int8"
    for bad, reason in (("fastest", "unknown plan 'fastest'"), ("1+", "unknown plan"), ("1:wobble", "unknown option"),
                        ("99", "scale must be"), ("1:tile8", "unknown option")):
        with pytest.raises(PlanError, match=reason):
            resolve_plan(bad)


def test_hull_merge_never_masks_less_than_any_pass() -> None:
    faces = Faces(np.array([[10, 10, 50, 50], [14, 8, 56, 48], [200, 200, 220, 230], [0, 0, 0, 0]], np.float32),
                  np.array([0.9, 0.4, 0.7, 0.3], np.float32))
    merged = hull(faces)
    assert len(merged) == 3  # the two overlapping boxes are one face; a box of no area is kept on its own
    assert merged.boxes[0].tolist() == [10, 8, 56, 50] and merged.scores[0] == pytest.approx(0.9)
    for box in faces.boxes:  # every input box lies inside some merged box
        assert any((m[:2] <= box[:2]).all() and (m[2:] >= box[2:]).all() for m in merged.boxes)


def test_a_mirrored_pass_maps_boxes_back(walking_frame: np.ndarray, detector) -> None:
    plain = Scanner(detector, resolve_plan("1")).scan(walking_frame).above(0.5)
    mirrored = Scanner(detector, resolve_plan("1:flip")).scan(walking_frame).above(0.5)
    assert len(plain) >= 2
    assert (box_iou(plain.boxes, mirrored.boxes).max(axis=1) > 0.7).all()


def test_a_plan_scans_every_model_it_names(walking_frame: np.ndarray, detector) -> None:
    yunet = load_detector("yunet")
    scanner = Scanner({"centerface": detector, "yunet": yunet}, resolve_plan("1+yunet@1"))
    both = scanner.scan(walking_frame)
    alone = Scanner(yunet, resolve_plan("1", "yunet")).scan(walking_frame)
    assert len(alone) >= 2 and len(both) >= len(alone)
    with pytest.raises(ValueError, match="needs model"):
        Scanner(detector, resolve_plan("1+yunet@1"))


def test_a_held_face_carried_past_the_frame_edge_is_no_region_to_look_at() -> None:
    """The motion model may carry a held face out of the frame (a long gap between frames): its region is empty and
    is dropped, not divided by (a ZeroDivisionError here put a camera into privacy hold)."""
    from faceanon import defaults
    from faceanon.bench.stages import read_frames
    from faceanon.detect.stream import StreamScanner

    frame = read_frames(SAMPLE, 1)[0]
    scanner = StreamScanner(load_detector("centerface-int8"), defaults.PRESETS["live"].stream())
    scanner.look(frame)
    tracked = np.array([[-300, -300, -200, -200], [600, 50, 700, 120], [100, 40, 140, 90]], np.float32)
    look = scanner.look(frame, tracked)
    assert all((r[2:] - r[:2] >= 1).all() for r in look.regions)
