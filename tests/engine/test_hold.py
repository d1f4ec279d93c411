"""The temporal hold only ever ADDS boxes, and a face seen at frame t stays masked at t+1 when it is missed."""

from __future__ import annotations

import cv2
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


def test_a_detection_that_overlaps_a_face_without_agreeing_does_not_take_its_mask() -> None:
    """A low-threshold look finds part of a face the detector then loses (its eyes, a neighbour in the crop): that box
    overlaps the face's track a little. Taking it for the face moved the mask onto it and left the face bare."""
    hold = Hold(seconds=1.0)
    face = np.array([[200, 200, 290, 290]], np.float32)  # 90 px, still
    hold.update(face, 0.0)
    hold.update(face, 0.2)
    part = np.array([[240, 185, 295, 235]], np.float32)  # the upper right of the face, IoU 0.2 with it
    assert 0.05 < box_iou(part, face)[0, 0] < 0.5
    out = hold.update(part, 0.4)
    np.testing.assert_array_equal(out[:1], part)  # the detection, unchanged, first
    held = out[1:]
    assert len(held) == 1 and box_iou(held, face)[0, 0] > 0.8  # and the face keeps its mask where it was
    # A detection that agrees with the face continues its track: one box, no second mask.
    out = hold.update(face + 4, 0.6)
    assert sum(box_iou(out, face)[:, 0] > 0.5) == 1


def test_a_face_that_moved_further_than_predicted_is_refound_where_the_image_places_it() -> None:
    """Between two sightings a face jumps by more than its motion model expects; optical flow places its track at the
    new detection, which then continues the track (one mask, the velocity known) instead of starting a second."""
    rng = np.random.default_rng(7)
    texture = cv2.resize(rng.integers(0, 255, (40, 40), np.uint8), (160, 160), interpolation=cv2.INTER_CUBIC)
    def frame(x: int) -> np.ndarray:
        image = np.full((480, 640, 3), 127, np.uint8)
        image[100:260, x:x + 160] = texture[:, :, None]
        return image
    hold = Hold(seconds=1.0)
    box = np.array([[120, 120, 240, 240]], np.float32)
    hold.update(box, 0.0, frame(100))
    jumped = box + np.array([70, 0, 70, 0], np.float32)  # IoU 0.26 with where it was: no agreement by prediction
    assert box_iou(jumped, box)[0, 0] < 0.5
    out = hold.update(jumped, 0.1, frame(170))
    assert len(hold.tracks) == 1 and len(out) == 1
    assert hold.tracks[0].moves_known


def test_past_max_tracks_a_face_the_detector_lost_outlives_one_sighting_background_patches() -> None:
    """A crowd's region looks at a low threshold find patches of background once (score 0.08): past max_tracks,
    evicting the longest-unseen track dropped the face the detector had lost for a moment in favour of them."""
    hold = Hold(seconds=2.0, follow_seconds=2.0, confirm_score=0.15, max_tracks=4)
    face = np.array([[100, 100, 160, 170]], np.float32)
    hold.update(face, 0.0, scores=np.array([0.9], np.float32))
    hold.update(face + 2, 0.2, scores=np.array([0.9], np.float32))  # seen twice: confirmed
    for k in range(6):  # then missed, while region looks keep finding one-off patches elsewhere
        patch = np.array([[400 + 90 * k, 500, 430 + 90 * k, 530]], np.float32)
        hold.update(patch, 0.4 + 0.1 * k, scores=np.array([0.08], np.float32))
    assert len(hold.tracks) == 4
    out = hold.update(np.zeros((0, 4), np.float32), 1.1)
    assert covered(out, (face + 2)[0]), out
    # Among the patches the newest stay: the oldest one-off sightings went first.
    assert covered(out, np.array([850, 500, 880, 530], np.float32))
    assert not covered(out, np.array([580, 500, 610, 530], np.float32))


def covered(boxes: np.ndarray, box: np.ndarray) -> bool:
    return any(bool((b[:2] <= box[:2]).all() and (b[2:] >= box[2:]).all()) for b in boxes)
