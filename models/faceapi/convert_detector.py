#!/usr/bin/env python3
"""Convert face-api's SSD MobileNet v1 face detector (ssd_mobilenetv1_model) to ONNX.

Reads the weights shipped in the npm package @vladmandic/face-api
(model/ssd_mobilenetv1_model-weights_manifest.json + ssd_mobilenetv1_model.bin), dequantizes
them exactly like tfjs-core's io.decodeWeights does, and rebuilds src/ssdMobilenetv1/*.ts op by
op (NHWC in tfjs -> NCHW here), INCLUDING the box decoding of outputLayer.ts against the 5118
fixed priors (`Output/extra_dim`). Non-maximum suppression is NOT in the graph.

Output: ONNX opset 17 / IR 8 with
  input   float32 [N, 3, 512, 512]  RGB NCHW, already normalized as face-api does:
                                     zero-pad to square at the bottom/right, legacy bilinear
                                     resize to 512x512, then x / 127.5 - 1
  boxes   float32 [N, 5118, 4]      decoded boxes (ymin, xmin, ymax, xmax), relative to the
                                     padded square (not clipped; may leave [0, 1])
  scores  float32 [N, 5118]         sigmoid(class logit 1) = face probability

The output is deterministic: running this twice produces byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
PKG_DIR = HERE / "node_modules" / "@vladmandic" / "face-api"
DEFAULT_OUT = HERE.parent / "out" / "faceapi_ssd_mobilenetv1.onnx"

INPUT_SIZE = 512
NUM_PRIORS = 5118
BN_EPSILON = 0.0010000000474974513  # mobileNetV1.ts
IOU_THRESHOLD = 0.5                 # SsdMobilenetv1.locateFaces (hard-coded)
MIN_CONFIDENCE = 0.5                # SsdMobilenetv1Options default
MAX_RESULTS = 100                   # SsdMobilenetv1Options default

OPSET = 17
IR_VERSION = 8

# manifest entries face-api loads but never uses (tfjs graph constants of the original TF model)
UNUSED_OK_PREFIXES = ("Preprocessor/", "Postprocessor/", "concat_1/axis")
UNUSED_OK_SUFFIXES = ("/stack_1/1", "/stack_1/2", "/stack/3", "/strided_slice/stack", "/strided_slice/stack_1")


# ----------------------------------------------------------------------------- weights

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16,
           "float16": np.float16}


def load_weights(manifest_path: Path) -> dict[str, np.ndarray]:
    """Decode a tfjs weights manifest the way tfjs-core io_utils.decodeWeights does
    (float32 and int32 weights, optionally uint8/uint16/float16 quantized)."""
    manifest = json.loads(manifest_path.read_text())
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            name, shape, dtype = w["name"], list(w["shape"]), w["dtype"]
            if dtype not in ("float32", "int32"):
                raise ValueError(f"{name}: unsupported dtype {dtype}")
            n = int(np.prod(shape, dtype=np.int64))
            q = w.get("quantization")
            if q:
                qdt = np.dtype(_DTYPES[q["dtype"]]).newbyteorder("<")
                raw = np.frombuffer(buf, dtype=qdt, count=n, offset=off)
                off += n * qdt.itemsize
                if q["dtype"] in ("uint8", "uint16"):
                    # JS: values[i] = v * scale + min  (double arithmetic, stored in a typed array)
                    vals = raw.astype(np.float64) * float(q["scale"]) + float(q["min"])
                elif q["dtype"] == "float16":
                    vals = raw.astype(np.float64)
                else:
                    raise ValueError(f"{name}: unsupported quantization {q}")
                vals = vals.astype(np.float32) if dtype == "float32" else np.trunc(vals).astype(np.int32)
            else:
                dt = "<f4" if dtype == "float32" else "<i4"
                vals = np.frombuffer(buf, dtype=dt, count=n, offset=off).copy()
                off += n * 4
            if name in out:
                raise ValueError(f"duplicate weight {name}")
            out[name] = vals.reshape(shape)
        if off != len(buf):
            raise ValueError(f"manifest describes {off} bytes but weight files hold {len(buf)}")
    return out


def package_version(pkg: Path) -> str:
    return json.loads((pkg / "package.json").read_text())["version"]


# ----------------------------------------------------------------------------- graph helpers


def same_pads(hw: int, k: int, stride: int) -> tuple[list[int], int]:
    """TF 'same' padding: out = ceil(in / stride), the odd extra pixel goes to the bottom/right.
    Returns ONNX pads [top, left, bottom, right] and the output size."""
    out_hw = -(-hw // stride)
    total = max((out_hw - 1) * stride + k - hw, 0)
    lo, hi = total // 2, total - total // 2
    return [lo, lo, hi, hi], out_hw


class GraphBuilder:
    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = weights
        self.used: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._consts: dict[str, str] = {}

    def weight(self, name: str) -> np.ndarray:
        if name not in self.w:
            raise KeyError(f"weight {name} missing from manifest")
        self.used.add(name)
        return self.w[name]

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def scalar(self, value: float, dtype=np.float32) -> str:
        """Shared scalar constant."""
        key = f"{np.dtype(dtype).name}:{value!r}"
        if key not in self._consts:
            name = f"c_{np.dtype(dtype).name}_{len(self._consts)}"
            self._consts[key] = self.const(name, np.array(value, dtype=dtype))
        return self._consts[key]

    def ints(self, name: str, values) -> str:
        return self.const(name, np.array(values, dtype=np.int64))

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x: str, hw: int, filt_hwio: np.ndarray, bias: np.ndarray | None, stride: int,
             name: str, depthwise: bool = False) -> tuple[str, int]:
        """tf.conv2d / tf.depthwiseConv2d with padding 'same' (tfjs filter layout HWIO / HWC1)."""
        kh, kw = filt_hwio.shape[:2]
        assert kh == kw
        pads, out_hw = same_pads(hw, kh, stride)
        if depthwise:
            c = filt_hwio.shape[2]
            assert filt_hwio.shape[3] == 1
            w = np.transpose(filt_hwio, (2, 3, 0, 1))  # [C, 1, kh, kw]
            group = c
        else:
            w = np.transpose(filt_hwio, (3, 2, 0, 1))  # OIHW
            group = 1
        inputs = [x, self.const(f"{name}_W", w.astype(np.float32))]
        if bias is not None:
            inputs.append(self.const(f"{name}_B", bias.astype(np.float32)))
        y = self.node("Conv", inputs, name, kernel_shape=[kh, kw], strides=[stride, stride],
                      pads=pads, dilations=[1, 1], group=group)
        return y, out_hw

    def relu6(self, x: str, name: str) -> str:
        return self.node("Clip", [x, self.scalar(0.0), self.scalar(6.0)], name)

    def check_all_used(self, allow=lambda name: False):
        unused = sorted(n for n in set(self.w) - self.used if not allow(n))
        if unused:
            raise ValueError(f"unused weights in manifest: {unused}")


# ----------------------------------------------------------------------------- SSD MobileNet v1


def _allow_unused(name: str) -> bool:
    return name.startswith(UNUSED_OK_PREFIXES) or name.endswith(UNUSED_OK_SUFFIXES)


def pointwise_conv_layer(b: GraphBuilder, x: str, hw: int, prefix: str, stride: int) -> tuple[str, int]:
    """pointwiseConvLayer.ts: conv2d(filters, strides, 'same') + batch_norm_offset, clip 0..6."""
    f = b.weight(f"{prefix}/weights")
    off = b.weight(f"{prefix}/convolution_bn_offset")
    name = prefix.replace("/", "_")
    y, hw = b.conv(x, hw, f, off, stride, f"{name}_conv")
    return b.relu6(y, f"{name}_relu6"), hw


def depthwise_conv_layer(b: GraphBuilder, x: str, hw: int, prefix: str, stride: int) -> tuple[str, int]:
    """mobileNetV1.ts depthwiseConvLayer: depthwiseConv2d 'same' -> batchNorm(eps) -> clip 0..6.
    The batch norm (no bias on the conv) is folded into the depthwise filter + a bias."""
    f = b.weight(f"{prefix}/depthwise_weights").astype(np.float64)
    gamma = b.weight(f"{prefix}/BatchNorm/gamma").astype(np.float64)
    beta = b.weight(f"{prefix}/BatchNorm/beta").astype(np.float64)
    mean = b.weight(f"{prefix}/BatchNorm/moving_mean").astype(np.float64)
    var = b.weight(f"{prefix}/BatchNorm/moving_variance").astype(np.float64)
    k = gamma / np.sqrt(var + np.float64(np.float32(BN_EPSILON)))
    f_folded = f * k.reshape(1, 1, -1, 1)
    bias = beta - mean * k
    name = prefix.replace("/", "_")
    y, hw = b.conv(x, hw, f_folded, bias, stride, f"{name}_dwconv", depthwise=True)
    return b.relu6(y, f"{name}_relu6"), hw


def box_predictor(b: GraphBuilder, x: str, idx: int) -> tuple[str, str, int]:
    """boxPredictionLayer.ts: 1x1 convs (+bias, no activation); the box encodings are reshaped
    [N, H*W*A, 4] and the class predictions [N, H*W*A, 3] in NHWC order (h, w, anchor)."""
    outs = []
    anchors = None
    for kind, width in (("BoxEncodingPredictor", 4), ("ClassPredictor", 3)):
        prefix = f"Prediction/BoxPredictor_{idx}/{kind}"
        f = b.weight(f"{prefix}/weights")
        bias = b.weight(f"{prefix}/biases")
        assert f.shape[:2] == (1, 1) and f.shape[3] % width == 0
        a = f.shape[3] // width
        anchors = a if anchors is None else anchors
        assert anchors == a, (idx, anchors, a)
        name = prefix.replace("/", "_")
        y, _ = b.conv(x, 1, f, bias, 1, f"{name}_conv")  # hw irrelevant for 1x1 stride 1
        y = b.node("Transpose", [y], f"{name}_nhwc", perm=[0, 2, 3, 1])
        y = b.node("Reshape", [y, b.ints(f"{name}_shape", [0, -1, width])], f"{name}_reshape")
        outs.append(y)
    return outs[0], outs[1], anchors


def build_model(weights: dict[str, np.ndarray], version: str) -> onnx.ModelProto:
    b = GraphBuilder(weights)
    x, hw = "input", INPUT_SIZE

    # ---- mobileNetV1.ts
    x, hw = pointwise_conv_layer(b, x, hw, "MobilenetV1/Conv2d_0_pointwise", 2)   # 512 -> 256
    conv11 = conv11_hw = None
    for i in range(1, 14):
        stride = 2 if i in (2, 4, 6, 12) else 1
        x, hw = depthwise_conv_layer(b, x, hw, f"MobilenetV1/Conv2d_{i}_depthwise", stride)
        x, hw = pointwise_conv_layer(b, x, hw, f"MobilenetV1/Conv2d_{i}_pointwise", 1)
        if i == 11:
            conv11, conv11_hw = x, hw
    assert (conv11_hw, hw) == (32, 16), (conv11_hw, hw)

    # ---- predictionLayer.ts
    feats = [(conv11, conv11_hw), (x, hw)]
    y, yhw = x, hw
    for i in range(8):
        y, yhw = pointwise_conv_layer(b, y, yhw, f"Prediction/Conv2d_{i}_pointwise", 2 if i % 2 else 1)
        if i % 2:
            feats.append((y, yhw))   # conv1 (8x8), conv3 (4x4), conv5 (2x2), conv7 (1x1)
    assert [h for _, h in feats] == [32, 16, 8, 4, 2, 1], [h for _, h in feats]

    box_parts, cls_parts, total = [], [], 0
    for idx, (feat, fhw) in enumerate(feats):
        be, cp, a = box_predictor(b, feat, idx)
        box_parts.append(be)
        cls_parts.append(cp)
        total += fhw * fhw * a
    assert total == NUM_PRIORS, total
    box_enc = b.node("Concat", box_parts, "box_encodings", axis=1)     # [N, 5118, 4]
    cls = b.node("Concat", cls_parts, "class_predictions", axis=1)     # [N, 5118, 3]

    # ---- outputLayer.ts
    # priors (Output/extra_dim) are [ymin, xmin, ymax, xmax]; sizes/centres are computed here in
    # float32 with the same op order as getCenterCoordinatesAndSizesLayer (exact IEEE results).
    priors = b.weight("Output/extra_dim").reshape(NUM_PRIORS, 4).astype(np.float32)
    size_y = priors[:, 2] - priors[:, 0]
    size_x = priors[:, 3] - priors[:, 1]
    ctr_y = priors[:, 0] + size_y / np.float32(2)
    ctr_x = priors[:, 1] + size_x / np.float32(2)
    col = lambda v, n: b.const(n, v.astype(np.float32).reshape(1, NUM_PRIORS, 1))  # noqa: E731
    sy, sx, cy0, cx0 = col(size_y, "prior_size_y"), col(size_x, "prior_size_x"), \
        col(ctr_y, "prior_center_y"), col(ctr_x, "prior_center_x")

    split = b.ints("box_split", [1, 1, 1, 1])
    b.nodes.append(helper.make_node("Split", [box_enc, split], ["t_y", "t_x", "t_h", "t_w"],
                                    name="box_split", axis=2))
    two, five, ten = b.scalar(2.0), b.scalar(5.0), b.scalar(10.0)
    # div0_out = exp(t_h / 5) * size_y / 2 ; add0_out = t_y / 10 * size_y + center_y   (y)
    hh = b.node("Div", [b.node("Mul", [b.node("Exp", [b.node("Div", ["t_h", five], "th_div5")], "th_exp"), sy],
                               "th_mul"), two], "half_h")
    cy = b.node("Add", [b.node("Mul", [b.node("Div", ["t_y", ten], "ty_div10"), sy], "ty_mul"), cy0], "center_y")
    hw_ = b.node("Div", [b.node("Mul", [b.node("Exp", [b.node("Div", ["t_w", five], "tw_div5")], "tw_exp"), sx],
                                "tw_mul"), two], "half_w")
    cx = b.node("Add", [b.node("Mul", [b.node("Div", ["t_x", ten], "tx_div10"), sx], "tx_mul"), cx0], "center_x")
    corners = [b.node("Sub", [cy, hh], "ymin"), b.node("Sub", [cx, hw_], "xmin"),
               b.node("Add", [cy, hh], "ymax"), b.node("Add", [cx, hw_], "xmax")]
    b.node("Concat", corners, "boxes", axis=2)                                   # [N, 5118, 4]

    # scores = sigmoid(class_predictions[:, :, 1])
    logit = b.node("Slice", [cls, b.ints("cls_start", [1]), b.ints("cls_end", [2]), b.ints("cls_axes", [2])],
                   "face_logit")
    prob = b.node("Sigmoid", [logit], "face_prob")
    b.node("Squeeze", [prob, b.ints("squeeze_axes", [2])], "scores")            # [N, 5118]

    b.check_all_used(_allow_unused)

    graph = helper.make_graph(
        b.nodes, "faceapi_ssd_mobilenetv1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", NUM_PRIORS, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", NUM_PRIORS])],
        initializer=b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gst-facenet models/faceapi/convert_detector.py",
                              producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (
        f"face-api SSD MobileNet v1 face detector converted from npm @vladmandic/face-api@{version} (MIT). "
        "Input: RGB NCHW 512x512, image zero-padded to a square at the bottom/right, legacy bilinear "
        "resize (align_corners=false, half_pixel_centers=false), then x/127.5-1. Outputs: boxes "
        f"[N,{NUM_PRIORS},4] = (ymin,xmin,ymax,xmax) relative to the padded square, decoded against the "
        "priors with variances 10,10,5,5 (not clipped); scores [N,5118] = sigmoid face probability. "
        f"No NMS: face-api uses greedy NMS with IoU > {IOU_THRESHOLD} suppressing, score > minConfidence "
        f"(default {MIN_CONFIDENCE}), max {MAX_RESULTS} results."
    )
    meta = {
        "gst-facenet.model-name": "faceapi-ssd-mobilenetv1",
        "gst-facenet.source": f"npm @vladmandic/face-api@{version} (MIT)",
        "gst-facenet.input-normalization": "x/127.5-1",
        "gst-facenet.normalization": "fixed",   # (x - mean) / std with the numbers below
        "gst-facenet.mean": "127.5,127.5,127.5",
        "gst-facenet.std": "127.5,127.5,127.5",
        "gst-facenet.channel-order": "rgb",
        "gst-facenet.resize": "bilinear-legacy",   # align_corners=false, half_pixel_centers=false
        "gst-facenet.pad": "bottom-right",
        "gst-facenet.box-order": "ymin,xmin,ymax,xmax",
        "gst-facenet.box-coords": "relative-to-padded-square",
        "gst-facenet.score": "sigmoid",
        "gst-facenet.nms-iou": f"{IOU_THRESHOLD:g}",
        "gst-facenet.min-confidence": f"{MIN_CONFIDENCE:g}",
        "gst-facenet.max-results": str(MAX_RESULTS),
    }
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model, full_check=True)
    return model


def write_model(model: onnx.ModelProto, out: Path, version: str) -> None:
    data = model.SerializeToString(deterministic=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(data)} bytes, face-api {version}, opset {OPSET}, ir {IR_VERSION})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", nargs="?", default=str(DEFAULT_OUT),
                    help=f"output .onnx path (default: {DEFAULT_OUT})")
    ap.add_argument("--package-dir", default=str(PKG_DIR),
                    help="path of the installed @vladmandic/face-api package")
    args = ap.parse_args(argv)

    pkg = Path(args.package_dir)
    manifest = pkg / "model" / "ssd_mobilenetv1_model-weights_manifest.json"
    if not manifest.is_file():
        print(f"error: {manifest} not found; run `npm ci --ignore-scripts` in {HERE}", file=sys.stderr)
        return 2
    version = package_version(pkg)
    write_model(build_model(load_weights(manifest), version), Path(args.output), version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
