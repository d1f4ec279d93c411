"""The base entities: one device per camera, under the service's device; a camera's controls."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from homeassistant.const import EntityCategory
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import CameraStatus, Controls, FaceanonError
from .const import DOMAIN, MANUFACTURER
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator, camera_identifier, service_identifier


class FaceanonEntity(CoordinatorEntity[FaceanonCoordinator]):
    """An entity of one camera of the service."""

    _attr_has_entity_name = True
    # The camera's own figures are meaningless while its frames do not arrive.
    needs_online = True

    def __init__(self, coordinator: FaceanonCoordinator, camera: str, description: EntityDescription) -> None:
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self.camera = camera
        self.entity_description = description
        self._attr_unique_id = f"{entry.unique_id}_{camera}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={camera_identifier(entry, camera)},
            name=camera.replace("_", " ").title(),
            manufacturer=MANUFACTURER,
            model="Anonymized camera",
            sw_version=coordinator.data.version,
            via_device=service_identifier(entry),
        )

    @property
    def status(self) -> CameraStatus | None:
        return self.coordinator.data.cameras.get(self.camera)

    @property
    def available(self) -> bool:
        status = self.status
        return super().available and status is not None and (status.online or not self.needs_online)


def add_camera_entities(
    entry: FaceanonConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[FaceanonCoordinator, str], Iterable[Entity]],
) -> None:
    """Add entities for every camera now, and for each camera the service gains later."""
    coordinator = entry.runtime_data.coordinator
    known: set[str] = set()

    def add_new() -> None:
        current = set(coordinator.data.cameras)
        # A dropped camera's device is removed by the coordinator; forget it so that it can come back.
        known.intersection_update(current)
        if new := current - known:
            known.update(new)
            async_add_entities([entity for camera in sorted(new) for entity in build(coordinator, camera)])

    add_new()
    entry.async_on_unload(coordinator.async_add_listener(add_new))


class FaceanonControlEntity(FaceanonEntity):
    """A control of one camera (the service's `/api/<camera>/controls`): usable while the camera is off, since
    one of them turns it on again; unavailable with a service too old to have controls."""

    _attr_entity_category = EntityCategory.CONFIG
    needs_online = False

    @property
    def controls(self) -> Controls | None:
        status = self.status
        return None if status is None else status.controls

    @property
    def available(self) -> bool:
        return super().available and self.controls is not None

    async def _change(self, **changes: Any) -> None:
        """Send the change; the service's answer (the controls as they act now) updates every entity at once."""
        by = None
        if self._context is not None and self._context.user_id is not None:
            user = await self.hass.auth.async_get_user(self._context.user_id)
            by = user.name if user is not None else None
        try:
            controls = await self.coordinator.client.set_controls(self.camera, changes, by)
        except FaceanonError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="control_failed",
                translation_placeholders={"camera": self.camera, "error": str(err)},
            ) from err
        self.coordinator.async_set_updated_data(self.coordinator.data.with_controls(self.camera, controls))
