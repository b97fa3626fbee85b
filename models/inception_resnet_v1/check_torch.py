#!/usr/bin/env python3
"""One-time check of build.py against facenet-pytorch's real InceptionResnetV1.

Needs torch + facenet-pytorch (not needed by build.py or the tests):

    python models/inception_resnet_v1/check_torch.py [--write-fixture]

1. instantiates InceptionResnetV1(pretrained=None, classify=False).eval() with
   torch.manual_seed(0), and perturbs every BatchNorm's running stats / affine
   params with seeded noise (fresh modules have mean 0 / var 1 / gamma 1 /
   beta 0, which would not exercise the BN handling);
2. saves its state dict as .npz (the format build.py --state-dict reads);
3. builds ONNX models with build.py --state-dict (folded and --no-fold);
4. runs the same random batch of 2 through torch and onnxruntime, and
   reports the max abs difference (must be <= 1e-4);
5. with --write-fixture, writes facenet_pytorch_keys.json (state-dict
   key/shape list + parameter counts), the fixture test_mapping.py checks.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 1e-4


def import_inception_resnet_v1():
    """Import facenet_pytorch's InceptionResnetV1.

    The package __init__ also imports MTCNN, which needs torchvision; the
    model itself does not, so fall back to loading just the model module.
    """
    try:
        from facenet_pytorch import InceptionResnetV1
        return InceptionResnetV1, "facenet_pytorch"
    except ImportError as e:
        spec = importlib.util.find_spec("facenet_pytorch")
        if spec is None:
            raise
        pkg_dir = list(spec.submodule_search_locations)[0]
        for name in [k for k in sys.modules if k.startswith("facenet_pytorch")]:
            del sys.modules[name]
        for name, path in [("facenet_pytorch", pkg_dir),
                           ("facenet_pytorch.models", os.path.join(pkg_dir, "models")),
                           ("facenet_pytorch.models.utils", os.path.join(pkg_dir, "models", "utils"))]:
            m = types.ModuleType(name)
            m.__path__ = [path]
            sys.modules[name] = m
        import facenet_pytorch.models.inception_resnet_v1 as mod
        return mod.InceptionResnetV1, f"facenet_pytorch.models.inception_resnet_v1 (package import failed: {e})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-fixture", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="keep the npz/onnx files in DIR")
    args = ap.parse_args()

    import torch
    import onnxruntime as ort
    InceptionResnetV1, how = import_inception_resnet_v1()
    try:
        from importlib.metadata import version
        fp_version = version("facenet-pytorch")
    except Exception:
        fp_version = "unknown"
    print(f"torch {torch.__version__}, facenet-pytorch {fp_version} via {how}")

    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None, classify=False).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(1 + 0.2 * torch.rand(n, generator=g))
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.copy_(0.05 * torch.randn(m.out_channels, generator=g))

    sd = model.state_dict()
    keys = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for k, v in sd.items()]
    counts = {
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "buffers": int(sum(b.numel() for b in model.buffers())),
        "state_dict_numel": int(sum(v.numel() for v in sd.values())),
        "state_dict_keys": len(sd),
    }
    print("counts:", counts)

    sys.path.insert(0, HERE)
    import build
    mine = build.param_table(512)
    assert [k["name"] for k in keys] == list(mine), "key list/order differs"
    assert all(tuple(k["shape"]) == mine[k["name"]][0] for k in keys), "shape differs"
    assert build.parameter_count(512) == counts, (build.parameter_count(512), counts)
    print("build.param_table(512) == torch state dict (names, order, shapes, counts)")

    workdir = args.keep or tempfile.mkdtemp(prefix="irv1-check-")
    os.makedirs(workdir, exist_ok=True)
    npz = os.path.join(workdir, "facenet_pytorch_random.npz")
    # the conversion users run on their own machine (see README.md):
    np.savez(npz, **{k: v.numpy() for k, v in sd.items()})

    torch.manual_seed(123)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        ref = model(x).numpy()

    worst = 0.0
    for extra in ([], ["--no-fold"]):
        out = os.path.join(workdir, f"irv1{'_nofold' if extra else ''}.onnx")
        subprocess.run([sys.executable, os.path.join(HERE, "build.py"), "--state-dict", npz,
                        "--normalization", "fixed", "-o", out] + extra, check=True)
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        y = sess.run(["embedding"], {"input": x.numpy()})[0]
        diff = float(np.abs(y - ref).max())
        worst = max(worst, diff)
        print(f"{os.path.basename(out)}: output {y.shape}, max abs diff vs torch = {diff:.3e}, "
              f"cos(a,b) torch {float(ref[0] @ ref[1]):.4f} onnx {float(y[0] @ y[1]):.4f}")

    # Torch's default init makes every input map to (almost) the same embedding
    # (cos ~1.0 above), which is a weak test.  So also load build.py's own seeded,
    # calibrated weights (512-d and 128-d) into the torch module (strict=True:
    # names and shapes must match exactly) and compare on that well-conditioned net.
    for dim in (512, 128):
        m2 = InceptionResnetV1(pretrained=None, classify=False).eval()
        if dim != 512:
            m2.last_linear = torch.nn.Linear(1792, dim, bias=False)
            m2.last_bn = torch.nn.BatchNorm1d(dim, eps=0.001, momentum=0.1, affine=True)
            m2.eval()
        seeded = build.seeded_weights(dim, 0)
        m2.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in seeded.items()}, strict=True)
        with torch.no_grad():
            ref2 = m2(x).numpy()
        out = os.path.join(workdir, f"irv1_seed0_{dim}.onnx")
        subprocess.run([sys.executable, os.path.join(HERE, "build.py"), "--seed", "0",
                        "--dim", str(dim), "-o", out], check=True)
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        y = sess.run(["embedding"], {"input": x.numpy()})[0]
        diff = float(np.abs(y - ref2).max())
        worst = max(worst, diff)
        print(f"{os.path.basename(out)} (build.py --seed 0 weights in torch): max abs diff vs torch = "
              f"{diff:.3e}, cos(a,b) torch {float(ref2[0] @ ref2[1]):.4f} onnx {float(y[0] @ y[1]):.4f}")

    # numpy float64 reference too (same architecture code, independent arithmetic)
    w = {k: v.numpy() for k, v in sd.items()}
    y64, _ = build.reference_forward(w, 512, x.numpy().astype(np.float64))
    print(f"numpy float64 reference: max abs diff vs torch = {np.abs(y64 - ref).max():.3e}")

    if args.write_fixture:
        fixture = {
            "source": f"facenet-pytorch {fp_version}: InceptionResnetV1(pretrained=None, classify=False).state_dict()",
            "torch": torch.__version__,
            "note": "num_batches_tracked (int64 scalars) are in the state dict but unused in eval mode; "
                    "build.py accepts and ignores them. Pretrained .pt files also contain logits.weight/"
                    "logits.bias (classifier head), which build.py ignores.",
            "counts": counts,
            "max_abs_diff_vs_torch": worst,
            "keys": keys,
        }
        path = os.path.join(HERE, "facenet_pytorch_keys.json")
        head = {k: v for k, v in fixture.items() if k != "keys"}
        text = json.dumps(head, indent=1)[:-2] + ',\n "keys": [\n'
        text += ",\n".join("  " + json.dumps(k) for k in keys) + "\n ]\n}\n"
        json.loads(text)  # sanity
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")

    if worst > TOL:
        print(f"FAIL: max abs diff {worst:.3e} > {TOL}")
        sys.exit(1)
    print(f"OK: max abs diff {worst:.3e} <= {TOL}")


if __name__ == "__main__":
    main()
