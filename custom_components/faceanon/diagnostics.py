"""Diagnostics: the entry without its token and address, and the service's last camera status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST, CONF_TOKEN
from homeassistant.core import HomeAssistant

from .coordinator import FaceanonConfigEntry

# The title and unique id are built from the host, so they go too.
TO_REDACT = {CONF_TOKEN, CONF_HOST, "title", "unique_id"}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: FaceanonConfigEntry) -> dict[str, Any]:
    coordinator = entry.runtime_data.coordinator
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "last_update_success": coordinator.last_update_success,
        "service": asdict(coordinator.data),
    }
