#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ on the stable toolchain (no sanitizer: `-s none`;
# debug assertions and overflow checks on) and runs each for a bounded time over its
# committed corpus (fuzz/corpus/<target>/). Fails on the first crash, panic, timeout or
# out-of-memory; the reproducer is left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
#   SECONDS        per target (default: $FUZZ_SECONDS, else 30)
#   TARGET...      default: $FUZZ_TARGETS (space separated), else every target
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB    memory limit, MiB (default 2048)
#
# New inputs found during the run go to a scratch corpus (target/fuzz-corpus/<target>/,
# ignored), never into the committed one; see fuzz/README.md for refreshing that.
# Needs `make setup` (the ONNX Runtime library for the onnx_model target).
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ -z "$(command -v cargo 2>/dev/null)" && -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

SECONDS_PER_TARGET=${1:-${FUZZ_SECONDS:-30}}
[[ $# -gt 0 ]] && shift
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [[ "$SECONDS_PER_TARGET" -lt 1 ]]; then
    echo "fuzz.sh: SECONDS must be a positive integer, got '$SECONDS_PER_TARGET'" >&2
    exit 2
fi
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}

# cargo-fuzz, pinned (its build runs on stable).
installed=$(cargo fuzz --version 2>/dev/null | awk 'NR == 1 { print $2 }' || true)
if [[ "$installed" != "$CARGO_FUZZ_VERSION" ]]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION (found: ${installed:-none})"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# The library `make setup` extracted (see the Makefile's ORT_DYLIB_PATH).
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
    export ORT_DYLIB_PATH="$ROOT/.ort/onnxruntime-openvino-1.24.1/lib/libonnxruntime.so"
fi
if [[ ! -f "$ORT_DYLIB_PATH" ]]; then
    echo "fuzz.sh: ONNX Runtime library $ORT_DYLIB_PATH not found: run \`make setup\` first" >&2
    exit 1
fi

cd "$ROOT/fuzz"
if [[ $# -gt 0 ]]; then
    targets=("$@")
elif [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Same flags for build and run, so `cargo fuzz run` does not rebuild. No -O: cargo-fuzz
# then builds the release profile with -Cdebug-assertions (fuzz/Cargo.toml also turns
# on debug assertions and overflow checks; every target checks both at start-up).
FUZZ_FLAGS=(--sanitizer none)
start=$(date +%s)
echo "fuzz.sh: building ${#targets[@]} target(s)"
cargo fuzz build "${FUZZ_FLAGS[@]}"
build_s=$(($(date +%s) - start))
echo "fuzz.sh: build took ${build_s}s"

failed=()
summary=()
for t in "${targets[@]}"; do
    committed="corpus/$t"
    scratch="target/fuzz-corpus/$t"
    mkdir -p "$committed" "$scratch" "artifacts/$t"
    echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s"
    t0=$(date +%s)
    log="target/fuzz-$t.log"
    # libFuzzer writes new inputs to the first corpus directory only.
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "$scratch" "$committed" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
        grep -E -A12 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -60 >&2 || true
        echo "fuzz.sh: $t failed; full log $ROOT/fuzz/$log, reproducer in $ROOT/fuzz/artifacts/$t/" >&2
    fi
    stats=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 | sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/runs \1 /' || true)
    summary+=("$(printf '%-16s %-6s %4ss  %s' "$t" "$status" "$(($(date +%s) - t0))" "$stats")")
done

echo "fuzz.sh: summary (build ${build_s}s, total $(($(date +%s) - start))s)"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
