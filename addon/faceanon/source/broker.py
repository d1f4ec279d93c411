"""The MQTT connection settings every faceanon client shares: credentials and TLS from the `mqtt` section."""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as paho


class BrokerConfigError(ValueError):
    """The `mqtt` section names TLS files that cannot be loaded."""


def broker_address(cfg: dict[str, Any]) -> tuple[str, int]:
    tls = bool(cfg.get("tls"))
    return cfg.get("host") or "127.0.0.1", int(cfg.get("port") or (8883 if tls else 1883))


def apply_credentials(client: paho.Client, cfg: dict[str, Any]) -> None:
    """Username/password and TLS (CA, client certificate, insecure) as the `mqtt` section says."""
    if cfg.get("username"):
        client.username_pw_set(str(cfg["username"]), None if cfg.get("password") is None else str(cfg["password"]))
    if cfg.get("tls"):
        insecure = bool(cfg.get("tls_insecure"))
        try:
            client.tls_set(ca_certs=cfg.get("tls_ca") or None, certfile=cfg.get("tls_cert") or None,
                           keyfile=cfg.get("tls_key") or None,
                           cert_reqs=ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError, ValueError) as err:
            raise BrokerConfigError(f"mqtt tls: cannot load the certificates ({err})") from err
        client.tls_insecure_set(insecure)
