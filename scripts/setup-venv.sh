#!/usr/bin/env bash
# Create .venv (with access to apt's PyGObject) and install the pinned Python tooling plus the
# onnxruntime-openvino wheel downloaded by scripts/setup-ort.sh.
# Idempotent: a stamp file records the hash of requirements.txt + wheel; a match makes this a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-${ROOT}/.venv}"
# Must be the system interpreter: only it can import apt's python3-gi.
SYSTEM_PYTHON="${SYSTEM_PYTHON:-/usr/bin/python3}"
REQS="${ROOT}/requirements.txt"
STAMP="${VENV}/.gst-facenet-stamp"

log() { echo "venv: $*" >&2; }

WHEEL="$("${ROOT}/scripts/setup-ort.sh" --wheel-path)"
if [ ! -f "$WHEEL" ]; then
    log "onnxruntime wheel missing, running scripts/setup-ort.sh"
    "${ROOT}/scripts/setup-ort.sh" >/dev/null
fi

want="$( { sha256sum "$REQS" | awk '{print $1}'; basename "$WHEEL"; echo "$SYSTEM_PYTHON"; } | sha256sum | awk '{print $1}')"

check_gi() {
    "${VENV}/bin/python" - <<'PY'
import sys
try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import Gst, GstVideo  # noqa: F401
except Exception as e:  # pragma: no cover - diagnostic path
    sys.exit(f"venv: cannot use PyGObject/GStreamer from .venv: {e}\n"
             "  install python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 "
             "(scripts/setup-apt.sh) and recreate the venv with "
             "/usr/bin/python3 -m venv --system-site-packages .venv")
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "${VENV}/bin/python" ]; then
    log ".venv up to date"
    exit 0
fi

if [ ! -x "$SYSTEM_PYTHON" ]; then
    log "error: $SYSTEM_PYTHON not found (install python3 and python3-venv: scripts/setup-apt.sh)"
    exit 1
fi

# Recreate a venv that was not made from the system python with system site packages.
if [ -f "${VENV}/pyvenv.cfg" ]; then
    if ! grep -qE '^include-system-site-packages *= *true' "${VENV}/pyvenv.cfg" ||
       ! grep -qxE "home *= *$(dirname "$SYSTEM_PYTHON")" "${VENV}/pyvenv.cfg"; then
        log "existing .venv is not a --system-site-packages venv of ${SYSTEM_PYTHON}; recreating"
        rm -rf "$VENV"
    fi
fi
if [ ! -x "${VENV}/bin/python" ]; then
    log "creating ${VENV}"
    "$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
fi

log "installing requirements"
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" "$WHEEL"
check_gi
"${VENV}/bin/python" -c 'import numpy, onnx, onnxruntime, PIL, pytest; print("venv: onnxruntime", onnxruntime.__version__, "onnx", onnx.__version__, "numpy", numpy.__version__)' >&2
echo "$want" > "$STAMP"
