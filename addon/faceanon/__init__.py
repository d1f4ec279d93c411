"""faceanon: real-time face anonymization for surveillance camera streams, images and video, fail closed."""

import os

# onnxruntime's official Linux builds (1.32 here) write a device id under ~/.cache/Microsoft/DeveloperTools and a
# session file in $TMPDIR, for usage telemetry, unless told otherwise before the library is first imported; its
# runtime switch (disable_telemetry_events) does not stop that. ORT_DISABLE_TELEMETRY is the name these builds
# read, ORT_TELEMETRY_DISABLED the documented one of later releases. A user who sets either keeps their value.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ORT_TELEMETRY_DISABLED", "1")


def version() -> str:
    """The running faceanon's version: the installed distribution's; in the add-on image, where the code runs from
    its folder without package metadata, the app's own version (FACEANON_VERSION, set from the Supervisor's
    BUILD_VERSION, which is config.yaml's); else 0+unknown."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("faceanon")
    except PackageNotFoundError:
        return os.environ.get("FACEANON_VERSION") or "0+unknown"
