"""The base entity: one device per camera, under the service's device."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import CameraStatus
from .const import MANUFACTURER
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
