"""Per camera: the detector's score threshold and how long a mask outlives its face's last detection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberEntityDescription, NumberMode
from homeassistant.const import UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Controls
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator
from .entity import FaceanonControlEntity, add_camera_entities

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class FaceanonNumberDescription(NumberEntityDescription):
    current: Callable[[Controls], float | None]


NUMBERS: tuple[FaceanonNumberDescription, ...] = (
    FaceanonNumberDescription(
        key="threshold",
        translation_key="threshold",
        native_min_value=0.05,
        native_max_value=0.4,  # the service's protection floor; it says its own range, which wins
        native_step=0.05,
        mode=NumberMode.SLIDER,
        current=lambda controls: controls.threshold,
    ),
    FaceanonNumberDescription(
        key="hold_seconds",
        translation_key="hold_seconds",
        device_class=NumberDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        native_min_value=0.5,
        native_max_value=30.0,
        native_step=0.5,
        mode=NumberMode.SLIDER,
        current=lambda controls: controls.hold_seconds,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(
        entry,
        async_add_entities,
        lambda coordinator, camera: [FaceanonNumber(coordinator, camera, description) for description in NUMBERS],
    )


class FaceanonNumber(FaceanonControlEntity, NumberEntity):
    entity_description: FaceanonNumberDescription

    def __init__(self, coordinator: FaceanonCoordinator, camera: str, description: FaceanonNumberDescription) -> None:
        super().__init__(coordinator, camera, description)
        # The service's ranges when it says them (the same as these defaults today).
        offered = coordinator.data.control_options.get(description.key)
        if isinstance(offered, dict) and all(isinstance(offered.get(k), (int, float)) for k in ("min", "max", "step")):
            self._attr_native_min_value = float(offered["min"])
            self._attr_native_max_value = float(offered["max"])
            self._attr_native_step = float(offered["step"])

    @property
    def native_value(self) -> float | None:
        controls = self.controls
        return None if controls is None else self.entity_description.current(controls)

    async def async_set_native_value(self, value: float) -> None:
        await self._change(**{self.entity_description.key: value})
