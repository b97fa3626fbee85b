#!/usr/bin/env bash
# The main job: enroll the people of three of face-api's sample photos, then run all six
# photos through facedetect ! facenet ! faceidentify ! faceoverlay, writing annotated PNGs,
# per-frame JSON results and a summary to target/demo/. Run through `make demo`, which
# builds everything first and sets GST_PLUGIN_PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$ROOT/target/release}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SAMPLES="${GST_FACENET_SAMPLES_DIR:-$ROOT/models/faceapi/node_modules/@vladmandic/face-api/demo}"
MODELS="$ROOT/models/out"
OUT="$ROOT/target/demo"
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== enrollment photos (people of sample1-3)"
"$PYTHON" scripts/demo_prepare.py "$SAMPLES" "$OUT/people" sample1 sample2 sample3

echo "== facenet-enroll: the same facedetect ! facenet elements as the pipeline"
target/release/facenet-enroll \
    --model "$MODELS/faceapi_resnet128.onnx" \
    --detector "$MODELS/faceapi_ssd_mobilenetv1.onnx" \
    --landmarks "$MODELS/faceapi_landmark68.onnx" \
    --output "$OUT/people.json" "$OUT/people"

echo "== identification of all six photos"
for n in 1 2 3 4 5 6; do
    gst-launch-1.0 -q filesrc location="$SAMPLES/sample$n.jpg" ! jpegdec ! videoconvert ! \
        facedetect model-location="$MODELS/faceapi_ssd_mobilenetv1.onnx" \
                   landmark-model-location="$MODELS/faceapi_landmark68.onnx" ! \
        facenet model-location="$MODELS/faceapi_resnet128.onnx" inference-region=roi-list ! \
        faceidentify gallery="$OUT/people.json" results-location="$OUT/sample$n.jsonl" ! \
        faceoverlay ! videoconvert ! pngenc ! filesink location="$OUT/sample$n.png"
done

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {"gallery": str(out / "people.json"), "photos": []}
known = unknown = 0
for n in range(1, 7):
    frames = [json.loads(l) for l in (out / f"sample{n}.jsonl").read_text().splitlines() if l.strip()]
    faces = frames[0]["faces"] if frames else []
    summary["photos"].append({"photo": f"sample{n}.jpg", "annotated": f"sample{n}.png", "faces": faces})
    labels = ", ".join(f"{f['label']} ({f['distance']:.2f})" for f in sorted(faces, key=lambda f: f["x"]))
    print(f"sample{n}.jpg: {len(faces)} faces: {labels}")
    known += sum(f["known"] for f in faces)
    unknown += sum(not f["known"] for f in faces)
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"\n{known} faces recognised, {unknown} unknown; annotated PNGs and summary.json in {out}")
PY
