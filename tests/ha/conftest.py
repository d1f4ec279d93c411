"""Fixtures: one real faceanon service for the session, Home Assistant's harness, a configured entry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket
from custom_components.faceanon.const import DOMAIN
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .service import ENGINE_PYTHON, Broker, Service


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Home Assistant loads custom_components/ only when asked."""


@pytest.fixture(scope="session")
def faceanon_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if not ENGINE_PYTHON.exists():
        pytest.skip(f"the engine venv is absent ({ENGINE_PYTHON}; set FACEANON_ENGINE_PYTHON): cannot run the service")
    # The harness blocks sockets per test; this session fixture starts before any test's socket_enabled.
    pytest_socket.enable_socket()
    workdir = tmp_path_factory.mktemp("faceanon")
    try:
        broker = Broker(workdir)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    service = Service(workdir, broker.port)
    try:
        service.start()  # a service that cannot start fails every test that needs it, loudly
        yield service
    finally:
        service.stop()
        broker.stop()


@pytest.fixture
def service(faceanon_session: Service, socket_enabled: None) -> Service:
    """The running service with its default camera and token (restored after a test that changed them)."""
    if not faceanon_session.is_default:
        faceanon_session.stop()
        faceanon_session.start()
    return faceanon_session


def entry_data(service: Service, **changes: object) -> dict[str, object]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: service.port, CONF_TOKEN: service.token, **changes}


@pytest.fixture
async def entry(hass: HomeAssistant, service: Service) -> MockConfigEntry:
    """A loaded config entry for the service."""
    entry = MockConfigEntry(
        domain=DOMAIN, title=f"faceanon 127.0.0.1:{service.port}", unique_id=f"127.0.0.1:{service.port}",
        data=entry_data(service),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry
