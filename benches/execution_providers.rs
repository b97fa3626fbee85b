//! Bench 5, execution providers: the CPU provider against OpenVINO (device CPU) on the same
//! models, batch 1, ready tensors, FaceModel::run, same intra-op thread count (OpenVINO's
//! `num_of_threads`). Rounds alternate the two providers.
//!
//! `cargo bench --bench execution_providers`

mod common;

use common::*;
use gstfacenet::backend::{self, ExecutionProvider, FaceModel, SessionConfig};

fn main() {
    let mut report = Report::new("5. Execution providers: CPU vs OpenVINO (device CPU)");
    report.line(&format!("Machine: {}.", machine()));
    let (rt, _) = backend::runtime(None).expect("ONNX Runtime loads");
    report.line(&format!(
        "ONNX Runtime {} from {}; providers in the library: {}.",
        rt.version,
        rt.library.display(),
        backend::available_providers().join(", ")
    ));
    report.line("");
    report.line("FaceModel::run, batch 1, one ready tensor, rounds alternating the providers; model load / OpenVINO compile time is measured once (not in the throughput).");
    report.line("");
    report.line("| model | intra-op threads | runs x rounds | CPU EP load | OpenVINO load | CPU EP per run (median) | OpenVINO per run (median) | OpenVINO speedup (median of paired rounds) | max abs diff of embeddings |");
    report.line("|---|---|---|---|---|---|---|---|---|");

    let cases = [
        ("faceapi_resnet128.onnx", 150usize, scale(20)),
        ("inception_resnet_v1_128.onnx", 160, scale(5)),
    ];
    let n_rounds = rounds(9);
    for (name, side, runs) in cases {
        let path = model(name);
        for threads in [1usize, 2] {
            let cfg = |ep| SessionConfig {
                model_path: path.clone(),
                execution_provider: ep,
                device: (ep == ExecutionProvider::OpenVino).then(|| "CPU".to_string()),
                fallback_to_cpu: false,
                intra_op_threads: threads,
                // ONNX Runtime's own default, as a bare loop gets it.
                intra_op_spinning: true,
                cache_dir: None,
                output_name: None,
            };
            let mut cpu = None;
            let cpu_load = time(|| {
                cpu = Some(FaceModel::load(rt, &cfg(ExecutionProvider::Cpu)).expect("CPU EP loads"))
            });
            let mut cpu = cpu.unwrap();
            let mut ov = None;
            let ov_load =
                time(|| ov = Some(FaceModel::load(rt, &cfg(ExecutionProvider::OpenVino))));
            let mut ov = match ov.unwrap() {
                Ok(m) if m.active_provider() == ExecutionProvider::OpenVino => m,
                Ok(_) => {
                    report.line(&format!("| {name} | {threads} | - | - | - | - | - | OpenVINO fell back to the CPU provider | - |"));
                    continue;
                }
                Err(e) => {
                    report.line(&format!("| {name} | {threads} | - | - | - | - | - | OpenVINO unavailable: {e} | - |"));
                    continue;
                }
            };
            let dim = cpu.spec().embedding_dim;
            let tensor: Vec<f32> = texture(3 * side * side, 5)
                .into_iter()
                .map(|b| (f32::from(b) - 120.0) / 60.0)
                .collect();
            let (mut o1, mut o2) = (vec![0.0f32; dim], vec![0.0f32; dim]);
            for _ in 0..3 {
                cpu.run(&tensor, 1, side, side, &mut o1).unwrap();
                ov.run(&tensor, 1, side, side, &mut o2).unwrap();
            }
            let diff = o1
                .iter()
                .zip(&o2)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let (mut tc, mut to) = (Vec::new(), Vec::new());
            for r in 0..n_rounds {
                let mut c = || {
                    time(|| {
                        for _ in 0..runs {
                            cpu.run(&tensor, 1, side, side, &mut o1).unwrap();
                        }
                    }) / runs as f64
                };
                let mut o = || {
                    time(|| {
                        for _ in 0..runs {
                            ov.run(&tensor, 1, side, side, &mut o2).unwrap();
                        }
                    }) / runs as f64
                };
                if r % 2 == 0 {
                    tc.push(c());
                    to.push(o());
                } else {
                    to.push(o());
                    tc.push(c());
                }
            }
            let (speedup, lo, hi) = paired_ratios(&tc, &to);
            report.line(&format!(
                "| {name} | {threads} | {runs} x {n_rounds} | {:.2} s | {:.2} s | {} | {} | **{speedup:.2}x** ({lo:.2}..{hi:.2}) | {diff:.1e} |",
                cpu_load,
                ov_load,
                fmt_ms(median(&tc)),
                fmt_ms(median(&to)),
            ));
        }
    }
    report.finish();
}
