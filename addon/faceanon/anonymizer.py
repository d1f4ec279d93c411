"""One stream's frames through detect and hold: which boxes to mask in each frame, synchronously.

The live service (faceanon.pipeline, which adds threads, deadlines and the fail-closed guard) and `faceanon video`
(a file, frame by frame) both run this, so a file replayed with `--preset live` is anonymized exactly as the camera
would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from faceanon.detect import FaceDetector
from faceanon.detect.people import PeopleLook
from faceanon.detect.stream import Look, StreamPlan, StreamScanner, widen_doubtful
from faceanon.hold import Hold


@dataclass(frozen=True)
class Masks:
    boxes: np.ndarray  # (N,4): this frame's detections first, then the boxes the hold adds
    faces: int  # faces in view: what the last whole-frame look found (region looks, at low thresholds, only add masks)
    held: int  # boxes the hold added
    look: Look
    # People in view, as the last person look counted them; None without a person look (target face). It comes
    # with the masks, so a frame an earlier anonymizer finished after a target change cannot count for the new one.
    people: int | None = None


# The person detector's cadence, in frames. Every 2nd frame with boxes held in place masked the 3 annotated far heads
# of vtest.avi frame 288 (tests/engine/test_people.py) like every frame, at 1.5x the face target's CPU instead of 2x
# (measured before the region budget took turns; 1.25x since); every 3rd frame lost one with target person.
PEOPLE_EVERY = 2


def models_for(stream: StreamPlan, target: str, person_model: str | None = None) -> list[str]:
    """The models a stream needs: its plan's, and for the head and person targets the person detector."""
    from faceanon.defaults import PERSON_MODEL

    return stream.models + ([person_model or PERSON_MODEL] if target != "face" else [])


def people_look(detectors: Mapping[str, FaceDetector], target: str,
                person_model: str | None = None) -> PeopleLook | None:
    from faceanon.defaults import PERSON_MODEL

    return None if target == "face" else PeopleLook(detectors[person_model or PERSON_MODEL], target)


class StreamAnonymizer:
    """Detect (a StreamPlan: whole frame now and then, moving regions and tracked faces every frame; with `people`,
    the person detector every PEOPLE_EVERY frames) -> hold."""

    def __init__(self, detectors: Mapping[str, FaceDetector] | FaceDetector, plan: StreamPlan, hold: Hold,
                 threshold: float | None = None, people: PeopleLook | None = None) -> None:
        self.scanner = StreamScanner(detectors, plan, threshold)
        self.hold = hold
        self.people = people
        # People have a hold of their own: in the faces' hold a head box would take over a face's track (they
        # overlap), and the face's mask would then follow the person instead (measured: walkers leaked 17.8 % of
        # face-frames instead of 14.4 %). It moves no box: a body's optical flow (its legs) dragged held heads off.
        self.people_hold = replace(hold, tracks=[], max_speed=0.0, max_speed_px=0.0) if people is not None else None
        self._in_view = 0
        self._people = 0
        self._since_people = PEOPLE_EVERY  # the first frame looks

    def masks(self, frame: np.ndarray, now: float) -> Masks:
        """The boxes to mask in `frame`, seen at `now` (seconds, any origin; only differences matter)."""
        tracked = np.array([t.box for t in self.hold.tracks if self.hold.confirmed(t)], np.float32).reshape(-1, 4)
        look = self.scanner.look(frame, tracked)
        boxes, scores = look.faces.boxes, look.faces.scores
        masks = self.hold.update(boxes, now, frame, scores)
        held = len(masks) - len(boxes)
        if self.scanner.plan.doubt and len(boxes):  # the hold tracks the boxes as found; the masks allow for doubt
            masks = np.concatenate([widen_doubtful(boxes, scores, self.scanner.plan.doubt), masks[len(boxes):]])
        if self.people is not None and self.people_hold is not None:
            self._since_people += 1
            if self._since_people >= PEOPLE_EVERY:
                self._since_people = 0
                seen = self.people.look(frame, masks)
                found, scores, self._people = seen.boxes, seen.scores, seen.people
            else:  # between looks the people's hold carries their masks
                found, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
            # No frame and no speed: a held box stays where it was seen and grows (a body's optical flow drags it).
            people = self.people_hold.update(found, now, None, scores)
            masks, held = np.concatenate([masks, people]), held + len(people) - len(found)
        if look.whole:
            self._in_view = look.whole_faces
        return Masks(masks, self._in_view, held, look, self._people if self.people is not None else None)
