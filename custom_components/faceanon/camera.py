"""The anonymized camera: still images and the MJPEG stream are proxied from the service; `stream_source` is the
service's anonymized RTSP restream (HLS/WebRTC in the frontend, `camera.record`)."""

from __future__ import annotations

from aiohttp import web
from homeassistant.components.camera import Camera, CameraEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_aiohttp_proxy_web
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import FaceanonError
from .const import LOGGER
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator
from .entity import FaceanonEntity, add_camera_entities

PARALLEL_UPDATES = 0

ANONYMIZED = EntityDescription(key="camera", translation_key="anonymized")


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceanonConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    add_camera_entities(entry, async_add_entities, lambda coordinator, camera: [FaceanonCamera(coordinator, camera)])


class FaceanonCamera(FaceanonEntity, Camera):
    """Only ever shows what the service publishes: anonymized frames or its safe (blacked out) frame."""

    def __init__(self, coordinator: FaceanonCoordinator, camera: str) -> None:
        FaceanonEntity.__init__(self, coordinator, camera, ANONYMIZED)
        Camera.__init__(self)
        # The camera is the device's main feature: named after it (`camera.lobby`), as the service's MQTT discovery
        # names it, so the MQTT -> integration hand-over keeps its entity id.
        self._attr_name = None

    @property
    def supported_features(self) -> CameraEntityFeature:
        if self.coordinator.data is not None and self.coordinator.data.rtsp_port:
            return CameraEntityFeature.STREAM
        return CameraEntityFeature(0)

    async def stream_source(self) -> str | None:
        port = self.coordinator.data.rtsp_port if self.coordinator.data is not None else None
        return None if port is None else self.coordinator.client.rtsp_url(self.camera, port)

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        try:
            # The service scales down by height; HA trims the width afterwards when it asked for both.
            return await self.coordinator.client.latest_jpeg(self.camera, height)
        except FaceanonError as err:
            LOGGER.debug("No image from faceanon camera %s: %s", self.camera, err)
            return None

    async def handle_async_mjpeg_stream(self, request: web.Request) -> web.StreamResponse | None:
        return await async_aiohttp_proxy_web(self.hass, request, self.coordinator.client.open_stream(self.camera))
