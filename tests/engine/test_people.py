"""People (faceanon.detect.people, the NanoDet person detector): a person whose face cannot be seen still gets their
head masked with target `head`, and their whole body with `person`; the hold follows them; face counts stay face
counts and a person count appears."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import VIDEO, need_shared
from faceanon import defaults
from faceanon.anonymizer import StreamAnonymizer
from faceanon.bench.stages import read_frames
from faceanon.config import SAMPLE_CLIP
from faceanon.detect import load_detector, load_models
from faceanon.detect.heads import face_equivalents, head_boxes
from faceanon.detect.people import PeopleLook, head_regions, uncovered
from faceanon.leak import changed_pixels, ellipse_share
from faceanon.mask import MaskStyle, apply_masks

pytestmark = pytest.mark.timeout(120)
# Checked by eye on frame 288 of vtest.avi (campus, elevated camera): three pedestrians 50-80 px tall, two walking
# away, one seen from the side; their heads are 8-12 px, too small and turned for a face detector.
HEADS_288 = ((269, 172, 10, 11), (315, 160, 10, 10), (370, 219, 12, 13))  # x, y, w, h


def test_face_equivalents_grow_back_into_the_region() -> None:
    regions = np.array([[10, 20, 50, 80], [100, 0, 101, 3]], np.float32)
    assert np.allclose(head_boxes(face_equivalents(regions)), regions, atol=1e-4)


def test_a_head_sits_at_the_top_of_its_person_and_faces_cover_their_own_person() -> None:
    person = np.array([[100, 100, 140, 220]], np.float32)  # 40 x 120
    (x1, y1, x2, y2), = head_regions(person)
    assert y1 < 100 < y2 <= 100 + 0.4 * 120 and x1 >= 100 and x2 <= 140 and x2 - x1 >= 0.3 * 120
    face_in_head = np.array([[112, 104, 128, 122]], np.float32)
    face_elsewhere = np.array([[300, 104, 316, 122]], np.float32)
    assert not uncovered(person, face_in_head)[0]
    assert uncovered(person, face_elsewhere)[0] and uncovered(person, np.zeros((0, 4)))[0]


def test_the_person_detector_finds_the_people_of_the_bundled_clip() -> None:
    detector = load_detector(defaults.PERSON_MODEL)  # passes the canary: the clip's first frame, enlarged
    assert detector.manifest.kind == "person"
    frame = read_frames(SAMPLE_CLIP)[0]
    found = detector.infer(frame, detector.manifest.threshold)
    # Two people walking towards the camera, about 150 px tall in a 480x270 frame (and, at the model's low
    # threshold, sometimes a third box over the pair).
    tall = found.boxes[found.scores >= 0.45]
    assert len(tall) == 2 and all(y2 - y1 > 100 for _x1, y1, _x2, y2 in tall)


def test_people_far_away_are_found_on_the_campus_clip() -> None:
    capture = cv2.VideoCapture(str(need_shared(VIDEO / "vtest.avi")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    assert ok
    detector = load_detector(defaults.PERSON_MODEL)
    found = detector.infer(frame, detector.manifest.threshold)
    # Checked by eye: 7 pedestrians, 60-80 px tall, in this frame; a cone or two score as people too.
    tall = [b for b in found.boxes if b[3] - b[1] >= 40]
    assert 6 <= len(tall) <= 10


def masked_head_shares(target: str) -> tuple[list[float], int | None]:
    """The share of each annotated head's ellipse that the output changed, after the stream ran up to frame 288
    at 5 fps, and the people count."""
    capture = cv2.VideoCapture(str(need_shared(VIDEO / "vtest.avi")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 262)
    frames = []
    for _ in range(27):
        ok, image = capture.read()
        assert ok
        frames.append(image)
    preset = defaults.PRESETS["live"]
    stream = preset.stream()
    models = stream.models + ([defaults.PERSON_MODEL] if target != "face" else [])
    detectors = load_models(models)
    people = PeopleLook(detectors[defaults.PERSON_MODEL], target) if target != "face" else None
    anonymizer = StreamAnonymizer(detectors, stream, preset.hold(), None, people)
    style = MaskStyle(target=target)
    for i, image in enumerate(frames[::2]):  # the clip is 10 fps; the camera takes every second frame
        masks = anonymizer.masks(image, i / 5)
    raw = frames[::2][-1]
    changed = changed_pixels(raw, apply_masks(raw.copy(), masks.boxes, style))
    return [ellipse_share(changed, list(head)) for head in HEADS_288], masks.people


def test_far_heads_a_face_detector_misses_are_masked_with_target_head() -> None:
    """By the team's rule (a head is masked when >= 80 % of its ellipse changed): with head and person all 3. With
    target face 1 of the 3 was, until the region looks took turns in a crowd (detect/stream.py): now the faces of
    all 3 are found, and the head target is the cover for the person whose face no look finds."""
    face, face_people = masked_head_shares("face")
    head, people = masked_head_shares("head")
    assert face_people is None and sum(share >= 0.8 for share in face) >= 2  # no person look, no count
    assert all(share >= 0.8 for share in head) and people >= 5
    whole, _ = masked_head_shares("person")
    assert all(share >= 0.8 for share in whole)


def test_stills_mask_people_too_with_targets_head_and_person(tmp_path) -> None:
    """`faceanon image --target head|person` runs the person detector on the still, as the live pipeline does:
    with `person` the body of every pedestrian of vtest.avi frame 100 is masked, with `face` it is not; with
    `head` more of each far head of frame 288 is masked than with `face`."""
    from faceanon.cli import main

    capture = cv2.VideoCapture(str(need_shared(VIDEO / "vtest.avi")))
    stills = {}
    for index in (100, 288):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok
        stills[index] = frame
        cv2.imwrite(str(tmp_path / f"frame{index}.png"), frame)
    detector = load_detector(defaults.PERSON_MODEL)
    people = [b for b in detector.infer(stills[100], detector.manifest.threshold).boxes if b[3] - b[1] >= 40]
    assert len(people) >= 6
    bodies = [(x1, (y1 + y2) / 2, x2 - x1, (y2 - y1) / 2) for x1, y1, x2, y2 in people]  # the lower half
    shares = {}
    for target in ("face", "head", "person"):
        assert main(["image", str(tmp_path / "frame100.png"), str(tmp_path / "frame288.png"), "-o",
                     str(tmp_path / target), "--target", target]) == 0
        out = {i: cv2.imread(str(tmp_path / target / f"frame{i}.png")) for i in stills}
        shares[target] = ([ellipse_share(changed_pixels(stills[100], out[100]), list(b)) for b in bodies],
                          [ellipse_share(changed_pixels(stills[288], out[288]), list(h)) for h in HEADS_288])
    assert all(share >= 0.8 for share in shares["person"][0]), shares["person"][0]
    assert all(share < 0.5 for share in shares["face"][0]), shares["face"][0]
    # The far heads: face 0.99, 0.79, 0.62 of their ellipses; head 1.0, 0.95, 0.798 (that person's small face
    # counts as their face, so their head is the face's mask grown into a head, not the top of their box).
    head, face = shares["head"][1], shares["face"][1]
    assert all(h >= f for h, f in zip(head, face, strict=True)) and sum(h >= 0.8 for h in head) >= 2, shares
