#!/usr/bin/env python3
"""Reference implementation of the gst-facenet preprocessing + inference, in numpy + onnxruntime.

Importable module and CLI. The pipeline, for one raw video frame that already has the model's
input size (no scaling is done here):

1. Convert the frame to RGB float64 in [0, 255] (`frame_to_rgb`):
   * packed RGB-family formats: take the R, G, B bytes; alpha / padding bytes are ignored;
   * GRAY8: R = G = B = the gray byte;
   * I420 / NV12 (tightly packed, standard plane layout), with matrix bt601 / bt709 / bt2020 and
     range limited / full. Chroma sample of pixel (x, y) is at (x // 2, y // 2) (no chroma
     interpolation). Limited range: Y' = (Y - 16) * 255 / 219, Cb/Cr = (C - 128) * 255 / 224;
     full range: Y' = Y, Cb/Cr = C - 128. Then
         R = Y' + 2 (1 - Kr) Cr
         G = Y' - (2 Kb (1 - Kb) / Kg) Cb - (2 Kr (1 - Kr) / Kg) Cr     (Kg = 1 - Kr - Kb)
         B = Y' + 2 (1 - Kb) Cb
     clamped to [0, 255], never rounded.
2. Normalise (`normalize`):
   * "prewhiten" (FaceNet): x = (x - mean) / max(std, 1 / sqrt(n)), mean and population std over
     all n = 3*H*W values;
   * "fixed": x = (x - mean[c]) / std[c] per channel; mean/std are listed in R,G,B order
     regardless of the channel order (as src/preprocess.rs does). See MEAN_STD_ORDER.
3. Channel order "rgb" or "bgr" (the order of the model's 3 channels).
4. Layout NCHW or NHWC, chosen from the model's image input shape (the axis of size 3).
5. Run the model on the ONNX Runtime CPU execution provider; scalar bool inputs (phase_train)
   are fed False; the output named "embedding" (else the first output) is returned, float32 [D].

Defaults for normalization / mean / std / channel order come from the model's metadata_props
(gst-facenet.normalization, .mean, .std, .channel-order, .aspect) when present, else
prewhiten + rgb; explicit arguments override them.

CLI:
  reference.py --model M.onnx --format I420 --width 160 --height 160 \
      [--matrix bt601] [--range limited] [--l2] frame.raw          -> JSON list on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# Byte offsets of R, G, B inside one pixel, and bytes per pixel.
PACKED_RGB = {
    "RGB": ((0, 1, 2), 3),
    "BGR": ((2, 1, 0), 3),
    "RGBA": ((0, 1, 2), 4),
    "BGRA": ((2, 1, 0), 4),
    "RGBx": ((0, 1, 2), 4),
    "BGRx": ((2, 1, 0), 4),
    "xRGB": ((1, 2, 3), 4),
    "xBGR": ((3, 2, 1), 4),
    "ARGB": ((1, 2, 3), 4),
    "ABGR": ((3, 2, 1), 4),
}
YUV_FORMATS = ("I420", "NV12")
FORMATS = tuple(PACKED_RGB) + ("GRAY8",) + YUV_FORMATS

# (Kr, Kb) per matrix.
MATRICES = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}
RANGES = ("limited", "full")

# GStreamer caps colorimetry strings for the (matrix, range) pairs (as printed by GstVideo 1.22).
COLORIMETRY = {
    ("bt601", "limited"): "bt601",
    ("bt709", "limited"): "bt709",
    ("bt2020", "limited"): "bt2020",
    ("bt601", "full"): "1:4:16:4",
    ("bt709", "full"): "1:3:5:1",
    ("bt2020", "full"): "1:6:11:7",
}

# Order in which "fixed" mean/std values are listed: "rgb" = R,G,B whatever the model's channel
# order (matches src/preprocess.rs); "model" = the model's input channel order.
MEAN_STD_ORDER = "rgb"

META_PREFIX = "gst-facenet."


def frame_size(fmt: str, width: int, height: int) -> int:
    """Size in bytes of a tightly packed frame."""
    if fmt in PACKED_RGB:
        return width * height * PACKED_RGB[fmt][1]
    if fmt == "GRAY8":
        return width * height
    if fmt in YUV_FORMATS:
        cw, ch = (width + 1) // 2, (height + 1) // 2
        return width * height + 2 * cw * ch
    raise ValueError(f"unsupported format {fmt!r}; one of {', '.join(FORMATS)}")


def _as_bytes(data) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise TypeError(f"frame must be uint8, got {arr.dtype}")
    return arr.reshape(-1)


def frame_to_rgb(data, fmt: str, width: int, height: int,
                 matrix: str = "bt601", range_: str = "limited") -> np.ndarray:
    """Convert a tightly packed raw frame to an RGB float64 array of shape [H, W, 3] in [0, 255]."""
    buf = _as_bytes(data)
    need = frame_size(fmt, width, height)
    if buf.size != need:
        raise ValueError(f"{fmt} {width}x{height} needs {need} bytes, got {buf.size}")

    if fmt in PACKED_RGB:
        offs, bpp = PACKED_RGB[fmt]
        px = buf.reshape(height, width, bpp)
        return px[:, :, list(offs)].astype(np.float64)

    if fmt == "GRAY8":
        g = buf.reshape(height, width).astype(np.float64)
        return np.repeat(g[:, :, None], 3, axis=2)

    if matrix not in MATRICES:
        raise ValueError(f"unknown matrix {matrix!r}; one of {', '.join(MATRICES)}")
    if range_ not in RANGES:
        raise ValueError(f"unknown range {range_!r}; one of {', '.join(RANGES)}")
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y = buf[: width * height].reshape(height, width).astype(np.float64)
    rest = buf[width * height:]
    if fmt == "I420":
        u = rest[: cw * ch].reshape(ch, cw)
        v = rest[cw * ch:].reshape(ch, cw)
    else:  # NV12
        uv = rest.reshape(ch, cw, 2)
        u, v = uv[:, :, 0], uv[:, :, 1]
    ys = np.arange(height) // 2
    xs = np.arange(width) // 2
    u = u[np.ix_(ys, xs)].astype(np.float64)
    v = v[np.ix_(ys, xs)].astype(np.float64)

    if range_ == "limited":
        yp = (y - 16.0) * 255.0 / 219.0
        cb = (u - 128.0) * 255.0 / 224.0
        cr = (v - 128.0) * 255.0 / 224.0
    else:
        yp, cb, cr = y, u - 128.0, v - 128.0

    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    r = yp + 2.0 * (1.0 - kr) * cr
    g = yp - (2.0 * kb * (1.0 - kb) / kg) * cb - (2.0 * kr * (1.0 - kr) / kg) * cr
    b = yp + 2.0 * (1.0 - kb) * cb
    return np.clip(np.stack([r, g, b], axis=2), 0.0, 255.0)


def prewhiten(x: np.ndarray) -> np.ndarray:
    """FaceNet prewhitening over all values: (x - mean) / max(std, 1/sqrt(n))."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    mean = x.mean()
    std = max(x.std(), 1.0 / np.sqrt(n))
    return (x - mean) / std


def normalize(rgb: np.ndarray, normalization: str = "prewhiten", channel_order: str = "rgb",
              mean=None, std=None) -> np.ndarray:
    """Normalise an [H, W, 3] RGB float image; returns [H, W, 3] float64 in the model's channel order."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel order must be rgb or bgr, got {channel_order!r}")
    x = np.asarray(rgb[:, :, ::-1] if channel_order == "bgr" else rgb, dtype=np.float64)
    if normalization == "prewhiten":
        return prewhiten(x)
    if normalization == "fixed":
        mean = np.asarray(mean if mean is not None else (0.0, 0.0, 0.0), dtype=np.float64).reshape(-1)
        std = np.asarray(std if std is not None else (1.0, 1.0, 1.0), dtype=np.float64).reshape(-1)
        if mean.size == 1:
            mean = np.repeat(mean, 3)
        if std.size == 1:
            std = np.repeat(std, 3)
        if MEAN_STD_ORDER == "rgb" and channel_order == "bgr":
            mean, std = mean[::-1], std[::-1]
        return (x - mean) / std
    if normalization == "none":
        return x
    raise ValueError(f"unknown normalization {normalization!r} (prewhiten, fixed, none)")


@dataclass
class ModelInfo:
    path: str
    image_input: str
    layout: str  # "NCHW" or "NHWC"
    input_shape: list
    bool_inputs: list
    output: str
    metadata: dict


@lru_cache(maxsize=None)
def _session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1  # deterministic reductions
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def model_info(path) -> ModelInfo:
    sess = _session(str(path))
    image, layout, shape, bools = None, None, None, []
    for inp in sess.get_inputs():
        if inp.type == "tensor(bool)" and len(inp.shape) == 0:
            bools.append(inp.name)
            continue
        if inp.type == "tensor(float)" and len(inp.shape) == 4:
            if image is not None:
                raise ValueError(f"{path}: more than one image input")
            image, shape = inp.name, list(inp.shape)
            if shape[1] == 3:
                layout = "NCHW"
            elif shape[3] == 3:
                layout = "NHWC"
            else:
                raise ValueError(f"{path}: image input {shape} has no channel axis of size 3")
            continue
        raise ValueError(f"{path}: unsupported input {inp.name} {inp.type} {inp.shape}")
    if image is None:
        raise ValueError(f"{path}: no float image input")
    outs = [o.name for o in sess.get_outputs()]
    output = "embedding" if "embedding" in outs else outs[0]
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    return ModelInfo(str(path), image, layout, shape, bools, output, meta)


def _floats(s: str):
    return [float(v) for v in s.split(",")]


def settings_from_metadata(meta: dict) -> dict:
    """Preprocessing settings declared by the model's gst-facenet.* metadata_props."""
    out = {}
    if META_PREFIX + "normalization" in meta:
        out["normalization"] = meta[META_PREFIX + "normalization"]
    if META_PREFIX + "mean" in meta:
        out["mean"] = _floats(meta[META_PREFIX + "mean"])
    if META_PREFIX + "std" in meta:
        out["std"] = _floats(meta[META_PREFIX + "std"])
    if META_PREFIX + "channel-order" in meta:
        out["channel_order"] = meta[META_PREFIX + "channel-order"]
    if META_PREFIX + "aspect" in meta:
        out["aspect"] = meta[META_PREFIX + "aspect"]
    return out


def to_tensor(x: np.ndarray, layout: str) -> np.ndarray:
    """[H, W, 3] -> float32 [1, 3, H, W] (NCHW) or [1, H, W, 3] (NHWC)."""
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None].astype(np.float32))


def embed(model, data, fmt: str, width: int, height: int, matrix: str = "bt601", range_: str = "limited",
          normalization: str | None = None, channel_order: str | None = None, mean=None, std=None,
          l2: bool = False) -> np.ndarray:
    """Embedding (float32 [D]) of one raw frame; the frame must already have the model's input size."""
    info = model_info(model)
    settings = {"normalization": "prewhiten", "channel_order": "rgb", "mean": None, "std": None}
    settings.update(settings_from_metadata(info.metadata))
    for key, val in (("normalization", normalization), ("channel_order", channel_order),
                     ("mean", mean), ("std", std)):
        if val is not None:
            settings[key] = val

    h_axis, w_axis = (2, 3) if info.layout == "NCHW" else (1, 2)
    mh, mw = info.input_shape[h_axis], info.input_shape[w_axis]
    if (isinstance(mh, int) and mh != height) or (isinstance(mw, int) and mw != width):
        raise ValueError(f"frame {width}x{height} != model input {mw}x{mh}: the reference does not resize")

    rgb = frame_to_rgb(data, fmt, width, height, matrix, range_)
    x = normalize(rgb, settings["normalization"], settings["channel_order"], settings["mean"], settings["std"])
    feeds = {info.image_input: to_tensor(x, info.layout)}
    for name in info.bool_inputs:
        feeds[name] = np.array(False)
    (out,) = _session(info.path).run([info.output], feeds)
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != 1:
        raise ValueError(f"unexpected output shape {out.shape}")
    emb = out[0]
    return l2_normalize(emb) if l2 else emb


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return (v / n if n > 0 else v).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("raw", help="raw frame file (tightly packed)")
    p.add_argument("--model", required=True)
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--matrix", default="bt601", choices=sorted(MATRICES))
    p.add_argument("--range", dest="range_", default="limited", choices=RANGES)
    p.add_argument("--normalization", choices=("prewhiten", "fixed", "none"))
    p.add_argument("--channel-order", choices=("rgb", "bgr"))
    p.add_argument("--mean", type=_floats, help="comma-separated, R,G,B order")
    p.add_argument("--std", type=_floats, help="comma-separated, R,G,B order")
    p.add_argument("--l2", action="store_true", help="L2-normalise the embedding")
    a = p.parse_args(argv)
    data = Path(a.raw).read_bytes()
    emb = embed(a.model, data, a.format, a.width, a.height, a.matrix, a.range_, a.normalization,
                a.channel_order, a.mean, a.std, a.l2)
    json.dump([float(v) for v in emb], sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
