"""Control entities against the real service: a switch, selects and numbers per camera change what the service
does (the mask style changes the frame Home Assistant shows), are validated by the service, and a camera switched
off keeps its device and entities."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from custom_components.faceanon.const import DOMAIN
from homeassistant.components.camera import async_get_image
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .service import Service
from .test_entities import poll

CONTROLS = {"enabled": "switch", "style": "select", "target": "select", "plan": "select", "threshold": "number",
            "hold_seconds": "number"}
DEFAULTS = {"enabled": True, "style": "fill", "target": "face", "plan": "0.75x<=1920>=640", "threshold": 0.2,
            "hold_seconds": 1.0}


def control_id(hass: HomeAssistant, entry: MockConfigEntry, key: str, camera: str = "walk") -> str:
    entity = er.async_get(hass).async_get_entity_id(CONTROLS[key], DOMAIN, f"{entry.unique_id}_{camera}_{key}")
    assert entity is not None, key
    return entity


@pytest.fixture
async def controlled(service: Service) -> AsyncIterator[Service]:
    """The session's service, its controls set back afterwards (they are kept over restarts)."""
    yield service
    status, body = await asyncio.to_thread(service.put, "/api/walk/controls", DEFAULTS)
    assert status == 200, body


def black_share(jpeg: bytes) -> float:
    """The share of near-black pixels: about 1-3 % of a frame of the clip under black fill masks, 0 without."""
    with Image.open(io.BytesIO(jpeg)) as decoded:
        image = np.asarray(decoded.convert("RGB"))
    return float((image.max(axis=2) < 16).mean())


async def frame_until(hass: HomeAssistant, camera: str, check, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            image = await async_get_image(hass, camera)
        except HomeAssistantError:  # no frame yet (a camera just turned on)
            image = None
        if image is not None and check(image.content):
            return image.content
        assert time.monotonic() < deadline, "the frame Home Assistant shows did not change"
        await asyncio.sleep(0.3)


async def test_control_entities_change_the_service(
    hass: HomeAssistant, entry: MockConfigEntry, controlled: Service
) -> None:
    ids = {key: control_id(hass, entry, key) for key in CONTROLS}
    registry = er.async_get(hass)
    assert all(registry.async_get(entity).entity_category == "config" for entity in ids.values())
    assert hass.states.get(ids["enabled"]).state == STATE_ON
    assert hass.states.get(ids["style"]).state == "fill"
    # Within the service's protection floor: only fill, a threshold up to 0.4, a hold from 0.5 s.
    assert hass.states.get(ids["style"]).attributes["options"] == ["fill"]
    assert hass.states.get(ids["threshold"]).attributes["max"] == pytest.approx(0.4)
    assert hass.states.get(ids["hold_seconds"]).attributes["min"] == pytest.approx(0.5)
    assert hass.states.get(ids["target"]).attributes["options"] == ["face", "head", "person"]
    assert "0.75x<=1920>=640" in hass.states.get(ids["plan"]).attributes["options"]  # the live preset's own plan
    assert float(hass.states.get(ids["threshold"]).state) == pytest.approx(0.2)  # CenterFace's own
    camera = er.async_get(hass).async_get_entity_id("camera", DOMAIN, f"{entry.unique_id}_walk_camera")
    assert camera is not None
    await frame_until(hass, camera, lambda jpeg: black_share(jpeg) > 0.005)  # black fill masks
    # Nothing past the floor gets through Home Assistant: it refuses values out of the range the service gave, and
    # the service refuses them from any other client too.
    for service_name, domain, data in (("select_option", "select", {ATTR_ENTITY_ID: ids["style"], "option": "blur"}),
                                       ("set_value", "number", {ATTR_ENTITY_ID: ids["threshold"], "value": 0.9}),
                                       ("set_value", "number", {ATTR_ENTITY_ID: ids["hold_seconds"], "value": 0})):
        with pytest.raises(ServiceValidationError):
            await hass.services.async_call(domain, service_name, data, blocking=True)
    status, body = await asyncio.to_thread(controlled.put, "/api/walk/controls", {"threshold": 0.9})
    assert status == 400 and "protection floor" in body["error"]
    await hass.services.async_call("number", "set_value", {ATTR_ENTITY_ID: ids["threshold"], "value": 0.4},
                                   blocking=True)  # the edge is accepted
    assert (await asyncio.to_thread(controlled.camera_status))["walk"]["controls"]["threshold"] == 0.4
    audit = json.loads((await asyncio.to_thread(controlled.get, "/api/service"))[1])["audit"]
    assert audit[-1]["source"].startswith("Home Assistant") and audit[-1]["result"] == "accepted"

    # The head target runs the person detector: the People sensor counts the clip's two walkers.
    people = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.unique_id}_walk_people")
    assert people is not None and hass.states.get(people).state == "unknown"  # no person detector with face
    await hass.services.async_call("select", "select_option", {ATTR_ENTITY_ID: ids["target"], "option": "head"},
                                   blocking=True)
    for _ in range(100):
        await poll(hass)
        if hass.states.get(people).state not in ("unknown", "unavailable"):
            break
        await asyncio.sleep(0.2)
    assert int(hass.states.get(people).state) >= 1
    await hass.services.async_call("number", "set_value", {ATTR_ENTITY_ID: ids["hold_seconds"], "value": 2.5},
                                   blocking=True)
    await hass.services.async_call("select", "select_option", {ATTR_ENTITY_ID: ids["plan"], "option": "balanced"},
                                   blocking=True)
    controls = (await asyncio.to_thread(controlled.camera_status))["walk"]["controls"]
    assert (controls["hold_seconds"], controls["plan"]) == (2.5, "balanced")
    # The camera's configured plan stays among the options once another runs, so it can be set back.
    await poll(hass)
    assert DEFAULTS["plan"] in hass.states.get(ids["plan"]).attributes["options"]
    await hass.services.async_call("select", "select_option", {ATTR_ENTITY_ID: ids["plan"],
                                                               "option": DEFAULTS["plan"]}, blocking=True)
    assert (await asyncio.to_thread(controlled.camera_status))["walk"]["controls"]["plan"] == DEFAULTS["plan"]
    # Home Assistant refuses an option the select does not offer; the service refuses what its schema does not.
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call("select", "select_option", {ATTR_ENTITY_ID: ids["style"], "option": "off"},
                                       blocking=True)
    status, body = await asyncio.to_thread(controlled.put, "/api/walk/controls", {"style": "off"})
    assert status == 400 and "style" in body["error"]

    # Off: the camera reads and publishes nothing; its device and entities stay (the switch turns it on again).
    devices = dr.async_get(hass)
    device = devices.async_get_device(identifiers={(DOMAIN, f"{entry.unique_id}_walk")})
    assert device is not None
    await hass.services.async_call("switch", "turn_off", {ATTR_ENTITY_ID: ids["enabled"]}, blocking=True)
    assert hass.states.get(ids["enabled"]).state == STATE_OFF
    status = (await asyncio.to_thread(controlled.camera_status))["walk"]
    assert status["enabled"] is False and status["online"] is False
    assert (await asyncio.to_thread(controlled.get, "/api/walk/latest.jpg"))[0] == 503
    await poll(hass)
    assert hass.states.get(camera).state == STATE_UNAVAILABLE
    assert hass.states.get(ids["enabled"]).state == STATE_OFF  # the control stays usable
    assert devices.async_get_device(identifiers={(DOMAIN, f"{entry.unique_id}_walk")}) is not None
    assert hass.states.get(ids["target"]).state == "head"

    await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: ids["enabled"]}, blocking=True)
    await frame_until(hass, camera, lambda jpeg: black_share(jpeg) > 0.005, timeout=60)  # back, masked
    assert hass.states.get(ids["enabled"]).state == STATE_ON


async def test_a_change_that_cannot_reach_the_service_is_an_error(
    hass: HomeAssistant, entry: MockConfigEntry, controlled: Service
) -> None:
    """The user sees a translated error naming the camera and the reason; then Home Assistant shows what the
    service runs. (A stopped service is unavailable within a second, and Home Assistant calls no unavailable
    entity: the service freezes instead, and the change is sent before its silence is noticed; the frozen service
    takes it when it wakes.)"""
    number = control_id(hass, entry, "hold_seconds")
    coordinator = entry.runtime_data.coordinator
    assert controlled.proc is not None
    os.kill(controlled.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(HomeAssistantError, match="did not change camera walk"):
            await hass.services.async_call("number", "set_value", {ATTR_ENTITY_ID: number, "value": 3.0},
                                           blocking=True)
    finally:
        os.kill(controlled.proc.pid, signal.SIGCONT)
    for _ in range(50):  # the woken service may take the change just after the first refresh
        await coordinator.async_refresh()
        acting = (await asyncio.to_thread(controlled.camera_status))["walk"]["controls"]["hold_seconds"]
        if float(hass.states.get(number).state) == acting:
            break
        await asyncio.sleep(0.1)
    assert float(hass.states.get(number).state) == acting
    await asyncio.to_thread(controlled.put, "/api/walk/controls", {"hold_seconds": 1.0})
