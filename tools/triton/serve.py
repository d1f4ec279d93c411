"""Serve ONNX face models over the KServe v2 protocol with NVIDIA PyTriton (tritonserver + its Python backend).

    python tools/triton/serve.py --grpc-port 8001 --http-port 8000 yunet=path/to/yunet_n.onnx [name=file.onnx ...]

Each model is served under the name given (faceanon asks for a model by its manifest name: `centerface`,
`centerface-int8`, `yunet`, `retinaface`, ...), with the ONNX graph's own input and output names, so
`detector: {provider: kserve, url: grpc://host:8001}` decodes its answers exactly like a local model. Inference
runs in onnxruntime inside the server (onnxruntime-gpu on a GPU box). A stock Triton with its onnxruntime backend
serves the same files from a model repository (`<name>/1/model.onnx`) and needs none of this.

This is a tool, not part of the package: PyTriton's stub links the system libpython, so run it from a venv made with
the system Python (`/usr/bin/python3 -m venv v && v/bin/pip install nvidia-pytriton onnxruntime`).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import onnxruntime as ort
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def tensors(args: list) -> list[Tensor]:
    """The graph's inputs or outputs as Triton tensors: fixed dimensions kept (a decoder checks them), -1 elsewhere."""
    return [Tensor(name=a.name, dtype=DTYPES[a.type], shape=tuple(d if isinstance(d, int) else -1 for d in a.shape))
            for a in args]


def infer_function(session: ort.InferenceSession):
    names = [o.name for o in session.get_outputs()]

    def infer(requests: list) -> list[dict[str, np.ndarray]]:
        # No server-side batching: each request is one client's whole tensor, answered on its own.
        return [dict(zip(names, session.run(names, dict(request.items())), strict=True)) for request in requests]

    return infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME=FILE.onnx")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads per model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = TritonConfig(grpc_address=args.host, grpc_port=args.grpc_port, http_address=args.host,
                          http_port=args.http_port, metrics_port=args.metrics_port, log_verbose=0)
    with Triton(config=config) as triton:
        for spec in args.models:
            name, _, path = spec.partition("=")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.log_severity_level = 3
            session = ort.InferenceSession(path, sess_options=opts, providers=ort.get_available_providers())
            triton.bind(model_name=name, infer_func=infer_function(session), inputs=tensors(session.get_inputs()),
                        outputs=tensors(session.get_outputs()), config=ModelConfig(batching=False))
        print("serving", ", ".join(spec.partition("=")[0] for spec in args.models), flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
