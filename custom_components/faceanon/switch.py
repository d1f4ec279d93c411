"""Per camera: on/off. Off, the camera reads and publishes nothing; no control turns anonymization off."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import FaceanonConfigEntry
from .entity import FaceanonControlEntity, add_camera_entities

PARALLEL_UPDATES = 1  # one change at a time per service: each is validated and kept by the service

CAMERA_SWITCH = SwitchEntityDescription(key="enabled", translation_key="enabled")


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(
        entry, async_add_entities, lambda coordinator, camera: [FaceanonSwitch(coordinator, camera, CAMERA_SWITCH)]
    )


class FaceanonSwitch(FaceanonControlEntity, SwitchEntity):
    @property
    def is_on(self) -> bool | None:
        controls = self.controls
        return None if controls is None else controls.enabled

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._change(enabled=True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._change(enabled=False)
