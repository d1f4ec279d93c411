"""Entities against the real service: devices, camera proxy (still and MJPEG), sensors, availability, dynamic
cameras, diagnostics, unload."""

from __future__ import annotations

import asyncio
import io
import json
import time
from http import HTTPStatus

from custom_components.faceanon.const import DOMAIN, FALLBACK_INTERVAL, SCAN_INTERVAL
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from .conftest import entry_data
from .service import SAMPLE_CLIP, MjpegCamera, Service, free_port, retained

KEYS = {
    "camera": "camera",
    "faces": "sensor",
    "people": "sensor",
    "fps": "sensor",
    "detect_ms_p95": "sensor",
    "fail_closed_frames": "sensor",
    "privacy_degraded": "binary_sensor",
    "online": "binary_sensor",
    "occupancy": "binary_sensor",
}
OFF_BY_DEFAULT = ("fps", "detect_ms_p95")  # they would fill the recorder


def entity_id(hass: HomeAssistant, entry: MockConfigEntry, camera: str, key: str) -> str | None:
    return er.async_get(hass).async_get_entity_id(KEYS[key], DOMAIN, f"{entry.unique_id}_{camera}_{key}")


async def poll(hass: HomeAssistant) -> None:
    """Let each coordinator's next poll run now (the push listener is a background task that never ends, so this
    does not wait for background tasks; it runs the refresh itself)."""
    async_fire_time_changed(hass, dt_util.utcnow() + SCAN_INTERVAL)
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


def jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        image.load()
        return image.size


async def test_devices_and_entities(hass: HomeAssistant, entry: MockConfigEntry, service: Service) -> None:
    devices = dr.async_get(hass)
    hub = devices.async_get_device(identifiers={(DOMAIN, entry.unique_id)})
    camera = devices.async_get_device(identifiers={(DOMAIN, f"{entry.unique_id}_walk")})
    assert hub is not None and camera is not None
    assert camera.via_device_id == hub.id
    assert (camera.name, camera.manufacturer) == ("Walk", "faceanon")
    assert hub.sw_version and camera.sw_version == hub.sw_version

    for key in KEYS:
        eid = entity_id(hass, entry, "walk", key)
        assert eid is not None, key
        item = er.async_get(hass).async_get(eid)
        assert item is not None and item.device_id == camera.id
        if key in OFF_BY_DEFAULT:
            assert item.disabled_by is er.RegistryEntryDisabler.INTEGRATION, key
            continue
        assert hass.states.get(eid).state != STATE_UNAVAILABLE, key
    assert entity_id(hass, entry, "walk", "camera") == "camera.walk"  # named after its device, as MQTT's
    assert hass.states.get(entity_id(hass, entry, "walk", "online")).state == STATE_ON
    assert hass.states.get(entity_id(hass, entry, "walk", "privacy_degraded")).state == STATE_OFF
    # Neither the token nor the service's address reach the state machine.
    for state in hass.states.async_all():
        assert service.token not in str(state.attributes)


async def test_face_count_follows_the_service(hass: HomeAssistant, entry: MockConfigEntry, service: Service) -> None:
    faces = entity_id(hass, entry, "walk", "faces")
    seen: list[int] = []
    for _ in range(40):
        before = service.camera_status()["walk"]
        await entry.runtime_data.coordinator.async_refresh()
        await hass.async_block_till_done()
        after = service.camera_status()["walk"]
        if before["faces"] == after["faces"]:
            assert hass.states.get(faces).state == str(after["faces"])
            occupied = hass.states.get(entity_id(hass, entry, "walk", "occupancy")).state
            assert occupied == (STATE_ON if after["faces"] > 0 else STATE_OFF)  # target face: no person count
            seen.append(after["faces"])
            if len(seen) >= 3 and max(seen) > 0:
                break
        await asyncio.sleep(0.3)
    # The clip shows people walking to the camera: the service counts them, and so does the sensor.
    assert len(seen) >= 3 and max(seen) > 0, seen


async def test_camera_proxy_serves_the_anonymized_jpeg(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service, hass_client: ClientSessionGenerator
) -> None:
    client = await hass_client()
    url = f"/api/camera_proxy/{entity_id(hass, entry, 'walk', 'camera')}"
    for _ in range(20):
        before = service.get("/api/walk/latest.jpg")[1]
        response = await client.get(url)
        assert response.status == HTTPStatus.OK
        assert response.content_type == "image/jpeg"
        body = await response.read()
        after = service.get("/api/walk/latest.jpg")[1]
        if body in (before, after):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the camera proxy never returned the service's latest.jpg")
    assert jpeg_size(body) == jpeg_size(before)

    # A dashboard asks for a thumbnail: the service scales by height, HA by width.
    response = await client.get(url, params={"width": 240, "height": 135})
    assert response.status == HTTPStatus.OK
    assert jpeg_size(await response.read()) == (240, 135)


async def test_camera_proxy_streams_mjpeg(
    hass: HomeAssistant, entry: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{entity_id(hass, entry, 'walk', 'camera')}")
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    boundary = response.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
    buffer = b""
    async with asyncio.timeout(30):
        while buffer.count(b"\xff\xd9") < 3:
            buffer += await response.content.readany()
    response.close()
    parts = [part for part in buffer.split(b"--" + boundary) if b"\xff\xd8" in part]
    assert len(parts) >= 2
    for part in parts[:2]:
        jpeg = part[part.index(b"\xff\xd8") : part.rindex(b"\xff\xd9") + 2]
        assert jpeg_size(jpeg)[0] > 0


async def test_unavailable_while_the_service_is_down_and_dynamic_cameras(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service, hass_client: ClientSessionGenerator
) -> None:
    walk = [entity_id(hass, entry, "walk", key) for key in KEYS if key not in OFF_BY_DEFAULT]
    service.stop()
    await poll(hass)
    assert {hass.states.get(eid).state for eid in walk} == {STATE_UNAVAILABLE}
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy/{walk[0]}")
    assert response.status == HTTPStatus.INTERNAL_SERVER_ERROR

    # Back on the same port, with a second camera on the clip and one whose source cannot be reached.
    service.start({"walk": str(SAMPLE_CLIP), "door": str(SAMPLE_CLIP), "gone": f"http://127.0.0.1:{free_port()}/x"})
    await poll(hass)
    assert STATE_UNAVAILABLE not in {hass.states.get(eid).state for eid in walk}
    for key in KEYS:
        assert entity_id(hass, entry, "door", key) is not None, key
    assert hass.states.get(entity_id(hass, entry, "door", "camera")).state != STATE_UNAVAILABLE

    # A camera whose frames do not arrive: its figures are unavailable, its feed sensor says so.
    assert not service.camera_status()["gone"]["online"]
    assert hass.states.get(entity_id(hass, entry, "gone", "faces")).state == STATE_UNAVAILABLE
    assert hass.states.get(entity_id(hass, entry, "gone", "camera")).state == STATE_UNAVAILABLE
    assert hass.states.get(entity_id(hass, entry, "gone", "online")).state == STATE_OFF

    # Cameras dropped from the service lose their devices and entities.
    service.stop()
    service.start()
    await poll(hass)
    devices = dr.async_get(hass)
    for camera in ("door", "gone"):
        assert devices.async_get_device(identifiers={(DOMAIN, f"{entry.unique_id}_{camera}")}) is None
        assert entity_id(hass, entry, camera, "faces") is None
    assert devices.async_get_device(identifiers={(DOMAIN, f"{entry.unique_id}_walk")}) is not None
    assert hass.states.get(walk[0]).state != STATE_UNAVAILABLE


async def test_reauth_when_the_service_changes_its_token(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service
) -> None:
    service.stop()
    service.start(token="rotated-token")
    await poll(hass)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"token": "rotated-token"})
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(entity_id(hass, entry, "walk", "camera")).state != STATE_UNAVAILABLE


async def test_diagnostics_redact_the_token(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service, hass_client: ClientSessionGenerator
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["host"] == "**REDACTED**"
    assert diagnostics["service"]["cameras"]["walk"]["name"] == "walk"
    text = str(diagnostics)
    assert service.token not in text and "127.0.0.1" not in text


async def test_unload_leaves_nothing_behind(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    ids = [entity_id(hass, entry, "walk", key) for key in KEYS]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    for eid in ids:
        state = hass.states.get(eid)
        assert state is None or state.state == STATE_UNAVAILABLE
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert [eid for eid in ids if hass.states.get(eid) is not None] == []
    assert er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id) == []
    assert dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id) == []
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_stream_source_is_the_anonymized_rtsp_restream(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service
) -> None:
    from homeassistant.components.camera import CameraEntityFeature, async_get_stream_source
    from homeassistant.const import ATTR_SUPPORTED_FEATURES

    camera = entity_id(hass, entry, "walk", "camera")
    assert camera is not None
    state = hass.states.get(camera)
    assert state is not None
    assert state.attributes[ATTR_SUPPORTED_FEATURES] & CameraEntityFeature.STREAM
    source = await async_get_stream_source(hass, camera)
    assert source == f"rtsp://faceanon:{service.token}@127.0.0.1:{service.rtsp_port}/walk"
    # The URL plays: Debian's ffprobe sees H.264 there (the service's real RTSP server, token as password).
    probe = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
        source, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(probe.communicate(), 30)
    assert probe.returncode == 0, err
    assert out.decode().strip() == "h264"


async def test_the_integration_has_the_service_so_each_camera_is_one_device(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service
) -> None:
    """Set up, the integration claims the service, which withdraws its MQTT discovery of the cameras (no second
    device per camera from MQTT); deleting the entry gives it back (the discovery returns)."""
    topic = "homeassistant/sensor/faceanon/walk_faces/config"

    async def discovery() -> bytes | None:
        return await hass.async_add_executor_job(retained, service.broker_port, topic)

    assert json.loads(service.get("/api/integration")[1]) == {"claimed": True}
    assert await discovery() is None  # cleared on the broker
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert json.loads(service.get("/api/integration")[1]) == {"claimed": False}
    for _ in range(50):
        if (payload := await discovery()) is not None:
            break
        await asyncio.sleep(0.1)
    assert payload is not None and json.loads(payload)["unique_id"] == "faceanon_walk_faces"


async def test_push_updates_arrive_within_a_second(hass: HomeAssistant, service: Service) -> None:
    """The service pushes its status (`/api/events`); the integration polls only as a fallback (every 60 s) while
    the pushes flow. A camera that goes offline shows as offline in Home Assistant within 1 s of the service
    saying so."""
    camera = MjpegCamera()
    try:
        await hass.async_add_executor_job(service.stop)
        await hass.async_add_executor_job(service.start, {"walk": str(SAMPLE_CLIP), "live": camera.url})
        entry = MockConfigEntry(domain=DOMAIN, title="faceanon", unique_id=service.service_id,
                                data=entry_data(service))
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data.coordinator
        for _ in range(100):  # the stream is open once the poll interval falls back
            if coordinator.update_interval == FALLBACK_INTERVAL:
                break
            await asyncio.sleep(0.1)
        assert coordinator.update_interval == FALLBACK_INTERVAL
        online = entity_id(hass, entry, "live", "online")
        assert online is not None and hass.states.get(online).state == STATE_ON

        await hass.async_add_executor_job(camera.stop)
        while (await hass.async_add_executor_job(service.camera_status))["live"]["online"]:
            await asyncio.sleep(0.1)  # the service says offline once no frame came for 5 s
        said_offline = time.monotonic()
        while hass.states.get(online).state != STATE_OFF:
            assert time.monotonic() - said_offline < 1.0, "the change was not pushed within 1 s"
            await asyncio.sleep(0.05)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        camera.stop()


async def test_a_stopped_or_frozen_service_is_unavailable_within_seconds(
    hass: HomeAssistant, service: Service
) -> None:
    """With push updates on (polling every 60 s), a service that freezes (SIGSTOP: its event stream goes silent
    past the keep-alives it announced) or stops (the stream closes, the poll that follows at once fails) makes the
    entities unavailable within 10 s; one that comes back is available again."""
    import os
    import signal

    entry = MockConfigEntry(domain=DOMAIN, title="faceanon", unique_id=service.service_id, data=entry_data(service))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator

    async def pushed() -> None:
        for _ in range(200):
            if coordinator.update_interval == FALLBACK_INTERVAL and coordinator.last_update_success:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the event stream did not open")

    async def unavailable_after(what: str) -> float:
        began = time.monotonic()
        while hass.states.get(camera).state != STATE_UNAVAILABLE:
            assert time.monotonic() - began < 10.0, f"still available 10 s after the service {what}"
            await asyncio.sleep(0.1)
        return time.monotonic() - began

    await pushed()
    camera = entity_id(hass, entry, "walk", "camera")
    assert camera is not None and hass.states.get(camera).state != STATE_UNAVAILABLE
    assert service.proc is not None
    os.kill(service.proc.pid, signal.SIGSTOP)
    try:
        await unavailable_after("froze")
    finally:
        os.kill(service.proc.pid, signal.SIGCONT)
    await pushed()  # back: the stream opens again and the entities with it
    assert hass.states.get(camera).state != STATE_UNAVAILABLE
    await hass.async_add_executor_job(service.stop)
    await unavailable_after("stopped")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_changed_token_asks_for_reauth_within_seconds(hass: HomeAssistant, service: Service) -> None:
    """With push updates on (polling every 60 s), a service back with another token asks for reauth within 10 s
    of answering again, without waiting for the 60 s poll."""
    entry = MockConfigEntry(domain=DOMAIN, title="faceanon", unique_id=service.service_id, data=entry_data(service))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    for _ in range(200):
        if coordinator.update_interval == FALLBACK_INTERVAL:
            break
        await asyncio.sleep(0.1)
    assert coordinator.update_interval == FALLBACK_INTERVAL
    await hass.async_add_executor_job(service.stop)
    await hass.async_add_executor_job(lambda: service.start(token="rotated-again"))
    answering = time.monotonic()
    while not hass.config_entries.flow.async_progress_by_handler(DOMAIN):
        assert time.monotonic() - answering < 10.0, "no reauth 10 s after the service answered with a new token"
        await asyncio.sleep(0.1)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_last_face_is_the_services_anonymized_snapshot(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service, hass_client: ClientSessionGenerator
) -> None:
    """The Last face image: once the service counts a face, the service's own latest.jpg (anonymized), served by
    Home Assistant's image proxy; no image before any face."""
    image = er.async_get(hass).async_get_entity_id("image", DOMAIN, f"{entry.unique_id}_walk_last_face")
    assert image is not None
    for _ in range(100):
        await entry.runtime_data.coordinator.async_refresh()
        await hass.async_block_till_done()
        if hass.states.get(image).state not in ("unknown", STATE_UNAVAILABLE):
            break
        await asyncio.sleep(0.2)
    assert hass.states.get(image).state not in ("unknown", STATE_UNAVAILABLE), "no face counted on the clip"
    client = await hass_client()
    response = await client.get(f"/api/image_proxy/{image}")
    assert response.status == HTTPStatus.OK and response.content_type == "image/jpeg"
    body = await response.read()
    # The service's frame: its size, and (its masks being judged by the engine's tests) never a raw frame.
    assert jpeg_size(body) == jpeg_size(service.get("/api/walk/latest.jpg")[1])
