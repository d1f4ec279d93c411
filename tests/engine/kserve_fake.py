"""A KServe v2 gRPC server on 127.0.0.1 that answers like a real one (the bundled ONNX models run in onnxruntime
behind it) until a test tells it to go bad: all-zero tensors, a 1x1 heat map, NaN, an output missing. This is the
inference server that passes faceanon's load-time canary and then misbehaves: the engine must notice on the next
frame and hold privacy.

It speaks the protocol through the service definitions tritonclient ships (the same ones NVIDIA Triton and OpenVINO
Model Server implement), on a real grpcio server.
"""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

MODES = ("ok", "zeros", "tiny", "nan", "missing", "reshaped")
DTYPES = {"tensor(float)": ("FP32", np.float32), "tensor(int64)": ("INT64", np.int64)}


def _tensors(args: list) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [pb.ModelMetadataResponse.TensorMetadata(name=a.name, datatype=DTYPES[a.type][0],
                                                    shape=[d if isinstance(d, int) else -1 for d in a.shape])
            for a in args]


class FakeKServe(rpc.GRPCInferenceServiceServicer):
    """Serves each model under its faceanon name. `mode` (any of MODES) says how the next answers go wrong."""

    def __init__(self, models: dict[str, Path]) -> None:
        self.sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                         for name, path in models.items()}
        self.mode = "ok"
        self.calls = 0
        self.lock = threading.Lock()
        self.server: grpc.Server | None = None
        self.port = 0

    # -- the protocol --
    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ModelMetadata(self, request, context):
        session = self.sessions.get(request.name)
        if session is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.name}")
        return pb.ModelMetadataResponse(name=request.name, versions=["1"], platform="onnxruntime_onnx",
                                        inputs=_tensors(session.get_inputs()), outputs=_tensors(session.get_outputs()))

    def ModelInfer(self, request, context):
        session = self.sessions[request.model_name]
        feeds = {}
        for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            feeds[tensor.name] = np.frombuffer(raw, np.float32).reshape(list(tensor.shape))
        names = [o.name for o in request.outputs] or [o.name for o in session.get_outputs()]
        with self.lock:
            self.calls += 1
            mode = self.mode
        arrays = session.run(names, feeds)
        arrays = [self._spoil(a, mode) for a in arrays]
        if mode == "missing":
            names, arrays = names[:-1], arrays[:-1]
        response = pb.ModelInferResponse(model_name=request.model_name, model_version="1")
        for name, array in zip(names, arrays, strict=True):
            datatype = "FP32" if array.dtype == np.float32 else "INT64"
            response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
            response.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
        return response

    @staticmethod
    def _spoil(array: np.ndarray, mode: str) -> np.ndarray:
        if mode == "zeros":
            return np.zeros_like(array)
        if mode == "tiny":  # a 1x1 map (or one element) of the right rank
            return np.zeros((1,) * array.ndim, array.dtype) + np.asarray(0.5, array.dtype)
        if mode == "nan" and array.dtype.kind == "f":
            return np.full_like(array, np.nan)
        if mode == "reshaped":  # the same values in another layout: a width and height swapped
            return np.ascontiguousarray(np.swapaxes(array, -1, -2)) if array.ndim >= 3 else array
        return array

    # -- lifecycle --
    def start(self) -> str:
        big = 256 * 1024 * 1024  # as Triton: a 4K frame's tensor is tens of MB
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  options=[("grpc.max_receive_message_length", big),
                                           ("grpc.max_send_message_length", big)])
        rpc.add_GRPCInferenceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self.url

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        assert mode in MODES
        with self.lock:
            self.mode = mode

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait(5)
