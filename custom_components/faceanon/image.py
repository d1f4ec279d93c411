"""Per camera: the last anonymized snapshot that had a face (Frigate's "last person" image, without the face).

It is the service's own `latest.jpg`, fetched when a face arrives and while faces stay (at most every
REFRESH_S), never while the camera's privacy is degraded: only ever an anonymized frame, never a raw one. This is
the picture to hand an automation or an AI task that must not see faces.
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.image import ImageEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .api import FaceanonError
from .const import LOGGER
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator
from .entity import FaceanonEntity, add_camera_entities

PARALLEL_UPDATES = 0
REFRESH_S = 60.0  # while faces stay in view; a new arrival (no face before) fetches at once

LAST_FACE = EntityDescription(key="last_face", translation_key="last_face")


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(entry, async_add_entities, lambda coordinator, camera: [FaceanonLastFace(coordinator, camera)])


class FaceanonLastFace(FaceanonEntity, ImageEntity):
    _attr_content_type = "image/jpeg"
    needs_online = False  # the last face stays to be seen while the camera is down

    def __init__(self, coordinator: FaceanonCoordinator, camera: str) -> None:
        FaceanonEntity.__init__(self, coordinator, camera, LAST_FACE)
        ImageEntity.__init__(self, coordinator.hass)
        self._jpeg: bytes | None = None
        self._fetching = False
        self._had_face = False

    @callback
    def _handle_coordinator_update(self) -> None:
        status = self.status
        face = status is not None and status.faces > 0 and not status.privacy_degraded
        last = self._attr_image_last_updated
        due = face and (not self._had_face or last is None or (dt_util.utcnow() - last).total_seconds() >= REFRESH_S)
        self._had_face = face
        if due and not self._fetching:
            self._fetching = True
            self.coordinator.config_entry.async_create_background_task(
                self.hass, self._fetch(), f"faceanon last face {self.camera}"
            )
        super()._handle_coordinator_update()

    async def _fetch(self) -> None:
        try:
            jpeg = await self.coordinator.client.latest_jpeg(self.camera)
        except FaceanonError as err:
            LOGGER.debug("faceanon %s: the last face's snapshot could not be fetched: %s", self.camera, err)
            jpeg = None
        finally:
            self._fetching = False
        if jpeg:
            self._jpeg = jpeg
            self._attr_image_last_updated = dt_util.utcnow()
            self.async_write_ha_state()

    @property
    def image_last_updated(self) -> datetime | None:
        return self._attr_image_last_updated

    async def async_image(self) -> bytes | None:
        return self._jpeg
