"""`make install` / `make uninstall` into a temporary root (DESTDIR, PREFIX, PLUGINDIR), and the
Debian package from `make deb`: the installed plugin loads the ONNX Runtime installed beside it,
with no ORT_DYLIB_PATH and no source tree to lean on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("GST_FACENET_FIXTURES_DIR", ROOT / "models" / "fixtures" / "out"))


def multiarch() -> str:
    for cmd in (["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], ["gcc", "-print-multiarch"]):
        if shutil.which(cmd[0]):
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    pytest.fail("cannot tell the multiarch triplet (dpkg-architecture or gcc)")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def run_installed(plugin_dir: Path, tmp: Path) -> str:
    """A pipeline through the installed plugin alone; returns its debug log."""
    model = FIXTURES / "facenet_nchw.onnx"
    assert model.exists(), f"{model} is missing: run `make fixtures` (or `make test`)"
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DYLIB_PATH", "GST_PLUGIN_PATH")}
    env.update(GST_PLUGIN_PATH=str(plugin_dir), GST_REGISTRY_1_0=str(tmp / "registry.bin"),
               GST_DEBUG="facenet:4", GST_DEBUG_NO_COLOR="1")
    out = subprocess.run(
        ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=2", "!", "video/x-raw,width=160,height=160",
         "!", "facenet", f"model-location={model}", "!", "fakesink"],
        capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_install_and_uninstall_into_a_staging_root(tmp_path):
    stage = tmp_path / "root"
    plugindir = f"/usr/lib/{multiarch()}/gstreamer-1.0"
    args = [f"DESTDIR={stage}", "PREFIX=/usr", f"PLUGINDIR={plugindir}"]
    subprocess.run(["make", "-s", "-C", ROOT, "install", *args], check=True, capture_output=True)
    plugin = stage / plugindir.lstrip("/") / "libgstfacenet.so"
    ort_dir = plugin.parent.parent / "gst-facenet"
    assert plugin.is_file()
    assert (stage / "usr/bin/facenet-enroll").is_file() and os.access(stage / "usr/bin/facenet-enroll", os.X_OK)
    assert (ort_dir / "libonnxruntime.so").exists()
    assert (ort_dir / "libonnxruntime_providers_openvino.so").exists()
    # Nothing but the plugin in the plugin folder: the scanner must not try ONNX Runtime.
    assert [p.name for p in plugin.parent.iterdir()] == ["libgstfacenet.so"]

    log = run_installed(plugin.parent, tmp_path)
    loaded = re.search(r"ONNX Runtime \S+ from (\S+)", log)
    assert loaded, log
    assert Path(loaded.group(1)) == ort_dir / "libonnxruntime.so", log

    subprocess.run(["make", "-s", "-C", ROOT, "uninstall", *args], check=True, capture_output=True)
    assert files_under(stage) == []


def test_debian_package(tmp_path):
    out = tmp_path / "deb"
    env = dict(os.environ, DEB_COMPRESSION="none", DEB_OUT=str(out))
    built = subprocess.run([ROOT / "scripts" / "build-deb.sh"], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    deb = Path(built.stdout.strip().splitlines()[-1])
    deb = deb if deb.is_absolute() else ROOT / deb
    assert deb.is_file() and deb.name.startswith("gstreamer1.0-facenet_"), built.stdout

    fields = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends", "Installed-Size"],
                            check=True, capture_output=True, text=True).stdout
    assert "Package: gstreamer1.0-facenet" in fields and "libgstreamer1.0-0 (>= 1.22)" in fields, fields
    listing = subprocess.run(["dpkg-deb", "-c", deb], check=True, capture_output=True, text=True).stdout
    triplet = multiarch()
    for path in (f"usr/lib/{triplet}/gstreamer-1.0/libgstfacenet.so",
                 f"usr/lib/{triplet}/gst-facenet/libonnxruntime.so", "usr/bin/facenet-enroll",
                 "usr/share/doc/gstreamer1.0-facenet/copyright"):
        assert f"./{path}" in listing, listing
    assert "root/root" in listing and str(ROOT) not in listing

    root = tmp_path / "extracted"
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    plugin_dir = root / f"usr/lib/{triplet}/gstreamer-1.0"
    log = run_installed(plugin_dir, tmp_path)
    assert f"from {root}/usr/lib/{triplet}/gst-facenet/libonnxruntime.so" in log, log
