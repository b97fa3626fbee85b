#!/usr/bin/env python3
"""Build FaceNet's Inception-ResNet-v1 (160x160) as an ONNX graph with numpy + onnx only.

The architecture follows facenet-pytorch's ``InceptionResnetV1(classify=False)``
(facenet_pytorch/models/inception_resnet_v1.py, v2.6.0) exactly, in eval mode:

    input [N,3,160,160] -> conv2d_1a .. conv2d_4b -> 5x Block35(0.17) -> Mixed_6a
    -> 10x Block17(0.10) -> Mixed_7a -> 5x Block8(0.20) -> Block8(scale=1.0, noReLU)
    -> global average pool -> (dropout = identity) -> last_linear (1792->D, no bias)
    -> last_bn (BatchNorm1d, eps 1e-3) -> optional L2 normalisation -> embedding [N,D]

Parameter names/shapes are the facenet-pytorch state-dict keys (see ``param_table``),
so a real state dict exported to ``.npz`` loads one-to-one.

Graph optimisation (numerically equivalent, documented in README.md):
  * every BatchNorm2d (eval mode, running stats) is folded into the preceding
    bias-free conv:  w' = w * g / sqrt(v + eps),  b' = beta - mean * g / sqrt(v + eps);
  * the residual ``scale`` of Block35/17/8 is folded into the up-projection conv
    (w' = w * scale, b' = b * scale);
  * last_linear + last_bn are folded into one Gemm with bias.
  The folding is done in float64 and the result cast to float32.
  ``--no-fold`` keeps explicit BatchNormalization / Mul nodes instead.

Weights come from ``--seed S`` (deterministic random, He-initialised) or
``--state-dict FILE.npz`` (facenet-pytorch key names; ``logits.*`` and
``*.num_batches_tracked`` are accepted and ignored).

No torch needed at run time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # onnx >= 1.10 format; ONNX Runtime >= 1.19 loads it (tested: 1.32.0)
INPUT_SIZE = 160
BN_EPS = 1e-3
EMBED_IN = 1792

# facenet-pytorch's preprocessing constants
FIXED_MEAN = 127.5
FIXED_STD = 128.0
CALIB_IMAGES = 8


# ---------------------------------------------------------------------------
# Architecture, written once against an abstract backend.
# ---------------------------------------------------------------------------

def _basic(b, name, x, cin, cout, k, s=1, p=(0, 0)):
    """BasicConv2d = Conv2d(bias=False) + BatchNorm2d(eps=1e-3) + ReLU."""
    if isinstance(k, int):
        k = (k, k)
    if isinstance(p, int):
        p = (p, p)
    return b.basic_conv(name, x, cin, cout, k, s, p)


def _block35(b, name, x, scale):
    x0 = _basic(b, f"{name}.branch0", x, 256, 32, 1)
    x1 = _basic(b, f"{name}.branch1.0", x, 256, 32, 1)
    x1 = _basic(b, f"{name}.branch1.1", x1, 32, 32, 3, p=1)
    x2 = _basic(b, f"{name}.branch2.0", x, 256, 32, 1)
    x2 = _basic(b, f"{name}.branch2.1", x2, 32, 32, 3, p=1)
    x2 = _basic(b, f"{name}.branch2.2", x2, 32, 32, 3, p=1)
    out = b.concat(f"{name}.cat", [x0, x1, x2])
    return b.residual(f"{name}", out, x, 96, 256, scale, relu=True)


def _block17(b, name, x, scale):
    x0 = _basic(b, f"{name}.branch0", x, 896, 128, 1)
    x1 = _basic(b, f"{name}.branch1.0", x, 896, 128, 1)
    x1 = _basic(b, f"{name}.branch1.1", x1, 128, 128, (1, 7), p=(0, 3))
    x1 = _basic(b, f"{name}.branch1.2", x1, 128, 128, (7, 1), p=(3, 0))
    out = b.concat(f"{name}.cat", [x0, x1])
    return b.residual(f"{name}", out, x, 256, 896, scale, relu=True)


def _block8(b, name, x, scale, relu=True):
    x0 = _basic(b, f"{name}.branch0", x, 1792, 192, 1)
    x1 = _basic(b, f"{name}.branch1.0", x, 1792, 192, 1)
    x1 = _basic(b, f"{name}.branch1.1", x1, 192, 192, (1, 3), p=(0, 1))
    x1 = _basic(b, f"{name}.branch1.2", x1, 192, 192, (3, 1), p=(1, 0))
    out = b.concat(f"{name}.cat", [x0, x1])
    return b.residual(f"{name}", out, x, 384, 1792, scale, relu=relu)


def _mixed_6a(b, name, x):
    x0 = _basic(b, f"{name}.branch0", x, 256, 384, 3, s=2)
    x1 = _basic(b, f"{name}.branch1.0", x, 256, 192, 1)
    x1 = _basic(b, f"{name}.branch1.1", x1, 192, 192, 3, p=1)
    x1 = _basic(b, f"{name}.branch1.2", x1, 192, 256, 3, s=2)
    x2 = b.maxpool(f"{name}.branch2", x)
    return b.concat(f"{name}.cat", [x0, x1, x2])


def _mixed_7a(b, name, x):
    x0 = _basic(b, f"{name}.branch0.0", x, 896, 256, 1)
    x0 = _basic(b, f"{name}.branch0.1", x0, 256, 384, 3, s=2)
    x1 = _basic(b, f"{name}.branch1.0", x, 896, 256, 1)
    x1 = _basic(b, f"{name}.branch1.1", x1, 256, 256, 3, s=2)
    x2 = _basic(b, f"{name}.branch2.0", x, 896, 256, 1)
    x2 = _basic(b, f"{name}.branch2.1", x2, 256, 256, 3, p=1)
    x2 = _basic(b, f"{name}.branch2.2", x2, 256, 256, 3, s=2)
    x3 = b.maxpool(f"{name}.branch3", x)
    return b.concat(f"{name}.cat", [x0, x1, x2, x3])


def architecture(b, x, dim):
    """InceptionResnetV1.forward (eval, classify=False). Order == state-dict order."""
    x = _basic(b, "conv2d_1a", x, 3, 32, 3, s=2)
    x = _basic(b, "conv2d_2a", x, 32, 32, 3)
    x = _basic(b, "conv2d_2b", x, 32, 64, 3, p=1)
    x = b.maxpool("maxpool_3a", x)
    x = _basic(b, "conv2d_3b", x, 64, 80, 1)
    x = _basic(b, "conv2d_4a", x, 80, 192, 3)
    x = _basic(b, "conv2d_4b", x, 192, 256, 3, s=2)
    for i in range(5):
        x = _block35(b, f"repeat_1.{i}", x, 0.17)
    x = _mixed_6a(b, "mixed_6a", x)
    for i in range(10):
        x = _block17(b, f"repeat_2.{i}", x, 0.10)
    x = _mixed_7a(b, "mixed_7a", x)
    for i in range(5):
        x = _block8(b, f"repeat_3.{i}", x, 0.20)
    # NB: facenet-pytorch builds the last block as Block8(noReLU=True), i.e. scale=1.0.
    x = _block8(b, "block8", x, 1.0, relu=False)
    return b.head(x, EMBED_IN, dim)


# ---------------------------------------------------------------------------
# Backend 1: parameter table (names, shapes, kinds) in state-dict order.
# ---------------------------------------------------------------------------

class _SpecBackend:
    def __init__(self):
        # name -> (shape tuple, kind); kind in {"param", "buffer", "ignored_buffer"}
        self.table: "OrderedDict[str, tuple]" = OrderedDict()

    def _add(self, name, shape, kind):
        assert name not in self.table, name
        self.table[name] = (tuple(int(s) for s in shape), kind)

    def _bn(self, name, c):
        self._add(f"{name}.weight", (c,), "param")
        self._add(f"{name}.bias", (c,), "param")
        self._add(f"{name}.running_mean", (c,), "buffer")
        self._add(f"{name}.running_var", (c,), "buffer")
        self._add(f"{name}.num_batches_tracked", (), "ignored_buffer")

    def basic_conv(self, name, x, cin, cout, k, s, p):
        self._add(f"{name}.conv.weight", (cout, cin, k[0], k[1]), "param")
        self._bn(f"{name}.bn", cout)

    def residual(self, name, cat, x, cin, cout, scale, relu):
        self._add(f"{name}.conv2d.weight", (cout, cin, 1, 1), "param")
        self._add(f"{name}.conv2d.bias", (cout,), "param")

    def concat(self, name, xs):
        return None

    def maxpool(self, name, x):
        return None

    def head(self, x, cin, dim):
        self._add("last_linear.weight", (dim, cin), "param")
        self._bn("last_bn", dim)


def param_table(dim: int = 512) -> "OrderedDict[str, tuple]":
    """facenet-pytorch state-dict keys -> (shape, kind), in state-dict order.

    kind: "param" (nn.Parameter), "buffer" (BN running stats), "ignored_buffer"
    (BN num_batches_tracked: int64 scalar, unused in eval mode, ignored on load).
    """
    b = _SpecBackend()
    architecture(b, None, dim)
    return b.table


def parameter_count(dim: int = 512) -> dict:
    t = param_table(dim)
    n = lambda kinds: int(sum(int(np.prod(s)) for s, k in t.values() if k in kinds))
    return {
        "parameters": n({"param"}),  # == sum(p.numel() for p in model.parameters())
        "buffers": n({"buffer", "ignored_buffer"}),
        "state_dict_numel": n({"param", "buffer", "ignored_buffer"}),
        "state_dict_keys": len(t),
    }


# ---------------------------------------------------------------------------
# Backend 3: float64 numpy reference forward pass (eval mode, no folding).
# Used to calibrate seeded models and as a torch-free cross-check of the graph.
# ---------------------------------------------------------------------------

def _windows(x, kh, kw, s):
    from numpy.lib.stride_tricks import sliding_window_view
    v = sliding_window_view(x, (kh, kw), axis=(2, 3))  # [N,C,H',W',kh,kw]
    return v[:, :, ::s, ::s]


class _NumpyBackend:
    def __init__(self, weights):
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()
                  if np.asarray(v).dtype.kind == "f"}
        self.stats = OrderedDict()  # name -> (mean, std) of activations, for diagnostics
        self.pre_bn = None  # last_linear output (before last_bn)

    def _conv(self, x, w, s, p, b=None):
        x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
        win = _windows(x, w.shape[2], w.shape[3], s)
        y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # [N,H,W,O]
        y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        if b is not None:
            y += b[None, :, None, None]
        return y

    def _bn(self, y, name, axis_shape):
        g, beta = self.w[f"{name}.weight"], self.w[f"{name}.bias"]
        m, v = self.w[f"{name}.running_mean"], self.w[f"{name}.running_var"]
        r = lambda a: a.reshape(axis_shape)
        return (y - r(m)) / np.sqrt(r(v) + BN_EPS) * r(g) + r(beta)

    def basic_conv(self, name, x, cin, cout, k, s, p):
        y = self._conv(x, self.w[f"{name}.conv.weight"], s, p)
        y = np.maximum(self._bn(y, f"{name}.bn", (1, -1, 1, 1)), 0.0)
        self.stats[name] = (float(y.mean()), float(y.std()))
        return y

    def residual(self, name, cat, x, cin, cout, scale, relu):
        y = self._conv(cat, self.w[f"{name}.conv2d.weight"], 1, (0, 0), self.w[f"{name}.conv2d.bias"])
        y = y * scale + x
        if relu:
            y = np.maximum(y, 0.0)
        self.stats[name] = (float(y.mean()), float(y.std()))
        return y

    def concat(self, name, xs):
        return np.concatenate(xs, axis=1)

    def maxpool(self, name, x):
        return _windows(x, 3, 3, 2).max(axis=(-2, -1))

    def head(self, x, cin, dim):
        y = x.mean(axis=(2, 3)) @ self.w["last_linear.weight"].T
        self.pre_bn = y
        return self._bn(y, "last_bn", (1, -1))


def reference_forward(weights, dim, x, l2norm=True):
    """float64 numpy forward pass of InceptionResnetV1 (eval). x: [N,3,H,W]."""
    b = _NumpyBackend(weights)
    y = architecture(b, np.asarray(x, dtype=np.float64), dim)
    if l2norm:
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return y, b


def calibration_images(rng, n=CALIB_IMAGES, size=INPUT_SIZE):
    """Synthetic, prewhitened 'images': smooth random colour fields plus fine noise."""
    lo = rng.standard_normal((n, 3, 10, 10))
    img = np.repeat(np.repeat(lo, size // 10, axis=2), size // 10, axis=3)
    img = img + 0.5 * rng.standard_normal((n, 1, size, size)) + 0.2 * rng.standard_normal(img.shape)
    img -= img.mean(axis=(1, 2, 3), keepdims=True)
    img /= img.std(axis=(1, 2, 3), keepdims=True)
    return img


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------

def seeded_weights(dim: int, seed: int, calibrate: bool = True) -> "dict[str, np.ndarray]":
    """Deterministic, 'realistic-ish' random weights.

    Convs / linear: He (Kaiming normal, fan_in) init.  Residual up-projection bias ~ N(0, 0.01).
    BN: gamma = 1 + N(0, 0.05), beta = N(0, 0.05), running_mean = N(0, 0.05),
    running_var = 1 + |N(0, 0.05)|.  Values are drawn in state-dict order from
    numpy's PCG64 generator, so a given seed gives the same model everywhere.

    With ``calibrate`` (default) last_bn's running_mean / running_var are then set,
    as training would, to the statistics of last_linear's output over a few synthetic
    images (float64 numpy forward pass, rounded to float16 precision so BLAS
    differences between machines cannot change the result).  Without this the
    post-ReLU features share a large common component and every input maps to
    nearly the same unit vector (cosine similarity ~0.998 between random images).
    """
    rng = np.random.default_rng(seed)
    w = {}
    for name, (shape, kind) in param_table(dim).items():
        leaf = name.rsplit(".", 1)[1]
        if kind == "ignored_buffer":
            w[name] = np.array(0, dtype=np.int64)
            continue
        if len(shape) >= 2:  # conv / linear weight
            fan_in = int(np.prod(shape[1:]))
            v = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif name.endswith("conv2d.bias"):
            v = rng.standard_normal(shape) * 0.01
        elif leaf == "weight":
            v = 1.0 + 0.05 * rng.standard_normal(shape)
        elif leaf in ("bias", "running_mean"):
            v = 0.05 * rng.standard_normal(shape)
        elif leaf == "running_var":
            v = 1.0 + np.abs(0.05 * rng.standard_normal(shape))
        else:  # pragma: no cover
            raise AssertionError(name)
        w[name] = v.astype(np.float32)
    if calibrate:
        w["last_bn.running_mean"] = np.zeros(dim, np.float32)
        w["last_bn.running_var"] = np.ones(dim, np.float32)
        _, ref = reference_forward(w, dim, calibration_images(rng), l2norm=False)
        z = ref.pre_bn
        w["last_bn.running_mean"] = z.mean(axis=0).astype(np.float16).astype(np.float32)
        w["last_bn.running_var"] = z.var(axis=0).astype(np.float16).astype(np.float32)
    return w


def load_state_dict_npz(path: str, dim: "int | None") -> "tuple[dict, int]":
    """Load a facenet-pytorch state dict saved as .npz; returns (weights, dim)."""
    with np.load(path, allow_pickle=False) as z:
        sd = {k: z[k] for k in z.files}
    if "last_linear.weight" not in sd:
        raise SystemExit(f"{path}: no 'last_linear.weight' - not an InceptionResnetV1 state dict?")
    sd_dim = int(sd["last_linear.weight"].shape[0])
    if dim is not None and dim != sd_dim:
        raise SystemExit(f"--dim {dim} but {path} has last_linear.weight of shape "
                         f"{tuple(sd['last_linear.weight'].shape)}")
    dim = sd_dim
    table = param_table(dim)
    errors = []
    out = {}
    for name, (shape, kind) in table.items():
        if name not in sd:
            if kind == "ignored_buffer":
                continue
            errors.append(f"missing key {name} {shape}")
            continue
        arr = sd[name]
        if tuple(arr.shape) != shape:
            errors.append(f"{name}: expected shape {shape}, got {tuple(arr.shape)}")
            continue
        out[name] = arr.astype(np.float32) if kind != "ignored_buffer" else arr
    ignored = [k for k in sd if k not in table and k.startswith("logits.")]
    unknown = [k for k in sd if k not in table and not k.startswith("logits.")]
    for k in unknown:
        errors.append(f"unexpected key {k} {tuple(sd[k].shape)}")
    if errors:
        raise SystemExit(f"{path}: state dict does not match InceptionResnetV1:\n  "
                         + "\n  ".join(errors[:20]) + ("\n  ..." if len(errors) > 20 else ""))
    if ignored:
        print(f"note: ignoring classifier keys {ignored}", file=sys.stderr)
    return out, dim


# ---------------------------------------------------------------------------
# Backend 2: ONNX graph
# ---------------------------------------------------------------------------

def _bn_fold(w, name):
    g = w[f"{name}.weight"].astype(np.float64)
    beta = w[f"{name}.bias"].astype(np.float64)
    mean = w[f"{name}.running_mean"].astype(np.float64)
    var = w[f"{name}.running_var"].astype(np.float64)
    a = g / np.sqrt(var + BN_EPS)
    return a, beta - mean * a


class _OnnxBackend:
    def __init__(self, weights, fold=True):
        self.w = weights
        self.fold = fold
        self.nodes = []
        self.inits = []

    def _init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def _node(self, op, inputs, output, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def basic_conv(self, name, x, cin, cout, k, s, p):
        wt = self.w[f"{name}.conv.weight"]
        conv_attrs = dict(kernel_shape=list(k), strides=[s, s], pads=[p[0], p[1], p[0], p[1]])
        if self.fold:
            a, bias = _bn_fold(self.w, f"{name}.bn")
            wf = (wt.astype(np.float64) * a[:, None, None, None]).astype(np.float32)
            y = self._node("Conv", [x, self._init(f"{name}.conv.weight", wf),
                                    self._init(f"{name}.conv.bias", bias.astype(np.float32))],
                           f"{name}.conv_out", f"{name}.conv", **conv_attrs)
        else:
            y = self._node("Conv", [x, self._init(f"{name}.conv.weight", wt)],
                           f"{name}.conv_out", f"{name}.conv", **conv_attrs)
            bn = f"{name}.bn"
            y = self._node("BatchNormalization",
                           [y] + [self._init(f"{bn}.{t}", self.w[f"{bn}.{t}"])
                                  for t in ("weight", "bias", "running_mean", "running_var")],
                           f"{bn}_out", bn, epsilon=BN_EPS)
        return self._node("Relu", [y], f"{name}_out", f"{name}.relu")

    def residual(self, name, cat, x, cin, cout, scale, relu):
        wt = self.w[f"{name}.conv2d.weight"]
        bt = self.w[f"{name}.conv2d.bias"]
        if self.fold:
            wt = (wt.astype(np.float64) * scale).astype(np.float32)
            bt = (bt.astype(np.float64) * scale).astype(np.float32)
        y = self._node("Conv", [cat, self._init(f"{name}.conv2d.weight", wt),
                                self._init(f"{name}.conv2d.bias", bt)],
                       f"{name}.conv2d_out", f"{name}.conv2d", kernel_shape=[1, 1])
        if not self.fold and scale != 1.0:
            y = self._node("Mul", [y, self._init(f"{name}.scale", np.array(scale, np.float32))],
                           f"{name}.scaled", f"{name}.mul")
        y = self._node("Add", [y, x], f"{name}.add_out", f"{name}.add")
        if relu:
            y = self._node("Relu", [y], f"{name}_out", f"{name}.relu")
        return y

    def concat(self, name, xs):
        return self._node("Concat", xs, f"{name}_out", name, axis=1)

    def maxpool(self, name, x):
        return self._node("MaxPool", [x], f"{name}_out", name, kernel_shape=[3, 3], strides=[2, 2])

    def head(self, x, cin, dim):
        y = self._node("GlobalAveragePool", [x], "avgpool_1a_out", "avgpool_1a")
        y = self._node("Flatten", [y], "flatten_out", "flatten", axis=1)
        wt = self.w["last_linear.weight"]  # [dim, 1792]
        if self.fold:
            a, bias = _bn_fold(self.w, "last_bn")
            wf = (wt.astype(np.float64) * a[:, None]).astype(np.float32)
            return self._node("Gemm", [y, self._init("last_linear.weight", wf),
                                       self._init("last_linear.bias", bias.astype(np.float32))],
                              "last_bn_out", "last_linear", transB=1)
        y = self._node("Gemm", [y, self._init("last_linear.weight", wt)],
                       "last_linear_out", "last_linear", transB=1)
        return self._node("BatchNormalization",
                          [y] + [self._init(f"last_bn.{t}", self.w[f"last_bn.{t}"])
                                 for t in ("weight", "bias", "running_mean", "running_var")],
                          "last_bn_out", "last_bn", epsilon=BN_EPS)

    def l2_normalize(self, x, out):
        # F.normalize(x, p=2, dim=1, eps=1e-12) == x / max(||x||_2, 1e-12)
        n = self._node("ReduceL2", [x], "l2_norm", "l2_norm", axes=[1], keepdims=1)
        n = self._node("Max", [n, self._init("l2_eps", np.array(1e-12, np.float32))],
                       "l2_norm_clamped", "l2_clamp")
        return self._node("Div", [x, n], out, "l2_div")


def build_model(weights, dim, *, l2norm=True, fold=True, normalization="prewhiten",
                model_name=None, description=""):
    b = _OnnxBackend(weights, fold=fold)
    y = architecture(b, "input", dim)
    if l2norm:
        y = b.l2_normalize(y, "embedding")
    else:
        b.nodes.append(helper.make_node("Identity", [y], ["embedding"], name="embedding"))
    graph = helper.make_graph(
        b.nodes, "inception_resnet_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gst-facenet/models/inception_resnet_v1/build.py")
    model.ir_version = IR_VERSION
    model.doc_string = description
    meta = OrderedDict()
    meta["gst-facenet.model-name"] = model_name or f"inception_resnet_v1_{dim}"
    meta["gst-facenet.normalization"] = normalization
    if normalization == "fixed":
        meta["gst-facenet.mean"] = ",".join([f"{FIXED_MEAN:g}"] * 3)
        meta["gst-facenet.std"] = ",".join([f"{FIXED_STD:g}"] * 3)
    meta["gst-facenet.channel-order"] = "rgb"
    meta["gst-facenet.aspect"] = "stretch"
    # Region mode: FaceNet crops the detection box with a margin (Schroff et al., Sandberg).
    meta["gst-facenet.alignment"] = "margin"
    meta["gst-facenet.embedding-dim"] = str(dim)
    meta["gst-facenet.l2-normalized"] = "true" if l2norm else "false"
    onnx.helper.set_model_props(model, dict(meta))
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--seed", type=int, help="deterministic random weights")
    src.add_argument("--state-dict", metavar="FILE.npz",
                     help="facenet-pytorch state dict saved with np.savez (see README.md)")
    ap.add_argument("--dim", type=int, choices=(128, 512), default=None,
                    help="embedding size (default 512; inferred from --state-dict)")
    ap.add_argument("--normalization", choices=("prewhiten", "fixed"), default=None,
                    help="input normalisation recorded in metadata: 'prewhiten' (TF facenet, "
                         "per-image) or 'fixed' ((x-127.5)/128, facenet-pytorch weights). "
                         "Default: fixed with --state-dict, prewhiten with --seed")
    ap.add_argument("--no-l2norm", dest="l2norm", action="store_false",
                    help="omit the final L2 normalisation (default: on)")
    ap.add_argument("--no-fold", dest="fold", action="store_false",
                    help="keep BatchNormalization/Mul nodes instead of folding them into convs")
    ap.add_argument("--model-name", default=None, help="gst-facenet.model-name metadata value")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args(argv)

    if args.state_dict:
        weights, dim = load_state_dict_npz(args.state_dict, args.dim)
        norm = args.normalization or "fixed"
        desc = f"Inception-ResNet-v1 ({dim}-d) from state dict {os.path.basename(args.state_dict)}"
    else:
        dim = args.dim or 512
        weights = seeded_weights(dim, args.seed)
        norm = args.normalization or "prewhiten"
        desc = f"Inception-ResNet-v1 ({dim}-d) with RANDOM weights (seed {args.seed}); for tests only"
    name = args.model_name or (f"inception_resnet_v1_{dim}" +
                               (f"_seed{args.seed}" if args.seed is not None else ""))
    model = build_model(weights, dim, l2norm=args.l2norm, fold=args.fold,
                        normalization=norm, model_name=name, description=desc)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.output + ".tmp"
    onnx.save_model(model, tmp)
    os.replace(tmp, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes, dim {dim}, "
          f"normalization {norm}, l2norm {args.l2norm}, fold {args.fold})")


if __name__ == "__main__":
    main()
