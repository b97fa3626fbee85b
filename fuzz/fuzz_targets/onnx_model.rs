//! Model loading and validation through ONNX Runtime on generated, mostly malformed ONNX
//! files (see `src/onnx.rs`): the crate's real path, `FaceModel::load` and
//! `DetectorModel::load` (open the session, describe the outlets, validate), then one run
//! of whatever loads.
//!
//! Needs the ONNX Runtime library: ORT_DYLIB_PATH (scripts/fuzz.sh sets it to the one
//! `make setup` extracted).
//!
//! Invariants: Err, or a spec within the limits the element relies on (fixed sides
//! 1..=MAX_INPUT_SIDE, so a declared 1x3x100000x100000 input is refused before anything
//! is allocated; 1 <= D <= MAX_EMBEDDING_DIM); a run is Err or finite embeddings of the
//! right length (detector: finite boxes, 4 per score); nothing panics or aborts.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use fuzz_support::onnx::{ModelGen, Template, MODEL_FILE};
use fuzz_support::{all_finite, check_build};
use gstfacenet::backend::model::{MAX_EMBEDDING_DIM, MAX_INPUT_SIDE};
use gstfacenet::backend::{
    runtime, set_log_sink, DetectorModel, Dim, ExecutionProvider, FaceModel, LogLevel, ModelHints,
    Runtime, SessionConfig,
};
use libfuzzer_sys::fuzz_target;

/// Largest image the harness runs a loaded model on (dynamic sides run at 160).
const MAX_RUN_PIXELS: usize = 256 * 256;

fn setup() -> &'static (&'static Runtime, PathBuf) {
    static STATE: OnceLock<(&'static Runtime, PathBuf)> = OnceLock::new();
    STATE.get_or_init(|| {
        // ONNX Runtime's own log (warnings about every malformed model) is noise here.
        set_log_sink(Arc::new(|_, _, _| {}), LogLevel::Fatal);
        let (rt, _) = runtime(None).unwrap_or_else(|e| {
            panic!("ONNX Runtime is needed (set ORT_DYLIB_PATH, see fuzz/README.md): {e}")
        });
        // One directory per process (parallel jobs), the model always under the same name
        // so that external_data can point at it.
        let dir = std::env::temp_dir().join(format!("gst-facenet-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        (rt, dir)
    })
}

fn config(path: PathBuf, output_name: Option<String>) -> SessionConfig {
    SessionConfig {
        model_path: path,
        execution_provider: ExecutionProvider::Cpu,
        device: None,
        fallback_to_cpu: false,
        intra_op_threads: 1,
        intra_op_spinning: false,
        cache_dir: None,
        output_name,
    }
}

fn check_face_model(mut model: FaceModel) {
    let spec = model.spec().clone();
    for side in [spec.height, spec.width] {
        if let Dim::Fixed(n) = side {
            assert!(
                (1..=MAX_INPUT_SIDE as usize).contains(&n),
                "accepted an input side of {n}"
            );
        }
    }
    assert!(spec.embedding_dim >= 1 && spec.embedding_dim as i64 <= MAX_EMBEDDING_DIM);
    if let Ok(hints) = ModelHints::from_spec_hints(&spec.hints) {
        let _ = hints.display_name(MODEL_FILE);
    }
    let (h, w) = (spec.height.or(160), spec.width.or(160));
    if h * w > MAX_RUN_PIXELS {
        return;
    }
    let input: Vec<f32> = (0..3 * h * w).map(|i| (i % 255) as f32 / 255.0).collect();
    let mut out = vec![0.0f32; spec.embedding_dim];
    match model.run(&input, 1, h, w, &mut out) {
        Ok(()) => assert!(all_finite(&out), "run returned non-finite values"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn check_detector(mut model: DetectorModel) {
    let (w, h) = model.input_size();
    assert!((1..=MAX_INPUT_SIDE as usize).contains(&w));
    assert!((1..=MAX_INPUT_SIDE as usize).contains(&h));
    if h * w > MAX_RUN_PIXELS {
        return;
    }
    let input = vec![0.5f32; 3 * h * w];
    let (mut boxes, mut scores) = (Vec::new(), Vec::new());
    match model.run(&input, &mut boxes, &mut scores) {
        Ok(()) => {
            assert_eq!(boxes.len(), 4 * scores.len());
            assert!(all_finite(&boxes) && all_finite(&scores));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|m: ModelGen| {
    check_build();
    let (rt, dir) = setup();
    let path = dir.join(MODEL_FILE);
    std::fs::write(&path, m.encode()).expect("write the model");
    let output_name = m.output_name.as_ref().map(|n| n.lossy());
    match FaceModel::load(rt, &config(path.clone(), output_name)) {
        Ok(model) => check_face_model(model),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if matches!(m.template, Template::Detector { .. }) {
        match DetectorModel::load(rt, &config(path, None)) {
            Ok(model) => check_detector(model),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
