"""ONNX Runtime's own log goes to the GStreamer debug category `onnxruntime`, with its levels
mapped (verbose -> LOG, info -> INFO, warning -> WARNING, error/fatal -> ERROR), and nothing
is formatted below the threshold GST_DEBUG sets."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("GST_FACENET_FIXTURES_DIR", ROOT / "models" / "fixtures" / "out"))


def run_with_debug(level: str, model: str = "facenet_nchw.onnx") -> str:
    path = FIXTURES / model
    assert path.exists(), f"{path} is missing: run `make fixtures` (or `make test`)"
    env = dict(os.environ, GST_DEBUG=level, GST_DEBUG_NO_COLOR="1")
    out = subprocess.run(
        ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1", "!", "video/x-raw,width=160,height=160",
         "!", "facenet", f"model-location={path}", "!", "fakesink"],
        capture_output=True, text=True, env=env, timeout=120)
    return out.stdout + out.stderr


def category_lines(log: str) -> list[tuple[str, str]]:
    return re.findall(r"\s(LOG|DEBUG|INFO|WARN|ERROR)\s+onnxruntime\s(.*)", log)


def test_info_level_shows_onnxruntime_sessions():
    lines = category_lines(run_with_debug("onnxruntime:4"))
    assert lines, "no onnxruntime lines at level 4"
    assert any(level == "INFO" and "inference_session" in text for level, text in lines), lines[:5]
    assert all(level in ("INFO", "WARN", "ERROR") for level, _ in lines)


def test_warning_threshold_hides_info():
    assert not any(level == "INFO" for level, _ in category_lines(run_with_debug("onnxruntime:2")))


def test_verbose_maps_to_log_level():
    lines = category_lines(run_with_debug("onnxruntime:6"))
    assert any(level == "LOG" for level, _ in lines), sorted({level for level, _ in lines})

