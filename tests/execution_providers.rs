//! The OpenVINO execution provider (the Intel CPU/GPU/NPU family) against the CPU
//! provider on the same frames: same embeddings within 1e-4.

mod common;

use gst::prelude::*;
use gst_check::Harness;
use gstfacenet::EmbeddingMeta;

fn embed(model: &str, ep: &str, device: Option<&str>, frame: &[u8]) -> Vec<f32> {
    let element = gst::ElementFactory::make("facenet")
        .property("model-location", common::fixture(model))
        .property_from_str("execution-provider", ep)
        .property("fallback-to-cpu", false)
        .property("device", device)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=200,height=180,framerate=30/1");
    let out = h
        .push_and_pull(gst::Buffer::from_slice(frame.to_vec()))
        .unwrap();
    EmbeddingMeta::from_buffer(&out).expect("meta").embedding
}

#[test]
fn openvino_cpu_matches_the_cpu_provider() {
    common::init();
    for model in [
        "facenet_nchw.onnx",
        "facenet_nhwc.onnx",
        "facenet_dynamic.onnx",
        "facenet_512.onnx",
    ] {
        for seed in 0..3 {
            let frame = common::noise(200 * 180 * 3, seed);
            let cpu = embed(model, "cpu", None, &frame);
            let openvino = embed(model, "openvino", Some("CPU"), &frame);
            let diff = common::max_abs_diff(&cpu, &openvino);
            println!("{model} seed {seed}: max abs diff {diff:.2e}");
            assert!(diff <= 1e-4, "{model}: OpenVINO differs from CPU by {diff}");
        }
    }
}

/// `intra-op-spinning` (ONNX Runtime's `session.intra_op.allow_spinning`) defaults to ONNX
/// Runtime's own choice on both model elements, and turning it off only changes how the
/// threads wait, not the embedding.
#[test]
fn intra_op_spinning_defaults_on_and_off_gives_the_same_embedding() {
    common::init();
    for factory in ["facenet", "facedetect"] {
        let element = gst::ElementFactory::make(factory).build().unwrap();
        assert!(
            element.property::<bool>("intra-op-spinning"),
            "{factory}: intra-op-spinning should default to ONNX Runtime's default (true)"
        );
    }
    let frame = common::noise(200 * 180 * 3, 7);
    let mut embeddings = Vec::new();
    for spinning in [true, false] {
        let element = gst::ElementFactory::make("facenet")
            .property("model-location", common::fixture("facenet_nchw.onnx"))
            .property("intra-op-threads", 2u32)
            .property("intra-op-spinning", spinning)
            .build()
            .unwrap();
        assert_eq!(element.property::<bool>("intra-op-spinning"), spinning);
        let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
        h.play();
        h.set_src_caps_str("video/x-raw,format=RGB,width=200,height=180,framerate=30/1");
        let mut last = Vec::new();
        for _ in 0..3 {
            let out = h
                .push_and_pull(gst::Buffer::from_slice(frame.clone()))
                .unwrap();
            last = EmbeddingMeta::from_buffer(&out).expect("meta").embedding;
        }
        assert!(last.iter().all(|v| v.is_finite()) && last.iter().any(|&v| v != 0.0));
        embeddings.push(last);
    }
    let diff = common::max_abs_diff(&embeddings[0], &embeddings[1]);
    assert!(diff <= 1e-6, "spinning changed the embedding by {diff}");
}
