//! Bench 4, many faces: 1, 2, 4, 8, 16 face ROIs per 1280x720 RGB frame through
//! `appsrc ! facenet inference-region=roi-list ! fakesink` with the dlib ResNet
//! (faceapi_resnet128.onnx, dynamic batch: the element embeds all faces of a frame in one
//! batched run), against
//!
//! * the same element with a batch-1 copy of the model (`scripts/bench.sh` writes
//!   `target/bench/faceapi_resnet128_b1.onnx`; the element then runs face by face), and
//! * the bare FaceModel API on ready tensors: n batch-1 runs, and one batch-n run.
//!
//! Rounds alternate all variants. Per-face time = round time / faces.
//!
//! `cargo bench --bench many_faces`

mod common;

use common::*;
use gstfacenet::backend::{self, ExecutionProvider, FaceModel, SessionConfig};
use gstfacenet::meta::FaceDetectionParam;

use gst::prelude::*;

const FW: usize = 1280;
const FH: usize = 720;
const SIDE: usize = 150;

fn main() {
    init();
    let dynamic = model("faceapi_resnet128.onnx");
    let b1 = bench_dir().join("faceapi_resnet128_b1.onnx");
    let have_b1 = b1.exists();

    let mut report = Report::new("4. Many faces: batched ROI embedding (`facenet inference-region=roi-list`, dlib ResNet 150x150)");
    report.line(&format!("Machine: {}.", machine()));
    report.line("");
    report.line("1280x720 RGB frames from appsrc, n face ROIs (about 195x195 px, five dlib-chip landmarks each, tilted by -7.5 to 7.5 degrees, so every face is a rotated affine warp) per frame. Variants, alternated within each round:");
    report.line("");
    report.line("* **element, batched**: faceapi_resnet128.onnx (dynamic batch), one run of n faces per frame (pre-processing included, `n-threads=1`, the default);");
    report.line("* **element, batched, `n-threads=2`**: the same, the frame's faces prepared on two threads;");
    if have_b1 {
        report.line("* **element, single runs**: the same model with its batch fixed to 1 (`target/bench/faceapi_resnet128_b1.onnx`), so the element runs the model n times per frame (pre-processing included);");
    } else {
        report.line(&format!(
            "* element, single runs: SKIPPED, {} is missing (scripts/bench.sh writes it);",
            b1.display()
        ));
    }
    report.line("* **bare, n x batch 1**: FaceModel::run on ready tensors, n runs of batch 1 (the baseline the goal names; no pre-processing);");
    report.line("* **bare, batch n**: FaceModel::run, one run of batch n on ready tensors.");
    report.line("");
    report.line("Per-face times are medians over rounds. Speedup = per-face time of the baseline / per-face time of the element, batched (median of paired rounds, q1..q3 of the pairs in brackets); \"speedup with n-threads=2\" is bare n x batch 1 against the `n-threads=2` variant. On this 2-core machine ONNX Runtime's spare threads spin-wait between runs, so a second pre-processing thread only pays where the model leaves a core free (1 intra-op thread).");
    report.line("");
    report.line("| intra-op threads | faces / frame | frames x rounds | element, batched | element, batched, n-threads=2 | element, single runs | bare, n x batch 1 | bare, batch n | speedup vs bare n x batch 1 | speedup with n-threads=2 | speedup vs element single runs | bare batching gain |");
    report.line("|---|---|---|---|---|---|---|---|---|---|---|---|");

    // Many short rounds (32 faces, 0.1-0.2 s) rather than a few long ones, as in bench 1:
    // a burst of the neighbours' load spoils the few pairs it overlaps, and the median of
    // the pairs sets them aside.
    let faces_per_round = scale(32).max(16);
    let n_rounds = rounds(21);
    // Four ONNX Runtime sessions live in this process (three elements and the bare model);
    // after a run, a session's worker threads spin-wait for more work, and on two cores they
    // would steal the next variant's time (a pipeline with one facenet has no such
    // neighbour). A pause before each round lets them go to sleep.
    let settle = || std::thread::sleep(std::time::Duration::from_millis(20));
    let mut eight = Vec::new();
    for threads in [1usize, 2] {
        let (rt, _) = backend::runtime(None).expect("ONNX Runtime loads");
        let cfg = SessionConfig {
            model_path: dynamic.clone(),
            execution_provider: ExecutionProvider::Cpu,
            device: None,
            fallback_to_cpu: true,
            intra_op_threads: threads,
            // ONNX Runtime's own default, as a bare loop gets it.
            intra_op_spinning: true,
            cache_dir: None,
            output_name: None,
        };
        let mut bare = FaceModel::load(rt, &cfg).expect("model loads");
        assert!(bare.supports_batches());
        let dim = bare.spec().embedding_dim;
        let per_face = 3 * SIDE * SIDE;
        let tensors: Vec<f32> = texture(16 * per_face, 7)
            .into_iter()
            .map(|b| f32::from(b) / 255.0 - 0.45)
            .collect();
        let mut out = vec![0.0f32; 16 * dim];

        let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, FW as u32, FH as u32)
            .fps(gst::Fraction::new(30, 1))
            .build()
            .unwrap()
            .to_caps()
            .unwrap();
        let element = |path: &std::path::Path, n_threads: usize| {
            AppPipeline::new(
                &caps,
                &format!(
                    "facenet name=dut model-location=\"{}\" inference-region=roi-list alignment=dlib-chip intra-op-threads={threads} n-threads={n_threads}",
                    path.display()
                ),
            )
        };
        let mut batched = element(&dynamic, 1);
        let mut parallel = element(&dynamic, 2);
        let mut singles = have_b1.then(|| element(&b1, 1));
        let image = texture(FW * FH * 3, 3);
        let template = gstfacenet::align::Alignment::DlibChip
            .template(SIDE, SIDE)
            .expect("dlib chip template");

        let make_buffers = |frames: usize, n: usize| -> Vec<gst::Buffer> {
            (0..frames)
                .map(|_| {
                    let mut buffer = gst::Buffer::from_mut_slice(image.clone());
                    {
                        let b = buffer.get_mut().unwrap();
                        for i in 0..n {
                            // 4 x 4 grid of 320x180 cells; the face box scaled 1.3 from the chip.
                            let (cx, cy) = ((i % 4) as f32 * 320.0, (i / 4) as f32 * 180.0);
                            let (x0, y0) = (cx + 60.0, cy - 10.0 + 5.0 * (i % 3) as f32);
                            let s = 1.3f32;
                            let mut roi = gst_video::VideoRegionOfInterestMeta::add(
                                b,
                                "face",
                                (x0.max(0.0) as u32, y0.max(0.0) as u32, 195, 195),
                            );
                            // Faces as a detector finds them, never exactly upright
                            // (-7.5, -2.5, 2.5 or 7.5 degrees about the chip's centre):
                            // every face is the two-step warp of a rotated face.
                            let tilt = ((i % 4) as f32 - 1.5) * 5f32.to_radians();
                            let (sin, cos) = tilt.sin_cos();
                            let c = SIDE as f32 / 2.0;
                            let points = template.map(|[x, y]| {
                                let (dx, dy) = (x as f32 - c, y as f32 - c);
                                [
                                    x0 + s * (c + cos * dx - sin * dy),
                                    y0 + s * (c + sin * dx + cos * dy),
                                ]
                            });
                            roi.add_param(
                                FaceDetectionParam {
                                    confidence: 1.0,
                                    landmarks: Some(points),
                                    landmarks68: None,
                                    fresh: true,
                                    detector: "bench".into(),
                                }
                                .to_structure(),
                            );
                        }
                    }
                    buffer
                })
                .collect()
        };

        // Warm-up.
        batched.run(make_buffers(2, 16));
        parallel.run(make_buffers(2, 16));
        if let Some(p) = singles.as_mut() {
            p.run(make_buffers(2, 16));
        }
        for n in [1usize, 16] {
            bare.run(&tensors[..n * per_face], n, SIDE, SIDE, &mut out[..n * dim])
                .unwrap();
        }

        for n in [1usize, 2, 4, 8, 16] {
            let frames = (faces_per_round / n).max(1);
            let faces = (frames * n) as f64;
            let (mut a, mut b, mut c, mut d, mut e) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let runs_before = batched
                .element
                .as_ref()
                .unwrap()
                .property::<u64>("model-runs");
            for r in 0..n_rounds {
                // Rotate the order of the variants from round to round.
                for k in 0..5 {
                    settle();
                    match (k + r) % 5 {
                        0 => a.push(batched.run(make_buffers(frames, n)) / faces),
                        4 => e.push(parallel.run(make_buffers(frames, n)) / faces),
                        1 => {
                            if let Some(p) = singles.as_mut() {
                                b.push(p.run(make_buffers(frames, n)) / faces);
                            }
                        }
                        2 => c.push(
                            time(|| {
                                for _ in 0..frames {
                                    for i in 0..n {
                                        bare.run(
                                            &tensors[i * per_face..(i + 1) * per_face],
                                            1,
                                            SIDE,
                                            SIDE,
                                            &mut out[i * dim..(i + 1) * dim],
                                        )
                                        .unwrap();
                                    }
                                }
                            }) / faces,
                        ),
                        3 => d.push(
                            time(|| {
                                for _ in 0..frames {
                                    bare.run(
                                        &tensors[..n * per_face],
                                        n,
                                        SIDE,
                                        SIDE,
                                        &mut out[..n * dim],
                                    )
                                    .unwrap();
                                }
                            }) / faces,
                        ),
                        _ => unreachable!(),
                    }
                }
            }
            let runs = batched
                .element
                .as_ref()
                .unwrap()
                .property::<u64>("model-runs")
                - runs_before;
            assert_eq!(
                runs,
                (frames * n_rounds) as u64,
                "one batched run per frame"
            );
            let (vs_bare, lo, hi) = paired_quartiles(&c, &a);
            let vs_singles = if b.is_empty() {
                "n/a".to_string()
            } else {
                let (m, lo, hi) = paired_quartiles(&b, &a);
                format!("{m:.2}x ({lo:.2}..{hi:.2})")
            };
            let (gain, glo, ghi) = paired_quartiles(&c, &d);
            let (par, plo, phi) = paired_quartiles(&c, &e);
            if n == 8 {
                // The median's 95 % interval (distribution-free), for the goal's row.
                let interval = |num: &[f64], den: &[f64]| {
                    let pairs: Vec<f64> = num.iter().zip(den).map(|(x, y)| x / y).collect();
                    match median_ci95(&pairs) {
                        Some((a, b)) => format!("95 % interval {a:.2}..{b:.2}"),
                        None => "too few rounds for an interval".to_string(),
                    }
                };
                let intervals = (interval(&c, &a), interval(&c, &d));
                eight.push((threads, vs_bare, vs_singles.clone(), par, gain, intervals));
            }
            report.line(&format!(
                "| {threads} | {n} | {frames} x {n_rounds} | {} | {} | {} | {} | {} | **{vs_bare:.2}x** ({lo:.2}..{hi:.2}) | {par:.2}x ({plo:.2}..{phi:.2}) | {vs_singles} | {gain:.2}x ({glo:.2}..{ghi:.2}) |",
                fmt_ms(median(&a)),
                fmt_ms(median(&e)),
                if b.is_empty() { "n/a".into() } else { fmt_ms(median(&b)) },
                fmt_ms(median(&c)),
                fmt_ms(median(&d)),
            ));
        }
    }
    report.line("");
    for (threads, vs_bare, vs_singles, par, gain, (vs_bare_ci, gain_ci)) in eight {
        // Against bare runs on ready tensors the element cannot beat ONNX Runtime's own
        // batching gain: its faces still have to be prepared.
        let verdict = if vs_bare.max(par) >= 1.15 {
            "met".to_string()
        } else if gain < 1.15 {
            format!("**missed**, out of reach with {threads} thread(s): the ceiling, the bare batching gain, is {gain:.2}x")
        } else {
            "**missed**".to_string()
        };
        report.line(&format!(
            "8 faces per frame, {threads} thread(s): element (batched) vs bare n x batch 1: **{vs_bare:.2}x** ({vs_bare_ci}; goal >= 1.15x: {verdict}); with `n-threads=2`: {par:.2}x; vs the element's own single runs: {vs_singles}; the bare batching gain {gain:.2}x ({gain_ci}).",
        ));
    }
    report.finish();
}
