#!/usr/bin/env bash
# Tests of the Home Assistant integration (custom_components/faceanon) in their own venv on Python 3.13,
# against the real faceanon service from the engine venv (FACEANON_ENGINE_PYTHON, default .venv/bin/python).
# Usage: tests/ha/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${FACEANON_HA_VENV:-.venv-ha}"
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c "import pytest_homeassistant_custom_component, turbojpeg, pytest_cov, mypy" 2>/dev/null; then
  PY="${FACEANON_HA_PYTHON:-$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python}"
  [ -x "$PY" ] || { echo "tests/ha: Python 3.13 not found at $PY (set FACEANON_HA_PYTHON)" >&2; exit 1; }
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q uv
  # HA 2026.2.3 declares Python >=3.13.2; 3.13.0 runs it (research/ha-newer.md), so uv resolves as 3.13.2.
  SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" UV_NATIVE_TLS=1 \
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --python-version 3.13.2 -r tests/ha/requirements.txt
fi
# Strict typing of the integration, against Home Assistant's own type hints (in this venv).
"$VENV/bin/mypy" --strict --no-error-summary custom_components/faceanon
exec "$VENV/bin/pytest" -c tests/ha/pytest.ini --rootdir . -p no:cacheprovider \
  --cov=custom_components/faceanon --cov-report=term-missing --cov-fail-under=95 "$@" tests/ha
