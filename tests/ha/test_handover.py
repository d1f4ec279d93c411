"""The MQTT -> integration hand-over keeps entity ids (issue: `sensor.walk_faces_2`): Home Assistant's own MQTT
integration on the session's mosquitto has the service's MQTT-discovered devices first; the faceanon integration
then takes the service, and its entities get the same ids; deleting its entry gives them back to MQTT."""

from __future__ import annotations

import asyncio
from pathlib import Path

from custom_components.faceanon.const import DOMAIN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import entry_data
from .service import Service

# The MQTT discovery's entities of a camera (controls come with mqtt.commands only, off by default).
MQTT_KEYS = ("snapshot", "faces", "people", "privacy_degraded", "occupancy", "fps", "detect_ms_p95",
             "fail_closed_frames")


def mqtt_ids(hass: HomeAssistant) -> dict[str, str]:
    registry = er.async_get(hass)
    found = {}
    for key in MQTT_KEYS:
        for domain in ("camera", "sensor", "binary_sensor"):
            if eid := registry.async_get_entity_id(domain, "mqtt", f"faceanon_walk_{key}"):
                found[key] = eid
    return found


async def until(check, what: str, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


async def test_entity_ids_survive_the_mqtt_handover_both_ways(
    hass: HomeAssistant, service: Service, tmp_path: Path
) -> None:
    status, _ = await asyncio.to_thread(service.put, "/api/integration", {"claimed": False})
    assert status == 200
    (tmp_path / "configuration.yaml").write_text("")  # MQTT's setup reads its YAML section from there
    hass.config.config_dir = str(tmp_path)
    mqtt = MockConfigEntry(domain="mqtt", data={"broker": "127.0.0.1", "port": service.broker_port})
    mqtt.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mqtt.entry_id)
    await hass.async_block_till_done()
    await until(lambda: len(mqtt_ids(hass)) == len(MQTT_KEYS), "the service's MQTT entities")
    before = mqtt_ids(hass)

    entry = MockConfigEntry(domain=DOMAIN, title="faceanon", unique_id=service.service_id, data=entry_data(service))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    ours = {item.entity_id for item in er.async_entries_for_config_entry(registry, entry.entry_id)}
    assert mqtt_ids(hass) == {}  # withdrawn
    assert set(before.values()) <= ours, sorted(set(before.values()) - ours)
    assert not [eid for eid in ours if eid.endswith("_2")]

    # Deleted: the service publishes its discovery again, and the MQTT entities take their old ids.
    assert (await hass.config_entries.async_remove(entry.entry_id))["require_restart"] is False
    await until(lambda: len(mqtt_ids(hass)) == len(MQTT_KEYS), "the MQTT entities back")
    assert mqtt_ids(hass) == before
    assert await hass.config_entries.async_unload(mqtt.entry_id)
    await hass.async_block_till_done()
