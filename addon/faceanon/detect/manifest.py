"""Model manifests: one JSON file per model beside its ONNX file, describing family, file, sha256 and licence."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "centerface"


class ModelError(ValueError):
    """A model cannot be found, verified or loaded. The message names the model and the reason."""


@dataclass(frozen=True)
class Manifest:
    name: str
    family: str
    file: Path
    sha256: str | None
    threshold: float
    license: str
    origin: str
    input_multiple: int = 32
    input_size: tuple[int, int] | None = None  # fixed (width, height) networks; None means dynamic
    options: dict = field(default_factory=dict)  # family-specific, e.g. {"face_label": 1}
    description: str = ""
    kind: str = "face"  # what its detections are: face, or person (a person detector: the head and person targets)

    @staticmethod
    def from_json(path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            size = data.get("input_size")
            return Manifest(
                name=data["name"],
                family=data["family"],
                file=(path.parent / data["file"]).resolve(),
                sha256=data.get("sha256"),
                threshold=float(data["threshold"]),
                license=data.get("license", "unknown"),
                origin=data.get("origin", "unknown"),
                input_multiple=int(data.get("input_multiple", 32)),
                input_size=tuple(size) if size else None,
                options=data.get("options", {}),
                description=data.get("description", ""),
                kind=str(data.get("kind", "face")),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(f"{path}: invalid model manifest ({err})") from err

    @staticmethod
    def for_file(path: Path, family: str, threshold: float | None = None) -> Manifest:
        """A manifest for a user's own ONNX file: no pinned checksum, the family's default threshold."""
        from faceanon.detect import DEFAULT_THRESHOLDS

        return Manifest(name=path.stem, family=family, file=path.resolve(), sha256=None,
                        threshold=threshold if threshold is not None else DEFAULT_THRESHOLDS.get(family, 0.5),
                        license="user supplied", origin=str(path))

    def verify(self) -> bytes:
        """Read the model file and check its sha256; return its bytes."""
        try:
            data = self.file.read_bytes()
        except OSError as err:
            raise ModelError(f"model {self.name}: cannot read {self.file} ({err.strerror})") from err
        if self.sha256 and hashlib.sha256(data).hexdigest() != self.sha256:
            raise ModelError(f"model {self.name}: {self.file} does not match its sha256 {self.sha256[:12]}…"
                             " (corrupt or replaced file)")
        return data


def bundled_manifests() -> dict[str, Manifest]:
    return {m.name: m for m in (Manifest.from_json(p) for p in sorted(MODELS_DIR.glob("*.json")))}


def resolve(model: str | None, family: str | None = None) -> Manifest:
    """A bundled model by name, or a path to an .onnx file (with --family) or to a manifest .json."""
    model = model or DEFAULT_MODEL
    bundled = bundled_manifests()
    if model in bundled:
        return bundled[model]
    path = Path(model)
    if path.suffix == ".json" and path.is_file():
        return Manifest.from_json(path)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        if family is None:
            raise ModelError(f"{path}: say which decoder family it needs (--family / model_family), one of "
                             f"{', '.join(sorted(_families()))}")
        return Manifest.for_file(path, family)
    raise ModelError(f"unknown model {model!r}: use one of {', '.join(sorted(bundled))}, "
                     "an .onnx file or a .json manifest")


def _families() -> set[str]:
    from faceanon.detect import FAMILIES

    return set(FAMILIES)
