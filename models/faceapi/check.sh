#!/usr/bin/env bash
# End-to-end: install the pinned npm packages, convert face-api's FaceRecognitionNet to ONNX,
# run face-api itself (Node, tfjs cpu backend) on noise + real face crops, and compare the ONNX
# model's output with onnxruntime.  Exits non-zero on any failure.
#
#   PYTHON=/tmp/faceapi-venv/bin/python models/faceapi/check.sh [out.onnx]
#
# env: PYTHON (default python3; needs requirements.txt), TOL (default 1e-4),
#      FACEAPI_DATA (verify data dir, default models/out/faceapi_verify)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="$(cd "$here/.." && pwd)/out"
model="${1:-$out_dir/faceapi_resnet128.onnx}"
data="${FACEAPI_DATA:-$out_dir/faceapi_verify}"
py="${PYTHON:-python3}"

cd "$here"
# (re)install when node_modules is missing or older than the lockfile
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "== npm ci"
    npm ci --ignore-scripts --no-audit --no-fund
fi

echo "== convert"
"$py" convert.py "$model"

echo "== face-api reference (node $(node --version))"
node verify.mjs "$data" 2>&1 | grep -v -e '^=*$' -e 'running TensorFlow.js in Node.js' || { echo "verify.mjs failed" >&2; exit 1; }

echo "== onnxruntime comparison"
"$py" verify.py --model "$model" --data "$data" --tol "${TOL:-1e-4}"
