"""The service's camera list, pushed (`/api/events`) or polled; owns error mapping and the removal of cameras the
service dropped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import FaceanonAuthError, FaceanonClient, FaceanonError, FaceanonStalledError, ServiceState
from .const import DOMAIN, FALLBACK_INTERVAL, LOGGER, SCAN_INTERVAL


@dataclass
class FaceanonData:
    """What a loaded entry keeps: the client (for images and streams) and the coordinator (for status)."""

    client: FaceanonClient
    coordinator: FaceanonCoordinator


type FaceanonConfigEntry = ConfigEntry[FaceanonData]


def service_identifier(entry: ConfigEntry) -> tuple[str, str]:
    return (DOMAIN, str(entry.unique_id))


def camera_identifier(entry: ConfigEntry, camera: str) -> tuple[str, str]:
    return (DOMAIN, f"{entry.unique_id}_{camera}")


class FaceanonCoordinator(DataUpdateCoordinator[ServiceState]):
    """Fetches `/api/cameras` every few seconds."""

    config_entry: FaceanonConfigEntry

    def __init__(self, hass: HomeAssistant, entry: FaceanonConfigEntry, client: FaceanonClient) -> None:
        super().__init__(
            hass, LOGGER, config_entry=entry, name=f"faceanon {client.url}", update_interval=SCAN_INTERVAL
        )
        self.client = client

    async def listen(self) -> None:
        """Take the service's pushed updates (`/api/events`) for as long as the entry is loaded; while they flow
        the poll only backs them up (every FALLBACK_INTERVAL). When the stream breaks, the service is polled at
        once (a stopped one is unavailable within a second, a changed token asks for reauth) and every
        SCAN_INTERVAL after; a stream gone silent (a frozen service) makes the entities unavailable at once. The
        stream is opened again with backoff."""
        delay = 1.0
        while True:
            try:
                async for state in self.client.events():
                    if self.update_interval != FALLBACK_INTERVAL:
                        LOGGER.debug("faceanon %s: push updates on; polling every %s", self.client.url,
                                     FALLBACK_INTERVAL)
                        self.update_interval = FALLBACK_INTERVAL
                    self._accept(state)
                    self.async_set_updated_data(state)
                    delay = 1.0
            except FaceanonStalledError as err:
                LOGGER.debug("faceanon %s: push updates stalled (%s)", self.client.url, err)
                self.async_set_update_error(UpdateFailed(
                    translation_domain=DOMAIN, translation_key="update_error",
                    translation_placeholders={"error": str(err)}))
            except FaceanonError as err:
                LOGGER.debug("faceanon %s: push updates unavailable (%s); polling", self.client.url, err)
            self.update_interval = SCAN_INTERVAL
            await self.async_refresh()  # now, not at the poll scheduled FALLBACK_INTERVAL after the last one
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _accept(self, state: ServiceState) -> None:
        if self.data is None or state.cameras.keys() != self.data.cameras.keys():
            self._remove_stale_devices(state)

    async def _async_update_data(self) -> ServiceState:
        try:
            state = await self.client.cameras()
        except FaceanonAuthError as err:
            raise ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="invalid_auth") from err
        except FaceanonError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN, translation_key="update_error", translation_placeholders={"error": str(err)}
            ) from err
        self._accept(state)
        return state

    def _remove_stale_devices(self, state: ServiceState) -> None:
        """A camera the service no longer has loses its device (and with it its entities)."""
        registry = dr.async_get(self.hass)
        keep = {service_identifier(self.config_entry)} | {
            camera_identifier(self.config_entry, name) for name in state.cameras
        }
        for device in dr.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            if not device.identifiers & keep:
                LOGGER.info("Removing %s: the faceanon service no longer has this camera", device.name)
                registry.async_update_device(device.id, remove_config_entry_id=self.config_entry.entry_id)
