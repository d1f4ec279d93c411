"""Config flow against the real service: user, errors, duplicates, reconfigure, re-auth, Supervisor discovery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from custom_components.faceanon.const import DOMAIN
from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from .conftest import entry_data
from .service import Service, TcpForward, free_port, wait_port


async def _user_flow(hass: HomeAssistant, data: dict) -> dict:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def _user_flow_at_a_second_address(hass: HomeAssistant, service: Service) -> dict:
    """The user flow for the same service reached through a port forward (as localhost or a proxy would)."""
    forward = TcpForward(service.port)
    try:
        return await _user_flow(hass, entry_data(service, port=forward.port))
    finally:
        forward.close()


async def test_user_flow_creates_entry(hass: HomeAssistant, service: Service) -> None:
    result = await _user_flow(hass, entry_data(service))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"faceanon 127.0.0.1:{service.port}"
    assert result["data"] == entry_data(service)
    assert result["result"].unique_id == service.service_id  # the service's own id, not the address
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_the_same_service_at_another_address_is_a_duplicate(hass: HomeAssistant, service: Service) -> None:
    """Two addresses reach one service (here a port forward; localhost and 127.0.0.1 alike): its id says so, and
    the second flow aborts."""
    result = await _user_flow(hass, entry_data(service))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    result = await _user_flow_at_a_second_address(hass, service)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_user_flow_errors_then_recovers(hass: HomeAssistant, service: Service) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    flow_id = result["flow_id"]

    # Nothing listens there: cannot_connect, and the form comes back.
    result = await hass.config_entries.flow.async_configure(flow_id, entry_data(service, port=free_port()))
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "cannot_connect"}

    # /api/health needs no token; /api/cameras refuses the wrong one.
    result = await hass.config_entries.flow.async_configure(flow_id, entry_data(service, token="wrong"))
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: service.port})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(flow_id, entry_data(service))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_duplicate_aborts(hass: HomeAssistant, entry: MockConfigEntry, service: Service) -> None:
    result = await _user_flow(hass, entry_data(service))
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_reconfigure(hass: HomeAssistant, entry: MockConfigEntry, service: Service) -> None:
    other = MockConfigEntry(domain=DOMAIN, unique_id="10.0.0.9:8099", data={CONF_HOST: "10.0.0.9", CONF_PORT: 8099})
    other.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "reconfigure"
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, entry_data(service, port=free_port()))
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(flow_id, entry_data(service, token="wrong"))
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, entry_data(service))
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.unique_id == f"127.0.0.1:{service.port}"  # entity unique ids hang on it

    # Pointing it at another entry's service is a duplicate.
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "10.0.0.9", CONF_PORT: 8099}
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_reauth_when_the_token_is_refused(hass: HomeAssistant, service: Service) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=f"127.0.0.1:{service.port}", data=entry_data(service, token="old-token")
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR

    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    flow_id = flows[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_TOKEN: "still-wrong"})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_TOKEN: service.token})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_TOKEN] == service.token
    assert entry.state is ConfigEntryState.LOADED


def _discovery(service: Service, **config: object) -> HassioServiceInfo:
    return HassioServiceInfo(
        config={"host": "127.0.0.1", "port": service.port, "token": service.token, **config},
        name="faceanon", slug="faceanon", uuid="0123456789abcdef",
    )


async def test_hassio_discovery(hass: HomeAssistant, service: Service) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service)
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "faceanon"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "faceanon"
    assert result["data"] == entry_data(service, addon="faceanon")
    await hass.async_block_till_done()
    # The service's device links to the add-on's page in Home Assistant (ingress), which needs no token.
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, result["result"].unique_id)})
    assert device is not None and device.configuration_url == "homeassistant://hassio/ingress/faceanon"

    # The add-on announces itself again with a new token: the entry takes it, no second entry.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service, token="rotated")
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    assert hass.config_entries.async_entries(DOMAIN)[0].data[CONF_TOKEN] == "rotated"


async def test_hassio_discovery_with_the_service_id(hass: HomeAssistant, service: Service) -> None:
    """The add-on announces its service id: the entry is keyed by it, so adding the same service by hand at
    another address is a duplicate (one service, one entry, one set of devices)."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service, id=service.service_id)
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["result"].unique_id == service.service_id
    await hass.async_block_till_done()
    result = await _user_flow_at_a_second_address(hass, service)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_hassio_discovery_cannot_connect(hass: HomeAssistant, service: Service) -> None:
    dead = free_port()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service, port=dead, token=None)
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "cannot_connect"}


async def test_user_flow_unknown_answer(
    hass: HomeAssistant, service: Service, hass_client_no_auth: ClientSessionGenerator
) -> None:
    """An HTTP server that is not faceanon (here: Home Assistant's own) is reported, not taken."""
    assert await async_setup_component(hass, "http", {})
    other = await hass_client_no_auth()
    result = await _user_flow(hass, entry_data(service, port=other.port))
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "not_faceanon"}


async def test_setup_retries_while_the_service_is_unreachable(hass: HomeAssistant, service: Service) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="127.0.0.1:1", data=entry_data(service, port=free_port()))
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_a_server_that_is_not_faceanon(hass: HomeAssistant, service: Service, tmp_path: Path) -> None:
    # A real web server on the address, but not faceanon: /api/health is a 404 page.
    port = free_port()
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await hass.async_add_executor_job(wait_port, port)
        result = await _user_flow(hass, entry_data(service, port=port))
        assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "not_faceanon"}
    finally:
        other.terminate()
        other.wait(10)


OTHER_SERVER = """
import http.server, sys
body, kind = sys.argv[2].encode(), sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.mark.parametrize(("body", "kind"), [
    ("<html><body>Router login</body></html>", "text/html"),  # every path answers 200 with a page
    ('{"status": "ok"}', "application/json"),  # another service's health check
])
async def test_a_server_that_answers_200_but_is_not_faceanon(
    hass: HomeAssistant, service: Service, tmp_path: Path, body: str, kind: str
) -> None:
    """Says "not a faceanon service", not "failed to connect" or "unexpected error" (and no traceback)."""
    script = tmp_path / "other.py"
    script.write_text(OTHER_SERVER)
    port = free_port()
    other = subprocess.Popen([sys.executable, str(script), str(port), body, kind],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await hass.async_add_executor_job(wait_port, port)
        result = await _user_flow(hass, entry_data(service, port=port))
        assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "not_faceanon"}
    finally:
        other.terminate()
        other.wait(10)


async def test_reconfigure_never_sends_the_token_back(
    hass: HomeAssistant, entry: MockConfigEntry, service: Service
) -> None:
    result = await entry.start_reconfigure_flow(hass)
    suggested = {
        str(key): key.description.get("suggested_value")
        for key in result["data_schema"].schema
        if key.description
    }
    assert service.token not in suggested.values() and suggested.get(CONF_HOST) == "127.0.0.1"
    # An empty token field keeps the entry's token.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: service.port}
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_TOKEN] == service.token
