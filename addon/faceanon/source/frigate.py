"""Frigate's MQTT snapshots: `frigate/<camera>/<object>/snapshot` JPEGs, one per tracked object update.

`frigate://<camera>` subscribes `frigate/<camera>/+/snapshot`; `frigate://<camera>/<object>` just that object.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

from faceanon.source.base import Source, SourceError
from faceanon.source.broker import BrokerConfigError, apply_credentials, broker_address
from faceanon.source.http import decode_jpeg

KEEPALIVE_S = 30


def snapshot_topic(url: str) -> str:
    camera, _, obj = url[len("frigate://"):].partition("/")
    return f"frigate/{camera}/{obj or '+'}/snapshot"


class FrigateSource(Source):
    kind = "frigate"

    def __init__(self, name: str, url: str, fps: float, mqtt_cfg: dict | None = None) -> None:
        super().__init__(name, url, fps)
        self.mqtt_cfg = mqtt_cfg or {"host": "127.0.0.1", "port": 1883}
        self.topic = snapshot_topic(url)
        self._client: mqtt.Client | None = None

    def _stream(self) -> None:
        cfg = self.mqtt_cfg
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"faceanon-src-{self.name}",
                             clean_session=True)
        try:
            apply_credentials(client, cfg)
        except BrokerConfigError as err:
            raise SourceError(str(err)) from err
        refused: list[str] = []

        def on_connect(c: mqtt.Client, _userdata, _flags, reason, _props) -> None:
            if reason.is_failure:
                refused.append(str(reason))
            else:
                c.subscribe(self.topic, qos=0)

        def on_message(_c: mqtt.Client, _userdata, msg: mqtt.MQTTMessage) -> None:
            if self._due():
                self._offer(decode_jpeg(msg.payload, self.max_pixels, self.work_pixels))

        client.on_connect = on_connect
        client.on_message = on_message
        self._client = client
        host, port = broker_address(cfg)
        try:
            client.connect(host, port, KEEPALIVE_S)
            while not self.stopping.is_set():
                rc = client.loop(timeout=0.5)
                if refused:
                    raise SourceError(f"broker {host}:{port} refused the connection ({refused[0]})")
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    raise SourceError(f"lost the broker {host}:{port} ({mqtt.error_string(rc)})")
        finally:
            self._client = None
            client.disconnect()
