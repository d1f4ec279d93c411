"""Where a stream's region looks go: moving boxes merged only where that saves pixels (a crowd stays many regions,
not one frame-sized region a look would shrink), and a pixel budget shared in turns (every region of a crowd is
looked at within a few frames; none is starved because it is large)."""

from __future__ import annotations

import numpy as np
from faceanon import defaults
from faceanon.detect import load_detector
from faceanon.detect.motion import MotionRegions, merge_boxes
from faceanon.detect.stream import FRESH_SHARE, StreamScanner


def area(boxes: np.ndarray) -> float:
    return float(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1).sum())


def test_a_crowd_of_touching_boxes_stays_many_regions() -> None:
    """Sixteen 100 px boxes in a chain, each overlapping the next at a corner: uniting every overlap made one region
    of 1,600 x 1,600 px; merging only what saves pixels keeps them apart."""
    chain = np.array([[i * 90, i * 90, i * 90 + 100, i * 90 + 100] for i in range(16)], np.float32)
    regions = merge_boxes(chain, limit=24)
    assert len(regions) == 16
    assert area(regions) <= area(chain)


def test_boxes_inside_or_mostly_over_each_other_merge() -> None:
    boxes = np.array([[0, 0, 200, 200], [50, 50, 100, 100],  # one inside the other
                      [400, 0, 500, 100], [420, 0, 520, 100],  # overlapping by 80 %
                      [800, 800, 900, 900]], np.float32)  # alone
    regions = merge_boxes(boxes, limit=24)
    assert sorted(map(tuple, regions.astype(int).tolist())) == [(0, 0, 200, 200), (400, 0, 520, 100),
                                                              (800, 800, 900, 900)]


def test_more_boxes_than_the_limit_merge_the_cheapest_unions_first() -> None:
    boxes = np.array([[i * 150, 0, i * 150 + 100, 100] for i in range(6)], np.float32)
    boxes[5] += [2000, 0, 2000, 0]  # far from the rest
    regions = merge_boxes(boxes, limit=3)
    assert len(regions) == 3
    assert any(np.array_equal(r, boxes[5]) for r in regions)  # the far one stays alone


def test_a_pixel_budget_gives_every_region_of_a_crowd_its_turn() -> None:
    """Twelve regions of which about three fit the budget each frame: within a few frames every one was looked at,
    the largest too (smallest-first starved it for good), and no frame spends more than the budget (after its
    first region)."""
    plan = defaults.PRESETS["live"].stream()
    scanner = StreamScanner(load_detector("centerface-int8"), plan)
    boxes, x, y = [], 0, 0
    for side in (60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 300):
        if x + side > 1280:
            x, y = 0, y + 320
        boxes.append([x, y, x + side, y + side])
        x += side + 50
    regions = np.array(boxes, np.float32)
    costs = [sum(float(np.prod(r[2:] - r[:2])) * s * s for _, s in plan.regions.passes_for(int(r[2] - r[0]),
                                                                                           int(r[3] - r[1])))
             for r in regions]
    budget = int(sum(costs) / 4)
    scanner.plan = type(plan)(plan.full, plan.full_every, plan.regions, region_budget=budget)
    looked: dict[int, list[int]] = {i: [] for i in range(len(regions))}
    for frame in range(1, 13):
        scanner.frames = frame
        chosen = scanner._within_budget(regions, np.zeros((0, 4), np.float32), 1280, 720)
        spent = 0.0
        for r in chosen:
            i = int(np.flatnonzero((regions == r).all(axis=1))[0])
            looked[i].append(frame)
            spent += costs[i]
        assert 1 <= len(chosen) < len(regions)
        assert spent <= budget or len(chosen) == 1
    # The budget covers the crowd in 4 frames; waiting first looks at every region within 6 (smallest-first: never).
    assert all(frames and frames[0] <= 6 for frames in looked.values()), looked
    assert len(looked[len(regions) - 1]) >= 2  # the 300 px region came back, not just once


def test_what_just_appeared_is_fresh_and_what_walks_on_is_not() -> None:
    """A face that steps out from behind something moves where nothing moved a frame before; a walker's motion
    mostly overlaps its own motion of the frame before."""
    motion = MotionRegions()
    frame = np.full((720, 1280, 3), 90, np.uint8)
    for step in range(12):
        image = frame.copy()
        image[300:380, 100 + 8 * step:180 + 8 * step] = 230  # walks 8 px a frame
        if step == 11:
            image[300:380, 900:980] = 230  # appears
        seen = motion.update(image)
    walker = np.array([[60 + 88, 260, 240 + 88, 420]], np.float32)
    appeared = np.array([[860, 260, 1020, 420]], np.float32)
    assert seen.fresh_share(appeared)[0] > 0.9
    assert seen.fresh_share(walker)[0] < FRESH_SHARE


def test_under_a_budget_a_region_where_something_just_appeared_goes_first() -> None:
    """A crowd took the budget's turns, and its place was looked at last frame; a face that just appeared there is
    looked at now, not when its place's turn comes back (on walkers clips these first frames exposed faces)."""
    plan = defaults.PRESETS["live"].stream()
    scanner = StreamScanner(load_detector("centerface-int8"), plan)
    regions = np.array([[x, 100, x + 150, 250] for x in range(0, 1200, 170)], np.float32)
    scanner.plan = type(plan)(plan.full, plan.full_every, plan.regions, region_budget=60_000)
    empty = np.zeros((0, 4), np.float32)
    scanner.frames = 1
    first = scanner._within_budget(regions, empty, 1280, 720)
    assert len(first) < len(regions)
    newest = np.flatnonzero((regions == first[0]).all(axis=1))[0]  # looked at in frame 1
    scanner.frames = 2
    fresh = np.zeros(len(regions), np.float32)
    fresh[newest] = 1.0
    chosen = scanner._within_budget(regions, empty, 1280, 720, fresh)
    assert any((chosen == regions[newest]).all(axis=1))
    assert not any((scanner._within_budget(regions, empty, 1280, 720) == regions[newest]).all(axis=1))


def test_after_a_scene_cut_the_new_picture_is_background_at_once() -> None:
    """A looped clip or a camera switching to night mode changes the whole picture once. MOG2 alone called every
    frame after it "everything" for about 30 frames (walkers clips looped at frame 244), and the region looks, where
    small faces are found, stopped for that long. The frame after the cut is still again, and a walker in it is a
    region again."""
    motion = MotionRegions()
    day = np.full((720, 1280, 3), 90, np.uint8)
    night = np.full((720, 1280, 3), 200, np.uint8)
    night[::40] = 20  # some structure, so the new background is not flat
    for _ in range(30):
        motion.update(day)
    assert motion.update(night).everything
    assert not motion.update(night).everything
    walker = night.copy()
    walker[300:380, 600:660] = 40
    after = motion.update(walker)
    assert not after.everything
    assert len(after.boxes) >= 1
    x1, y1, x2, y2 = after.boxes[0]
    assert x1 <= 600 and x2 >= 660 and y1 <= 300 and y2 >= 380


def test_a_low_score_face_is_masked_wider_about_its_centre() -> None:
    """defaults.DOUBT: under 0.15 the box is scaled 1.6x, under 0.3 1.3x, above it stays as found."""
    from faceanon.detect.stream import widen_doubtful

    boxes = np.array([[100, 100, 140, 150]] * 4, np.float32)
    out = widen_doubtful(boxes, np.array([0.07, 0.2, 0.3, 0.9], np.float32), defaults.DOUBT)
    np.testing.assert_allclose(out[:, 2] - out[:, 0], [64, 52, 40, 40])
    np.testing.assert_allclose(out[:, 3] - out[:, 1], [80, 65, 50, 50])
    np.testing.assert_allclose((out[:, :2] + out[:, 2:]) / 2, [[120, 125]] * 4)
    assert widen_doubtful(boxes[:0], np.zeros(0, np.float32), defaults.DOUBT).shape == (0, 4)


def test_only_confirmed_tracks_get_a_region_look_of_their_own() -> None:
    """A track of one low-score sighting (a patch of background a region look found once) took a share of the region
    budget every frame it lived; faces seen twice, or once at a confident score, keep their look."""
    from faceanon.anonymizer import StreamAnonymizer
    from faceanon.hold import Track

    preset = defaults.PRESETS["live"]
    anonymizer = StreamAnonymizer(load_detector("centerface-int8"), preset.stream(), preset.hold())

    def track(box: list[float], score: float, sightings: int = 1) -> Track:
        b = np.array(box, np.float32)
        return Track(b, np.zeros(2, np.float32), 0.0, 0.0, b.copy(), sightings=sightings, score=score)

    ghost, confident, twice = [100, 100, 130, 130], [400, 100, 440, 150], [700, 100, 730, 140]
    anonymizer.hold.tracks = [track(ghost, 0.08), track(confident, 0.9), track(twice, 0.08, sightings=2)]
    asked: list[np.ndarray] = []
    look = anonymizer.scanner.look
    anonymizer.scanner.look = lambda frame, tracked=None: asked.append(tracked) or look(frame, tracked)  # type: ignore
    anonymizer.masks(np.full((720, 1280, 3), 90, np.uint8), 0.1)
    np.testing.assert_array_equal(asked[0], np.array([confident, twice], np.float32))
