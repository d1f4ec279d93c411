"""`faceanon bench service`: the live pipeline under load, measured the way a user sizes a box.

For 1, 2 and 4 cameras of 1280x720 at 5 fps each (a real clip with faces, scaled to 1280x720 H.264, read as looped
file sources paced at the clip's frame rate), it reports per-camera output fps, frame-to-publish latency p50/p95
(source read -> anonymized JPEG in the feed), detector latency, CPU share per camera (process CPU time / wall /
cameras) and RSS at start and end; `--restream` adds a run with the RTSP restream's H.264 encoder on every camera
and reports its CPU. A baseline with the same sources doing only decode + JPEG encode is measured in
the same run and printed as a CPU ratio. Then where one camera's CPU goes, stage by stage (faceanon.bench.costs).
`--minutes N` soaks the largest camera count that long, sampling RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from faceanon.config import SAMPLE_CLIP, validate
from faceanon.detect.shared import Detectors
from faceanon.feed import encode_jpeg, percentile
from faceanon.mask import TARGETS
from faceanon.pipeline import CameraPipeline
from faceanon.publish.restream import CameraRestream
from faceanon.source import FileSource

WARMUP_S = 3.0


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextlib.contextmanager
def bench_clip(size: tuple[int, int], source: Path | None = None) -> Iterator[Path]:
    """A looped H.264 MP4 of people walking at `size` (ffmpeg), deleted afterwards."""
    src = source or SAMPLE_CLIP
    if src.suffix.lower() in (".mp4", ".mkv", ".avi") and source is not None:
        yield src
        return
    if not shutil.which("ffmpeg"):
        raise SystemExit("faceanon bench service: ffmpeg is needed to make the 1280x720 H.264 test clip")
    with tempfile.TemporaryDirectory(prefix="faceanon-bench-") as tmp:
        out = Path(tmp) / f"clip{size[0]}x{size[1]}.mp4"
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "3", "-i", str(src),
                        "-vf", f"scale={size[0]}:{size[1]},fps=10", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        "-g", "10", "-bf", "0", str(out)], check=True, timeout=300)
        yield out


@dataclass
class Row:
    label: str
    cameras: int
    fps: float  # mean output fps per camera
    latency_p50: float
    latency_p95: float
    detect_p50: float
    detect_p95: float
    cpu_share: float  # process CPU seconds per wall second, per camera
    dropped: int
    rss_start: float
    rss_end: float
    encoder_share: float = 0.0  # H.264 restream encoder CPU per wall second, per camera
    encode_ms: float = 0.0  # mean per encoded frame


class Window:
    """CPU and wall time over a measuring window."""

    def __enter__(self) -> Window:
        self.wall, self.cpu = time.monotonic(), time.process_time()
        return self

    def __exit__(self, *_exc) -> None:
        self.wall, self.cpu = time.monotonic() - self.wall, time.process_time() - self.cpu


def service_config(clip: Path, cameras: int, fps: float, model: str | None, detect_size: int | None,
                   target: str = "face") -> dict:
    """`cameras` cameras on the clip, with the service's defaults unless the bench was told otherwise."""
    extra = {"target": target, **({} if detect_size is None else {"detect_size": detect_size})}
    return validate({"cameras": [{"name": f"cam{i}", "url": str(clip), "detect_fps": fps, **extra}
                                 for i in range(cameras)],
                     "detector": {} if model is None else {"model": model}})


class Watcher:
    """Stands in for an RTSP client on a camera's mount: always watching, takes the access units (the built-in
    server's own cost per client, RTP packetization, is small next to the encoder's)."""

    watched = True

    def __init__(self) -> None:
        self.bytes = 0
        self.on_client = lambda: None

    def push(self, data: bytes) -> None:
        self.bytes += len(data)


async def measure_pipeline(clip: Path, cameras: int, fps: float, seconds: float, model: str | None,
                           detect_size: int | None, restream: bool = False, target: str = "face") -> Row:
    rss_start = rss_mb()
    cfg = service_config(clip, cameras, fps, model, detect_size, target)
    detectors = Detectors(cfg["detector"], len(cfg["cameras"]))
    pipelines = [CameraPipeline(cam, detectors) for cam in cfg["cameras"]]
    tasks = [asyncio.create_task(p.run()) for p in pipelines]
    streams = [CameraRestream(p.feed, fps, cfg["rtsp"]["keyframe_seconds"], Watcher()) for p in pipelines] \
        if restream else []
    tasks += [asyncio.create_task(s.run()) for s in streams]
    try:
        await asyncio.sleep(WARMUP_S)
        encoded = [(s.encode_ms, s.encoder.frames if s.encoder else 0) for s in streams]
        for p in pipelines:  # keep every sample of the window, not the feed's rolling 200
            p.feed.latency_ms = deque(maxlen=100000)
            p.feed.detect_ms = deque(maxlen=100000)
        seqs = [p.feed.seq for p in pipelines]
        drops = [p.feed.status()["dropped_frames"] for p in pipelines]
        with Window() as win:
            await asyncio.sleep(seconds)
        frames = [p.feed.seq - s for p, s in zip(pipelines, seqs, strict=True)]
        latency = [ms for p in pipelines for ms in p.feed.latency_ms]
        detect = [ms for p in pipelines for ms in p.feed.detect_ms]
        dropped = sum(p.feed.status()["dropped_frames"] - d for p, d in zip(pipelines, drops, strict=True))
        degraded = [p.name for p in pipelines if p.feed.privacy_degraded]
        enc_ms = sum(s.encode_ms - e for s, (e, _) in zip(streams, encoded, strict=True))
        enc_frames = sum((s.encoder.frames if s.encoder else 0) - n for s, (_, n) in zip(streams, encoded,
                                                                                          strict=True))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(p.stop() for p in pipelines))
    kind = "restream" if restream else "pipeline" if target == "face" else target
    label = kind + (f" (degraded: {', '.join(degraded)})" if degraded else "")
    return Row(label, cameras, sum(frames) / cameras / win.wall, percentile(latency, 50), percentile(latency, 95),
               percentile(detect, 50), percentile(detect, 95), win.cpu / win.wall / cameras, dropped, rss_start,
               rss_mb(), enc_ms / 1000 / win.wall / cameras if restream else 0.0,
               enc_ms / enc_frames if restream and enc_frames else 0.0)


async def measure_baseline(clip: Path, cameras: int, fps: float, seconds: float) -> Row:
    """The same sources, but each frame only JPEG-encoded: what any restreamer pays anyway."""
    rss_start = rss_mb()
    loop = asyncio.get_running_loop()
    sources = [FileSource(f"base{i}", str(clip), fps) for i in range(cameras)]
    counts = [0] * cameras
    latency: list[float] = []
    measuring = False

    async def consume(i: int, source: FileSource) -> None:
        arrived = asyncio.Event()
        source.mailbox.notify = lambda: loop.call_soon_threadsafe(arrived.set)
        while True:
            await arrived.wait()
            arrived.clear()
            frame = source.mailbox.take()
            if frame is None:
                continue
            await loop.run_in_executor(None, encode_jpeg, frame.image)
            if measuring:
                counts[i] += 1
                latency.append((time.monotonic() - frame.captured) * 1000)

    for s in sources:
        s.start()
    tasks = [asyncio.create_task(consume(i, s)) for i, s in enumerate(sources)]
    try:
        await asyncio.sleep(WARMUP_S)
        drops = [s.dropped for s in sources]
        measuring = True
        with Window() as win:
            await asyncio.sleep(seconds)
        measuring = False
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in sources))
    dropped = sum(s.dropped - d for s, d in zip(sources, drops, strict=True))
    return Row("baseline", cameras, sum(counts) / cameras / win.wall, percentile(latency, 50),
               percentile(latency, 95), 0.0, 0.0, win.cpu / win.wall / cameras, dropped, rss_start, rss_mb())


def print_table(rows: list[Row], fps: float, size: tuple[int, int]) -> None:
    print(f"\nfaceanon bench service: {size[0]}x{size[1]} at {fps:g} fps per camera, "
          f"{_cores()} CPU cores; latency = source read -> anonymized JPEG published")
    head = (f"{'run':<10} {'cams':>4} {'fps/cam':>8} {'lat p50':>8} {'lat p95':>8} {'det p50':>8} {'det p95':>8} "
            f"{'CPU/cam':>8} {'vs base':>8} {'dropped':>8} {'RSS MB':>14}")
    print(head)
    print("-" * len(head))
    base = {r.cameras: r for r in rows if r.label == "baseline"}
    for r in rows:
        ratio = ""
        if r.label != "baseline" and r.cameras in base and base[r.cameras].cpu_share > 0:
            ratio = f"{r.cpu_share / base[r.cameras].cpu_share:.1f}x"
        print(f"{r.label.split(' ')[0]:<10} {r.cameras:>4} {r.fps:>8.2f} {r.latency_p50:>6.0f}ms "
              f"{r.latency_p95:>6.0f}ms {r.detect_p50:>6.0f}ms {r.detect_p95:>6.0f}ms {r.cpu_share * 100:>7.0f}% "
              f"{ratio:>8} {r.dropped:>8} {r.rss_start:>6.0f}->{r.rss_end:<6.0f}")
        if "(degraded" in r.label:
            print(f"  note: {r.label}")
    plain = {r.cameras: r for r in rows if r.label.startswith("pipeline")}
    for r in rows:
        if r.label.startswith("restream") and r.cameras in plain:
            extra = (r.cpu_share - plain[r.cameras].cpu_share) * 100
            print(f"restream, {r.cameras} camera(s): H.264 encoding {r.encode_ms:.1f} ms per frame "
                  f"({r.encoder_share * 100:.0f}% of the wall time per camera); CPU per camera {extra:+.0f}% of a core "
                  f"over the run without it (libx264 ultrafast, one encode however many clients)")
    print("CPU/cam: process CPU time / wall time / cameras (100% = one core). vs base: CPU of the pipeline over the "
          "decode+JPEG-only baseline with the same cameras.")


def rows_json(rows: list[Row], fps: float, size: tuple[int, int], costs: dict | None = None) -> dict:
    """What the tables show, as `--json` writes it: {"fps", "size", "cores", "runs": [{"label", "cameras", "fps"
    (per camera), "latency_p50", "latency_p95" (ms), "cpu_share" (per camera, 1.0 = a core), ...}], "stages":
    {"frames", "ms": {stage: CPU ms per frame}, "total_ms"} (one camera, faceanon.bench.costs)}."""
    return {"fps": fps, "size": f"{size[0]}x{size[1]}", "cores": _cores(), "runs": [asdict(r) for r in rows],
            "stages": costs or {}}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


async def soak(clip: Path, cameras: int, fps: float, minutes: float, model: str | None,
               detect_size: int | None) -> None:
    """Run `cameras` pipelines for `minutes`, printing RSS every 30 s: memory must stay flat."""
    cfg = service_config(clip, cameras, fps, model, detect_size)
    detectors = Detectors(cfg["detector"], len(cfg["cameras"]))
    pipelines = [CameraPipeline(cam, detectors) for cam in cfg["cameras"]]
    tasks = [asyncio.create_task(p.run()) for p in pipelines]
    samples: list[float] = []
    try:
        await asyncio.sleep(WARMUP_S)
        end = time.monotonic() + minutes * 60
        while True:
            samples.append(rss_mb())
            frames = sum(p.feed.seq for p in pipelines)
            print(f"soak: {len(samples) * 30 - 30:>5d}s  RSS {samples[-1]:7.1f} MB  frames {frames}", flush=True)
            if time.monotonic() >= end:
                break
            await asyncio.sleep(min(30.0, max(0.0, end - time.monotonic())))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(p.stop() for p in pipelines))
    later = samples[len(samples) // 2:]
    print(f"soak: RSS start {samples[0]:.1f} MB, end {samples[-1]:.1f} MB, growth over the second half "
          f"{later[-1] - later[0]:+.1f} MB")


async def _run(cameras: list[int], fps: float, seconds: float, size: tuple[int, int], minutes: float,
               clip_path: Path | None, model: str | None, detect_size: int | None,
               restream: bool = False, targets: tuple[str, ...] = ("face",),
               costs: dict | None = None) -> list[Row]:
    """The runs' rows; with `costs` (a dict), also where one camera's CPU goes (faceanon.bench.costs) into it."""
    rows: list[Row] = []
    with bench_clip(size, clip_path) as clip:
        cap = cv2.VideoCapture(str(clip))
        ok, _ = cap.read()
        cap.release()
        if not ok:
            raise SystemExit(f"faceanon bench service: cannot read {clip}")
        for n in cameras:
            rows.append(await measure_baseline(clip, n, fps, seconds))
            for target in targets:
                rows.append(await measure_pipeline(clip, n, fps, seconds, model, detect_size, target=target))
            if restream:
                rows.append(await measure_pipeline(clip, n, fps, seconds, model, detect_size, restream=True))
        print_table(rows, fps, size)
        if costs is not None:
            from faceanon.bench.costs import camera_costs, print_costs

            cfg = service_config(clip, 1, fps, model, detect_size)
            costs.update(await camera_costs(cfg["cameras"][0], cfg["detector"], clip))
            print_costs(costs, cfg["cameras"][0], size)
        if minutes > 0:
            await soak(clip, max(cameras), fps, minutes, model, detect_size)
    return rows


def run(cameras: list[int] | None = None, fps: float = 5.0, seconds: float = 20.0,
        size: tuple[int, int] = (1280, 720), minutes: float = 0.0, clip: str | Path | None = None,
        model: str | None = None, detect_size: int | None = None, restream: bool = False,
        targets: tuple[str, ...] = ("face",), costs: dict | None = None) -> list[Row]:
    """Measure and print the table; returns the rows (and fills `costs`, when given: the stage table)."""
    return asyncio.run(_run(cameras or [1, 2, 4], fps, seconds, size, minutes,
                            Path(clip) if clip else None, model, detect_size, restream, targets, costs))


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected camera counts like 1,2,4, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("camera counts must be 1 or more")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faceanon bench service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=parse_counts, default=[1, 2, 4], help="camera counts (default 1,2,4)")
    parser.add_argument("--fps", type=float, default=5.0, help="detect_fps per camera (default 5)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per run (default 20)")
    parser.add_argument("--size", type=parse_size, default=(1280, 720), help="frame size (default 1280x720)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="then soak the largest camera count this long, sampling RSS (e.g. 10)")
    parser.add_argument("--clip", help="video to use (default: the bundled sample clip, scaled with ffmpeg)")
    parser.add_argument("--model", help="detector model (default: the service's)")
    parser.add_argument("--detect-size", type=int, help="cameras' detect_size (default: the service's)")
    parser.add_argument("--restream", action="store_true",
                        help="also run each count with the RTSP restream encoding every camera (a client on each)")
    parser.add_argument("--json", metavar="OUT.json", help="also write every row as JSON")
    parser.add_argument("--targets", default="face",
                        help="mask targets to run, e.g. face,head (head and person add the person detector; "
                             "default face)")
    args = parser.parse_args(argv)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    if not targets or any(t not in TARGETS for t in targets):
        parser.error(f"--targets: expected face, head and/or person, got {args.targets!r}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    costs: dict = {}
    rows = run(args.cameras, args.fps, args.seconds, args.size, args.minutes, args.clip, args.model,
               args.detect_size, args.restream, targets, costs)
    if args.json:
        from faceanon.media import MediaError, write_atomic

        try:
            doc = rows_json(rows, args.fps, args.size, costs)
            write_atomic(Path(args.json), (json.dumps(doc, indent=1) + "\n").encode())
        except MediaError as err:
            print(f"faceanon bench service: {err.line()}")
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
