//! Bench 5, never stall a live source: a 30 fps live camera-like source (a photo with five
//! people, 640x480, `imagefreeze is-live=true`), faces found once by `facedetect` and
//! carried, then `facenet inference-region=roi-list` with Inception-ResNet-v1 (160x160) on
//! one ONNX Runtime thread: five faces a frame, slower than the frame period, synchronous against `async-inference=true` and `inference-interval=3`, in the
//! same run. Reported: output frame rate at the sink (which syncs to the clock), how late
//! frames reach it, model runs, and the age of the results the frames carry
//! (PTS - source-pts of the embedding).
//!
//! `cargo bench --bench live`

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use gst::prelude::*;
use gstfacenet::meta::ROI_EMBEDDING_PARAM;
use gstfacenet::EmbeddingMeta;

/// Per frame reaching the sink: (lateness ms, age of its result ms).
type PerFrame = Arc<Mutex<Vec<(f64, Option<f64>)>>>;

struct Outcome {
    frames: usize,
    seconds: f64,
    runs: u64,
    /// Per frame: sink arrival minus (base time + PTS), ms.
    lateness_ms: Vec<f64>,
    /// Per frame with a result: PTS - source PTS, ms.
    age_ms: Vec<f64>,
    with_result: usize,
}

fn run(props: &str, frames: usize) -> Outcome {
    init();
    let samples = std::env::var_os("GST_FACENET_SAMPLES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("models/faceapi/node_modules/@vladmandic/face-api/demo")
        });
    let photo = samples.join("sample5.jpg");
    assert!(
        photo.exists(),
        "{} is missing: run `make models`",
        photo.display()
    );
    let desc = format!(
        "filesrc location={} ! jpegdec ! videoconvert ! videoscale ! \
         video/x-raw,format=I420,width=640,height=480 ! \
         imagefreeze is-live=true num-buffers={frames} ! video/x-raw,framerate=30/1 ! \
         facedetect model-location={} inference-interval=10000 ! \
         facenet name=net model-location={} inference-region=roi-list intra-op-threads=1 {props} ! \
         fakesink name=sink sync=false",
        photo.display(),
        model("faceapi_ssd_mobilenetv1.onnx").display(),
        model("inception_resnet_v1_128.onnx").display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap_or_else(|e| panic!("'{desc}': {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let per_frame: PerFrame = Arc::default();
    {
        let per_frame = per_frame.clone();
        let weak = pipeline.downgrade();
        pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let (Some(buffer), Some(pipeline)) = (info.buffer(), weak.upgrade()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let pts = buffer.pts().unwrap();
                let now = pipeline.clock().unwrap().time();
                let due = pipeline.base_time().unwrap() + pts;
                let late = (now.nseconds() as f64 - due.nseconds() as f64) / 1e6;
                let age = buffer
                    .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                    .find_map(|roi| roi.param(ROI_EMBEDDING_PARAM).map(|p| p.to_owned()))
                    .and_then(|p| EmbeddingMeta::from_structure(&p).ok())
                    .map(|m| {
                        (pts.nseconds() as f64 - m.source_pts.unwrap_or(pts.nseconds()) as f64)
                            / 1e6
                    });
                per_frame.lock().unwrap().push((late, age));
                gst::PadProbeReturn::Ok
            });
    }
    let bus = pipeline.bus().unwrap();
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("{}: {}", desc, e.error()),
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let runs = pipeline
        .by_name("net")
        .unwrap()
        .property::<u64>("model-runs");
    pipeline.set_state(gst::State::Null).unwrap();
    let per_frame = per_frame.lock().unwrap();
    Outcome {
        frames: per_frame.len(),
        seconds,
        runs,
        lateness_ms: per_frame.iter().map(|(l, _)| *l).collect(),
        age_ms: per_frame.iter().filter_map(|(_, a)| *a).collect(),
        with_result: per_frame.iter().filter(|(_, a)| a.is_some()).count(),
    }
}

fn main() {
    let frames = scale(300).max(60);
    let mut report = Report::new(
        "7. Live source, slow model: synchronous vs async-inference vs inference-interval",
    );
    report.line(&machine());
    report.line(&format!(
        "\n30 fps live source, {frames} frames (sample5.jpg, 640x480 I420, five faces found once and carried), Inception-ResNet-v1 128-d (160x160, intra-op-threads=1) on every face, fakesink; \
         lateness = arrival at the sink - (base time + PTS); age = PTS - source-pts of the embedding the frame carries.\n"
    ));
    report.line("| mode | output fps | model runs | frames with a result | lateness median / max | result age median / max |");
    report.line("|---|---|---|---|---|---|");
    for (name, props) in [
        ("synchronous", ""),
        ("inference-interval=3", "inference-interval=3"),
        ("async-inference=true", "async-inference=true"),
    ] {
        let o = run(props, frames);
        let fps = o.frames as f64 / o.seconds;
        let age = if o.age_ms.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0} / {:.0} ms", median(&o.age_ms), max(&o.age_ms))
        };
        report.line(&format!(
            "| {name} | {fps:.1} | {} | {} of {} | {:.0} / {:.0} ms | {age} |",
            o.runs,
            o.with_result,
            o.frames,
            median(&o.lateness_ms),
            max(&o.lateness_ms)
        ));
    }
    report.finish();
}
