#!/usr/bin/env bash
# Fetch the pinned ONNX Runtime build (PyPI onnxruntime-openvino wheel) and unpack its
# shared libraries into .ort/onnxruntime-openvino-<ver>/lib/.
#
# Usage:
#   scripts/setup-ort.sh               install if needed; last stdout line is ORT_DYLIB_PATH=<path>
#   scripts/setup-ort.sh --print-path  only print the library path (no download, no checks)
#   scripts/setup-ort.sh --wheel-path  only print the path of the cached wheel
#
# Idempotent: when the stamp file matches the pinned sha256 nothing is downloaded or unpacked.
set -euo pipefail

ORT_VERSION="1.24.1"
ORT_PACKAGE="onnxruntime-openvino"
ORT_WHEEL="onnxruntime_openvino-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
ORT_WHEEL_SHA256="3007c803634cc69c6d52af1dea7ce729d9bb62b9a11070fd2f959119199007a8"
# Bump when the unpacked layout changes, so existing .ort/ trees are redone.
LAYOUT=2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEEL_DIR="${ROOT}/.cache/wheels"
WHEEL_PATH="${WHEEL_DIR}/${ORT_WHEEL}"
ORT_DIR="${ROOT}/.ort/${ORT_PACKAGE}-${ORT_VERSION}"
LIB_DIR="${ORT_DIR}/lib"
LIB_PATH="${LIB_DIR}/libonnxruntime.so"
STAMP="${ORT_DIR}/.stamp"

case "${1:-}" in
    --print-path) echo "$LIB_PATH"; exit 0 ;;
    --wheel-path) echo "$WHEEL_PATH"; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--print-path|--wheel-path]" >&2; exit 2 ;;
esac

log() { echo "ort: $*" >&2; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | awk '{print $1}')" = "$ORT_WHEEL_SHA256" ]; }

# Fast path: already unpacked from the pinned wheel.
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${ORT_WHEEL_SHA256} layout=${LAYOUT}" ] &&
   [ -L "$LIB_PATH" ] && [ -e "$LIB_PATH" ]; then
    log "${ORT_PACKAGE} ${ORT_VERSION} present"
    echo "ORT_DYLIB_PATH=${LIB_PATH}"
    exit 0
fi

# A pip able to download: $PIP, the first python3 with pip, else a bootstrap venv.
find_pip() {
    if [ -n "${PIP:-}" ]; then echo "$PIP"; return; fi
    local py
    for py in "${ROOT}/.venv/bin/python" python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            echo "$py -m pip"; return
        fi
    done
    local boot="${ROOT}/.cache/bootstrap-venv"
    if [ ! -x "${boot}/bin/pip" ]; then
        log "no pip found; creating ${boot}"
        /usr/bin/python3 -m venv "$boot" >&2
    fi
    echo "${boot}/bin/pip"
}

if ! sha_ok "$WHEEL_PATH"; then
    mkdir -p "$WHEEL_DIR"
    rm -f "$WHEEL_PATH"
    pip_cmd="$(find_pip)"
    log "downloading ${ORT_PACKAGE}==${ORT_VERSION} with ${pip_cmd}"
    $pip_cmd download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 311 --implementation cp \
        -d "$WHEEL_DIR" "${ORT_PACKAGE}==${ORT_VERSION}" >&2
    if [ ! -f "$WHEEL_PATH" ]; then
        log "error: pip did not produce ${WHEEL_PATH}"
        exit 1
    fi
    if ! sha_ok "$WHEEL_PATH"; then
        log "error: sha256 mismatch for ${WHEEL_PATH}"
        log "  expected ${ORT_WHEEL_SHA256}"
        log "  got      $(sha256sum "$WHEEL_PATH" | awk '{print $1}')"
        rm -f "$WHEEL_PATH"
        exit 1
    fi
fi
log "wheel sha256 ok (${ORT_WHEEL_SHA256})"

# Unpack into a temporary directory, then move into place so a failure leaves nothing half-done.
mkdir -p "$(dirname "$ORT_DIR")"
tmp="$(mktemp -d "${ORT_DIR}.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib"
# All native libraries of onnxruntime/capi: libonnxruntime*, libopenvino*, libtbb*.
# The Python extension module (onnxruntime_pybind11_state*.so) is not needed by the plugin.
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$WHEEL_PATH" 'onnxruntime/capi/lib*.so*' -d "$tmp/lib"
else
    /usr/bin/python3 - "$WHEEL_PATH" "$tmp/lib" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        d, b = os.path.split(n)
        if d == "onnxruntime/capi" and b.startswith("lib") and ".so" in b:
            with z.open(n) as src, open(os.path.join(dest, b), "wb") as out:
                out.write(src.read())
PY
fi
if [ ! -f "$tmp/lib/libonnxruntime.so.${ORT_VERSION}" ]; then
    log "error: libonnxruntime.so.${ORT_VERSION} not found in ${ORT_WHEEL}"
    exit 1
fi
ln -sfn "libonnxruntime.so.${ORT_VERSION}" "$tmp/lib/libonnxruntime.so"
ln -sfn "libonnxruntime.so.${ORT_VERSION}" "$tmp/lib/libonnxruntime.so.1"   # its SONAME
echo "${ORT_WHEEL_SHA256} layout=${LAYOUT}" > "$tmp/.stamp"
rm -rf "$ORT_DIR"
mv "$tmp" "$ORT_DIR"
trap - EXIT
chmod 755 "$ORT_DIR"

log "installed $(find "$LIB_DIR" -mindepth 1 -maxdepth 1 | wc -l) files into ${LIB_DIR}"
echo "ORT_DYLIB_PATH=${LIB_PATH}"
