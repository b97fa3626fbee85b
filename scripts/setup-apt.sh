#!/usr/bin/env bash
# Install the Debian/Ubuntu packages gst-facenet needs to build and test.
# Idempotent: only missing packages are installed, and apt-get update only runs then.
set -euo pipefail

PACKAGES=(
    pkg-config
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gir1.2-gstreamer-1.0
    gir1.2-gst-plugins-base-1.0
    python3-gi
    python3-venv
    unzip
    valgrind
)
# The model converters check themselves against face-api running in Node.js.
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "apt: all ${#PACKAGES[@]} packages present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing packages (${missing[*]}) and apt-get is not available; install them by hand." >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "error: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "apt: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
