#!/usr/bin/env bash
# Placeholder demo: shows the facenet element as seen by GStreamer. (To be replaced.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-${ROOT}/target/release}"
exec gst-inspect-1.0 facenet
