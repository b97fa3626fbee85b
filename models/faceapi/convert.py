#!/usr/bin/env python3
"""Convert face-api's FaceRecognitionNet (port of dlib's 29-conv ResNet, 150x150 RGB -> 128-d)
to ONNX.

Reads the weights shipped in the npm package @vladmandic/face-api
(model/face_recognition_model-weights_manifest.json + face_recognition_model.bin),
dequantizes them exactly like tfjs-core's io.decodeWeights does, and rebuilds the graph of
src/faceRecognitionNet/FaceRecognitionNet.ts op by op (NHWC in tfjs -> NCHW here).

Output: ONNX opset 17 / IR 8 with
  input     float32 [N, 3, 150, 150]  RGB, (pixel - mean_rgb) / 255, NCHW
  embedding float32 [N, 128]          (not L2-normalized; compare with euclidean distance)

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
DEFAULT_OUT = HERE.parent / "out" / "faceapi_resnet128.onnx"

INPUT_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceRecognitionNet.ts: normalize(batch, meanRgb).div(255)
STD = 255.0

OPSET = 17
IR_VERSION = 8

# Layer order of FaceRecognitionNet.forwardInput: (name, kind)
#   kind 'res'  -> residual()      (3x3 same conv+relu, 3x3 same conv, add identity, relu)
#   kind 'down' -> residualDown()  (3x3 s2 VALID conv+relu, 3x3 same conv, avgpool(2,2,valid)
#                                   shortcut zero-padded in channels / spatial, add, relu)
BLOCKS = [
    ("conv32_1", "res"), ("conv32_2", "res"), ("conv32_3", "res"),
    ("conv64_down", "down"), ("conv64_1", "res"), ("conv64_2", "res"), ("conv64_3", "res"),
    ("conv128_down", "down"), ("conv128_1", "res"), ("conv128_2", "res"),
    ("conv256_down", "down"), ("conv256_1", "res"), ("conv256_2", "res"),
    ("conv256_down_out", "down"),
]


# ----------------------------------------------------------------------------- weights

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16,
           "float16": np.float16}


def load_weights(manifest_path: Path) -> dict[str, np.ndarray]:
    """Decode a tfjs weights manifest the way tfjs-core io_utils.decodeWeights does."""
    manifest = json.loads(manifest_path.read_text())
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            name, shape, dtype = w["name"], list(w["shape"]), w["dtype"]
            if dtype != "float32":
                raise ValueError(f"{name}: unsupported dtype {dtype}")
            n = int(np.prod(shape, dtype=np.int64))
            q = w.get("quantization")
            if q:
                qdt = np.dtype(_DTYPES[q["dtype"]]).newbyteorder("<")
                raw = np.frombuffer(buf, dtype=qdt, count=n, offset=off)
                off += n * qdt.itemsize
                if q["dtype"] in ("uint8", "uint16"):
                    # JS: values[i] = v * scale + min  (double arithmetic, stored in Float32Array)
                    vals = (raw.astype(np.float64) * float(q["scale"]) + float(q["min"])).astype(np.float32)
                elif q["dtype"] == "float16":
                    vals = raw.astype(np.float32)
                else:
                    raise ValueError(f"{name}: unsupported quantization {q}")
            else:
                vals = np.frombuffer(buf, dtype="<f4", count=n, offset=off).astype(np.float32)
                off += n * 4
            if name in out:
                raise ValueError(f"duplicate weight {name}")
            out[name] = vals.reshape(shape)
        if off != len(buf):
            raise ValueError(f"manifest describes {off} bytes but weight files hold {len(buf)}")
    return out


# ----------------------------------------------------------------------------- graph


class Builder:
    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = weights
        self.used: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def weight(self, name: str) -> np.ndarray:
        if name not in self.w:
            raise KeyError(f"weight {name} missing from manifest")
        self.used.add(name)
        return self.w[name]

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    # tfjs: conv2d(x, filters, strides, padding) -> add(bias) -> scale (mul w, add b) -> [relu]
    def conv_layer(self, x: str, hw: int, prefix: str, stride: int, relu: bool, padding: str):
        f = self.weight(f"{prefix}/conv/filters")  # HWIO
        b = self.weight(f"{prefix}/conv/bias")
        sw = self.weight(f"{prefix}/scale/weights")
        sb = self.weight(f"{prefix}/scale/biases")
        kh, kw, cin, cout = f.shape
        assert kh == kw and b.shape == (cout,) and sw.shape == (cout,) and sb.shape == (cout,)
        if padding == "valid":
            pads = [0, 0, 0, 0]
            out_hw = (hw - kh) // stride + 1
        else:  # TF 'same': out = ceil(in/stride), extra padding goes to the bottom/right
            out_hw = -(-hw // stride)
            total = max((out_hw - 1) * stride + kh - hw, 0)
            pads = [total // 2, total // 2, total - total // 2, total - total // 2]
        p = prefix.replace("/", "_")
        wname = self.const(f"{p}_W", np.transpose(f, (3, 2, 0, 1)))  # OIHW
        bname = self.const(f"{p}_B", b)
        y = self.node("Conv", [x, wname, bname], f"{p}_conv",
                      kernel_shape=[kh, kw], strides=[stride, stride], pads=pads,
                      dilations=[1, 1], group=1)
        y = self.node("Mul", [y, self.const(f"{p}_scale_w", sw.reshape(1, cout, 1, 1))], f"{p}_scale_mul")
        y = self.node("Add", [y, self.const(f"{p}_scale_b", sb.reshape(1, cout, 1, 1))], f"{p}_scale_add")
        if relu:
            y = self.node("Relu", [y], f"{p}_relu")
        return y, out_hw, cout

    def residual(self, x: str, hw: int, c: int, prefix: str):
        y, hw1, c1 = self.conv_layer(x, hw, f"{prefix}/conv1", 1, True, "same")
        y, hw2, c2 = self.conv_layer(y, hw1, f"{prefix}/conv2", 1, False, "same")
        assert (hw2, c2) == (hw, c), (prefix, hw2, c2, hw, c)
        y = self.node("Add", [y, x], f"{prefix}_add")
        return self.node("Relu", [y], f"{prefix}_relu"), hw, c

    def residual_down(self, x: str, hw: int, c: int, prefix: str):
        y, hw1, c1 = self.conv_layer(x, hw, f"{prefix}/conv1", 2, True, "valid")
        y, hw2, c2 = self.conv_layer(y, hw1, f"{prefix}/conv2", 1, False, "same")
        # shortcut: tf.avgPool(x, 2, 2, 'valid') (floor, odd trailing row/col dropped)
        pooled = self.node("AveragePool", [x], f"{prefix}_avgpool", kernel_shape=[2, 2],
                           strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0)
        phw = (hw - 2) // 2 + 1
        if phw != hw2:
            # isAdjustShape: zeros concatenated at the END of H then W of the conv branch
            assert phw == hw2 + 1, (prefix, phw, hw2)
            pads = self.const(f"{prefix}_hwpad", np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))
            y = self.node("Pad", [y, pads], f"{prefix}_hwpad_out", mode="constant")
        if c != c2:
            # isPad: concat(pooled, zeros_like(pooled)) along channels -> requires c2 == 2c
            assert c2 == 2 * c, (prefix, c, c2)
            pads = self.const(f"{prefix}_cpad", np.array([0, 0, 0, 0, 0, c, 0, 0], np.int64))
            pooled = self.node("Pad", [pooled, pads], f"{prefix}_cpad_out", mode="constant")
        y = self.node("Add", [pooled, y], f"{prefix}_add")
        return self.node("Relu", [y], f"{prefix}_relu"), phw, c2


def build_model(weights: dict[str, np.ndarray], version: str) -> onnx.ModelProto:
    b = Builder(weights)
    x, hw, c = "input", INPUT_SIZE, 3

    x, hw, c = b.conv_layer(x, hw, "conv32_down", 2, True, "valid")          # 150 -> 72
    x = b.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2],
               pads=[0, 0, 0, 0], ceil_mode=0)                               # 72 -> 35 (valid)
    hw = (hw - 3) // 2 + 1
    for prefix, kind in BLOCKS:
        if kind == "res":
            x, hw, c = b.residual(x, hw, c, prefix)
        else:
            x, hw, c = b.residual_down(x, hw, c, prefix)
    assert (hw, c) == (2, 256), (hw, c)

    x = b.node("ReduceMean", [x], "global_avg", axes=[2, 3], keepdims=0)      # out.mean([1, 2])
    fc = b.weight("fc")
    assert fc.shape == (256, 128), fc.shape
    b.node("MatMul", [x, b.const("fc_W", fc)], "embedding")                  # tf.matMul(avg, fc)

    unused = sorted(set(weights) - b.used)
    if unused:
        raise ValueError(f"unused weights in manifest: {unused}")

    graph = helper.make_graph(
        b.nodes, "faceapi_face_recognition_net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 128])],
        initializer=b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gst-facenet models/faceapi/convert.py",
                              producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (
        "face-api FaceRecognitionNet (port of dlib's dlib_face_recognition_resnet_model_v1) "
        f"converted from npm @vladmandic/face-api@{version} (MIT). Input: RGB NCHW 150x150, "
        "(pixel - mean_rgb) / 255 after zero-padding to a centred square and bilinear resize. "
        "Output: 128-d descriptor, euclidean distance < 0.6 means same person."
    )
    meta = {
        "gst-facenet.normalization": "fixed",
        "gst-facenet.mean": ",".join(f"{m:g}" for m in MEAN_RGB),
        "gst-facenet.std": "255,255,255",
        "gst-facenet.channel-order": "rgb",
        "gst-facenet.aspect": "pad",
        # Region mode: dlib's recognition net was trained on 150x150 chips aligned from landmarks.
        "gst-facenet.alignment": "dlib-chip",
        "gst-facenet.model-name": "faceapi-dlib-resnet-128",
        "gst-facenet.source": f"npm @vladmandic/face-api@{version} (MIT)",
        "gst-facenet.distance-threshold": "0.6",
    }
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", nargs="?", default=str(DEFAULT_OUT),
                    help=f"output .onnx path (default: {DEFAULT_OUT})")
    ap.add_argument("--package-dir", default=str(PKG_DIR),
                    help="path of the installed @vladmandic/face-api package")
    args = ap.parse_args(argv)

    pkg = Path(args.package_dir)
    manifest = pkg / "model" / "face_recognition_model-weights_manifest.json"
    if not manifest.is_file():
        print(f"error: {manifest} not found; run `npm ci` in {HERE}", file=sys.stderr)
        return 2
    version = json.loads((pkg / "package.json").read_text())["version"]

    model = build_model(load_weights(manifest), version)
    data = model.SerializeToString(deterministic=True)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(data)} bytes, face-api {version}, opset {OPSET}, ir {IR_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
