#!/usr/bin/env bash
# Check that a Rust toolchain new enough for gst-facenet is available.
# Usage: scripts/check-rust.sh            (MIN_RUST overrides the minimum, default 1.92)
set -euo pipefail

MIN_RUST="${MIN_RUST:-1.92}"

# rustup installs into ~/.cargo/bin, which may not be on PATH in non-login shells.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

how_to() {
    cat >&2 <<MSG
  Install or update Rust with rustup:
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
      . "\$HOME/.cargo/env"
      rustup update stable
MSG
}

for tool in cargo rustc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' not found on PATH; gst-facenet needs Rust >= ${MIN_RUST}." >&2
        how_to
        exit 1
    fi
done

ver="$(rustc --version | awk '{print $2}')"   # e.g. 1.95.0 or 1.96.0-nightly
ver="${ver%%-*}"
IFS=. read -r have_major have_minor _ <<<"$ver"
IFS=. read -r need_major need_minor _ <<<"$MIN_RUST"
if [ "${have_major:-0}" -lt "$need_major" ] ||
   { [ "${have_major:-0}" -eq "$need_major" ] && [ "${have_minor:-0}" -lt "$need_minor" ]; }; then
    echo "error: rustc $ver is too old; gst-facenet needs Rust >= ${MIN_RUST}." >&2
    how_to
    exit 1
fi
echo "rust: rustc $ver (>= ${MIN_RUST}) ok"
