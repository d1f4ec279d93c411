"""Per-camera figures: faces in view; frame rate, detector latency and fail-closed frames for diagnosis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import CameraStatus
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator
from .entity import FaceanonEntity, add_camera_entities

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class FaceanonSensorDescription(SensorEntityDescription):
    value: Callable[[CameraStatus], float | int | None]


SENSORS: tuple[FaceanonSensorDescription, ...] = (
    FaceanonSensorDescription(
        key="faces",
        translation_key="faces",
        state_class=SensorStateClass.MEASUREMENT,
        value=lambda status: status.faces,
    ),
    FaceanonSensorDescription(
        key="people",
        translation_key="people",
        state_class=SensorStateClass.MEASUREMENT,
        value=lambda status: status.people,
    ),
    FaceanonSensorDescription(
        key="fps",
        translation_key="fps",
        native_unit_of_measurement="fps",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Off until the user turns them on: the figures move every update and wrote most of the recorder's rows.
        entity_registry_enabled_default=False,
        suggested_display_precision=1,
        value=lambda status: status.fps,
    ),
    FaceanonSensorDescription(
        key="detect_ms_p95",
        translation_key="detect_ms_p95",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        suggested_display_precision=0,
        value=lambda status: status.detect_ms_p95,
    ),
    FaceanonSensorDescription(
        key="fail_closed_frames",
        translation_key="fail_closed_frames",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda status: status.fail_closed_frames,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(
        entry,
        async_add_entities,
        lambda coordinator, camera: [FaceanonSensor(coordinator, camera, description) for description in SENSORS],
    )


class FaceanonSensor(FaceanonEntity, SensorEntity):
    entity_description: FaceanonSensorDescription

    def __init__(self, coordinator: FaceanonCoordinator, camera: str, description: FaceanonSensorDescription) -> None:
        super().__init__(coordinator, camera, description)

    @property
    def native_value(self) -> float | int | None:
        status = self.status
        return None if status is None else self.entity_description.value(status)
