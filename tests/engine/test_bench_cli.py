"""`faceanon bench` smoke test on the real sample clip with a tiny budget and small sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT
from faceanon.bench.stages import STAGES
from faceanon.cli import main
from faceanon.detect import bundled_manifests

SAMPLE = ROOT / "addon" / "faceanon" / "samples" / "face-demographics-walking.gif"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_smoke(tmp_path: Path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, err = run(capsys, "bench", "--clip", SAMPLE, "--seconds", "0.5", "--sizes", "160x90,320x180",
                            "--json", out)
    assert code == 0, err
    assert "per-stage median ms per frame" in stdout and "of ceiling" in stdout
    doc = json.loads(out.read_text())
    assert set(doc["stages"]) == {"160x90", "320x180"}
    for size, r in doc["stages"].items():
        assert r["frames"] >= 4, size  # at least one round
        assert set(r["pipeline_ms"]) == {*STAGES, "total"}
        assert all(v >= 0 for v in r["pipeline_ms"].values())
        # The baseline (decode + encode) is part of the pipeline's work, so it is the ceiling.
        assert r["baseline_fps"] > r["pipeline_fps"] > 0
        assert 0 < r["ratio"] < 1
        assert f"{size}" in stdout
    # Every bundled model is timed at every size.
    assert set(doc["models"]) == set(bundled_manifests())
    for name, r in doc["models"].items():
        assert r["160x90"] > 0 and r["320x180"] > 0, name
        assert any(line.split()[:1] == [name] for line in stdout.splitlines())


def test_bench_bad_model_and_clip(tmp_path: Path, capsys):
    code, stdout, err = run(capsys, "bench", "--clip", SAMPLE, "--seconds", "0.2", "--sizes", "96x64",
                            "--models", "retinaface,nosuchmodel")
    assert code == 1
    assert "faceanon: unknown model 'nosuchmodel'" in err
    assert "nosuchmodel  error: unknown model" in stdout  # the table still has the row, and retinaface's
    assert any(line.split()[:1] == ["retinaface"] for line in stdout.splitlines())
    bad = tmp_path / "clip.avi"
    bad.write_text("not a video")
    code, _, err = run(capsys, "bench", "--clip", bad, "--seconds", "0.2")
    assert code == 1 and err.strip() == f"faceanon: {bad}: no frame could be decoded (missing, corrupt or not a video)"
    assert run(capsys, "bench", "--sizes", "640by360")[0] == 2


@pytest.mark.parametrize("name", ["service", "privacy"])
def test_bench_subcommand_dispatch(name: str):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", name, "--help"])
    assert exit_info.value.code == 0


def test_the_bench_keeps_to_its_budget_however_slow_a_look_is(monkeypatch) -> None:
    """A looker that takes 10 s a call (virtual time): past the bench's limit each pair gets one timed call in the
    first round and no more, instead of two full rounds and a warm-up pass (547 s for a stated 30 s before)."""
    import numpy as np
    from faceanon.bench import stages

    clock = [1000.0]
    monkeypatch.setattr(stages.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(stages.time, "perf_counter", lambda: clock[0])

    def slow(_frame) -> None:
        clock[0] += 10.0

    frames = {(640, 360): np.zeros((360, 640, 3), np.uint8), (1280, 720): np.zeros((720, 1280, 3), np.uint8)}
    out = stages.measure_lookers({"a": slow, "b": slow}, frames, budget_s=5.0, give_up=clock[0] + 60.0)
    # The first pair: 1 untimed + 4 timed calls (50 s); past the limit the other three get 1 untimed + 1 timed.
    assert clock[0] == 1000.0 + 50.0 + 3 * 20.0
    assert out["a"]["runs"] == 1
    assert all(out[n][s] == 10_000.0 for n in "ab" for s in ("640x360", "1280x720"))
    # Whole plans (every_pair off): past the limit the rest is left unmeasured.
    clock[0] = 1000.0
    out = stages.measure_lookers({"a": slow, "b": slow}, frames, budget_s=5.0, give_up=clock[0] + 60.0,
                                 every_pair=False)
    assert clock[0] == 1000.0 + 50.0 + 20.0
    measured = [out[n][s] for n in "ab" for s in ("640x360", "1280x720")]
    assert sum(v == v for v in measured) == 2  # the other two are NaN
    assert out["a"]["runs"] == 1  # no empty rounds spun until the budget's end


def test_bench_service_json_has_the_tables_fields() -> None:
    from faceanon.bench.service import Row, rows_json

    row = Row("pipeline", 4, 4.95, 80.0, 140.0, 30.0, 60.0, 0.35, 0, 400.0, 410.0)
    doc = rows_json([row], 5.0, (1280, 720))
    assert doc["size"] == "1280x720" and doc["fps"] == 5.0 and doc["cores"] >= 1
    run = doc["runs"][0]
    assert {k: run[k] for k in ("label", "cameras", "fps", "latency_p50", "latency_p95", "cpu_share")} == {
        "label": "pipeline", "cameras": 4, "fps": 4.95, "latency_p50": 80.0, "latency_p95": 140.0, "cpu_share": 0.35}


def test_where_a_cameras_cpu_goes_adds_up(tmp_path: Path) -> None:
    """bench service's stage table: each stage of one live camera's frame timed on its own (process CPU), every
    stage of the live preset present, the total their sum."""
    import asyncio
    import shutil

    from faceanon.bench.costs import STAGES, camera_costs
    from faceanon.bench.service import bench_clip, service_config

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is needed to make the bench clip (apt-get install ffmpeg)")
    with bench_clip((320, 180)) as clip:
        cfg = service_config(clip, 1, 5.0, None, None)
        result = asyncio.run(camera_costs(cfg["cameras"][0], cfg["detector"], clip, frames=9))
    assert set(result["ms"]) == set(STAGES) and result["frames"] == 9
    assert result["ms"]["whole"] > 0 and result["ms"]["jpeg"] > 0 and result["ms"]["decode"] > 0
    assert result["ms"]["people"] == 0  # target face: no person look
    assert abs(result["total_ms"] - sum(result["ms"].values())) < 1e-6
