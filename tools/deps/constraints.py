"""The pinned versions every install uses (addon/constraints.txt): the add-on image (Python 3.13, amd64 and
aarch64, no compiler), the engine venv of ./tests/run (Python 3.11) and CI. Refreshed on purpose, never at a user's
install: `python tools/deps/constraints.py --write` resolves addon/requirements*.txt for each target and writes the
pins when all targets agree; without --write it checks that every target still resolves to binary wheels under the
pins (CI runs this, so a release without a cp313 aarch64 wheel shows here, not on a user's box)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon"
CONSTRAINTS = ADDON / "constraints.txt"
REQUIREMENTS = ("requirements.txt", "requirements-remote.txt")
# (machine, Python): the image's two arches on its Debian trixie Python, and the oldest Python the engine supports.
TARGETS = (("x86_64", "3.13"), ("aarch64", "3.13"), ("x86_64", "3.11"))
GLIBC = (17, 24, 27, 28, 31, 34, 35, 36, 38, 39, 41)  # manylinux tags up to trixie's glibc 2.41


def resolve(machine: str, python: str, constrained: bool) -> dict[str, str]:
    """{name: version} pip resolves for the target, binary wheels only; RuntimeError with pip's reason."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
               "--only-binary=:all:", "--implementation", "cp", "--python-version", python, "--target", tmp,
               "--report", str(report)]
        for minor in GLIBC:
            cmd += ["--platform", f"manylinux_2_{minor}_{machine}"]
        cmd += ["--platform", f"manylinux2014_{machine}", "--platform", f"linux_{machine}"]
        for name in REQUIREMENTS:
            cmd += ["-r", str(ADDON / name)]
        if constrained:
            cmd += ["-c", str(CONSTRAINTS)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            raise RuntimeError(f"{machine} Python {python}: {' '.join(lines)[:600] or done.stderr[-600:]}")
        items = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in items}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="resolve afresh and write addon/constraints.txt")
    args = parser.parse_args()
    found: dict[tuple[str, str], dict[str, str]] = {}
    for machine, python in TARGETS:
        try:
            found[(machine, python)] = resolve(machine, python, constrained=not args.write)
        except RuntimeError as err:
            print(f"constraints: {err}", file=sys.stderr)
            return 1
        print(f"constraints: {machine} Python {python}: {len(found[(machine, python)])} binary wheels")
    first = next(iter(found.values()))
    differ = [target for target, pins in found.items() if pins != first]
    if differ:
        print(f"constraints: the targets resolve differently ({differ}); pin by hand", file=sys.stderr)
        return 1
    if args.write:
        lines = [f"{name}=={version}" for name, version in sorted(first.items())]
        header = ("# Written by tools/deps/constraints.py --write (on purpose, reviewed): the versions every install\n"
                  "# uses (the add-on image, ./tests/run, CI). Binary wheels for cp313 amd64/aarch64 and cp311.\n")
        CONSTRAINTS.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
        print(f"constraints: wrote {len(lines)} pins to {CONSTRAINTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
