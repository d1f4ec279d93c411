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
# While the service pushes its status (`/api/events`: every change at once, and at least every 30 s), polling is
# only a safety net.
FALLBACK_INTERVAL: Final = timedelta(seconds=60)
CONF_ADDON: Final = "addon"  # the add-on's slug, for entries the Supervisor discovered
