#!/usr/bin/env python3
"""Bench 3: the `facenet` element against the Python app a user would write.

The Python app: a GStreamer pipeline ending in an appsink with RGB caps at the frame size,
then cv2.resize(INTER_AREA) to the model size, numpy prewhitening, and ONNX Runtime's
Python API on the same model with the same thread count:

    videotestsrc num-buffers=N pattern=smpte horizontal-speed=4
      ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1
      ! videoconvert ! video/x-raw,format=RGB ! appsink sync=false max-buffers=2

against the element on the same frames:

    ... ! facenet model-location=M intra-op-threads=T ! fakesink sync=false          (I420 in)
    ... ! videoconvert ! video/x-raw,format=RGB ! facenet ... ! fakesink sync=false  (RGB in)
    ... ! queue ! facenet ... ! fakesink sync=false                                  (I420, queue)

and against the app's model alone (its session run on one ready tensor, frame after frame):
with the same thread count no pipeline finishes frames faster than that, so "model alone /
app" is the ceiling of the ratio the goal asks for.

The app's appsink hands frames from the source's streaming thread to the Python thread, so
the source (and videoconvert) run beside the model; `queue` gives the element the same
two threads, as a pipeline fed by a camera or a decoder has anyway.

Each variant runs in its own long-lived worker process (the element must not share a process
with the onnxruntime Python module: that would be two ONNX Runtime copies in one process),
set up before timing; the driver alternates rounds between the workers, rotating the order.
Throughput of a round = frames completed after the first 2 / time between the 2nd and the
last completion (so model loading, pipeline start and the first runs are not counted).

Usage (scripts/bench.sh sets the environment):
    .venv/bin/python scripts/bench_python.py [--frames 60] [--rounds 11] [--threads 1,2]
        [--model models/out/inception_resnet_v1_128.onnx] [--markdown OUT.md]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = 2  # completions not counted (warm-up, state change)


def source(frames, width, height):
    return (
        f"videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=4 ! "
        f"video/x-raw,format=I420,width={width},height={height},framerate=30/1"
    )


def rate(stamps):
    if len(stamps) < SKIP + 3:
        raise RuntimeError(f"only {len(stamps)} frames completed")
    return (len(stamps) - 1 - SKIP) / (stamps[-1] - stamps[SKIP])


def run_pipeline_to_eos(Gst, pipeline):
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    while True:
        msg = bus.timed_pop_filtered(
            600 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        if msg is None:
            raise RuntimeError("pipeline did not finish in 600 s")
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            raise RuntimeError(f"pipeline error: {err.message} ({dbg})")
        break
    pipeline.set_state(Gst.State.NULL)


# --------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------


def worker_app(args):
    """What a user would write: appsink + OpenCV + numpy + onnxruntime."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import Gst, GstVideo

    import cv2
    import numpy as np

    Gst.init(None)
    cv2.setNumThreads(args.threads)
    sess, inp, size = python_session(args)

    def embed(img):
        small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        x = small.astype(np.float32)
        mean = x.mean()
        std = max(x.std(), 1.0 / np.sqrt(x.size))
        x = (x - mean) / std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        return sess.run(None, {inp.name: x})[0]

    def one_round():
        pipeline = Gst.parse_launch(
            source(args.frames, args.width, args.height)
            + " ! videoconvert ! video/x-raw,format=RGB"
            + " ! appsink name=sink sync=false max-buffers=2 drop=false"
        )
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        stamps = []
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:  # EOS
                break
            info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
            buf = sample.get_buffer()
            ok, m = buf.map(Gst.MapFlags.READ)
            assert ok
            try:
                stride = info.stride[0]
                rows = np.frombuffer(m.data, np.uint8, count=stride * info.height)
                img = rows.reshape(info.height, stride)[:, : info.width * 3].reshape(
                    info.height, info.width, 3
                )
                emb = embed(img)
            finally:
                buf.unmap(m)
            assert emb.shape[-1] > 0
            stamps.append(time.perf_counter())
        bus = pipeline.get_bus()
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        pipeline.set_state(Gst.State.NULL)
        if msg is not None:
            raise RuntimeError(f"pipeline error: {msg.parse_error()[0].message}")
        return stamps

    serve(one_round)


def python_session(args):
    """The app's ONNX Runtime session (Python API, CPU provider, T intra-op threads),
    warmed up; with its input and the model's input size."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    size = inp.shape[2]  # NCHW, [N, 3, 160, 160]
    dummy = np.zeros((1, 3, size, size), np.float32)
    for _ in range(2):
        sess.run(None, {inp.name: dummy})
    return sess, inp, size


def worker_model(args):
    """The model alone: the app's session run on one ready, prewhitened tensor, as many
    runs as a round has frames. Whatever a pipeline does besides, with the same thread
    count it cannot finish frames faster than this: the ceiling of the element's ratio."""
    import numpy as np

    sess, inp, size = python_session(args)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)

    def one_round():
        stamps = []
        for _ in range(args.frames):
            emb = sess.run(None, {inp.name: x})[0]
            assert emb.shape[-1] > 0
            stamps.append(time.perf_counter())
        return stamps

    serve(one_round)


def worker_element(args, rgb, queue=False):
    """The element, I420 straight from the source or RGB (the Python app's caps); with
    `queue`, I420 through a queue (the source on a thread of its own, as the app has)."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    if Gst.ElementFactory.find("facenet") is None:
        sys.exit("bench_python: the facenet element is not found: set GST_PLUGIN_PATH to target/release (scripts/bench.sh does)")

    def one_round():
        convert = " ! videoconvert ! video/x-raw,format=RGB" if rgb else ""
        if queue:
            convert = " ! queue max-size-buffers=2"
        pipeline = Gst.parse_launch(
            source(args.frames, args.width, args.height)
            + convert
            + f' ! facenet name=dut model-location="{args.model}" intra-op-threads={args.threads}'
            + " ! fakesink name=sink sync=false"
        )
        stamps = []

        def probe(pad, info):
            stamps.append(time.perf_counter())
            return Gst.PadProbeReturn.OK

        pipeline.get_by_name("sink").get_static_pad("sink").add_probe(
            Gst.PadProbeType.BUFFER, probe
        )
        run_pipeline_to_eos(Gst, pipeline)
        runs = pipeline.get_by_name("dut").get_property("model-runs")
        if runs != args.frames:
            raise RuntimeError(f"facenet ran {runs} times for {args.frames} frames")
        return stamps

    serve(one_round)


def serve(one_round):
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        t = time.perf_counter()
        stamps = one_round()
        print(
            json.dumps(
                {
                    "frames": len(stamps),
                    "fps": rate(stamps),
                    "round_seconds": time.perf_counter() - t,
                }
            ),
            flush=True,
        )


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, kind, args, threads):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            kind,
            "--threads",
            str(threads),
            "--frames",
            str(args.frames),
            "--model",
            args.model,
            "--width",
            str(args.width),
            "--height",
            str(args.height),
        ]
        self.kind = kind
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.kind} died (exit {self.proc.wait()})")
        return json.loads(line)

    def round(self):
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=60)


def paired(a, b):
    r = [x / y for x, y in zip(a, b)]
    return statistics.median(r), min(r), max(r)


def driver(args):
    import cv2
    import numpy
    import onnxruntime

    kinds = ["app", "element-i420", "element-rgb", "element-i420-queue", "model"]
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        workers = [Worker(k, args, threads) for k in kinds]
        fps = {k: [] for k in kinds}
        try:
            for r in range(args.rounds):
                for i in range(len(workers)):
                    w = workers[(i + r) % len(workers)]
                    res = w.round()
                    fps[w.kind].append(res["fps"])
                    print(
                        f"  threads={threads} round {r} {w.kind}: {res['fps']:.2f} fps ({res['frames']} frames, {res['round_seconds']:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            for w in workers:
                w.close()
        rows.append((threads, fps))

    with open("/proc/cpuinfo") as f:
        cpu = next(
            (l.split(":", 1)[1].strip() for l in f if l.startswith("model name")),
            "unknown CPU",
        )
    load = open("/proc/loadavg").read().split()[:3]
    out = []
    out.append("\n## 3. Against what users would write: Python app (appsink + OpenCV + numpy + onnxruntime) vs `facenet`\n")
    out.append(
        f"Machine: {os.cpu_count()} logical CPUs, {cpu}; load average at the end {' '.join(load)}. "
        f"Python {platform.python_version()}, opencv-python-headless {cv2.__version__}, numpy {numpy.__version__}, "
        f"onnxruntime {onnxruntime.__version__} (Python), model {os.path.relpath(args.model, ROOT)}."
    )
    out.append("")
    out.append(
        f"Same frames for every variant: `{source(args.frames, args.width, args.height)}`. "
        "Python app: `videoconvert ! video/x-raw,format=RGB ! appsink sync=false max-buffers=2`, "
        "`cv2.resize(INTER_AREA)` to 160x160, numpy prewhiten, `InferenceSession.run` "
        "(intra_op_num_threads = T, `cv2.setNumThreads(T)`). Element: `facenet intra-op-threads=T ! fakesink sync=false`, "
        "fed I420 straight from the source, fed RGB through the same `videoconvert` as the app, and fed I420 "
        "through `queue max-size-buffers=2` (the source on its own thread, as the app's appsink has it). "
        "Model alone: the app's session run on one ready tensor, as many runs as a round has frames: "
        "with the same threads no pipeline finishes frames faster, so model alone / app is the "
        "highest ratio any implementation can reach (the ceiling). "
        f"{args.rounds} rounds of {args.frames} frames per variant, alternated; fps per round counts the "
        f"frames after the first {SKIP}. Ratio = median over rounds of element fps / app fps of the same round."
    )
    out.append("")
    out.append(
        "| threads | frames x rounds | Python app fps (median) | element I420 fps (median) | element RGB fps (median) | element I420 + queue fps (median) | model alone fps (median) | element I420 / app | element RGB / app | element I420 + queue / app | ceiling: model alone / app | goal >= 1.2x |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for threads, fps in rows:
        a, i, g, q, m = (statistics.median(fps[k]) for k in kinds)
        ri = paired(fps["element-i420"], fps["app"])
        rg = paired(fps["element-rgb"], fps["app"])
        rq = paired(fps["element-i420-queue"], fps["app"])
        rm = paired(fps["model"], fps["app"])
        met = [name for name, r in (("I420", ri), ("RGB", rg), ("I420 + queue", rq)) if r[0] >= 1.2]
        goal = "met" if len(met) == 3 else (f"met for {', '.join(met)}" if met else "**missed**")
        if not met and rm[0] < 1.2:
            goal += f" (out of reach with {threads} thread(s): the ceiling is {rm[0]:.2f}x)"
        out.append(
            f"| {threads} | {args.frames} x {args.rounds} | {a:.2f} | {i:.2f} | {g:.2f} | {q:.2f} | {m:.2f} | "
            f"**{ri[0]:.2f}x** ({ri[1]:.2f}..{ri[2]:.2f}) | **{rg[0]:.2f}x** ({rg[1]:.2f}..{rg[2]:.2f}) | "
            f"**{rq[0]:.2f}x** ({rq[1]:.2f}..{rq[2]:.2f}) | {rm[0]:.2f}x ({rm[1]:.2f}..{rm[2]:.2f}) | {goal} |"
        )
    text = "\n".join(out) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=["app", "element-i420", "element-rgb", "element-i420-queue", "model"])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument(
        "--model",
        default=os.path.join(
            os.environ.get("GST_FACENET_MODELS_DIR", os.path.join(ROOT, "models", "out")),
            "inception_resnet_v1_128.onnx",
        ),
    )
    p.add_argument("--markdown", help="append the Markdown table to this file")
    args = p.parse_args()
    args.model = os.path.abspath(args.model)
    if args.frames < SKIP + 3:
        p.error(f"--frames must be at least {SKIP + 3}")
    if args.worker:
        args.threads = int(args.threads)
    if args.worker == "app":
        worker_app(args)
    elif args.worker == "model":
        worker_model(args)
    elif args.worker:
        worker_element(args, rgb=args.worker == "element-rgb", queue=args.worker == "element-i420-queue")
    else:
        if not os.path.exists(args.model):
            sys.exit(f"bench_python: model {args.model} is missing: run `make models`")
        driver(args)


if __name__ == "__main__":
    main()
