"""Export a torchvision Faster R-CNN checkpoint to the ONNX format faceanon's `fasterrcnn` family reads, check the
ONNX against torch on a real image, and print its sha256 (optionally write a manifest beside it).

The graph takes one unbatched (3,H,W) float RGB [0,1] image of any size and returns `boxes` (N,4, input pixels),
`labels` (N,) and `scores` (N,). Normalisation, any resize and the mapping back to input pixels are inside it.
Needs torch + torchvision (a separate venv; the engine itself needs neither):

    python tools/models/export_fasterrcnn.py --arch small --checkpoint run/last.pt \\
        --out addon/faceanon/models/fasterrcnn_faces_small.onnx
    python tools/models/export_fasterrcnn.py --arch mobilenet_v3_large_fpn --checkpoint my_faces.pth --min-size 720 \\
        --max-size 1280 --out my_faces.onnx --manifest my_faces --threshold 0.6

Pitfalls handled (torch 2.14 / torchvision 0.29): the dynamo exporter fails on torchvision's batched NMS, so this uses
the TorchScript exporter (dynamo=False) at opset 17, with the input passed as a list inside a tuple.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"
TORCHVISION_ARCHS = ("mobilenet_v3_large_fpn", "mobilenet_v3_large_320_fpn", "resnet50_fpn", "resnet50_fpn_v2")


def build(args: argparse.Namespace):
    """The architecture with random weights (never downloads anything), ready for the checkpoint."""
    if args.arch == "small":
        sys.path.insert(0, str(HERE))
        from train_fasterrcnn import build_small

        return build_small(args.min_size, args.max_size, args.rpn_pre_nms_top_n, args.rpn_post_nms_top_n,
                           args.detections)
    from torchvision.models import detection

    sizes = {"min_size": args.min_size, "max_size": args.max_size} if args.min_size else {}
    return getattr(detection, f"fasterrcnn_{args.arch}")(
        weights=None, weights_backbone=None, num_classes=args.num_classes,
        rpn_pre_nms_top_n_test=args.rpn_pre_nms_top_n, rpn_post_nms_top_n_test=args.rpn_post_nms_top_n,
        box_detections_per_img=args.detections, box_score_thresh=args.score_thresh, **sizes)


def load_checkpoint(model, path: Path) -> None:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:  # our training checkpoints; torchvision's references too
        state = state["model"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{path}: does not fit --arch (missing {missing[:3]}…, unexpected {unexpected[:3]}…)")


def read_image(path: Path) -> np.ndarray:
    """First decodable frame of an image or clip (BGR)."""
    cap = cv2.VideoCapture(str(path))
    for _ in range(20):  # a frame with the walkers well inside the picture
        ok, frame = cap.read()
    cap.release()
    if not ok:
        frame = cv2.imread(str(path))
    if frame is None:
        raise SystemExit(f"{path}: cannot read an image from it")
    return frame


def to_chw(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).transpose(2, 0, 1), np.float32) / 255


def verify(model, onnx_path: Path, image: np.ndarray, tol: float) -> None:
    """The ONNX graph must give torch's boxes and scores, on the image and on a resized copy (dynamic H, W)."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    h, w = image.shape[:2]
    for img in (image, cv2.resize(image, (w * 3 // 2, h * 3 // 2))):
        x = to_chw(img)
        with torch.no_grad():
            ref = model([torch.from_numpy(x)])[0]
        boxes, _labels, scores = session.run(["boxes", "labels", "scores"], {"images": x})
        t_boxes, t_scores = ref["boxes"].numpy(), ref["scores"].numpy()
        # Compare the confident part: low-score tails may tie and be cut at a different place.
        keep_t, keep_o = t_scores >= 0.1, scores >= 0.1
        if keep_t.sum() != keep_o.sum():
            raise SystemExit(f"verify {img.shape[1]}x{img.shape[0]}: torch gives {keep_t.sum()} boxes >= 0.1, "
                             f"onnx {keep_o.sum()}")
        db = float(np.abs(t_boxes[keep_t] - boxes[keep_o]).max()) if keep_t.any() else 0.0
        ds = float(np.abs(t_scores[keep_t] - scores[keep_o]).max()) if keep_t.any() else 0.0
        print(f"verify {img.shape[1]}x{img.shape[0]}: {int(keep_t.sum())} boxes >= 0.1 in both, "
              f"max |box diff| {db:.4f} px, max |score diff| {ds:.5f}")
        if db > tol or ds > 1e-3:
            raise SystemExit("verify: the ONNX graph does not reproduce torch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="small", choices=("small", *TORCHVISION_ARCHS),
                    help="small: ours (train_fasterrcnn.py); others: torchvision's fasterrcnn_<arch>")
    ap.add_argument("--checkpoint", type=Path, required=True, help="state_dict, or a dict with a 'model' key")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--num-classes", type=int, default=2, help="background + face (torchvision archs)")
    ap.add_argument("--min-size", type=int, default=0,
                    help="short side the graph resizes to; 0: keep the input size (small) / torchvision's 800")
    ap.add_argument("--max-size", type=int, default=0, help="long-side cap of that resize")
    ap.add_argument("--rpn-pre-nms-top-n", type=int, default=300, help="proposals per level before NMS")
    ap.add_argument("--rpn-post-nms-top-n", type=int, default=100, help="RoIs the box head sees: the CPU cost")
    ap.add_argument("--detections", type=int, default=100, help="box_detections_per_img")
    ap.add_argument("--score-thresh", type=float, default=0.05, help="lowest score the graph returns")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--image", type=Path, default=SAMPLE, help="real image (or clip) to verify ONNX against torch")
    ap.add_argument("--tol", type=float, default=0.05, help="largest box difference accepted, in pixels")
    ap.add_argument("--manifest", metavar="NAME", help="also write <out>.json naming the model NAME")
    ap.add_argument("--threshold", type=float, default=0.5, help="score threshold for the manifest")
    ap.add_argument("--face-label", type=int, default=1, help="class index of 'face' in the checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model = build(args)
    load_checkpoint(model, args.checkpoint)
    model.eval()
    image = read_image(args.image)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, ([torch.from_numpy(to_chw(image))],), str(args.out), dynamo=False, opset_version=args.opset,
        input_names=["images"], output_names=["boxes", "labels", "scores"],
        dynamic_axes={"images": {1: "H", 2: "W"}, "boxes": {0: "N"}, "labels": {0: "N"}, "scores": {0: "N"}})
    verify(model, args.out, image, args.tol)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, sha256 {digest}")
    if args.manifest:
        manifest = {"name": args.manifest, "family": "fasterrcnn", "file": args.out.name, "sha256": digest,
                    "threshold": args.threshold, "input_multiple": 1, "license": "user supplied",
                    "origin": f"export_fasterrcnn.py --arch {args.arch} --checkpoint {args.checkpoint.name}",
                    "options": {"face_label": args.face_label}}
        path = args.out.with_suffix(".json")
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
