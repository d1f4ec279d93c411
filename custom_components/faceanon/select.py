"""Per camera: the mask style, what a mask covers (the face or the whole head) and the detection plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Controls
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator
from .entity import FaceanonControlEntity, add_camera_entities

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class FaceanonSelectDescription(SelectEntityDescription):
    current: Callable[[Controls], str]


SELECTS: tuple[FaceanonSelectDescription, ...] = (
    FaceanonSelectDescription(key="style", translation_key="style", current=lambda controls: controls.style),
    FaceanonSelectDescription(key="target", translation_key="target", current=lambda controls: controls.target),
    FaceanonSelectDescription(key="plan", translation_key="plan", current=lambda controls: controls.plan),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(
        entry,
        async_add_entities,
        lambda coordinator, camera: [FaceanonSelect(coordinator, camera, description) for description in SELECTS],
    )


class FaceanonSelect(FaceanonControlEntity, SelectEntity):
    entity_description: FaceanonSelectDescription

    def __init__(self, coordinator: FaceanonCoordinator, camera: str, description: FaceanonSelectDescription) -> None:
        super().__init__(coordinator, camera, description)

    @property
    def current_option(self) -> str | None:
        controls = self.controls
        return None if controls is None else self.entity_description.current(controls)

    @property
    def options(self) -> list[str]:
        offered = self.coordinator.data.control_options.get(self.entity_description.key)
        options = [str(option) for option in offered] if isinstance(offered, list) else []
        # The camera's own plans (`0.75x<=1920>=640`) are options too: the one it runs and the one its config gives
        # it, so that a changed plan can be set back from Home Assistant.
        own = [self.current_option]
        if self.entity_description.key == "plan":
            own.append(self.coordinator.data.cameras[self.camera].configured_plan)
        options += [option for option in dict.fromkeys(own) if option and option not in options]
        return options

    async def async_select_option(self, option: str) -> None:
        await self._change(**{self.entity_description.key: option})
