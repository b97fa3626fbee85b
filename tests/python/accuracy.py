#!/usr/bin/env python3
"""Face-recognition accuracy through the real GStreamer pipeline.

    appsrc (RGB) ! facedetect (SSD + 68 landmarks) ! facenet inference-region=roi-list ! appsink

Every demo photo of face-api (models/faceapi/node_modules/@vladmandic/face-api/demo/sample1..6.jpg:
six group photos, 22 faces, nobody appears twice) is run as it is and in augmented variants of the
WHOLE photo (a few pixels of crop / shift, horizontal flip, rescaling, JPEG recompression,
brightness). Each ROI's box is mapped back into the original photo through the variant's known
geometric transform (flip included) and matched to the original face with the largest IoU (> 0.5).

* same-face pairs:      original face vs. its own detection in each variant;
* different-face pairs: every pair of distinct faces of the original photos (22 faces: 231 pairs),
                        plus (reported separately) original face i vs. variant face j, i != j.

Distances are Euclidean, on face-api's port of dlib's ResNet (faceapi_resnet128.onnx), whose
threshold is 0.6. tests/python/test_accuracy.py asserts on the result; as a CLI this module prints
the figures:

    GST_PLUGIN_PATH=target/release .venv/bin/python tests/python/accuracy.py \
        [--alignment dlib-chip|margin|arcface|auto] [--variants all|ci] [--json out.json] \
        [--dump-chips DIR]

`--dump-chips` writes the aligned 150x150 chips as PNG (re-implementing the element's dlib-chip
similarity transform from src/align.rs in numpy), for looking at what the network sees.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(os.environ.get("GST_FACENET_MODELS_DIR", ROOT / "models" / "out"))
PHOTOS_DIR = ROOT / "models" / "faceapi" / "node_modules" / "@vladmandic" / "face-api" / "demo"
EXPECTED_JSON = ROOT / "models" / "faceapi" / "detector_expected.json"
PHOTOS = [f"sample{i}" for i in range(1, 7)]

DETECTOR = "faceapi_ssd_mobilenetv1.onnx"
LANDMARKS = "faceapi_landmark68.onnx"
RECOGNIZER = "faceapi_resnet128.onnx"
THRESHOLD = 0.6  # face-api's FaceMatcher default for the dlib ResNet
MATCH_IOU = 0.5

MAKE_HINT = "run `make models` from the repository root (it fetches face-api's npm package and converts the models)"


def missing_prerequisites() -> list[Path]:
    """Files the measurement needs that are not there."""
    need = [MODELS_DIR / DETECTOR, MODELS_DIR / LANDMARKS, MODELS_DIR / RECOGNIZER, EXPECTED_JSON]
    need += [PHOTOS_DIR / f"{p}.jpg" for p in PHOTOS]
    return [p for p in need if not p.exists()]


def expected_face_counts() -> dict[str, list[dict]]:
    """face-api's own detections (score, pixel box) per photo, from detector_expected.json."""
    with open(EXPECTED_JSON) as f:
        data = json.load(f)
    return {im["name"]: im["faces"] for im in data["images"] if im.get("kind") == "photo"}


# ---------------------------------------------------------------------------------------------
# Augmentations of the whole photo. `to_original` maps a box (x0, y0, x1, y1) in the variant's
# pixels back into the original photo's pixels.

Box = tuple[float, float, float, float]


@dataclass
class Variant:
    name: str
    make: Callable[[Image.Image], Image.Image]
    # (original width, original height, box in variant) -> box in original
    to_original: Callable[[int, int, Box], Box]


def _identity(w: int, h: int, b: Box) -> Box:
    return b


def _crop(left: int, top: int, right: int, bottom: int) -> Variant:
    def make(im: Image.Image) -> Image.Image:
        return im.crop((left, top, im.width - right, im.height - bottom))

    def back(w: int, h: int, b: Box) -> Box:
        return (b[0] + left, b[1] + top, b[2] + left, b[3] + top)

    return Variant(f"crop-l{left}t{top}r{right}b{bottom}", make, back)


def _shift(dx: int, dy: int) -> Variant:
    """Content moved right/down by (dx, dy), same frame size: black border, far edge cut."""

    def make(im: Image.Image) -> Image.Image:
        out = Image.new("RGB", im.size)
        out.paste(im, (dx, dy))
        return out

    def back(w: int, h: int, b: Box) -> Box:
        return (b[0] - dx, b[1] - dy, b[2] - dx, b[3] - dy)

    return Variant(f"shift{dx:+d}{dy:+d}", make, back)


def _flip() -> Variant:
    def back(w: int, h: int, b: Box) -> Box:
        return (w - b[2], b[1], w - b[0], b[3])

    return Variant("hflip", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), back)


def _scale(s: float) -> Variant:
    def make(im: Image.Image) -> Image.Image:
        return im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BICUBIC)

    def back(w: int, h: int, b: Box) -> Box:
        sw, sh = round(w * s) / w, round(h * s) / h
        return (b[0] / sw, b[1] / sh, b[2] / sw, b[3] / sh)

    return Variant(f"scale{s:g}", make, back)


def _jpeg(q: int) -> Variant:
    def make(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    return Variant(f"jpeg{q}", make, _identity)


def _brightness(f: float) -> Variant:
    return Variant(f"bright{f:g}", lambda im: ImageEnhance.Brightness(im).enhance(f), _identity)


def _compose(*vs: Variant) -> Variant:
    def make(im: Image.Image) -> Image.Image:
        for v in vs:
            im = v.make(im)
        return im

    def back(w: int, h: int, b: Box) -> Box:
        # sizes along the chain, then map back in reverse order
        sizes = []
        cur = (w, h)
        probe = Image.new("RGB", (w, h))
        for v in vs:
            sizes.append(cur)
            probe = v.make(probe)
            cur = probe.size
        for v, (sw, sh) in zip(reversed(vs), reversed(sizes)):
            b = v.to_original(sw, sh, b)
        return b

    return Variant("+".join(v.name for v in vs), make, back)


def variants(kind: str = "ci") -> list[Variant]:
    """`ci`: 8 variants (one of each kind, plus a combination); `all`: a wider set."""
    ci = [
        _crop(7, 4, 0, 0),
        _shift(5, 9),
        _flip(),
        _scale(0.75),
        _scale(1.25),
        _jpeg(50),
        _brightness(1.15),
        _compose(_flip(), _crop(3, 10, 6, 2), _jpeg(70)),
    ]
    if kind == "ci":
        return ci
    return ci + [
        _crop(0, 0, 9, 6),
        _shift(-3, 6),
        _jpeg(75),
        _brightness(0.85),
        _compose(_scale(0.75), _jpeg(60)),
        _compose(_flip(), _scale(1.25), _brightness(0.9)),
    ]


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass
class Face:
    photo: str
    variant: str
    box: Box  # x0, y0, x1, y1 in this image's pixels
    confidence: float
    landmarks: np.ndarray  # (5, 2) or empty
    embedding: np.ndarray
    model: str = ""
    original_box: Box | None = None  # box mapped into the original photo
    match: int | None = None  # index of the original face
    match_iou: float = 0.0


def _import_gst():
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst, GstVideo

    Gst.init(None)
    return Gst, GstVideo


def _float_list(structure, name: str) -> list[float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import structure_float_list

    return structure_float_list(structure, name)


class Pipeline:
    """One appsrc ! facedetect ! facenet ! appsink pipeline; frames of any size are pushed as
    samples with their own caps (the elements renegotiate)."""

    def __init__(self, alignment: str = "dlib-chip", threads: int = 0):
        self.Gst, self.GstVideo = _import_gst()
        Gst = self.Gst
        align = "" if alignment == "auto" else f"alignment={alignment}"
        align += " " + os.environ.get("GST_FACENET_ACCURACY_PROPS", "")
        desc = (
            "appsrc name=src format=time ! "
            f'facedetect model-location="{MODELS_DIR / DETECTOR}" '
            f'landmark-model-location="{MODELS_DIR / LANDMARKS}" intra-op-threads={threads} ! '
            f'facenet model-location="{MODELS_DIR / RECOGNIZER}" inference-region=roi-list {align} '
            f"intra-op-threads={threads} ! appsink name=sink sync=false"
        )
        self.pipeline = Gst.parse_launch(desc)
        self.src = self.pipeline.get_by_name("src")
        self.sink = self.pipeline.get_by_name("sink")
        self.bus = self.pipeline.get_bus()
        self.n = 0
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError(f"pipeline does not start: {self.bus_error()}")

    def bus_error(self) -> str:
        Gst = self.Gst
        msg = self.bus.pop_filtered(Gst.MessageType.ERROR)
        if msg is None:
            return "(no error on the bus)"
        err, dbg = msg.parse_error()
        return f"{err.message} ({dbg})"

    def run(self, image: Image.Image) -> list[tuple[Box, float, np.ndarray, np.ndarray, str]]:
        """Faces of one RGB image: (box x0 y0 x1 y1, confidence, landmarks (5,2), embedding, model)."""
        Gst, GstVideo = self.Gst, self.GstVideo
        image = image.convert("RGB")
        w, h = image.size
        caps = Gst.Caps.from_string(f"video/x-raw,format=RGB,width={w},height={h},framerate=0/1")
        data = image.tobytes()
        stride = (3 * w + 3) & ~3  # GStreamer's default RGB stride is 4-byte aligned
        if stride != 3 * w:
            rows = np.frombuffer(data, np.uint8).reshape(h, 3 * w)
            data = np.pad(rows, ((0, 0), (0, stride - 3 * w))).tobytes()
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = self.n * Gst.SECOND
        buf.duration = Gst.SECOND
        self.n += 1
        sample = Gst.Sample.new(buf, caps, None, None)
        if self.src.emit("push-sample", sample) != Gst.FlowReturn.OK:
            raise RuntimeError(f"push failed: {self.bus_error()}")
        out = self.sink.emit("try-pull-sample", 120 * Gst.SECOND)
        if out is None:
            raise RuntimeError(f"no output buffer: {self.bus_error()}")
        return self._faces(out.get_buffer())

    def _faces(self, buf):
        GstVideo = self.GstVideo
        api = GstVideo.VideoRegionOfInterestMeta.get_info().api
        n = buf.get_n_meta(api)
        faces = []
        roi_id = 0
        # ROI metas are looked up by id (PyGObject cannot iterate metas generically).
        while len(faces) < n and roi_id < 10_000:
            roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buf, roi_id)
            roi_id += 1
            if roi is None:
                continue
            det = roi.get_param("face-detection")
            emb = roi.get_param("facenet-embedding")
            if det is None or emb is None:
                raise AssertionError(
                    f"ROI {roi.id} lacks a face-detection or facenet-embedding param: "
                    f"{det.to_string() if det else None} / {emb.to_string() if emb else None}"
                )
            lm = np.asarray(_float_list(det, "landmarks"), np.float64).reshape(-1, 2)
            e = np.asarray(_float_list(emb, "embedding"), np.float64)
            if emb.get_value("dimension") != e.shape[0] or not emb.get_value("fresh"):
                raise AssertionError(f"bad facenet-embedding param: {emb.to_string()[:200]}")
            box = (float(roi.x), float(roi.y), float(roi.x + roi.w), float(roi.y + roi.h))
            faces.append((box, float(det.get_value("confidence")), lm, e, emb.get_value("model")))
        if len(faces) != n:
            raise AssertionError(f"found {len(faces)} of {n} ROI metas by id")
        return faces

    def close(self):
        self.src.emit("end-of-stream")
        self.pipeline.set_state(self.Gst.State.NULL)


# ---------------------------------------------------------------------------------------------
# Measurement


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _stats(d: list[float]) -> dict:
    if not d:
        return {"n": 0}
    a = np.asarray(d)
    return {"n": int(a.size), "min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


@dataclass
class Result:
    alignment: str
    originals: dict[str, list[Face]] = field(default_factory=dict)
    augmented: dict[str, dict[str, list[Face]]] = field(default_factory=dict)  # photo -> variant -> faces
    same: list[tuple[str, str, int, float]] = field(default_factory=list)  # photo, variant, face, distance
    unmatched: list[tuple[str, str, int]] = field(default_factory=list)  # original faces missing in a variant
    extra: list[tuple[str, str, Box]] = field(default_factory=list)  # variant faces matching no original
    different: list[tuple[str, str, float]] = field(default_factory=list)  # face ids, distance (originals)
    different_aug: list[float] = field(default_factory=list)  # original i vs variant face j != i
    seconds: float = 0.0

    def __repr__(self) -> str:  # keep pytest's failure output short
        return f"Result({self.alignment}, {sum(map(len, self.originals.values()))} faces, {len(self.same)} same pairs)"

    def summary(self) -> dict:
        same = [d for *_, d in self.same]
        diff = [d for *_, d in self.different]
        n_same_expected = len(self.same) + len(self.unmatched)
        return {
            "alignment": self.alignment,
            "faces": {p: len(f) for p, f in self.originals.items()},
            "variants": len(next(iter(self.augmented.values()), {})),
            "same_pairs": len(same),
            "same_pairs_expected": n_same_expected,
            "same_below": sum(d < THRESHOLD for d in same),
            "same_rate": (sum(d < THRESHOLD for d in same) / n_same_expected) if n_same_expected else 0.0,
            "same": _stats(same),
            "different_pairs": len(diff),
            "different_above": sum(d > THRESHOLD for d in diff),
            "different_rate": (sum(d > THRESHOLD for d in diff) / len(diff)) if diff else 0.0,
            "different": _stats(diff),
            "different_aug_pairs": len(self.different_aug),
            "different_aug_rate": (
                sum(d > THRESHOLD for d in self.different_aug) / len(self.different_aug)
                if self.different_aug
                else 0.0
            ),
            "different_aug": _stats(self.different_aug),
            "unmatched": [f"{p}/{v}/face{i}" for p, v, i in self.unmatched],
            "extra": [f"{p}/{v}@{tuple(round(c) for c in b)}" for p, v, b in self.extra],
            "seconds": round(self.seconds, 1),
        }


def _to_faces(photo: str, variant: str, raw) -> list[Face]:
    return [Face(photo, variant, b, c, lm, e, m) for b, c, lm, e, m in raw]


def measure(alignment: str = "dlib-chip", kind: str = "ci", photos: list[str] | None = None,
            threads: int = 0, dump_chips: Path | None = None) -> Result:
    t0 = time.monotonic()
    res = Result(alignment)
    pipe = Pipeline(alignment, threads)
    vs = variants(kind)
    try:
        for photo in photos or PHOTOS:
            img = Image.open(PHOTOS_DIR / f"{photo}.jpg").convert("RGB")
            orig = _to_faces(photo, "original", pipe.run(img))
            res.originals[photo] = orig
            if dump_chips:
                _dump(img, orig, dump_chips)
            res.augmented[photo] = {}
            for v in vs:
                aug_img = v.make(img)
                faces = _to_faces(photo, v.name, pipe.run(aug_img))
                res.augmented[photo][v.name] = faces
                for f in faces:
                    f.original_box = v.to_original(img.width, img.height, f.box)
                    ious = [iou(f.original_box, o.box) for o in orig]
                    if ious and max(ious) > MATCH_IOU:
                        f.match = int(np.argmax(ious))
                        f.match_iou = max(ious)
                    else:
                        res.extra.append((photo, v.name, f.original_box))
                if dump_chips:
                    _dump(aug_img, faces, dump_chips)
                for i, o in enumerate(orig):
                    mine = [f for f in faces if f.match == i]
                    if not mine:
                        res.unmatched.append((photo, v.name, i))
                        continue
                    best = max(mine, key=lambda f: f.match_iou)
                    res.same.append((photo, v.name, i, float(np.linalg.norm(o.embedding - best.embedding))))
                    for j, o2 in enumerate(orig):
                        if j != i:
                            res.different_aug.append(float(np.linalg.norm(o2.embedding - best.embedding)))
    finally:
        pipe.close()
    allf = [(f"{p}/face{i}", f) for p in res.originals for i, f in enumerate(res.originals[p])]
    for a in range(len(allf)):
        for b in range(a + 1, len(allf)):
            d = float(np.linalg.norm(allf[a][1].embedding - allf[b][1].embedding))
            res.different.append((allf[a][0], allf[b][0], d))
    # cross-photo pairs between a variant face and a face of another photo
    for p, per_v in res.augmented.items():
        for faces in per_v.values():
            for f in faces:
                if f.match is None:
                    continue
                for p2, orig2 in res.originals.items():
                    if p2 != p:
                        res.different_aug += [float(np.linalg.norm(o.embedding - f.embedding)) for o in orig2]
    res.seconds = time.monotonic() - t0
    return res


# ---------------------------------------------------------------------------------------------
# Debug: the element's dlib-chip alignment, re-implemented (src/align.rs), to look at the chips.

_DLIB_MEAN = np.array([
    [np.mean([0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]),
     np.mean([0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077])],
    [np.mean([0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]),
     np.mean([0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099])],
    [0.490127, 0.515625],
    [0.254149, 0.780233],
    [0.726104, 0.780233],
])
DLIB_TEMPLATE_150 = (0.25 + _DLIB_MEAN) / 1.5 * 150.0


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src points onto dst; 2x3."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / s.var(0).sum()
    t = md - scale * r @ ms
    return np.hstack([scale * r, t[:, None]])


def dlib_chip(img: Image.Image, landmarks: np.ndarray, size: int = 150) -> Image.Image:
    m = similarity(DLIB_TEMPLATE_150 * size / 150.0, landmarks)  # chip -> image
    # Pillow's AFFINE takes the inverse map (output -> input) as a, b, c, d, e, f; pixel centres.
    a, b, c = m[0]
    d, e, f = m[1]
    c += 0.5 * (a + b) - 0.5
    f += 0.5 * (d + e) - 0.5
    return img.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR)


def _dump(img: Image.Image, faces: list[Face], out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(faces):
        if f.landmarks.size == 10:
            name = f"face{i}" if f.variant == "original" else f"face{f.match}" if f.match is not None else f"extra{i}"
            dlib_chip(img, f.landmarks).save(out / f"{f.photo}_{name}_{f.variant}.png")


def report(s: dict) -> str:
    def st(x):
        return (f"n={x['n']} min={x['min']:.3f} median={x['median']:.3f} max={x['max']:.3f}"
                if x.get("n") else "n=0")

    lines = [
        f"alignment={s['alignment']}  faces per photo {s['faces']}  variants per photo {s['variants']}  "
        f"({s['seconds']} s)",
        f"  same-face  < {THRESHOLD}: {s['same_below']}/{s['same_pairs_expected']} = {100 * s['same_rate']:.1f}%   "
        f"{st(s['same'])}",
        f"  diff-face  > {THRESHOLD}: {s['different_above']}/{s['different_pairs']} = "
        f"{100 * s['different_rate']:.1f}%   {st(s['different'])}",
        f"  diff-face (variant vs. other originals) > {THRESHOLD}: {100 * s['different_aug_rate']:.1f}% of "
        f"{s['different_aug_pairs']}   {st(s['different_aug'])}",
    ]
    if s["unmatched"]:
        lines.append(f"  original faces not found in a variant: {s['unmatched']}")
    if s["extra"]:
        lines.append(f"  variant faces matching no original face: {s['extra']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alignment", choices=["auto", "dlib-chip", "margin", "arcface"], action="append",
                    dest="alignments", help="repeatable; default dlib-chip")
    ap.add_argument("--variants", default="ci", choices=["ci", "all"])
    ap.add_argument("--threads", type=int, default=0, help="intra-op-threads of both elements (0: all cores)")
    ap.add_argument("--json", type=Path, help="write the summaries (and per-pair distances) here")
    ap.add_argument("--dump-chips", type=Path, help="write re-implemented dlib chips as PNG here")
    ap.add_argument("--worst", type=int, default=5, help="print the N worst same- and different-face pairs")
    args = ap.parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print("missing: " + ", ".join(map(str, missing)) + f"\n{MAKE_HINT}", file=sys.stderr)
        return 2
    alignments = args.alignments or ["dlib-chip"]
    out = {}
    for al in alignments:
        res = measure(al, args.variants, threads=args.threads, dump_chips=args.dump_chips)
        s = res.summary()
        print(report(s))
        for p, v, i, d in sorted(res.same, key=lambda t: -t[3])[: args.worst]:
            print(f"    worst same: {p}/face{i} vs {v}: {d:.3f}")
        for a, b, d in sorted(res.different, key=lambda t: t[2])[: args.worst]:
            print(f"    closest different: {a} vs {b}: {d:.3f}")
        s["same_pairs_list"] = [{"photo": p, "variant": v, "face": i, "distance": d} for p, v, i, d in res.same]
        s["different_pairs_list"] = [{"a": a, "b": b, "distance": d} for a, b, d in res.different]
        out[al] = s
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
