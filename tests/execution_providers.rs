//! The OpenVINO execution provider (the Intel CPU/GPU/NPU family) against the CPU
//! provider on the same frames: same embeddings within 1e-4.

mod common;

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
