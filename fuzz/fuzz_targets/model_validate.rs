//! Model-interface validation (`backend::model::validate`, `ModelHints::from_spec_hints`)
//! on arbitrary tensor descriptions, without ONNX Runtime (fast; `onnx_model` covers the
//! same code through real model files).
//!
//! Invariants: Err, or a spec whose image input is one of the inputs (float32, rank 4,
//! batch 1 or dynamic, 3 channels where the layout says), whose fixed spatial sizes are
//! within 1..=MAX_INPUT_SIDE (so the tensor the element allocates is bounded) and whose
//! output is a float32 [1 or N, D] output with 1 <= D <= MAX_EMBEDDING_DIM; never a panic.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use fuzz_support::check_build;
use gstfacenet::backend::model::{
    validate, ElementKind, TensorDesc, MAX_EMBEDDING_DIM, MAX_INPUT_SIDE,
};
use gstfacenet::backend::{Dim, ModelHints};
use gstfacenet::preprocess::TensorLayout;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Desc {
    name: u8,
    kind: u8,
    shape: Option<Vec<i64>>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    inputs: Vec<Desc>,
    outputs: Vec<Desc>,
    output_name: Option<u8>,
    metadata: Vec<(u8, String)>,
}

const NAMES: [&str; 6] = ["input", "embedding", "phase_train", "logits", "boxes", ""];
const KEYS: [&str; 8] = [
    "gst-facenet.normalization",
    "gst-facenet.mean",
    "gst-facenet.std",
    "gst-facenet.channel-order",
    "gst-facenet.aspect",
    "gst-facenet.model-name",
    "gst-facenet.alignment",
    "other",
];

fn desc(d: &Desc) -> TensorDesc {
    let kind =
        [ElementKind::Float32, ElementKind::Bool, ElementKind::Other][usize::from(d.kind % 3)];
    TensorDesc {
        name: NAMES[usize::from(d.name) % NAMES.len()].to_string(),
        kind,
        shape: d
            .shape
            .as_ref()
            .map(|s| s.iter().copied().take(6).collect()),
        type_name: format!("{kind:?}"),
    }
}

fuzz_target!(|input: Input| {
    check_build();
    let inputs: Vec<TensorDesc> = input.inputs.iter().take(5).map(desc).collect();
    let outputs: Vec<TensorDesc> = input.outputs.iter().take(5).map(desc).collect();
    let output_name = input
        .output_name
        .map(|n| NAMES[usize::from(n) % NAMES.len()]);
    let metadata: BTreeMap<String, String> = input
        .metadata
        .iter()
        .take(6)
        .map(|(k, v)| (KEYS[usize::from(*k) % KEYS.len()].to_string(), v.clone()))
        .collect();
    for d in inputs.iter().chain(&outputs) {
        let _ = d.to_string();
    }
    let spec = match validate(&inputs, &outputs, output_name, &metadata) {
        Ok(spec) => spec,
        Err(e) => {
            assert!(!e.0.is_empty());
            return;
        }
    };
    let image = inputs
        .iter()
        .find(|d| d.name == spec.image_input && d.kind == ElementKind::Float32)
        .expect("the image input is an input");
    let dims = image.shape.as_ref().expect("a tensor");
    assert_eq!(dims.len(), 4);
    assert!(dims[0] == 1 || dims[0] < 0, "batch {}", dims[0]);
    match spec.layout {
        TensorLayout::Nchw => assert_eq!(dims[1], 3),
        TensorLayout::Nhwc => assert_eq!(dims[3], 3),
    }
    for side in [spec.height, spec.width] {
        if let Dim::Fixed(n) = side {
            assert!((1..=MAX_INPUT_SIDE as usize).contains(&n), "side {n}");
        }
    }
    assert!(spec.batch == Dim::Fixed(1) || spec.batch == Dim::Dynamic);
    // What the element allocates for one image at the fallback size of dynamic sides.
    let h = spec.height.or(160);
    let w = spec.width.or(160);
    assert!(h.checked_mul(w).and_then(|v| v.checked_mul(3)).is_some());
    assert!(spec.embedding_dim >= 1 && spec.embedding_dim as i64 <= MAX_EMBEDDING_DIM);
    let output = outputs
        .iter()
        .find(|d| d.name == spec.output)
        .expect("the output is an output");
    assert_eq!(output.kind, ElementKind::Float32);
    for name in &spec.bool_inputs {
        assert!(inputs
            .iter()
            .any(|d| &d.name == name && d.kind == ElementKind::Bool));
    }
    if let Ok(h) = ModelHints::from_spec_hints(&spec.hints) {
        for v in h.mean.iter().chain(h.std.iter()) {
            assert!(v.iter().all(|x| x.is_finite()));
        }
        if let Some(std) = h.std {
            assert!(std.iter().all(|s| *s > 0.0));
        }
        let _ = h.display_name("/some/model.onnx");
    }
});
