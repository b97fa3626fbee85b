#!/usr/bin/env python3
"""Reading gst-facenet's metadata from Python (PyGObject).

    GST_PLUGIN_PATH=target/release python3 examples/read_meta.py IMAGE.jpg MODELS_DIR [GALLERY.json]

Runs  filesrc ! decodebin ! videoconvert ! facedetect ! facenet inference-region=roi-list
      [! faceidentify] ! appsink  on one image and prints every face region's box, confidence,
embedding (param "facenet-embedding") and identity (param "faceidentify"). Then the same
image in full-frame mode, where the embedding is the buffer's FaceNetEmbeddingMeta.

PyGObject cannot iterate a buffer's metas, so regions are fetched by id with
GstVideo.buffer_get_video_region_of_interest_meta_id (facedetect numbers them 0, 1, ...).
Use apt's python3-gi (a venv made with --system-site-packages sees it).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402


def first_buffer(description):
    pipeline = Gst.parse_launch(description)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    sample = sink.emit("pull-sample")
    if sample is None:
        msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        raise SystemExit(f"error: {msg.parse_error()[0].message if msg else 'no frame'}")
    buf = sample.get_buffer()
    return pipeline, buf


def embedding_of(structure):
    ok, array = structure.get_array("embedding")
    # GValueArray.get_nth is deprecated in GLib but is what PyGObject offers for GstValueArray.
    return [array.get_nth(i) for i in range(array.n_values)] if ok else []


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    image, models = sys.argv[1], sys.argv[2]
    identify = f'! faceidentify gallery="{sys.argv[3]}"' if len(sys.argv) > 3 else ""
    Gst.init(None)
    pipeline, buf = first_buffer(
        f'filesrc location="{image}" ! decodebin ! videoconvert ! '
        f'facedetect model-location="{models}/faceapi_ssd_mobilenetv1.onnx" '
        f'landmark-model-location="{models}/faceapi_landmark68.onnx" ! '
        f'facenet model-location="{models}/faceapi_resnet128.onnx" inference-region=roi-list {identify} ! '
        "appsink name=sink"
    )
    faces = 0
    for roi_id in range(1000):
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buf, roi_id)
        if roi is None:
            break
        detection = roi.get_param("face-detection")
        confidence = detection.get_double("confidence")[1] if detection else float("nan")
        print(f"face {roi.id} ({GLib_quark(roi.roi_type)}) at {roi.x},{roi.y} {roi.w}x{roi.h}, confidence {confidence:.3f}")
        emb = roi.get_param("facenet-embedding")
        if emb:
            values = embedding_of(emb)
            print(f"    embedding: {len(values)} values from {emb.get_string('model')}: "
                  f"[{', '.join(f'{v:.4f}' for v in values[:4])}, ...]")
        who = roi.get_param("faceidentify")
        if who:
            print(f"    identity: {who.get_string('label')} (distance {who.get_double('distance')[1]:.3f})")
        faces += 1
    print(f"{faces} faces")
    pipeline.set_state(Gst.State.NULL)

    # Full-frame mode: the embedding is a GstCustomMeta on the buffer.
    pipeline, buf = first_buffer(
        f'filesrc location="{image}" ! decodebin ! videoconvert ! '
        f'facenet model-location="{models}/faceapi_resnet128.onnx" ! appsink name=sink'
    )
    meta = buf.get_custom_meta("FaceNetEmbeddingMeta")
    s = meta.get_structure()
    values = embedding_of(s)
    print(f"full frame: {s.get_uint('dimension')[1]} values, l2-normalized {s.get_boolean('l2-normalized')[1]}, "
          f"[{', '.join(f'{v:.4f}' for v in values[:4])}, ...]")
    pipeline.set_state(Gst.State.NULL)


def GLib_quark(q):
    from gi.repository import GLib

    return GLib.quark_to_string(q)


if __name__ == "__main__":
    main()
