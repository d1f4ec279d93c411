"""Config flow: set up by hand (host, port, token) or from the add-on's Supervisor discovery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from .api import FaceanonAuthError, FaceanonClient, FaceanonConnectionError, FaceanonError, Health
from .const import CONF_ADDON, DEFAULT_PORT, DOMAIN, LOGGER

TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _service_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): str,
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=65535)
            ),
            vol.Optional(CONF_TOKEN): TOKEN_SELECTOR,
        }
    )


def _address_id(host: str, port: int) -> str:
    """The unique id of a service that reports no id of its own (before faceanon 0.2): its address."""
    return f"{host}:{port}"


def _unique_id(health: Health | None, host: str, port: int) -> str:
    # The service's own stable id: the same service reached at localhost and at 127.0.0.1 is one entry.
    return health.id if health is not None and health.id else _address_id(host, port)


class FaceanonConfigFlow(ConfigFlow, domain=DOMAIN):
    VERSION = 1

    _discovered: dict[str, Any]
    _addon_name: str

    async def _validate(self, data: Mapping[str, Any]) -> tuple[dict[str, str], Health | None]:
        """Reach the service and try the token; returns the form errors (empty when all is well) and its health."""
        client = FaceanonClient(
            async_get_clientsession(self.hass), data[CONF_HOST], data[CONF_PORT], data.get(CONF_TOKEN)
        )
        try:
            health = await client.health()
            await client.cameras()  # needs the token, when the service has one
        except FaceanonAuthError:
            return {"base": "invalid_auth"}, None
        except FaceanonConnectionError as err:
            LOGGER.debug("faceanon service not reachable: %s", err)
            return {"base": "cannot_connect"}, None
        except FaceanonError as err:  # something answers there, but not the faceanon API (a 404, HTML, ...)
            LOGGER.debug("Not a faceanon service: %s", err)
            return {"base": "not_faceanon"}, None
        except Exception:  # a flow must always answer with a form
            LOGGER.exception("Unexpected answer from the faceanon service at %s", client.url)
            return {"base": "unknown"}, None
        return {}, health

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            # An entry at this address already (whatever its unique id): nothing to ask the service.
            self._async_abort_entries_match({CONF_HOST: user_input[CONF_HOST], CONF_PORT: user_input[CONF_PORT]})
            errors, health = await self._validate(user_input)
            if not errors:
                await self.async_set_unique_id(_unique_id(health, user_input[CONF_HOST], user_input[CONF_PORT]))
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=f"faceanon {user_input[CONF_HOST]}:{user_input[CONF_PORT]}", data=user_input
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_service_schema({}), user_input),
            errors=errors,
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            # The token is never sent back to the browser: an empty field keeps the one the entry has.
            if not user_input.get(CONF_TOKEN) and entry.data.get(CONF_TOKEN):
                user_input = {**user_input, CONF_TOKEN: entry.data[CONF_TOKEN]}
            # The entry keeps its unique id (entity ids hang on it); another entry at the new address, or for the
            # service found there (by its id), is a duplicate.
            address = (user_input[CONF_HOST], user_input[CONF_PORT])
            if self._taken_by_another(entry.entry_id, {_address_id(*address)}, address):
                return self.async_abort(reason="already_configured")
            errors, health = await self._validate(user_input)
            if not errors:
                if self._taken_by_another(entry.entry_id, {_unique_id(health, *address)}, address):
                    return self.async_abort(reason="already_configured")
                return self.async_update_reload_and_abort(entry, data=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _service_schema(entry.data),
                {k: v for k, v in (user_input or entry.data).items() if k != CONF_TOKEN},
            ),
            errors=errors,
        )

    def _taken_by_another(self, entry_id: str, unique_ids: set[str], address: tuple[str, int]) -> bool:
        return any(
            other.entry_id != entry_id
            and (other.unique_id in unique_ids or (other.data.get(CONF_HOST), other.data.get(CONF_PORT)) == address)
            for other in self._async_current_entries(include_ignore=False)
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, CONF_TOKEN: user_input[CONF_TOKEN]}
            errors, _health = await self._validate(data)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            description_placeholders={"url": f"http://{entry.data[CONF_HOST]}:{entry.data[CONF_PORT]}"},
            errors=errors,
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The add-on announced itself through the Supervisor: config {host, port, token?}."""
        config = discovery_info.config
        data = {CONF_HOST: config[CONF_HOST], CONF_PORT: int(config.get(CONF_PORT, DEFAULT_PORT))}
        if config.get(CONF_TOKEN):
            data[CONF_TOKEN] = config[CONF_TOKEN]
        if discovery_info.slug:  # the device page links to the add-on's web page in Home Assistant (ingress)
            data[CONF_ADDON] = discovery_info.slug
        # The add-on announces its service id with its address (an older one only its address).
        announced = str(config["id"]) if config.get("id") else None
        await self.async_set_unique_id(announced or _address_id(data[CONF_HOST], data[CONF_PORT]))
        # A re-announcement (say, a new token after the add-on restarted) updates the entry and reloads it.
        self._abort_if_unique_id_configured(updates=data)
        self._async_abort_entries_match({CONF_HOST: data[CONF_HOST], CONF_PORT: data[CONF_PORT]})
        self._discovered = data
        self._addon_name = discovery_info.name
        self.context["title_placeholders"] = {"name": discovery_info.name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            errors, _health = await self._validate(self._discovered)
            if not errors:
                return self.async_create_entry(title=self._addon_name, data=self._discovered)
        return self.async_show_form(
            step_id="hassio_confirm", description_placeholders={"addon": self._addon_name}, errors=errors
        )

