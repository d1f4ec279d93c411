"""The temporal hold only ever ADDS boxes, and a face seen at frame t stays masked at t+1 when it is missed."""

from __future__ import annotations

import numpy as np
from faceanon.detect import box_iou
from faceanon.hold import Hold


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 1200, (n, 2))
    wh = rng.uniform(4, 200, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def test_every_detection_is_in_the_output_over_random_sequences() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(300):
        hold = Hold(seconds=float(rng.uniform(0, 3)))
        now = float(rng.uniform(0, 1e5))
        tracks = random_boxes(rng, int(rng.integers(0, 6)))
        for _ in range(int(rng.integers(1, 40))):
            now += float(rng.choice([0.0, rng.uniform(0.001, 0.5), rng.uniform(0.5, 5)]))
            tracks = tracks + rng.normal(0, 15, tracks.shape).astype(np.float32)
            seen = tracks[rng.random(len(tracks)) > 0.3]  # the detector misses some faces
            det = np.concatenate([seen, random_boxes(rng, int(rng.integers(0, 3)))])  # and finds new ones
            out = hold.update(det, now)
            assert out.dtype == np.float32 and out.shape[1] == 4
            # The detections come first and unchanged: the hold can only add to them.
            np.testing.assert_array_equal(out[:len(det)], det)
            if rng.random() < 0.3:
                between = hold.boxes_at(now + float(rng.uniform(0, 0.3)))
                assert between.shape[1] == 4


def test_a_missed_face_is_still_masked_on_the_next_frame() -> None:
    hold = Hold(seconds=1.0)
    face = np.array([[100, 100, 160, 170]], np.float32)
    hold.update(face, 10.0)
    moved = face + np.array([8, 0, 8, 0], np.float32)
    hold.update(moved, 10.2)
    out = hold.update(np.zeros((0, 4), np.float32), 10.4)  # missed at t+1
    assert len(out) == 1
    truth = face + np.array([16, 0, 16, 0], np.float32)  # where the face actually walked to
    assert box_iou(out, truth)[0, 0] > 0.6
    # The held box covers the face entirely (it moves with the face and grows while uncertain).
    assert out[0, 0] <= truth[0, 0] + 2 and out[0, 2] >= truth[0, 2] - 2
    assert len(hold.boxes_at(10.5)) == 1
    # It is still held on its third frame without a detection, even past hold seconds (a slow box takes few
    # frames)...
    assert len(hold.update(np.zeros((0, 4), np.float32), 11.3)) == 1
    # ...and expires once it is both past hold seconds and past min_frames frames.
    assert len(hold.update(np.zeros((0, 4), np.float32), 11.4)) == 0
