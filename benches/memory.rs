//! Bench 6, memory: peak RSS and RSS growth over 10,000 frames through
//! `videotestsrc num-buffers=10000 ! facenet (fixture model) ! fakesink`, sampled from
//! /proc/self/status by a pad probe; the same-run baseline is the pipeline without
//! facenet (`videotestsrc ! identity ! fakesink`). Growth is measured after a warm-up.
//!
//! `cargo bench --bench memory`

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use gst::prelude::*;

const FRAMES: u64 = 10_000;
const WARMUP: u64 = 1_000;
const EVERY: u64 = 250;

struct Run {
    /// (frame, VmRSS KiB)
    samples: Vec<(u64, u64)>,
    seconds: f64,
    frames: u64,
}

fn run(middle: &str, frames: u64) -> Run {
    init();
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=2 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! {middle} ! fakesink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc).unwrap_or_else(|e| panic!("'{desc}': {e}"));
    let pipeline = pipeline.downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(Mutex::new(0u64));
    {
        let (samples, count) = (samples.clone(), count.clone());
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let mut c = count.lock().unwrap();
                *c += 1;
                if *c % EVERY == 0 {
                    samples.lock().unwrap().push((*c, proc_status_kib("VmRSS")));
                }
                gst::PadProbeReturn::Ok
            });
    }
    let t = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("'{desc}': {} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null).unwrap();
    let frames = *count.lock().unwrap();
    let samples = samples.lock().unwrap().clone();
    Run {
        samples,
        seconds,
        frames,
    }
}

/// (RSS at the end of warm-up, RSS at the last sample, least-squares slope in KiB per
/// 1000 frames after warm-up, max RSS after warm-up)
fn growth(r: &Run) -> (u64, u64, f64, u64) {
    let after: Vec<(f64, f64)> = r
        .samples
        .iter()
        .filter(|(f, _)| *f >= WARMUP)
        .map(|(f, k)| (*f as f64, *k as f64))
        .collect();
    let n = after.len() as f64;
    let (mx, my) = (
        after.iter().map(|p| p.0).sum::<f64>() / n,
        after.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = after.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = after.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx * 1000.0 } else { 0.0 };
    let first = after.first().map(|p| p.1 as u64).unwrap_or(0);
    let last = after.last().map(|p| p.1 as u64).unwrap_or(0);
    let peak = after.iter().map(|p| p.1 as u64).max().unwrap_or(0);
    (first, last, slope, peak)
}

fn main() {
    init();
    let model = fixture("facenet_nchw.onnx");
    let frames = FRAMES;
    let mut report = Report::new("6. Memory over 10,000 frames");
    report.line(&format!("Machine: {}.", machine()));
    report.line("");
    report.line(&format!(
        "`videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=2 ! video/x-raw,format=I420,width=320,height=240 ! <element> ! fakesink sync=false` in this process; VmRSS from /proc/self/status every {EVERY} frames (pad probe on the sink), warm-up = the first {WARMUP} frames. The baseline (identity) runs first, in the same process."
    ));
    report.line("");
    report.line("| element | frames | wall time | RSS after warm-up | RSS at the end | growth after warm-up | slope (least squares) | peak RSS (max of VmHWM and the samples) |");
    report.line("|---|---|---|---|---|---|---|---|");
    let cases = [
        ("identity (baseline)".to_string(), "identity".to_string()),
        (
            "facenet (models/fixtures/out/facenet_nchw.onnx)".to_string(),
            format!(
                "facenet model-location=\"{}\" intra-op-threads=1",
                model.display()
            ),
        ),
    ];
    let mut facenet_growth = 0i64;
    for (label, middle) in &cases {
        let r = run(middle, frames);
        assert_eq!(r.frames, frames, "{label}: every frame arrived");
        let (first, last, slope, peak) = growth(&r);
        // VmHWM is the kernel's peak, but its RSS counters are synced lazily per thread, so
        // it can trail the last VmRSS sample by a few pages: report the larger.
        let hwm = proc_status_kib("VmHWM").max(peak);
        let g = last as i64 - first as i64;
        if middle.starts_with("facenet") {
            facenet_growth = g;
        }
        report.line(&format!(
            "| {label} | {} | {:.1} s | {:.1} MiB | {:.1} MiB | **{g:+} KiB** | {slope:+.1} KiB / 1000 frames | {:.1} MiB |",
            r.frames,
            r.seconds,
            first as f64 / 1024.0,
            last as f64 / 1024.0,
            hwm as f64 / 1024.0,
        ));
        eprintln!("  {label}: samples {:?}", r.samples);
    }
    report.line("");
    report.line(&format!(
        "facenet RSS growth after warm-up: {facenet_growth:+} KiB over {} frames ({}).",
        frames - WARMUP,
        if facenet_growth.abs() <= 1024 {
            "about zero: within 1 MiB"
        } else {
            "**more than 1 MiB: look for a leak**"
        }
    ));
    report.finish();
}
