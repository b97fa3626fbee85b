//! Bench 5, never stall a live source: a 30 fps live `videotestsrc` (320x240) through
//! `facenet` with Inception-ResNet-v1 (160x160, slower than a frame period on a small
//! machine), synchronous against `async-inference=true` and `inference-interval=3`, in the
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
    let desc = format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=ball ! \
         video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
         facenet name=net model-location={} {props} ! \
         fakesink name=sink sync=false",
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
                let age = EmbeddingMeta::from_buffer(buffer).map(|m| {
                    (pts.nseconds() as f64 - m.source_pts.unwrap_or(pts.nseconds()) as f64) / 1e6
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
        "5. Live source, slow model: synchronous vs async-inference vs inference-interval",
    );
    report.line(&machine());
    report.line(&format!(
        "\n30 fps live videotestsrc, {frames} frames (320x240 I420), Inception-ResNet-v1 128-d (160x160), fakesink; \
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
