#!/usr/bin/env python3
"""The stand-in face detector of scripts/memcheck.sh (and, written by hand in Rust, of
tests/reliability.rs's state cycles): the real detector's interface (input [1, 3, H, W],
outputs 'boxes' [1, K, 4] as y0, x0, y1, x1 relative to the frame's longer side and
'scores' [1, K]) with constant outputs: the three faces of face-api's sample1.jpg and a
fourth candidate under the confidence threshold. Under valgrind the real SSD takes
minutes per frame; the code of ours that a detection runs through is the same.

    tiny_detector.py OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BOXES = np.array([[[0.1849, 0.2151, 0.3094, 0.3083],
                   [0.2188, 0.4365, 0.3380, 0.5339],
                   [0.1036, 0.7688, 0.2292, 0.8745],
                   [0.5, 0.5, 0.6, 0.6]]], dtype=np.float32)
SCORES = np.array([[0.99, 0.95, 0.9, 0.1]], dtype=np.float32)

graph = helper.make_graph(
    [helper.make_node("Identity", ["boxes_value"], ["boxes"], name="boxes"),
     helper.make_node("Identity", ["scores_value"], ["scores"], name="scores")],
    "tiny_detector",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
    [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4]),
     helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])],
    [numpy_helper.from_array(BOXES, "boxes_value"), numpy_helper.from_array(SCORES, "scores_value")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="gst-facenet tests/valgrind/tiny_detector.py")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
