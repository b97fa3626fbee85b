"""The facenet element's FaceNetEmbeddingMeta, read from Python through an appsink.

Contract tested (draft, written before the element): for each buffer, facenet attaches a custom
meta "FaceNetEmbeddingMeta" whose structure has
    embedding      GstValueArray of float (dimension entries)
    dimension      uint
    model          string (gst-facenet.model-name metadata, else the model file's stem)
    l2-normalized  boolean (true: `embedding` is the L2-normalised model output)
    fresh          boolean (true: computed for this buffer, not carried over)
    source-pts     uint64, optional (PTS in ns of the frame the embedding was computed from)
and the embedding equals the Python reference (tests/python/reference.py) within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import META_NAME, reference_cases, structure_float_list

pytestmark = pytest.mark.usefixtures("facenet_plugin")

TOLERANCE = 1e-4
TIMEOUT_NS = 30 * 1_000_000_000


def caps_for(case: dict) -> str:
    caps = f"video/x-raw,format={case['format']},width={case['width']},height={case['height']},framerate=0/1"
    if case.get("colorimetry"):
        caps += f",colorimetry={case['colorimetry']}"
    return caps


def run_one_frame(Gst, model_path, caps: str, raw: bytes, extra_props: str = ""):
    """Push one frame through appsrc ! facenet ! appsink and return the output buffer."""
    desc = (f'appsrc name=src caps="{caps}" format=time ! '
            f'facenet name=fn model-location="{model_path}" {extra_props} ! '
            "appsink name=sink sync=false")
    pipeline = Gst.parse_launch(desc)
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    try:
        assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE, _bus_error(bus)
        buf = Gst.Buffer.new_wrapped(raw)
        buf.pts = 0
        buf.duration = Gst.SECOND // 30
        assert src.emit("push-buffer", buf) == Gst.FlowReturn.OK, _bus_error(bus)
        src.emit("end-of-stream")
        sample = sink.emit("try-pull-sample", TIMEOUT_NS)
        assert sample is not None, f"no output buffer from facenet: {_bus_error(bus)}"
        return sample.get_buffer()
    finally:
        pipeline.set_state(Gst.State.NULL)


def _bus_error(bus) -> str:
    from gi.repository import Gst

    msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.WARNING)
    if msg is None:
        return "(no error on the bus)"
    err, dbg = msg.parse_error() if msg.type == Gst.MessageType.ERROR else msg.parse_warning()
    return f"{err.message} ({dbg})"


def read_meta(Gst, buffer) -> dict:
    meta = Gst.Buffer.get_custom_meta(buffer, META_NAME)
    assert meta is not None, f"output buffer carries no {META_NAME}"
    st = meta.get_structure()
    emb = structure_float_list(st, "embedding")
    return {
        "structure": st.to_string(),
        "embedding": np.asarray(emb, dtype=np.float64),
        "dimension": st.get_value("dimension"),
        "model": st.get_value("model"),
        "l2-normalized": st.get_value("l2-normalized"),
        "fresh": st.get_value("fresh"),
        "source-pts": st.get_value("source-pts") if st.has_field("source-pts") else None,
    }


def check_against_reference(meta: dict, case: dict) -> None:
    expected = np.asarray(case["embedding_l2"] if meta["l2-normalized"] else case["embedding"])
    assert meta["dimension"] == case["dimension"] == meta["embedding"].shape[0], meta["structure"]
    assert meta["fresh"] is True, meta["structure"]
    assert meta["source-pts"] == 0, meta["structure"]  # computed from this very buffer (PTS 0)
    # model: the gst-facenet.model-name metadata, else the file name without extension
    assert meta["model"] == Path(case["model"]).stem, meta["structure"]
    diff = np.abs(meta["embedding"] - expected).max()
    assert diff <= TOLERANCE, f"{case['name']}: max |embedding - reference| = {diff:g} > {TOLERANCE:g}"


def test_rgb_nchw_embedding(Gst, fixtures_dir, reference_dir, reference):
    """The basic contract: RGB 160x160 frame, facenet_nchw.onnx."""
    case = next(c for c in reference["cases"] if c["name"] == "nchw_RGB")
    raw = (reference_dir / case["raw"]).read_bytes()
    buffer = run_one_frame(Gst, fixtures_dir / case["model"], caps_for(case), raw)
    meta = read_meta(Gst, buffer)
    check_against_reference(meta, case)
    assert meta["l2-normalized"] in (True, False)


@pytest.mark.parametrize("case", reference_cases(), ids=lambda c: c["name"])
def test_reference_case(Gst, fixtures_dir, reference_dir, case):
    """Every generated case: all input formats, YUV matrices/ranges, model variants, metadata."""
    raw = (reference_dir / case["raw"]).read_bytes()
    buffer = run_one_frame(Gst, fixtures_dir / case["model"], caps_for(case), raw)
    check_against_reference(read_meta(Gst, buffer), case)
