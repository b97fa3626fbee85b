#!/usr/bin/env bash
# The long reliability runs (RELIABILITY.md), through `make soak`, which sets
# ORT_DYLIB_PATH and the model folders:
#
#   1. the soak: SOAK_FRAMES (100,000) frames of a face, 320x240, through
#      facedetect (detector + landmarks every SOAK_INTERVAL-th frame, 10) ! facenet
#      (dlib ResNet) ! faceidentify, the resident set sampled every 1 % of the frames to
#      target/soak/rss.csv; fails when it grows after the warm-up (10 %) beyond the bound
#      of tests/reliability.rs (4 MiB);
#   2. SOAK_CYCLES (1000) NULL -> PLAYING -> NULL cycles with the real models (the CI run
#      takes a stand-in detector and the fixture embedder);
#   3. memcheck with the real detector and embedder (scripts/memcheck.sh with
#      MEMCHECK_EMBEDDER/MEMCHECK_DETECTOR set), unless SOAK_MEMCHECK=0.
#
# These are the `cargo test` reliability tests with bigger sizes: same code, same bounds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/soak"
mkdir -p "$OUT"

export GST_FACENET_SOAK_FRAMES="${SOAK_FRAMES:-100000}"
export GST_FACENET_SOAK_INTERVAL="${SOAK_INTERVAL:-10}"
export GST_FACENET_SOAK_CSV="$OUT/rss.csv"
export GST_FACENET_CYCLES="${SOAK_CYCLES:-1000}"
export GST_FACENET_CYCLES_MODELS=real

run() {
    echo "== $1"
    local start=$SECONDS
    cargo test --release --test reliability -- --exact "$1" --nocapture 2>&1 | tee "$OUT/$1.log"
    echo "== $1: $((SECONDS - start)) s"
}

run soak_keeps_memory_flat
echo "RSS samples in $GST_FACENET_SOAK_CSV"
run state_cycles_leave_no_growth
if [ "${SOAK_MEMCHECK:-1}" != 0 ]; then
    echo "== memcheck with the real models"
    MEMCHECK_OUT="$OUT/memcheck" \
        MEMCHECK_DETECTOR="${GST_FACENET_MODELS_DIR:-$ROOT/models/out}/faceapi_ssd_mobilenetv1.onnx" \
        MEMCHECK_EMBEDDER="${GST_FACENET_MODELS_DIR:-$ROOT/models/out}/faceapi_resnet128.onnx" \
        scripts/memcheck.sh
fi
