"""The faceanon integration: anonymized cameras from a faceanon service, without raw camera URLs in HA."""

from __future__ import annotations

import asyncio

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import FaceanonClient, FaceanonError
from .const import CONF_ADDON, LOGGER, MANUFACTURER
from .coordinator import FaceanonConfigEntry, FaceanonCoordinator, FaceanonData, service_identifier

MQTT_HANDOVER_S = 10.0  # how long setup waits for the MQTT integration to remove the service's MQTT entities
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.CAMERA,
    Platform.IMAGE,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


def configuration_url(entry: FaceanonConfigEntry, client: FaceanonClient) -> str:
    """The add-on's web page inside Home Assistant (ingress: no token to type); else the service's own page, which
    asks for the token when the service has one."""
    if slug := entry.data.get(CONF_ADDON):
        return f"homeassistant://hassio/ingress/{slug}"
    return str(client.url)


async def async_setup_entry(hass: HomeAssistant, entry: FaceanonConfigEntry) -> bool:
    client = FaceanonClient(
        async_get_clientsession(hass), entry.data[CONF_HOST], entry.data[CONF_PORT], entry.data.get(CONF_TOKEN)
    )
    coordinator = FaceanonCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = FaceanonData(client, coordinator)

    # The service's own device exists before the camera devices that name it as via_device.
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={service_identifier(entry)},
        name=entry.title,
        manufacturer=MANUFACTURER,
        model="faceanon service",
        sw_version=coordinator.data.version,
        configuration_url=configuration_url(entry, client),
    )
    # One device per camera: the service withdraws its own MQTT discovery while this integration has it. Claimed
    # first, and the MQTT entities gone, before these entities are added: they then take the same entity ids
    # (`sensor.lobby_faces`, not `sensor.lobby_faces_2`), so automations and dashboards keep working.
    try:
        await client.claim(True)
    except FaceanonError as err:  # the entities work without it; the next setup tries again
        LOGGER.warning("Could not tell the faceanon service at %s that this integration has it: %s", client.url, err)
    else:
        await mqtt_entities_gone(hass, list(coordinator.data.cameras))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # Push updates: the task ends with the entry (HA cancels an entry's background tasks on unload).
    entry.async_create_background_task(hass, coordinator.listen(), f"faceanon events {client.url}")
    return True


def mqtt_entities(hass: HomeAssistant, cameras: list[str]) -> list[str]:
    """The entity ids of the MQTT-discovered faceanon devices of these cameras (the service's own discovery)."""
    devices = dr.async_get(hass)
    suffixes = tuple(f"_{camera}" for camera in cameras)
    ids = {
        device.id
        for device in devices.devices.values()
        if device.manufacturer == MANUFACTURER
        and any(domain == "mqtt" and str(ident).endswith(suffixes) for domain, ident in device.identifiers)
    }
    registry = er.async_get(hass)
    return [
        item.entity_id for item in registry.entities.values() if item.platform == "mqtt" and item.device_id in ids
    ]


async def mqtt_entities_gone(hass: HomeAssistant, cameras: list[str]) -> None:
    """Wait (at most MQTT_HANDOVER_S) until Home Assistant's MQTT integration has removed the cameras' MQTT
    entities, which it does once the service's withdrawn discovery reaches it."""
    for _ in range(int(MQTT_HANDOVER_S / 0.1)):
        if not mqtt_entities(hass, cameras):
            return
        await asyncio.sleep(0.1)
    LOGGER.warning(
        "MQTT entities of the faceanon cameras are still there after %g s: %s (the new ones get other ids)",
        MQTT_HANDOVER_S,
        ", ".join(mqtt_entities(hass, cameras)),
    )


async def async_unload_entry(hass: HomeAssistant, entry: FaceanonConfigEntry) -> bool:
    # Unloading (a restart, a reload) keeps the claim; only deleting the entry gives the service back to MQTT.
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: FaceanonConfigEntry) -> None:
    """The entry is deleted: the service publishes its MQTT discovery again (best effort: it may be gone too).
    This entry's entities leave the registry first, so the MQTT entities get their ids back, not `_2` ones
    (Home Assistant would clear them only after this)."""
    registry = er.async_get(hass)
    for item in er.async_entries_for_config_entry(registry, entry.entry_id):
        registry.async_remove(item.entity_id)
    client = FaceanonClient(
        async_get_clientsession(hass), entry.data[CONF_HOST], entry.data[CONF_PORT], entry.data.get(CONF_TOKEN)
    )
    try:
        await client.claim(False)
    except FaceanonError as err:
        LOGGER.info("The faceanon service at %s did not hear that this integration let go: %s", client.url, err)
