"""Self-checks of the Python reference, the fixtures and the generated data (no plugin needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from conftest import structure_float_list

HERE = Path(__file__).resolve().parent


def by_name(reference):
    return {c["name"]: c for c in reference["cases"]}


def emb(case):
    return np.asarray(case["embedding"])


def test_reference_json_complete(reference, reference_dir, fixtures_dir):
    cases = by_name(reference)
    for fmt in ref.PACKED_RGB:
        assert f"nchw_{fmt}" in cases
    assert "nchw_GRAY8" in cases
    for fmt in ref.YUV_FORMATS:
        assert f"nchw_{fmt}_bt601_limited" in cases and f"nchw_{fmt}_bt709_full" in cases
    for name in ("nhwc_RGB", "512_RGB", "dynamic_RGB", "phase_train_RGB", "metadata_RGB", "metadata_BGR",
                 "nchw_uniform_gray_RGB"):
        assert name in cases
    for c in reference["cases"]:
        raw = reference_dir / c["raw"]
        assert raw.stat().st_size == ref.frame_size(c["format"], c["width"], c["height"]) == c["raw_size"]
        assert (fixtures_dir / c["model"]).exists()
        assert len(c["embedding"]) == len(c["embedding_l2"]) == c["dimension"]
        assert abs(np.linalg.norm(c["embedding_l2"]) - 1.0) < 1e-5


def test_same_picture_same_embedding(reference):
    cases = by_name(reference)
    base = emb(cases["nchw_RGB"])
    for fmt in ref.PACKED_RGB:
        np.testing.assert_array_equal(emb(cases[f"nchw_{fmt}"]), base, err_msg=fmt)
    for m in ("bt601_limited", "bt709_full"):
        np.testing.assert_array_equal(emb(cases[f"nchw_I420_{m}"]), emb(cases[f"nchw_NV12_{m}"]))
    assert np.abs(emb(cases["nchw_I420_bt601_limited"]) - emb(cases["nchw_I420_bt709_full"])).max() > 1e-2
    for name in ("nhwc_RGB", "dynamic_RGB", "phase_train_RGB"):
        np.testing.assert_allclose(emb(cases[name]), base, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(emb(cases["metadata_BGR"]), emb(cases["metadata_RGB"]), atol=1e-6)
    assert np.abs(emb(cases["metadata_RGB"]) - base).max() > 1e-2  # fixed normalisation differs
    assert cases["512_RGB"]["dimension"] == 512


def test_metadata_case_declares_preprocessing(reference):
    pre = by_name(reference)["metadata_RGB"]["preprocessing"]
    assert pre["normalization"] == "fixed" and pre["channel_order"] == "bgr" and pre["aspect"] == "pad"
    assert pre["mean"] == [122.782, 117.001, 104.298] and pre["std"] == [255.0, 255.0, 255.0]


@pytest.mark.parametrize("matrix", sorted(ref.MATRICES))
def test_yuv_textbook_values(matrix):
    kr, kb = ref.MATRICES[matrix]
    w = h = 2

    def one(y, u, v, fmt, rng):
        if fmt == "I420":
            raw = bytes([y] * 4 + [u, v])
        else:
            raw = bytes([y] * 4 + [u, v])  # NV12: Y plane then one UV pair
        return ref.frame_to_rgb(raw, fmt, w, h, matrix, rng)[0, 0]

    for fmt in ref.YUV_FORMATS:
        np.testing.assert_allclose(one(16, 128, 128, fmt, "limited"), [0, 0, 0], atol=1e-9)
        np.testing.assert_allclose(one(235, 128, 128, fmt, "limited"), [255, 255, 255], atol=1e-9)
        np.testing.assert_allclose(one(0, 128, 128, fmt, "full"), [0, 0, 0], atol=1e-9)
        np.testing.assert_allclose(one(255, 128, 128, fmt, "full"), [255, 255, 255], atol=1e-9)
        np.testing.assert_allclose(one(100, 128, 128, fmt, "full"), [100, 100, 100], atol=1e-9)
        # Cr only: R moves by 2(1-Kr)Cr, B unchanged
        r, g, b = one(100, 128, 148, fmt, "full")
        assert abs(r - (100 + 2 * (1 - kr) * 20)) < 1e-9 and abs(b - 100) < 1e-9
        r, g, b = one(100, 148, 128, fmt, "full")
        assert abs(b - (100 + 2 * (1 - kb) * 20)) < 1e-9 and abs(r - 100) < 1e-9
        # clamped, never rounded
        assert one(255, 255, 255, fmt, "limited")[0] == 255.0
        assert one(0, 0, 0, fmt, "limited")[0] == 0.0


def test_bt601_limited_matches_classic_coefficients():
    y, u, v = 151, 117, 121
    raw = bytes([y] * 4 + [u, v])
    r, g, b = ref.frame_to_rgb(raw, "I420", 2, 2, "bt601", "limited")[0, 0]
    assert abs(r - (1.164384 * (y - 16) + 1.596027 * (v - 128))) < 1e-3
    assert abs(g - (1.164384 * (y - 16) - 0.391762 * (u - 128) - 0.812968 * (v - 128))) < 1e-3
    assert abs(b - (1.164384 * (y - 16) + 2.017232 * (u - 128))) < 1e-3


def test_chroma_siting_is_x_half_y_half():
    # 4x2 I420: chroma (0,0) for x in {0,1}, (1,0) for x in {2,3}
    raw = bytes([128] * 8 + [128, 128] + [100, 200])
    rgb = ref.frame_to_rgb(raw, "I420", 4, 2, "bt709", "full")
    assert rgb[0, 0, 0] == rgb[1, 1, 0] < 128 < rgb[0, 2, 0] == rgb[1, 3, 0]
    nv12 = bytes([128] * 8 + [128, 100, 128, 200])
    np.testing.assert_array_equal(ref.frame_to_rgb(nv12, "NV12", 4, 2, "bt709", "full"), rgb)


def test_prewhiten():
    x = np.full((4, 4, 3), 77.0)
    np.testing.assert_array_equal(ref.prewhiten(x), np.zeros_like(x))  # std floored, no NaN
    y = np.random.default_rng(0).uniform(0, 255, (8, 8, 3))
    p = ref.prewhiten(y)
    assert abs(p.mean()) < 1e-12 and abs(p.std() - 1) < 1e-12


def test_fixed_normalization_mean_std_in_rgb_order():
    assert ref.MEAN_STD_ORDER == "rgb"
    rgb = np.zeros((1, 1, 3))
    rgb[0, 0] = (10.0, 20.0, 30.0)
    out = ref.normalize(rgb, "fixed", "bgr", mean=(1, 2, 3), std=(2, 4, 8))
    # channel 0 of a bgr model is blue: (B - mean[2]) / std[2]
    np.testing.assert_allclose(out[0, 0], [(30 - 3) / 8, (20 - 2) / 4, (10 - 1) / 2])


def test_packed_layouts_match_videoconvert(Gst, reference, reference_dir):
    """Byte layouts of the packed formats and GRAY8 agree exactly with GStreamer's videoconvert."""
    for case in reference["cases"]:
        if not case["name"].startswith("nchw_") or case["format"] in ref.YUV_FORMATS:
            continue
        raw = (reference_dir / case["raw"]).read_bytes()
        pipeline = Gst.parse_launch(
            f"appsrc name=src caps=video/x-raw,format={case['format']},width=160,height=160,framerate=0/1 ! "
            "videoconvert dither=none ! video/x-raw,format=RGB ! appsink name=sink sync=false")
        src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        src.emit("push-buffer", Gst.Buffer.new_wrapped(raw))
        src.emit("end-of-stream")
        sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
        pipeline.set_state(Gst.State.NULL)
        assert sample is not None, case["name"]
        buf = sample.get_buffer()
        got = np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8).reshape(160, 160, 3)
        exp = ref.frame_to_rgb(raw, case["format"], 160, 160)
        np.testing.assert_array_equal(got, exp, err_msg=case["name"])


def test_reference_cli_reproduces_json(reference, reference_dir, fixtures_dir):
    case = by_name(reference)["nchw_NV12_bt709_full"]
    out = subprocess.run(
        [sys.executable, str(HERE / "reference.py"), str(reference_dir / case["raw"]),
         "--model", str(fixtures_dir / case["model"]), "--format", case["format"],
         "--width", "160", "--height", "160", "--matrix", case["matrix"], "--range", case["range"]],
        check=True, capture_output=True, text=True).stdout
    np.testing.assert_allclose(json.loads(out), case["embedding"], atol=1e-6)


def test_structure_float_list(Gst):
    st = Gst.Structure.from_string("FaceNetEmbeddingMeta, embedding=(float)< 1.5, -2, 0.25 >, dimension=(uint)3")[0]
    assert structure_float_list(st, "embedding") == [1.5, -2.0, 0.25]
    assert st.get_value("dimension") == 3
