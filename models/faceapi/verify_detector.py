#!/usr/bin/env python3
"""Compare the converted face-api SSD MobileNet v1 detector and FaceLandmark68Net ONNX models with
face-api itself, on the tensors captured by verify_detector.mjs (tfjs cpu backend).

Checks (exit 1 if any fails):
  1. detector: onnxruntime boxes/scores vs face-api's pre-NMS boxes/scores, max |diff| <= --tol
     (batch 1 and batched)
  2. landmarks: onnxruntime vs FaceLandmark68Net.runNet output, max |diff| <= --tol
  3. pre-processing as documented in DETECTOR.md (numpy re-implementation of pad + tfjs legacy
     bilinear resize + normalization, from the raw RGB images) vs the tensors face-api fed its nets
  4. post-processing as documented: face-api's NMS + pixel mapping applied to the ONNX outputs
     reproduces detector_expected.json (same faces, boxes within --px-tol pixels), and the
     landmark mapping applied to the ONNX landmarks reproduces face-api's relative and pixel
     landmarks (landmarks_expected.json)
"""

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


# ----------------------------------------------------------------------------- pre-processing


def js_round(v: float) -> int:
    """JavaScript Math.round (halves round up)."""
    return int(np.floor(v + 0.5))


def pad_to_square(img: np.ndarray, centre: bool) -> np.ndarray:
    """face-api ops/padToSquare.ts: zero padding of the shorter side. centre=False: all padding
    at the bottom/right. centre=True: round(d/2) at the bottom/right, the rest at the top/left."""
    h, w = img.shape[:2]
    if h == w:
        return img.astype(np.float32)
    d = abs(h - w)
    after = js_round(d * (0.5 if centre else 1.0))
    before = d - after
    if h > w:
        pads = ((0, 0), (before, after), (0, 0))
    else:
        pads = ((before, after), (0, 0), (0, 0))
    return np.pad(img.astype(np.float32), pads)


def resize_bilinear_legacy(img: np.ndarray, size: int) -> np.ndarray:
    """tf.image.resizeBilinear(x, [size, size], alignCorners=false, halfPixelCenters=false) as the
    tfjs cpu kernel computes it: src = dst * in/out, floor/ceil neighbours (ceil clamped), double
    arithmetic, float32 result."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img.astype(np.float32)
    x = img.astype(np.float64)

    def axis(n_in):
        src = (n_in / size) * np.arange(size, dtype=np.float64)
        lo = np.maximum(0, np.floor(src)).astype(np.int64)
        hi = np.minimum(n_in - 1, np.ceil(src)).astype(np.int64)
        return lo, hi, src - lo

    r0, r1, fr = axis(h)
    c0, c1, fc = axis(w)
    tl, tr = x[r0][:, c0], x[r0][:, c1]
    bl, br = x[r1][:, c0], x[r1][:, c1]
    fc = fc[None, :, None]
    top = tl + (tr - tl) * fc
    bottom = bl + (br - bl) * fc
    return (top + (bottom - top) * fr[:, None, None]).astype(np.float32)


def detector_input(img: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> [512, 512, 3] float32: pad bottom/right, resize, x / 127.5 - 1."""
    x = resize_bilinear_legacy(pad_to_square(img, centre=False), 512)
    return x / np.float32(127.5) - np.float32(1)


def landmark_input(img: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB crop -> [112, 112, 3] float32: centred pad, resize, (x - mean) / 255."""
    x = resize_bilinear_legacy(pad_to_square(img, centre=True), 112)
    mean = np.array([122.782, 117.001, 104.298], dtype=np.float32)
    return (x - mean) / np.float32(255)


# ----------------------------------------------------------------------------- post-processing


def faceapi_iou(b: np.ndarray, i: int, j: int) -> float:
    """ssdMobilenetv1/nonMaxSuppression.ts IOU (boxes ymin, xmin, ymax, xmax; min/max-sorted)."""
    yi0, yi1 = sorted((float(b[i, 0]), float(b[i, 2])))
    xi0, xi1 = sorted((float(b[i, 1]), float(b[i, 3])))
    yj0, yj1 = sorted((float(b[j, 0]), float(b[j, 2])))
    xj0, xj1 = sorted((float(b[j, 1]), float(b[j, 3])))
    area_i = (yi1 - yi0) * (xi1 - xi0)
    area_j = (yj1 - yj0) * (xj1 - xj0)
    if area_i <= 0 or area_j <= 0:
        return 0.0
    inter = max(min(yi1, yj1) - max(yi0, yj0), 0.0) * max(min(xi1, xj1) - max(xi0, xj0), 0.0)
    return inter / (area_i + area_j - inter)


def faceapi_nms(boxes: np.ndarray, scores: np.ndarray, max_results=100, iou_threshold=0.5,
                score_threshold=0.5) -> list[int]:
    """ssdMobilenetv1/nonMaxSuppression.ts: greedy, candidates with score > threshold sorted by
    score (stable), a candidate is dropped if its IoU with any kept box is > iou_threshold."""
    out_size = min(max_results, len(scores))
    cand = [i for i in np.argsort(-scores.astype(np.float64), kind="stable") if scores[i] > score_threshold]
    selected: list[int] = []
    for i in cand:
        if len(selected) >= out_size:
            break
        if all(faceapi_iou(boxes, i, j) <= iou_threshold for j in selected):
            selected.append(int(i))
    return selected


def faceapi_pixel_boxes(boxes: np.ndarray, idx: list[int], width: int, height: int) -> list[tuple]:
    """SsdMobilenetv1.locateFaces: clamp to [0, 1], undo the bottom/right padding with
    computeReshapedDimensions (rounded!), scale by the image size. Returns (x, y, w, h) pixels."""
    scale = 512 / max(width, height)
    pad_x = 512 / js_round(width * scale)
    pad_y = 512 / js_round(height * scale)
    res = []
    for i in idx:
        b = boxes[i].astype(np.float64)
        top, bottom = max(0.0, b[0]) * pad_y, min(1.0, b[2]) * pad_y
        left, right = max(0.0, b[1]) * pad_x, min(1.0, b[3]) * pad_x
        res.append((left * width, top * height, (right - left) * width, (bottom - top) * height))
    return res


def landmarks_to_crop(raw: np.ndarray, crop_w: int, crop_h: int) -> np.ndarray:
    """FaceLandmark68NetBase.postProcess: raw [136] relative to the padded 112 square -> relative to
    the un-padded crop: (v * 112 - pad) / scaled_size, pad = |w' - h'| / 2 on the shorter side,
    w' = w * 112 / max(w, h) (not rounded)."""
    s = 112 / max(crop_w, crop_h)
    w, h = crop_w * s, crop_h * s
    pad_x = abs(w - h) / 2 if w < h else 0.0
    pad_y = abs(w - h) / 2 if h < w else 0.0
    v = raw.astype(np.float64).reshape(68, 2) * 112
    return np.stack([(v[:, 0] - pad_x) / w, (v[:, 1] - pad_y) / h], axis=1)


# ----------------------------------------------------------------------------- main


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def timed(fn, reps=10) -> float:
    fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", default=str(OUT / "faceapi_ssd_mobilenetv1.onnx"))
    ap.add_argument("--landmarks", default=str(OUT / "faceapi_landmark68.onnx"))
    ap.add_argument("--data", default=str(OUT / "faceapi_detector_verify"), help="verify_detector.mjs output dir")
    ap.add_argument("--expected", default=str(HERE / "detector_expected.json"))
    ap.add_argument("--landmarks-expected", default=str(HERE / "landmarks_expected.json"))
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs diff of the network outputs")
    ap.add_argument("--pre-tol", type=float, default=1e-5, help="max abs diff of the re-implemented pre-processing")
    ap.add_argument("--px-tol", type=float, default=0.5, help="max pixel diff of boxes / landmarks after post-processing")
    args = ap.parse_args(argv)

    data = Path(args.data)
    meta = json.loads((data / "cases.json").read_text())
    failures: list[str] = []

    def check(ok: bool, what: str):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    # ------------------------------------------------------------------ detector
    det = meta["det"]
    cases = det["cases"]
    n, k = len(cases), det["num_priors"]
    x = np.fromfile(data / "det_inputs.f32", dtype="<f4").reshape(n, 512, 512, 3)
    ref_boxes = np.fromfile(data / "det_boxes.f32", dtype="<f4").reshape(n, k, 4)
    ref_scores = np.fromfile(data / "det_scores.f32", dtype="<f4").reshape(n, k)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    model = onnx.load(args.detector, load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    print(f"detector {args.detector}: opset {model.opset_import[0].version}, ir {model.ir_version}, "
          f"{props.get('gst-facenet.source')}")
    print(f"reference: face-api {meta['faceapi']}, tfjs {meta['tfjs']} backend {meta['reference_backend']}, "
          f"{n} detector cases")
    sess = session(args.detector)
    outs = [sess.run(["boxes", "scores"], {"input": x_nchw[i:i + 1]}) for i in range(n)]
    boxes = np.concatenate([o[0] for o in outs])
    scores = np.concatenate([o[1] for o in outs])
    bb, bs = sess.run(["boxes", "scores"], {"input": x_nchw[:2]})
    worst_b = worst_s = 0.0
    for i, c in enumerate(cases):
        db = float(np.max(np.abs(boxes[i] - ref_boxes[i])))
        ds = float(np.max(np.abs(scores[i] - ref_scores[i])))
        if i < 2:
            db = max(db, float(np.max(np.abs(bb[i] - ref_boxes[i]))))
            ds = max(ds, float(np.max(np.abs(bs[i] - ref_scores[i]))))
        worst_b, worst_s = max(worst_b, db), max(worst_s, ds)
        check(db <= args.tol and ds <= args.tol,
              f"det {c['name']:<24} boxes max|diff| {db:.2e}  scores max|diff| {ds:.2e}  "
              f"(max score {ref_scores[i].max():.3f})")

    # pre-processing re-implementation
    worst_pre = 0.0
    for i, c in enumerate(cases):
        img = np.fromfile(data / f"img_{c['name']}.rgb", dtype=np.uint8).reshape(c["height"], c["width"], 3)
        d = float(np.max(np.abs(detector_input(img) - x[i])))
        worst_pre = max(worst_pre, d)
    check(worst_pre <= args.pre_tol, f"det pre-processing (pad bottom/right, legacy bilinear, x/127.5-1) "
                                     f"max|diff| {worst_pre:.2e}")

    # post-processing: NMS + pixel mapping on the ONNX outputs vs face-api's detectAllFaces
    expected = json.loads(Path(args.expected).read_text())
    opts = expected["options"]
    worst_px = 0.0
    for i, c in enumerate(cases):
        exp = next(e for e in expected["images"] if e["name"] == c["name"])
        idx = faceapi_nms(boxes[i], scores[i], opts["maxResults"], opts["iouThreshold"], opts["minConfidence"])
        px = faceapi_pixel_boxes(boxes[i], idx, c["width"], c["height"])
        ok = len(px) == len(exp["faces"])
        d = 0.0
        if ok:
            for (bx, by, bw, bh), f in zip(px, exp["faces"]):
                e = f["box"]
                d = max(d, abs(bx - e["x"]), abs(by - e["y"]), abs(bw - e["width"]), abs(bh - e["height"]))
            ok = d <= args.px_tol
        worst_px = max(worst_px, d)
        wasm = f", wasm: {exp['faces_wasm']}" if "faces_wasm" in exp else ""
        check(ok, f"det {c['name']:<24} NMS+mapping on ONNX output: {len(px)} faces "
                  f"(face-api cpu: {len(exp['faces'])}{wasm}), max box diff {d:.3f} px")

    if (data / "det_boxes_wasm.f32").is_file():
        photos = [i for i, c in enumerate(cases) if c["kind"] == "photo"]
        wb = np.fromfile(data / "det_boxes_wasm.f32", dtype="<f4").reshape(len(photos), k, 4)
        ws = np.fromfile(data / "det_scores_wasm.f32", dtype="<f4").reshape(len(photos), k)
        print(f"  info tfjs wasm vs cpu (photos): boxes {np.abs(wb - ref_boxes[photos]).max():.2e}, "
              f"scores {np.abs(ws - ref_scores[photos]).max():.2e}; wasm vs ONNX: boxes "
              f"{np.abs(wb - boxes[photos]).max():.2e}, scores {np.abs(ws - scores[photos]).max():.2e}")

    # ------------------------------------------------------------------ landmarks
    lm = meta["lm"]
    lcases = lm["cases"]
    m = len(lcases)
    lx = np.fromfile(data / "lm_inputs.f32", dtype="<f4").reshape(m, 112, 112, 3)
    lraw = np.fromfile(data / "lm_raw.f32", dtype="<f4").reshape(m, 136)
    lpost = np.fromfile(data / "lm_post.f32", dtype="<f4").reshape(m, 136)
    lx_nchw = np.ascontiguousarray(lx.transpose(0, 3, 1, 2))
    lsess = session(args.landmarks)
    print(f"landmarks {args.landmarks}: {m} cases")
    single = np.concatenate([lsess.run(["landmarks"], {"input": lx_nchw[i:i + 1]})[0] for i in range(m)])
    batched = lsess.run(["landmarks"], {"input": lx_nchw})[0]
    worst_l: dict[str, float] = {}
    worst_lpre = worst_post = 0.0
    for i, c in enumerate(lcases):
        d = float(max(np.abs(single[i] - lraw[i]).max(), np.abs(batched[i] - lraw[i]).max()))
        worst_l[c["kind"]] = max(worst_l.get(c["kind"], 0.0), d)
        h, w = c["shape"][:2]
        crop = np.fromfile(data / f"crop_{c['name']}.rgb", dtype=np.uint8).reshape(h, w, 3)
        worst_lpre = max(worst_lpre, float(np.abs(landmark_input(crop) - lx[i]).max()))
        # documented mapping applied to the ONNX output vs face-api's postProcess output
        worst_post = max(worst_post, float(np.abs(landmarks_to_crop(single[i], w, h).reshape(-1) - lpost[i]).max()))
        check(d <= args.tol, f"lm  {c['name']:<24} max|diff| {d:.2e}  ({w}x{h} crop)")
    check(worst_lpre <= args.pre_tol, f"lm pre-processing (centred pad, legacy bilinear, (x-mean)/255) "
                                      f"max|diff| {worst_lpre:.2e}")
    check(worst_post <= args.tol, f"lm postProcess mapping (padded square -> crop) on ONNX output vs face-api "
                                  f"max|diff| {worst_post:.2e}")

    # pixel landmarks: crop-relative * crop size + (unfloored) detection box origin
    lexp = json.loads(Path(args.landmarks_expected).read_text())["faces"]
    worst_lpx = 0.0
    for f in lexp:
        i = next(j for j, c in enumerate(lcases) if c["name"] == f"{f['photo']}-face{f['face']}")
        cb = f["crop_box"]
        rel = landmarks_to_crop(single[i], cb["width"], cb["height"])
        pts = rel * [cb["width"], cb["height"]] + [f["shift"]["x"], f["shift"]["y"]]
        worst_lpx = max(worst_lpx, float(np.abs(pts - np.array(f["landmarks68"])).max()))
    check(worst_lpx <= args.px_tol, f"lm pixel landmarks (ONNX + mapping) vs face-api withFaceLandmarks(): "
                                    f"max diff {worst_lpx:.4f} px over {len(lexp)} faces")

    # ------------------------------------------------------------------ summary
    t_det = timed(lambda: sess.run(None, {"input": x_nchw[:1]}), 5)
    t_lm = timed(lambda: lsess.run(None, {"input": lx_nchw[:1]}), 20)
    print(f"max abs diff: detector boxes {worst_b:.2e}, scores {worst_s:.2e}; landmarks "
          + ", ".join(f"{kk} {v:.2e}" for kk, v in sorted(worst_l.items())) + f"  (tol {args.tol:g})")
    print(f"onnxruntime {ort.__version__} CPU, 1 thread: detector 512x512 median {t_det:.1f} ms, "
          f"landmarks 112x112 median {t_lm:.2f} ms")
    if failures:
        print(f"FAILED: {len(failures)} check(s)", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
