"""Face detection: one interface (`FaceDetector`), one decoder per model family, models described by manifests."""

from __future__ import annotations

from faceanon.detect.base import FaceDetector, Faces, ModelMismatch, box_iou, nms
from faceanon.detect.canary import check_canary
from faceanon.detect.centerface import CenterFace
from faceanon.detect.fasterrcnn import FasterRCNN
from faceanon.detect.manifest import DEFAULT_MODEL, Manifest, ModelError, bundled_manifests, resolve
from faceanon.detect.nanodet import NanoDet
from faceanon.detect.remote import RemoteSession, is_remote
from faceanon.detect.retinaface import RetinaFace
from faceanon.detect.runtime import create_session
from faceanon.detect.scrfd import SCRFD
from faceanon.detect.yunet import YuNet

FAMILIES: dict[str, type[FaceDetector]] = {
    cls.family: cls for cls in (CenterFace, RetinaFace, FasterRCNN, YuNet, SCRFD, NanoDet)
}
DEFAULT_THRESHOLDS = {"centerface": 0.5, "retinaface": 0.35, "fasterrcnn": 0.5, "yunet": 0.6, "scrfd": 0.5,
                      "nanodet": 0.4}


def load_detector(model: str | None = None, family: str | None = None, provider: str = "cpu",
                  threads: int | None = None) -> FaceDetector:
    """Resolve, verify and load a model, and check it on the canary image; raise ModelError naming the model and
    the reason on any failure. Every camera and command loads its models through this."""
    detector = open_detector(model, family, provider, threads)
    try:
        check_canary(detector)
    except ModelError:
        raise
    except Exception as err:  # a graph that fails on a real image is as broken as one that finds nothing
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelError(f"model {detector.manifest.name}: fails on the canary image ({first})") from err
    return detector


def open_detector(model: str | None = None, family: str | None = None, provider: str = "cpu",
                  threads: int | None = None) -> FaceDetector:
    """The decoder on an onnxruntime session (or, for a provider `grpc://host:port`, on the same model served by a
    KServe v2 server under its name), without the canary: for tests of a decoder on synthetic graphs."""
    manifest = resolve(model, family)
    cls = FAMILIES.get(manifest.family)
    if cls is None:
        raise ModelError(f"model {manifest.name}: unknown family {manifest.family!r} "
                         f"(known: {', '.join(sorted(FAMILIES))})")
    if is_remote(provider):
        session = RemoteSession(provider, manifest.name)
    else:
        session = create_session(manifest.verify(), manifest.name, provider, threads)
    try:
        return cls(session, manifest)
    except ModelMismatch as err:
        raise ModelError(f"model {manifest.name}: its inputs/outputs do not match family "
                         f"{manifest.family} ({err})") from err


def load_models(names: list[str], family: str | None = None, provider: str = "cpu",
                threads: int | None = None) -> dict[str, FaceDetector]:
    """Load several models (a plan's: `family` applies to the first, a user's .onnx); ModelError on the first
    that cannot load."""
    return {name: load_detector(name, family if i == 0 else None, provider, threads) for i, name in enumerate(names)}


__all__ = ["DEFAULT_MODEL", "FAMILIES", "FaceDetector", "Faces", "Manifest", "ModelError", "box_iou",
           "bundled_manifests", "load_detector", "load_models", "nms", "open_detector", "resolve"]
