#!/usr/bin/env python3
"""Run the converted ONNX model on the tensors captured by verify.mjs and compare with
face-api's own descriptors. Exits 1 if any case differs by more than --tol (max abs)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(OUT / "faceapi_resnet128.onnx"))
    ap.add_argument("--data", default=str(OUT / "faceapi_verify"), help="verify.mjs output dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)

    data = Path(args.data)
    meta = json.loads((data / "cases.json").read_text())
    cases = meta["cases"]
    n, s = len(cases), meta["size"]
    x = np.fromfile(data / "inputs_nhwc.f32", dtype="<f4").reshape(n, s, s, 3)
    ref = np.fromfile(data / "embeddings.f32", dtype="<f4").reshape(n, 128)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    model = onnx.load(args.model)
    props = {p.key: p.value for p in model.metadata_props}
    print(f"model {args.model}: opset {model.opset_import[0].version}, ir {model.ir_version}, "
          f"{props.get('gst-facenet.source')}")
    print(f"reference: face-api {meta['faceapi']}, tfjs {meta['tfjs']} backend {meta['backend']}, {n} cases")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])

    # one case at a time (batch 1) and all at once (dynamic batch) must both match
    single = np.concatenate([sess.run(["embedding"], {"input": x_nchw[i:i + 1]})[0] for i in range(n)])
    batched = sess.run(["embedding"], {"input": x_nchw})[0]

    worst: dict[str, float] = {}
    failed = []
    for i, c in enumerate(cases):
        d1 = float(np.max(np.abs(single[i] - ref[i])))
        d2 = float(np.max(np.abs(batched[i] - ref[i])))
        d = max(d1, d2)
        worst[c["kind"]] = max(worst.get(c["kind"], 0.0), d)
        status = "ok" if d <= args.tol else "FAIL"
        if d > args.tol:
            failed.append(c["name"])
        print(f"  {status:4} {c['name']:<28} max|diff| {d:.3e}  |ref| {np.linalg.norm(ref[i]):.4f}")

    # rough single-face latency, 1 thread
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        sess.run(["embedding"], {"input": x_nchw[:1]})
        t.append(time.perf_counter() - t0)
    faces = [i for i, c in enumerate(cases) if c["kind"] == "face"]
    if len(faces) >= 2:
        dist = np.linalg.norm(batched[faces][:, None] - batched[faces][None], axis=-1)
        off = dist[~np.eye(len(faces), dtype=bool)]
        print(f"face-face euclidean distances: min {off.min():.3f} median {np.median(off):.3f} max {off.max():.3f}")

    summary = ", ".join(f"{k}: {v:.3e}" for k, v in sorted(worst.items()))
    print(f"max abs diff by kind: {summary}  (tol {args.tol:g})")
    print(f"onnxruntime {ort.__version__} single-face latency (1 thread): median "
          f"{1000 * float(np.median(t)):.1f} ms")
    if failed:
        print(f"FAILED: {len(failed)} case(s) over tolerance: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
