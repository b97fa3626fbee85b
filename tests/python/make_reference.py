#!/usr/bin/env python3
"""Write deterministic test frames and their reference embeddings.

Usage: .venv/bin/python tests/python/make_reference.py [--fixtures DIR] [--out DIR]
  defaults: --fixtures models/fixtures/out  --out tests/data/generated

Outputs in OUT:
  <case>.raw       one 160x160 frame, tightly packed (GStreamer's default layout at 160x160:
                   RGB stride 480, 4-byte formats stride 640, GRAY8 stride 160; I420 = Y, U, V
                   planes; NV12 = Y plane, interleaved UV plane)
  reference.json   {"version", "width", "height", "cases": [...]} where each case has
                   name, format, width, height, colorimetry (GStreamer caps string or null),
                   matrix, range, model (fixture file name), raw (file name), preprocessing
                   (normalization, channel_order, mean, std, aspect, mean_std_order),
                   embedding (raw model output, floats), embedding_l2 (L2-normalised), dimension.

All RGB-family frames (RGB, BGR, RGBA, ..., xBGR) carry the same picture (random alpha/padding
bytes), so their embeddings are identical. Files are only rewritten when their bytes change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import reference as ref  # noqa: E402

W = H = 160
SEED = 160160


def base_rgb() -> np.ndarray:
    """A seeded picture: smooth gradients plus noise, uint8 [H, W, 3]."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    g = 40 + 1.2 * yy
    b = 220 - 1.1 * xx
    img = np.stack([r, g, b], axis=2) + rng.normal(0, 12, (H, W, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def pack_rgb(img: np.ndarray, fmt: str, rng: np.random.Generator) -> bytes:
    offs, bpp = ref.PACKED_RGB[fmt]
    out = rng.integers(0, 256, (H, W, bpp), dtype=np.uint8)  # alpha / padding bytes: random
    for c, off in enumerate(offs):
        out[:, :, off] = img[:, :, c]
    return out.tobytes()


def yuv_frame(fmt: str, rng: np.random.Generator) -> bytes:
    """Random-ish Y/U/V planes (including out-of-range values, to exercise clamping)."""
    yy, xx = np.mgrid[0:H, 0:W]
    y = np.clip(20 + 0.9 * xx + 0.4 * yy + rng.normal(0, 15, (H, W)), 0, 255).astype(np.uint8)
    cy, cx = np.mgrid[0:H // 2, 0:W // 2]
    u = np.clip(128 + 60 * np.sin(cx / 7.0) + rng.normal(0, 10, cy.shape), 0, 255).astype(np.uint8)
    v = np.clip(128 + 60 * np.cos(cy / 9.0) + rng.normal(0, 10, cy.shape), 0, 255).astype(np.uint8)
    if fmt == "I420":
        return y.tobytes() + u.tobytes() + v.tobytes()
    uv = np.stack([u, v], axis=2)
    return y.tobytes() + uv.tobytes()


def build_cases():
    """(name, format, model, matrix, range, raw bytes)"""
    img = base_rgb()
    cases = []
    rng = np.random.default_rng(SEED + 1)
    for fmt in ref.PACKED_RGB:
        cases.append((f"nchw_{fmt}", fmt, "facenet_nchw.onnx", None, None, pack_rgb(img, fmt, rng)))
    gray = np.random.default_rng(SEED + 2)
    yy, xx = np.mgrid[0:H, 0:W]
    g = np.clip(60 + 0.8 * xx + 0.3 * yy + gray.normal(0, 10, (H, W)), 0, 255).astype(np.uint8)
    cases.append(("nchw_GRAY8", "GRAY8", "facenet_nchw.onnx", None, None, g.tobytes()))
    # The same Y/U/V planes for every YUV case: I420 and NV12 with one matrix/range give equal embeddings.
    for fmt in ref.YUV_FORMATS:
        for matrix, rng_ in (("bt601", "limited"), ("bt709", "full")):
            raw = yuv_frame(fmt, np.random.default_rng(SEED + 3))
            cases.append((f"nchw_{fmt}_{matrix}_{rng_}", fmt, "facenet_nchw.onnx", matrix, rng_, raw))
    rgb = img.tobytes()
    for model in ("nhwc", "512", "dynamic", "phase_train"):
        cases.append((f"{model}_RGB", "RGB", f"facenet_{model}.onnx", None, None, rgb))
    cases.append(("metadata_RGB", "RGB", "facenet_metadata.onnx", None, None, rgb))
    cases.append(("metadata_BGR", "BGR", "facenet_metadata.onnx", None, None, img[:, :, ::-1].tobytes()))
    cases.append(("nchw_uniform_gray_RGB", "RGB", "facenet_nchw.onnx", None, None,
                  np.full((H, W, 3), 128, np.uint8).tobytes()))
    return cases


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--fixtures", default=str(ROOT / "models" / "fixtures" / "out"))
    p.add_argument("--out", default=str(ROOT / "tests" / "data" / "generated"))
    a = p.parse_args(argv)
    fixtures, out = Path(a.fixtures), Path(a.out)
    if not (fixtures / "facenet_nchw.onnx").exists():
        sys.exit(f"make_reference: fixtures missing in {fixtures}; run `make fixtures` "
                 "(models/fixtures/make_fixtures.py) first")
    out.mkdir(parents=True, exist_ok=True)

    changed = 0
    entries = []
    for name, fmt, model, matrix, range_, raw in build_cases():
        assert len(raw) == ref.frame_size(fmt, W, H), name
        raw_name = f"{name}.raw"
        changed += write_if_changed(out / raw_name, raw)
        info = ref.model_info(fixtures / model)
        settings = {"normalization": "prewhiten", "channel_order": "rgb", "mean": None, "std": None,
                    "aspect": None}
        settings.update(ref.settings_from_metadata(info.metadata))
        settings["mean_std_order"] = ref.MEAN_STD_ORDER if settings["normalization"] == "fixed" else None
        emb = ref.embed(fixtures / model, raw, fmt, W, H, matrix or "bt601", range_ or "limited")
        entries.append({
            "name": name,
            "format": fmt,
            "width": W,
            "height": H,
            "colorimetry": ref.COLORIMETRY[(matrix, range_)] if matrix else None,
            "matrix": matrix,
            "range": range_,
            "model": model,
            "raw": raw_name,
            "raw_size": len(raw),
            "layout": info.layout,
            "preprocessing": settings,
            "dimension": int(emb.shape[0]),
            "embedding": [float(v) for v in emb],
            "embedding_l2": [float(v) for v in ref.l2_normalize(emb)],
        })

    doc = {
        "version": 1,
        "generator": "tests/python/make_reference.py",
        "fixtures_dir": os.path.relpath(fixtures, ROOT) if fixtures.is_relative_to(ROOT) else str(fixtures),
        "width": W,
        "height": H,
        "tolerance": 1e-4,
        "cases": entries,
    }
    changed += write_if_changed(out / "reference.json", (json.dumps(doc, indent=1) + "\n").encode())
    print(f"reference: {len(entries)} cases in {out} ({changed} files updated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
