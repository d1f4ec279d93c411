"""A remote detector: the model runs on an inference server speaking the KServe v2 protocol over gRPC (NVIDIA
Triton, OpenVINO Model Server, KServe), the decoding stays here.

`RemoteSession` answers the part of `onnxruntime.InferenceSession` the family decoders use (`get_inputs`,
`get_outputs`, `get_providers`, `run`), so a remote model is decoded by exactly the code that decodes the local one:
same preprocessing, same tensors, same boxes. The server serves each model under its faceanon name (`yunet`,
`centerface-int8`, ...) with the ONNX graph's own input and output names.

A provider string `grpc://host:port` (or `grpcs://` for TLS) selects it. Every call has a client timeout, and a
refused, failed or timed-out call raises `ModelError`: the camera's pipeline then publishes privacy-hold frames
and says `privacy_degraded`, as for a local model that fails. gRPC reconnects by itself; its reconnect backoff is
capped at 2 s so a server that returns is used again within seconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from faceanon.detect.manifest import ModelError
from faceanon.source.base import redact

SCHEMES = ("grpc", "grpcs")
CALL_TIMEOUT_S = 5.0  # bounds a call's thread; the camera's deadline_ms decides the privacy hold well before
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),  # CenterFace's maps at 4K are ~100 MB of float32
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
]
KSERVE_DTYPES = {"FP32": "tensor(float)", "FP16": "tensor(float16)", "UINT8": "tensor(uint8)",
                 "INT64": "tensor(int64)", "INT32": "tensor(int32)"}


def is_remote(provider: str | None) -> bool:
    return bool(provider) and urlsplit(str(provider)).scheme in SCHEMES


@dataclass(frozen=True)
class TensorInfo:
    """What onnxruntime's NodeArg tells a decoder: name, shape (ints, -1 where dynamic) and element type."""

    name: str
    shape: list[int]
    type: str


def target_of(url: str) -> tuple[str, bool]:
    """`grpc://host:port` -> ("host:port", tls); ModelError when it is not such a URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or parts.path not in ("", "/"):
        raise ModelError(f"detector url {redact(url)!r}: use grpc://host:port or grpcs://host:port (KServe v2 over "
                         "gRPC)")
    try:
        port = parts.port or (443 if parts.scheme == "grpcs" else 8001)
    except ValueError as err:
        raise ModelError(f"detector url {redact(url)!r}: {err}") from err
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", parts.scheme == "grpcs"


class RemoteSession:
    """One model on a KServe v2 server, shaped like an onnxruntime session. Thread-safe (one gRPC channel)."""

    def __init__(self, url: str, model: str, timeout_s: float = CALL_TIMEOUT_S) -> None:
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException, np_to_triton_dtype
        except ImportError as err:
            raise ModelError("a remote detector needs tritonclient: pip install 'faceanon[remote]'") from err
        self._grpc = grpcclient
        self._server_error = InferenceServerException
        self._kserve_dtype = np_to_triton_dtype
        target, tls = target_of(url)
        # Shown in errors, the status, the APIs and MQTT: never the userinfo or credential-like query values.
        self.url, self.model, self.timeout_s = redact(url), model, timeout_s
        self.client = grpcclient.InferenceServerClient(target, ssl=tls, channel_args=CHANNEL_ARGS)
        self.round_trips_ms: deque[float] = deque(maxlen=512)
        self._lock = threading.Lock()
        meta = self._call(lambda: self.client.get_model_metadata(model, as_json=True, client_timeout=timeout_s),
                          "has no such model or cannot be reached")
        self._inputs = [self._info(t) for t in meta.get("inputs", [])]
        self._outputs = [self._info(t) for t in meta.get("outputs", [])]
        if not self._inputs or not self._outputs:
            raise ModelError(f"model {model} on {url}: the server lists no inputs or outputs for it")

    @staticmethod
    def _info(tensor: dict) -> TensorInfo:
        dtype = tensor.get("datatype", "")
        return TensorInfo(tensor["name"], [int(d) for d in tensor.get("shape", [])], KSERVE_DTYPES.get(dtype, dtype))

    def _call(self, fn, what: str):
        try:
            return fn()
        except self._server_error as err:
            reason = (err.message() or str(err)).strip().splitlines()
            raise ModelError(f"model {self.model} on {self.url}: {what} ({reason[0] if reason else 'no reason'})") \
                from err

    # -- what the decoders use --
    def get_inputs(self) -> list[TensorInfo]:
        return self._inputs

    def get_outputs(self) -> list[TensorInfo]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return [self.url]

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        grpc = self._grpc
        inputs = []
        for name, array in feeds.items():
            array = np.ascontiguousarray(array)
            tensor = grpc.InferInput(name, list(array.shape), self._kserve_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        wanted = names or [o.name for o in self._outputs]
        start = time.perf_counter()
        result = self._call(lambda: self.client.infer(self.model, inputs,
                                                      outputs=[grpc.InferRequestedOutput(n) for n in wanted],
                                                      client_timeout=self.timeout_s), "inference failed")
        with self._lock:
            self.round_trips_ms.append((time.perf_counter() - start) * 1000)
        outputs = [result.as_numpy(n) for n in wanted]
        if any(o is None for o in outputs):
            raise ModelError(f"model {self.model} on {self.url}: the answer lacks outputs the decoder needs")
        return outputs

    def close(self) -> None:
        self.client.close()

