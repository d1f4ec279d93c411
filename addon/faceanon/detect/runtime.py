"""onnxruntime sessions tuned for small edge CPUs, with a selectable execution provider."""

from __future__ import annotations

import contextlib
import os

import onnxruntime as ort

from faceanon.detect.manifest import ModelError

# Short names users type, mapped to onnxruntime's provider names.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}


def default_threads() -> int:
    # Two intra-op threads were 1.45-1.8x faster than one on a 2-core box; more than the cores only adds spinning.
    return max(1, min(4, os.cpu_count() or 1))


def create_session(model_bytes: bytes, name: str, provider: str = "cpu", threads: int | None = None):
    """Build an InferenceSession; raise ModelError with the reason when the provider or the file is unusable."""
    wanted = PROVIDERS.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if wanted not in available:
        raise ModelError(f"execution provider {provider!r} is not installed here (available: "
                         f"{', '.join(available)})")
    with contextlib.suppress(AttributeError):  # no usage telemetry from a privacy product (a no-op on Linux builds)
        ort.disable_telemetry_events()
    opts = ort.SessionOptions()
    # ORT_ENABLE_ALL adds NCHWc layouts and weight pre-packing: about 2x on CenterFace versus EXTENDED.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    providers = [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]
    try:
        return ort.InferenceSession(model_bytes, sess_options=opts, providers=providers)
    except Exception as err:  # onnxruntime raises several private exception types
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"model {name}: onnxruntime cannot load it ({first_line})") from err
