#!/usr/bin/env bash
# The benchmark suite (BENCHMARKS.md): cargo bench targets in benches/ and the Python
# comparison scripts/bench_python.py. Run through `make bench`, which installs, builds and
# exports what this needs first; runnable on its own after `make build`.
#
# Results: target/bench/results.md (Markdown, one section per bench, machine header).
# Environment:
#   BENCH_SCALE=0.3   fewer iterations / rounds (quick smoke run; default 1)
#   BENCH_ONLY="preprocess memory python"   run a subset (element_overhead preprocess
#                     many_faces execution_providers memory live python)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
ORT_LIB="$ROOT/.ort/onnxruntime-openvino-1.24.1/lib/libonnxruntime.so"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ORT_LIB}"
export GST_FACENET_ORT_DYLIB="${GST_FACENET_ORT_DYLIB:-$ORT_DYLIB_PATH}"
export GST_FACENET_MODELS_DIR="${GST_FACENET_MODELS_DIR:-$ROOT/models/out}"
export GST_FACENET_FIXTURES_DIR="${GST_FACENET_FIXTURES_DIR:-$ROOT/models/fixtures/out}"
export GST_FACENET_BENCH_DIR="${GST_FACENET_BENCH_DIR:-$ROOT/target/bench}"
export GST_FACENET_BENCH_RESULTS="$GST_FACENET_BENCH_DIR/results.md"
export GST_FACENET_BENCH_SCALE="${BENCH_SCALE:-1}"
export GST_PLUGIN_PATH="$ROOT/target/release"
export GST_REGISTRY_1_0="$ROOT/target/gst-registry.bin"
CARGO="${CARGO:-cargo}"
ONLY="${BENCH_ONLY:-element_overhead preprocess many_faces execution_providers memory live python}"

log() { echo "bench: $*" >&2; }
wants() { [[ " $ONLY " == *" $1 "* ]]; }

for m in faceapi_resnet128.onnx inception_resnet_v1_128.onnx; do
    [ -f "$GST_FACENET_MODELS_DIR/$m" ] || { log "model $m missing: run \`make models\`"; exit 1; }
done
[ -f "$ORT_DYLIB_PATH" ] || { log "ONNX Runtime library $ORT_DYLIB_PATH missing: run \`make setup\`"; exit 1; }
[ -f "$ROOT/target/release/libgstfacenet.so" ] || { log "plugin not built: run \`make build\`"; exit 1; }

# The fixture model of the memory bench (make fixtures writes it; cheap).
if wants memory && [ ! -f "$GST_FACENET_FIXTURES_DIR/facenet_nchw.onnx" ]; then
    log "writing the fixture models"
    "$PYTHON" models/fixtures/make_fixtures.py "$GST_FACENET_FIXTURES_DIR" >/dev/null
fi

# Python packages of the user-style app, pinned (scripts/bench-requirements.txt).
if wants python; then
    if ! "$PYTHON" - "$ROOT/scripts/bench-requirements.txt" <<'PY'
import sys, importlib.metadata as md
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, version = line.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(f"{name} not installed")
    if have != version:
        sys.exit(f"{name} {have} installed, {version} pinned")
PY
    then
        log "installing scripts/bench-requirements.txt into $(dirname "$(dirname "$PYTHON")")"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps -r scripts/bench-requirements.txt
    fi
    ort_version="$("$PYTHON" -c 'import onnxruntime; print(onnxruntime.__version__)')"
    [ "$ort_version" = "1.24.1" ] || { log "Python onnxruntime is $ort_version, expected 1.24.1 (run \`make setup\`)"; exit 1; }
fi

# A batch-1 copy of the dlib ResNet for the many-faces bench (the element then runs face by face).
mkdir -p "$GST_FACENET_BENCH_DIR"
B1="$GST_FACENET_BENCH_DIR/faceapi_resnet128_b1.onnx"
if wants many_faces && { [ ! -f "$B1" ] || [ "$GST_FACENET_MODELS_DIR/faceapi_resnet128.onnx" -nt "$B1" ]; }; then
    log "writing $B1"
    "$PYTHON" - "$GST_FACENET_MODELS_DIR/faceapi_resnet128.onnx" "$B1" <<'PY'
import sys, onnx
m = onnx.load(sys.argv[1])
for v in list(m.graph.input) + list(m.graph.output):
    d = v.type.tensor_type.shape.dim[0]
    d.Clear()
    d.dim_value = 1
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2])
PY
fi

started=$(date +%s)
log "building the bench targets"
# Built once, then the executables run directly: a later `cargo bench` would rebuild
# whenever src/ changed in between.
declare -A EXE=()
benches=()
for b in element_overhead preprocess many_faces execution_providers memory live; do
    wants "$b" && benches+=(--bench "$b")
done
if [ ${#benches[@]} -gt 0 ]; then
    while IFS='=' read -r name exe; do
        EXE[$name]="$exe"
    done < <("$CARGO" bench --no-run --message-format=json-render-diagnostics "${benches[@]}" | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and "bench" in m["target"]["kind"] and m.get("executable"):
        print(m["target"]["name"] + "=" + m["executable"])
')
fi

RESULTS="$GST_FACENET_BENCH_RESULTS"
{
    echo "# gst-facenet benchmark results"
    echo
    echo "* date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "* commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    echo "* machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "* CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|amx_tile|fma)$' | tr '\n' ' ')"
    echo "* $(rustc --version), $(gst-launch-1.0 --version | sed -n 2p), ONNX Runtime 1.24.1 (onnxruntime-openvino wheel)"
    echo "* command: \`make bench\` (scripts/bench.sh), BENCH_SCALE=$GST_FACENET_BENCH_SCALE"
} > "$RESULTS"

run_bench() {
    local b="$1" t
    wants "$b" || return 0
    log "== $b"
    t=$(date +%s)
    [ -n "${EXE[$b]:-}" ] || { log "no executable for bench $b"; exit 1; }
    "${EXE[$b]}" --bench
    log "   $b took $(( $(date +%s) - t )) s"
}

run_bench element_overhead
run_bench preprocess
if wants python; then
    log "== python (scripts/bench_python.py)"
    t=$(date +%s)
    frames=$(awk -v s="$GST_FACENET_BENCH_SCALE" 'BEGIN { f = int(60 * s + 0.5); print (f < 12 ? 12 : f) }')
    rounds=$(awk -v s="$GST_FACENET_BENCH_SCALE" 'BEGIN { r = int(11 * s + 0.5); print (r < 3 ? 3 : r) }')
    "$PYTHON" scripts/bench_python.py --frames "$frames" --rounds "$rounds" --threads 1,2 --markdown "$RESULTS"
    log "   python took $(( $(date +%s) - t )) s"
fi
run_bench many_faces
run_bench execution_providers
run_bench memory
run_bench live

log "done in $(( $(date +%s) - started )) s (plus set-up); results: $RESULTS"
