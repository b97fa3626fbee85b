"""The examples and the enrollment program, run as a user would: examples/read_meta.c compiled
with the system's C compiler and pkg-config, examples/read_meta.py with this Python, and a
gallery written by target/release/facenet-enroll from face crops of face-api's sample photos.
Missing models, photos or binaries FAIL (they come from `make models` and `make build`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("GST_FACENET_MODELS_DIR", ROOT / "models" / "out"))
SAMPLES = Path(os.environ.get("GST_FACENET_SAMPLES_DIR",
                              ROOT / "models/faceapi/node_modules/@vladmandic/face-api/demo"))
ENROLL = ROOT / "target" / "release" / "facenet-enroll"

pytestmark = pytest.mark.usefixtures("facenet_plugin")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    for needed in (MODELS / "faceapi_resnet128.onnx", SAMPLES / "sample1.jpg", ENROLL):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: run `make models build` (or `make test`)")
    out = tmp_path_factory.mktemp("enroll")
    subprocess.run([sys.executable, ROOT / "scripts/demo_prepare.py", SAMPLES, out / "people", "sample1"],
                   check=True, capture_output=True)
    result = subprocess.run([ENROLL, "--model", MODELS / "faceapi_resnet128.onnx",
                             "--detector", MODELS / "faceapi_ssd_mobilenetv1.onnx",
                             "--landmarks", MODELS / "faceapi_landmark68.onnx",
                             "--output", out / "people.json", out / "people"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "3 people" in result.stdout, result.stdout
    return out / "people.json"


def check_output(text: str) -> None:
    assert "3 faces" in text, text
    for person in ("sample1-person1", "sample1-person2", "sample1-person3"):
        assert f"identity: {person}" in text, text
    assert text.count("embedding: 128 values") == 3, text


def test_c_example(gallery, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed for the C example"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gstreamer-1.0", "gstreamer-video-1.0",
                            "gstreamer-app-1.0"], check=True, capture_output=True, text=True).stdout.split()
    binary = tmp_path / "read_meta"
    subprocess.run([cc, ROOT / "examples/read_meta.c", "-o", binary, *flags], check=True)
    out = subprocess.run([binary, SAMPLES / "sample1.jpg", MODELS, gallery], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    check_output(out.stdout)


def test_python_example(gallery):
    out = subprocess.run([sys.executable, ROOT / "examples/read_meta.py", SAMPLES / "sample1.jpg", MODELS, gallery],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    check_output(out.stdout)
    assert "full frame: 128 values" in out.stdout
