"""Tests for build.py (no torch needed).

    pip install -r models/inception_resnet_v1/requirements.txt pytest
    python -m pytest -q models/inception_resnet_v1
"""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build  # noqa: E402

with open(os.path.join(HERE, "facenet_pytorch_keys.json")) as f:
    FIXTURE = json.load(f)


def test_param_table_matches_facenet_pytorch_state_dict():
    table = build.param_table(512)
    recorded = [(k["name"], tuple(k["shape"])) for k in FIXTURE["keys"]]
    mine = [(name, shape) for name, (shape, _) in table.items()]
    assert mine == recorded  # same names, same order, same shapes
    for k in FIXTURE["keys"]:
        kind = table[k["name"]][1]
        assert (kind == "ignored_buffer") == (k["dtype"] == "int64"), k
        assert (kind == "ignored_buffer") == k["name"].endswith(".num_batches_tracked"), k


def test_parameter_count_matches_facenet_pytorch():
    assert build.parameter_count(512) == FIXTURE["counts"]
    assert FIXTURE["counts"]["parameters"] == 23482624


def test_128d_table_only_changes_the_head():
    t512, t128 = build.param_table(512), build.param_table(128)
    assert list(t512) == list(t128)
    changed = {k for k in t512 if t512[k] != t128[k]}
    assert changed == {"last_linear.weight", "last_bn.weight", "last_bn.bias",
                       "last_bn.running_mean", "last_bn.running_var"}
    assert t128["last_linear.weight"][0] == (128, 1792)


def test_state_dict_loader_rejects_mismatches(tmp_path):
    w = build.seeded_weights(128, 0, calibrate=False)
    bad = dict(w)
    bad["repeat_1.0.conv2d.weight"] = np.zeros((256, 95, 1, 1), np.float32)
    del bad["conv2d_1a.bn.running_var"]
    bad["something.else"] = np.zeros(3, np.float32)
    p = tmp_path / "bad.npz"
    np.savez(p, **bad)
    with pytest.raises(SystemExit) as e:
        build.load_state_dict_npz(str(p), None)
    msg = str(e.value)
    assert "repeat_1.0.conv2d.weight" in msg and "conv2d_1a.bn.running_var" in msg
    assert "something.else" in msg
    with pytest.raises(SystemExit):
        build.load_state_dict_npz(str(tmp_path / "bad.npz"), 512)


def test_seeded_weights_are_deterministic():
    a = build.seeded_weights(128, 3, calibrate=False)
    b = build.seeded_weights(128, 3, calibrate=False)
    c = build.seeded_weights(128, 4, calibrate=False)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv2d_1a.conv.weight"], c["conv2d_1a.conv.weight"])


@functools.lru_cache(maxsize=None)
def _seeded(dim, seed):
    return build.seeded_weights(dim, seed)


@pytest.fixture(scope="module")
def seeded_128(tmp_path_factory):
    out = tmp_path_factory.mktemp("irv1") / "inception_resnet_v1_128.onnx"
    subprocess.run([sys.executable, os.path.join(HERE, "build.py"), "--seed", "0", "--dim", "128",
                    "-o", str(out)], check=True)
    return str(out)


def _session(path, threads=0):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _images(n, seed):
    # prewhitened random images, like the element feeds the model
    x = np.random.default_rng(seed).uniform(0, 255, (n, 3, 160, 160))
    x = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / x.std(axis=(1, 2, 3), keepdims=True)
    return x.astype(np.float32)


def test_seeded_model_structure_and_metadata(seeded_128):
    m = onnx.load(seeded_128, load_external_data=False)
    assert m.ir_version == 8
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    (inp,) = m.graph.input
    (out,) = m.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    assert inp.name == "input" and dims(inp) == ["N", 3, 160, 160]
    assert out.name == "embedding" and dims(out) == ["N", 128]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["gst-facenet.normalization"] == "prewhiten"
    assert meta["gst-facenet.channel-order"] == "rgb"
    assert meta["gst-facenet.aspect"] == "stretch"
    assert meta["gst-facenet.model-name"] == "inception_resnet_v1_128_seed0"
    assert "gst-facenet.mean" not in meta
    ops = {n.op_type for n in m.graph.node}
    assert "BatchNormalization" not in ops  # folded


def test_seeded_model_runs(seeded_128):
    sess = _session(seeded_128)
    a, b = _images(1, 1), _images(1, 2)
    ea = sess.run(["embedding"], {"input": a})[0]
    eb = sess.run(["embedding"], {"input": b})[0]
    for e in (ea, eb):
        assert e.shape == (1, 128) and e.dtype == np.float32
        assert np.all(np.isfinite(e))
        assert abs(float(np.linalg.norm(e)) - 1.0) < 1e-5
    cos = float(ea[0] @ eb[0])
    assert cos < 0.99, cos  # different images -> clearly different embeddings
    assert float(np.abs(ea - eb).max()) > 1e-2
    # dynamic batch: a batch of 2 gives the same rows
    eab = sess.run(["embedding"], {"input": np.concatenate([a, b])})[0]
    assert eab.shape == (2, 128)
    np.testing.assert_allclose(eab, np.concatenate([ea, eb]), atol=1e-5)


def test_seeded_model_matches_numpy_reference(seeded_128):
    x = _images(1, 5)
    y = _session(seeded_128).run(["embedding"], {"input": x})[0]
    ref, _ = build.reference_forward(_seeded(128, 0), 128, x)
    assert float(np.abs(y - ref).max()) < 1e-4


def test_state_dict_roundtrip_and_fixed_metadata(seeded_128, tmp_path):
    w = _seeded(128, 0)
    sd = {k: v for k, v in w.items() if not k.endswith("num_batches_tracked")}  # optional
    sd["logits.weight"] = np.zeros((10, 128), np.float32)  # pretrained .pt files have these
    sd["logits.bias"] = np.zeros(10, np.float32)
    npz = tmp_path / "sd.npz"
    np.savez(npz, **sd)
    out = tmp_path / "from_sd.onnx"
    build.main(["--state-dict", str(npz), "--normalization", "fixed", "-o", str(out)])
    m = onnx.load(str(out))
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["gst-facenet.normalization"] == "fixed"
    assert meta["gst-facenet.mean"] == "127.5,127.5,127.5"
    assert meta["gst-facenet.std"] == "128,128,128"
    x = _images(2, 9)
    y1 = _session(str(out)).run(None, {"input": x})[0]
    y2 = _session(seeded_128).run(None, {"input": x})[0]
    np.testing.assert_array_equal(y1, y2)
