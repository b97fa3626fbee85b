//! Shared set-up for the integration tests: the plugin registered statically, the fixture
//! models and reference data that `make fixtures` generates, and pipeline helpers.
//! Missing inputs fail the tests with the command that provides them; nothing is skipped.
#![allow(dead_code)]

pub mod image;

use std::path::PathBuf;
use std::sync::Once;

use gst::prelude::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initializes");
        gstfacenet::plugin_register_static().expect("facenet plugin registers");
        let lib = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .or_else(|| gstfacenet::backend::DEFAULT_LIBRARY.map(PathBuf::from));
        match lib {
            Some(lib) if lib.exists() => {}
            other => panic!(
                "the ONNX Runtime library is missing ({other:?}): run the tests with `make test`, which installs it"
            ),
        }
    });
}

fn dir_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default))
}

/// A fixture model from `models/fixtures/out`, which `make fixtures` writes.
pub fn fixture(name: &str) -> String {
    let path = dir_from_env("GST_FACENET_FIXTURES_DIR", "models/fixtures/out").join(name);
    assert!(
        path.exists(),
        "fixture model {} is missing: run `make fixtures` (or `make test`)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Reference data from `tests/data/generated`, which `make fixtures` writes.
pub fn reference_path(name: &str) -> PathBuf {
    let path = dir_from_env("GST_FACENET_REFERENCE_DIR", "tests/data/generated").join(name);
    assert!(
        path.exists(),
        "reference data {} is missing: run `make fixtures` (or `make test`)",
        path.display()
    );
    path
}

/// Runs `pipeline` (gst-launch syntax) to EOS or error; returns the bus messages of
/// interest: errors, warnings and element messages.
pub fn run_pipeline(description: &str) -> Vec<gst::Message> {
    let pipeline = gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("pipeline '{description}' does not parse: {e}"));
    let messages = run_to_end(&pipeline);
    pipeline.set_state(gst::State::Null).unwrap();
    messages
}

pub fn run_to_end(pipeline: &gst::Element) -> Vec<gst::Message> {
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let mut out = Vec::new();
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(60))
            .expect("pipeline finishes within 60 s");
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(..) => {
                out.push(msg);
                break;
            }
            gst::MessageView::Warning(..) | gst::MessageView::Element(..) => out.push(msg),
            _ => {}
        }
    }
    out
}

pub fn errors(messages: &[gst::Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!(
                "{} ({})",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

pub fn warnings(messages: &[gst::Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "embedding lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A deterministic pseudo-random frame (xorshift), so tests need no image files.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// A model from `models/out`, which `make models` writes.
pub fn model(name: &str) -> String {
    let path = dir_from_env("GST_FACENET_MODELS_DIR", "models/out").join(name);
    assert!(
        path.exists(),
        "model {} is missing: run `make models` (or `make test`)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// One of face-api's demo photos, which `make models` fetches with its npm package.
pub fn sample_photo(name: &str) -> PathBuf {
    let path = dir_from_env(
        "GST_FACENET_SAMPLES_DIR",
        "models/faceapi/node_modules/@vladmandic/face-api/demo",
    )
    .join(name);
    assert!(
        path.exists(),
        "sample photo {} is missing: run `make models` (or `make test`)",
        path.display()
    );
    path
}

/// A file of the repository.
pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The embeddings facenet posted (`post-messages=true`), in bus order.
pub fn embedding_messages(messages: &[gst::Message]) -> Vec<gstfacenet::EmbeddingMeta> {
    messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "facenet-embedding")
                .map(|s| gstfacenet::EmbeddingMeta::from_structure(s).unwrap()),
            _ => None,
        })
        .collect()
}

/// sample1.jpg (a group photo) as `buffers` frames through facedetect and facenet
/// (roi-list), then `tail`.
pub fn faces_pipeline(tail: &str, buffers: u32) -> String {
    format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
         imagefreeze num-buffers={buffers} ! \
         facedetect model-location={} ! \
         facenet model-location={} inference-region=roi-list post-messages=true {tail}",
        sample_photo("sample1.jpg").display(),
        model("faceapi_ssd_mobilenetv1.onnx"),
        model("faceapi_resnet128.onnx"),
    )
}

/// A gallery of the faces of sample1 as the pipeline embeds them, labelled person-0, ...
pub fn gallery_of_sample1(path: &std::path::Path) {
    let messages = run_pipeline(&faces_pipeline("! fakesink", 1));
    let faces = embedding_messages(&messages);
    assert!(faces.len() >= 2, "sample1 has several faces");
    let mut file = gstfacenet::gallery::GalleryFile::new(
        &faces[0].model,
        faces[0].embedding.len(),
        faces[0].l2_normalized,
    );
    for (i, face) in faces.iter().enumerate() {
        file.people.push(gstfacenet::gallery::Person {
            label: format!("person-{i}"),
            embeddings: vec![face.embedding.clone()],
            sources: Vec::new(),
        });
    }
    std::fs::write(path, file.to_json()).unwrap();
}

/// A pipeline (gst-launch syntax) whose source is `appsrc name=src`, and that source.
pub fn with_appsrc(description: &str) -> (gst::Pipeline, gst_app::AppSrc) {
    let pipeline = gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("pipeline '{description}' does not parse: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .expect("an appsrc named src")
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    (pipeline, src)
}
