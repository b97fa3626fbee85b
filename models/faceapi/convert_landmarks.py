#!/usr/bin/env python3
"""Convert face-api's 68-point face landmark net (FaceLandmark68Net, face_landmark_68_model) to ONNX.

Reads model/face_landmark_68_model-weights_manifest.json + face_landmark_68_model.bin from the npm
package @vladmandic/face-api, dequantizes like tfjs, and rebuilds
src/faceFeatureExtractor/FaceFeatureExtractor.ts (4 dense blocks of separable convs) +
src/faceProcessor/FaceProcessor.ts runNet (avgPool 7x7 + fully connected) op by op in NCHW.

Output: ONNX opset 17 / IR 8 with
  input      float32 [N, 3, 112, 112]  RGB NCHW, (pixel - [122.782, 117.001, 104.298]) / 255,
                                        crop zero-padded to a CENTRED square, legacy bilinear
                                        resize to 112x112
  landmarks  float32 [N, 136]          x0, y0, x1, y1, ... x67, y67 relative to the padded
                                        112x112 square (what FaceLandmark68Net.runNet returns,
                                        before postProcess maps them to the un-padded crop)

Deterministic: running this twice produces byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from convert_detector import (IR_VERSION, OPSET, PKG_DIR, GraphBuilder, load_weights,
                              package_version, write_model)

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "out" / "faceapi_landmark68.onnx"

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceFeatureExtractor.ts: normalize(batch, meanRgb).div(255)


def separable_conv(b: GraphBuilder, x: str, hw: int, prefix: str, stride: int) -> tuple[str, int]:
    """common/depthwiseSeparableConv.ts: tf.separableConv2d(x, dw, pw, stride, 'same') + bias
    (depthwise 3x3 'same' with the stride, then pointwise 1x1; no activation)."""
    dw = b.weight(f"{prefix}/depthwise_filter")
    pw = b.weight(f"{prefix}/pointwise_filter")
    bias = b.weight(f"{prefix}/bias")
    name = prefix.replace("/", "_")
    y, hw = b.conv(x, hw, dw, None, stride, f"{name}_dw", depthwise=True)
    y, _ = b.conv(y, hw, pw, bias, 1, f"{name}_pw")
    return y, hw


def dense_block4(b: GraphBuilder, x: str, hw: int, prefix: str, first: bool) -> tuple[str, int]:
    """faceFeatureExtractor/denseBlock.ts denseBlock4 (isScaleDown = true)."""
    if first:
        y, hw = b.conv(x, hw, b.weight(f"{prefix}/conv0/filters"), b.weight(f"{prefix}/conv0/bias"), 2,
                       f"{prefix}_conv0")
    else:
        y, hw = separable_conv(b, x, hw, f"{prefix}/conv0", 2)
    out1 = b.node("Relu", [y], f"{prefix}_out1")
    out2, _ = separable_conv(b, out1, hw, f"{prefix}/conv1", 1)
    in3 = b.node("Relu", [b.node("Add", [out1, out2], f"{prefix}_add3")], f"{prefix}_in3")
    out3, _ = separable_conv(b, in3, hw, f"{prefix}/conv2", 1)
    in4 = b.node("Relu", [b.node("Add", [out1, b.node("Add", [out2, out3], f"{prefix}_add4a")], f"{prefix}_add4")],
                 f"{prefix}_in4")
    out4, _ = separable_conv(b, in4, hw, f"{prefix}/conv3", 1)
    s = b.node("Add", [out3, out4], f"{prefix}_add5a")
    s = b.node("Add", [out2, s], f"{prefix}_add5b")
    s = b.node("Add", [out1, s], f"{prefix}_add5")
    return b.node("Relu", [s], f"{prefix}_out"), hw


def build_model(weights: dict[str, np.ndarray], version: str) -> onnx.ModelProto:
    b = GraphBuilder(weights)
    x, hw = "input", INPUT_SIZE
    for i in range(4):
        x, hw = dense_block4(b, x, hw, f"dense{i}", first=(i == 0))   # 112 -> 56 -> 28 -> 14 -> 7
    assert hw == 7, hw
    # tf.avgPool(out, [7, 7], [2, 2], 'valid') -> 1x1
    x = b.node("AveragePool", [x], "avgpool", kernel_shape=[7, 7], strides=[2, 2], pads=[0, 0, 0, 0],
               ceil_mode=0)
    x = b.node("Flatten", [x], "flatten", axis=1)                       # [N, 256]
    fc_w = b.weight("fc/weights")
    fc_b = b.weight("fc/bias")
    assert fc_w.shape == (256, 136) and fc_b.shape == (136,), (fc_w.shape, fc_b.shape)
    x = b.node("MatMul", [x, b.const("fc_W", fc_w)], "fc_matmul")
    b.node("Add", [x, b.const("fc_B", fc_b)], "landmarks")
    b.check_all_used()

    graph = helper.make_graph(
        b.nodes, "faceapi_face_landmark_68_net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 136])],
        initializer=b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gst-facenet models/faceapi/convert_landmarks.py",
                              producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (
        f"face-api FaceLandmark68Net converted from npm @vladmandic/face-api@{version} (MIT). Input: RGB "
        "NCHW 112x112, face crop zero-padded to a centred square, legacy bilinear resize, "
        "(pixel - mean_rgb)/255. Output: 68 (x, y) pairs interleaved, relative to the padded square "
        "(iBUG 68-point order)."
    )
    meta = {
        "gst-facenet.model-name": "faceapi-landmark68",
        "gst-facenet.source": f"npm @vladmandic/face-api@{version} (MIT)",
        "gst-facenet.normalization": "fixed",
        "gst-facenet.input-normalization": "(x-mean)/255",
        "gst-facenet.mean": ",".join(f"{m:g}" for m in MEAN_RGB),
        "gst-facenet.std": "255,255,255",
        "gst-facenet.channel-order": "rgb",
        "gst-facenet.resize": "bilinear-legacy",
        "gst-facenet.aspect": "pad",
        "gst-facenet.pad": "centre",
        "gst-facenet.landmarks": "ibug68",
        "gst-facenet.landmark-layout": "x0,y0,x1,y1,...",
        "gst-facenet.landmark-coords": "relative-to-padded-square",
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
    manifest = pkg / "model" / "face_landmark_68_model-weights_manifest.json"
    if not manifest.is_file():
        print(f"error: {manifest} not found; run `npm ci --ignore-scripts` in {HERE}", file=sys.stderr)
        return 2
    version = package_version(pkg)
    write_model(build_model(load_weights(manifest), version), Path(args.output), version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
