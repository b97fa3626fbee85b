#!/usr/bin/env bash
# End-to-end: install the pinned npm packages, convert face-api's SSD MobileNet v1 face detector and
# its 68-point landmark net to ONNX, run face-api itself (Node, tfjs cpu backend; the wasm backend
# only for a side-by-side count) on the package's demo photos + seeded noise, and compare the ONNX
# models with onnxruntime.  Exits non-zero on any failure.  Takes ~5 min (face-api's pure-JS SSD
# forward pass is ~30 s per photo).
#
#   PYTHON=/tmp/faceapi-venv/bin/python models/faceapi/check_detector.sh [detector.onnx [landmarks.onnx]]
#
# env: PYTHON (default python3; needs requirements.txt), TOL (default 1e-4),
#      FACEAPI_DETECTOR_DATA (verify data dir, default models/out/faceapi_detector_verify),
#      PNG=1 also writes <photo>.png with the boxes + landmarks drawn into the data dir
# Rewrites detector_expected.json and landmarks_expected.json next to this script (committed;
# the content is deterministic, so `git diff` shows whether face-api's output changed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="$(cd "$here/.." && pwd)/out"
det_model="${1:-$out_dir/faceapi_ssd_mobilenetv1.onnx}"
lm_model="${2:-$out_dir/faceapi_landmark68.onnx}"
data="${FACEAPI_DETECTOR_DATA:-$out_dir/faceapi_detector_verify}"
py="${PYTHON:-python3}"

cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "== npm ci"
    npm ci --ignore-scripts --no-audit --no-fund
fi

echo "== convert"
"$py" convert_detector.py "$det_model"
"$py" convert_landmarks.py "$lm_model"

echo "== face-api reference (node $(node --version))"
png=()
if [ "${PNG:-0}" = 1 ]; then png=(--png); fi
node verify_detector.mjs "$data" "${png[@]}" 2>&1 | grep -v -e '^=*$' -e 'running TensorFlow.js in Node.js' \
    || { echo "verify_detector.mjs failed" >&2; exit 1; }

echo "== onnxruntime comparison"
"$py" verify_detector.py --detector "$det_model" --landmarks "$lm_model" --data "$data" --tol "${TOL:-1e-4}"
