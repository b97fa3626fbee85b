#!/usr/bin/env python3
"""Enrollment photos for `make demo`: the faces of some of face-api's sample photos, cut
out with context (face-api's own detections, models/faceapi/detector_expected.json) and
saved one folder per person, twice each (as cut, and mirrored and recompressed).

No person appears in two sample photos, so the people of the enrolled photos are
"known" and everyone else must come out "unknown".

    demo_prepare.py SAMPLES_DIR OUT_DIR [sample1 sample2 sample3]
"""
import json
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    samples, out = Path(sys.argv[1]), Path(sys.argv[2])
    enrolled = sys.argv[3:] or ["sample1", "sample2", "sample3"]
    expected = json.loads((ROOT / "models/faceapi/detector_expected.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    people = 0
    for image in expected["images"]:
        if image["name"] not in enrolled:
            continue
        photo = Image.open(samples / f"{image['name']}.jpg").convert("RGB")
        # Left to right, so labels read naturally on the photo.
        faces = sorted(image["faces"], key=lambda f: f["box"]["x"])
        for i, face in enumerate(faces, start=1):
            b = face["box"]
            cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
            side = 2.4 * max(b["width"], b["height"])
            box = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
            crop = photo.crop(box)
            label = f"{image['name']}-person{i}"
            folder = out / label
            folder.mkdir(parents=True, exist_ok=True)
            crop.save(folder / "1.jpg", quality=92)
            ImageOps.mirror(crop).save(folder / "2.jpg", quality=80)
            people += 1
    print(f"{people} people from {', '.join(enrolled)} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
