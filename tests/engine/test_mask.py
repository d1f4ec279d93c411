"""The masker: margins grow small faces more, fill picks a colour that really changes the face's pixels, styles
stay inside their regions, and deface's geometry (the baseline) is reproduced."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from faceanon.baseline import DefaceLike
from faceanon.detect import Faces, load_detector
from faceanon.leak import changed_pixels
from faceanon.mask import PALETTE, UNCHANGED, MaskStyle, _near, apply_masks, mask_boxes, parse_color


def test_small_faces_get_a_wider_margin() -> None:
    style = MaskStyle(margin=0.5, small_margin=0.3, small_face=32)
    assert style.margin_for(100) == 0.5 and style.margin_for(32) == 0.5
    assert style.margin_for(16) == pytest.approx(0.65) and style.margin_for(0) == pytest.approx(0.8)
    boxes = np.array([[100, 100, 200, 200], [10, 10, 26, 26]], np.float32)  # 100 px and 16 px faces
    (big, small) = mask_boxes(boxes, style, 1000, 1000)
    assert (big[2] - big[0]) == 150 and (small[2] - small[0]) in (26, 27, 28)  # 16 * 1.65 = 26.4, rounded outwards


def test_auto_fill_is_black_unless_black_would_change_nothing() -> None:
    frame = np.full((100, 200, 3), 180, np.uint8)
    frame[:, 100:] = 5  # the right half is already near black (a black face mask, dark hair)
    out = apply_masks(frame.copy(), np.array([[20, 20, 60, 60], [120, 20, 160, 60]], np.float32),
                      MaskStyle("fill", "box", 0.0, small_margin=0.0, drop=0.0))
    assert out[40, 40].tolist() == [0, 0, 0]
    assert out[40, 140].tolist() == list(PALETTE[1])  # navy: black would have left the face as it was
    assert changed_pixels(frame, out)[20:60, 20:60].all() and changed_pixels(frame, out)[20:60, 120:160].all()
    fixed = apply_masks(frame.copy(), np.array([[120, 20, 160, 60]], np.float32),
                        MaskStyle("fill", "box", 0.0, small_margin=0.0, drop=0.0, fill_color=parse_color("#000000")))
    assert fixed[40, 140].tolist() == [0, 0, 0]


def test_auto_fill_also_weighs_what_the_mask_covers_around_the_face() -> None:
    """A light face in dark hair: its box's ellipse has no near-black pixel, but the mask grown over the hair does;
    black would leave the hair, and with it part of the labelled face, as it was (walkers clips: 0.76 covered)."""
    frame = np.full((200, 200, 3), 20, np.uint8)  # dark hair and background
    frame[80:120, 80:120] = 200  # the face the detector boxed
    boxes = np.array([[80, 80, 120, 120]], np.float32)
    out = apply_masks(frame.copy(), boxes, MaskStyle("fill", "ellipse", 0.5, small_margin=0.0))
    assert out[100, 100].tolist() == list(PALETTE[1])
    grown = mask_boxes(boxes, MaskStyle("fill", "ellipse", 0.5, small_margin=0.0), 200, 200)[0]
    centre = changed_pixels(frame, out)[grown[1] + 8:grown[3] - 8, 100]
    assert centre.all()  # every pixel down the mask's middle changed, hair included


def test_a_face_mask_sits_lower_than_its_box_and_a_head_mask_holds_it() -> None:
    """Face detectors box a face higher than the labels the leak rule judges: the face mask drops by `drop` of the
    box's height (0.1), still reaching 0.15 of it above the box; a head mask keeps its crown and holds the face
    mask."""
    box = np.array([[100, 100, 200, 200]], np.float32)
    face = mask_boxes(box, MaskStyle(small_margin=0.0), 400, 400)[0]
    assert face.tolist() == [75, 85, 225, 235]  # 1.5x the box, 10 px lower
    head = MaskStyle(small_margin=0.0, target="head")
    lowered, level = mask_boxes(box, head, 400, 400)[0], mask_boxes(box, replace(head, drop=0.0), 400, 400)[0]
    assert lowered[1] == level[1] and lowered[3] >= face[3]  # the crown stays; the face's own mask is inside


def test_a_box_whose_face_lies_off_the_frame_is_still_masked() -> None:
    """The face's own box is clipped to nothing at the frame's edge while its grown mask reaches in (a held face
    moving out): the colour comes from what the mask covers (this raised in cv2.ellipse once)."""
    frame = np.full((100, 100, 3), 150, np.uint8)
    out = apply_masks(frame.copy(), np.array([[-8, 10, 0, 30]], np.float32),
                      MaskStyle("fill", "box", 0.5, small_margin=0.0))
    assert changed_pixels(frame, out)[12:28, 0:2].all()


def test_overlapping_boxes_choose_their_colour_from_the_unmasked_frame() -> None:
    frame = np.full((100, 100, 3), 200, np.uint8)
    boxes = np.array([[10, 10, 60, 60], [30, 30, 80, 80]], np.float32)
    out = apply_masks(frame.copy(), boxes, MaskStyle("fill", "box", 0.0, small_margin=0.0, drop=0.0))
    assert (out[30:80, 30:80] == 0).all()  # the second box did not turn navy over the first box's black


@pytest.mark.parametrize("style", ["blur", "pixelate", "fill"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_nothing_changes_outside_the_mask_regions(style: str, shape: str) -> None:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[40, 40, 100, 120], [200, 20, 215, 36], [300, 200, 330, 250]], np.float32)  # one off-frame
    mstyle = MaskStyle(style, shape)
    out = apply_masks(frame.copy(), boxes, mstyle)
    outside = np.ones(frame.shape[:2], bool)
    for x1, y1, x2, y2 in mask_boxes(boxes, mstyle, 320, 240):
        outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], frame[outside])
    assert not np.array_equal(out, frame)


def test_parse_color() -> None:
    assert parse_color("auto") == "auto" and parse_color("#ff8000") == (0, 128, 255)
    with pytest.raises(ValueError):
        parse_color("orange")


def test_deface_geometry_by_hand() -> None:
    """deface truncates the box, grows it by 30 % of its size on every side, rounds and clips to the image."""
    deface = DefaceLike(load_detector("centerface"))
    faces = Faces(np.array([[10.7, 20.2, 30.9, 60.5], [90, 0, 110, 30]], np.float32), np.array([0.9, 0.5]))
    assert deface.regions(faces, 100, 80) == [(4, 8, 36, 72), (84, 0, 99, 39)]
    frame = np.full((80, 100, 3), 200, np.uint8)
    deface.draw(frame, faces, "fill")
    assert (frame[8:73, 4:37] == 0).all() and frame[7, 4].tolist() == [200, 200, 200]  # cv2.rectangle is inclusive


def test_the_share_of_pixels_near_a_colour_is_counted_exactly() -> None:
    """The fill colour is chosen from this share (an OpenCV pass per colour); it must match the rule counted by
    hand, at the edges of UNCHANGED, for every palette colour and for strided crops of a frame."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        colour = PALETTE[int(rng.integers(len(PALETTE)))]
        near = rng.random(frame.shape[:2]) < 0.5  # put half the pixels at the edge of "near"
        edge = np.array(colour, np.int16) + rng.choice([-25, -24, 0, 24, 25], size=(*frame.shape[:2], 3))
        frame[near] = np.clip(edge, 0, 255)[near].astype(np.uint8)
        y, x = int(rng.integers(0, 30)), int(rng.integers(0, 40))
        roi = frame[y:y + 30, x:x + 40]
        inside = rng.random(roi.shape[:2]) < 0.7
        by_hand = (np.abs(roi[inside].astype(np.int16) - np.array(colour, np.int16)).max(axis=1) <= UNCHANGED).mean()
        assert _near(roi, inside, colour) == pytest.approx(by_hand, abs=1e-12)
