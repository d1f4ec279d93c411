"""Per camera: someone there (occupancy), privacy degraded, and whether the camera's frames arrive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import CameraStatus
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator
from .entity import FaceanonEntity, add_camera_entities

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class FaceanonBinarySensorDescription(BinarySensorEntityDescription):
    is_on: Callable[[CameraStatus], bool]
    # True for sensors that report on the feed itself and so must stay available while it is down.
    always_available: bool = False


BINARY_SENSORS: tuple[FaceanonBinarySensorDescription, ...] = (
    # As Frigate's occupancy sensors: on while the service counts a face, or a person with the head and person
    # targets (both counts held for count_hold_seconds by the service, so it does not flicker).
    FaceanonBinarySensorDescription(
        key="occupancy",
        translation_key="occupancy",
        device_class=BinarySensorDeviceClass.OCCUPANCY,
        is_on=lambda status: status.faces > 0 or (status.people or 0) > 0,
    ),
    FaceanonBinarySensorDescription(
        key="privacy_degraded",
        translation_key="privacy_degraded",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on=lambda status: status.privacy_degraded,
    ),
    FaceanonBinarySensorDescription(
        key="online",
        translation_key="online",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        always_available=True,
        is_on=lambda status: status.online,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(
        entry,
        async_add_entities,
        lambda coordinator, camera: [
            FaceanonBinarySensor(coordinator, camera, description) for description in BINARY_SENSORS
        ],
    )


class FaceanonBinarySensor(FaceanonEntity, BinarySensorEntity):
    entity_description: FaceanonBinarySensorDescription

    def __init__(
        self, coordinator: FaceanonCoordinator, camera: str, description: FaceanonBinarySensorDescription
    ) -> None:
        super().__init__(coordinator, camera, description)
        self.needs_online = not description.always_available

    @property
    def is_on(self) -> bool | None:
        status = self.status
        return None if status is None else self.entity_description.is_on(status)
