"""Constants of the faceanon integration."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

DOMAIN: Final = "faceanon"
LOGGER = logging.getLogger(__package__)

MANUFACTURER: Final = "faceanon"
DEFAULT_PORT: Final = 8099
# The service's status figures change every frame; a few seconds keeps the sensors live without load.
SCAN_INTERVAL: Final = timedelta(seconds=5)
