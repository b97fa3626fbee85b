"""Face-recognition accuracy through the real pipeline (issue "Accuracy through the element").

    appsrc ! facedetect (face-api SSD + 68 landmarks) ! facenet inference-region=roi-list ! appsink

on face-api's six demo photos (22 faces, nobody twice) and 8 augmented variants of each whole
photo (crop, shift, horizontal flip, rescale 0.75 / 1.25, JPEG q50, brightness, flip+crop+JPEG q70);
faces are matched to the original through the known geometric transform (IoU > 0.5). The
measurement lives in accuracy.py (also a CLI: `python tests/python/accuracy.py --help`).

Asserted, on faceapi_resnet128.onnx (dlib's ResNet, Euclidean threshold 0.6), default alignment
(dlib's chip, fitted to the 68 landmarks as dlib does):
* every photo yields the faces face-api finds (models/faceapi/detector_expected.json);
* 100 % of same-face pairs (original face vs. itself in each variant) are below 0.6; a face the
  pipeline loses in a variant counts as a failed pair;
* at least 95 % of the 231 different-face pairs (distinct faces of the original photos) are
  above (the issue's goal; measured 220/231 = 95.2 %). The margin is one pair: the 12th-closest
  pair of different people sits at 0.60006, the 11th at 0.59957 (similar-looking people on this
  quantized port of dlib's model). The pipeline is deterministic (bit-identical pre-processing
  with or without AVX2, the same distances with 1 or 2 ONNX Runtime threads), so this asserts
  the measured level; models/README.md lists the closest pairs.
The box-crop alignment (alignment=margin) is measured and printed only.

Missing models or photos FAIL (not skip): they come from `make models`.
"""

from __future__ import annotations

import pytest

import accuracy as acc

pytestmark = pytest.mark.usefixtures("facenet_plugin")

SAME_RATE = 1.0
DIFFERENT_RATE = 0.95  # the goal; measured 220/231 = 95.2 %
BOX_IOU_VS_FACEAPI = 0.85  # the element's boxes vs. face-api's own (measured 0.915 .. 0.99)


def require(Gst) -> None:
    """Fails the calling test (inside its body, so it reports FAILED, not ERROR or SKIPPED)."""
    missing = acc.missing_prerequisites()
    if missing:
        pytest.fail("accuracy test data missing: " + ", ".join(map(str, missing)) + "\n  " + acc.MAKE_HINT,
                    pytrace=False)
    if Gst.ElementFactory.find("facedetect") is None:
        pytest.fail("GStreamer element 'facedetect' unavailable (GST_PLUGIN_PATH must hold the built "
                    "libgstfacenet.so: `make build`)", pytrace=False)


_RESULTS: dict[str, acc.Result] = {}


def measured(Gst, alignment: str = "dlib-chip") -> acc.Result:
    """The measurement (~30 s on 2 cores), run once per session and alignment."""
    require(Gst)
    if alignment not in _RESULTS:
        res = acc.measure(alignment, "ci")
        print("\n" + acc.report(res.summary()))
        _RESULTS[alignment] = res
    return _RESULTS[alignment]


def test_face_counts_match_faceapi(Gst):
    dlib = measured(Gst)
    expected = acc.expected_face_counts()
    got = {p: len(f) for p, f in dlib.originals.items()}
    want = {p: len(expected[p]) for p in acc.PHOTOS}
    assert got == want, f"faces per photo: pipeline {got}, face-api {want}"
    assert sum(got.values()) == 22
    for p, faces in dlib.originals.items():
        boxes = [(e["box"]["x"], e["box"]["y"], e["box"]["x"] + e["box"]["width"],
                  e["box"]["y"] + e["box"]["height"]) for e in expected[p]]
        for i, f in enumerate(faces):
            best = max(acc.iou(f.box, b) for b in boxes)
            assert best > BOX_IOU_VS_FACEAPI, (
                f"{p} face {i}: box {f.box} overlaps face-api's boxes by IoU {best:.3f} at best")
        assert all(f.landmarks.shape == (5, 2) for f in faces), f"{p}: a face without 5 landmarks"
        assert all(f.embedding.shape == (128,) for f in faces), f"{p}: embedding dimension is not 128"


def test_same_face_pairs_below_threshold(Gst):
    dlib = measured(Gst)
    s = dlib.summary()
    assert s["variants"] == len(acc.variants("ci"))
    assert s["same_pairs_expected"] == 22 * s["variants"]
    bad = sorted(((p, v, i, d) for p, v, i, d in dlib.same if d >= acc.THRESHOLD), key=lambda t: -t[3])
    problems = [f"{p}/face{i} vs {v}: distance {d:.3f}" for p, v, i, d in bad]
    problems += [f"{u}: face not found (no box with IoU > {acc.MATCH_IOU})" for u in s["unmatched"]]
    assert s["same_rate"] >= SAME_RATE, (
        f"same-face pairs below {acc.THRESHOLD}: {s['same_below']}/{s['same_pairs_expected']} "
        f"({100 * s['same_rate']:.1f} %, need {100 * SAME_RATE:g} %); distances {s['same']}\n  "
        + "\n  ".join(problems))


def test_different_face_pairs_above_threshold(Gst):
    dlib = measured(Gst)
    s = dlib.summary()
    assert s["different_pairs"] == 231
    closest = sorted(dlib.different, key=lambda t: t[2])[:12]
    assert s["different_rate"] >= DIFFERENT_RATE, (
        f"different-face pairs above {acc.THRESHOLD}: {s['different_above']}/{s['different_pairs']} "
        f"({100 * s['different_rate']:.1f} %, need {100 * DIFFERENT_RATE:g} %); distances {s['different']}\n  "
        + "\n  ".join(f"{a} vs {b}: {d:.3f}" for a, b, d in closest))


def test_margin_alignment_for_comparison(Gst):
    """alignment=margin (the box grown by 32 px, resized; no landmarks): measured and printed for
    comparison with the dlib chip, not asserted on (it is far worse on different faces)."""
    s = measured(Gst, "margin").summary()
    assert s["different_pairs"] == 231
