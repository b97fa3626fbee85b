//! The element's embeddings against an independent reference: numpy pre-processing and
//! onnxruntime's Python API on the same pixels (tests/python/make_reference.py writes
//! tests/data/generated/reference.json). Frames are at the model's input size, so no
//! resize is involved; YUV references use the documented matrix and range.

mod common;

use gst_check::Harness;
use gstfacenet::EmbeddingMeta;

#[test]
fn every_format_matches_the_python_reference() {
    common::init();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::reference_path("reference.json")).unwrap())
            .expect("reference.json parses");
    let tolerance = reference["tolerance"].as_f64().unwrap() as f32;
    assert!(tolerance <= 1e-4);
    let cases = reference["cases"].as_array().unwrap();
    let mut formats_seen = std::collections::BTreeSet::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let format = case["format"].as_str().unwrap();
        let (w, h) = (
            case["width"].as_u64().unwrap(),
            case["height"].as_u64().unwrap(),
        );
        let mut caps = format!("video/x-raw,format={format},width={w},height={h},framerate=30/1");
        if let Some(c) = case["colorimetry"].as_str() {
            caps.push_str(&format!(",colorimetry={c}"));
        }
        let raw = std::fs::read(common::reference_path(case["raw"].as_str().unwrap())).unwrap();
        let expected: Vec<f32> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();

        // Only the model's own metadata configures the element: the reference applies the
        // pre-processing the metadata asks for.
        let element = gst::ElementFactory::make("facenet")
            .property(
                "model-location",
                common::fixture(case["model"].as_str().unwrap()),
            )
            .build()
            .unwrap();
        let mut harness = Harness::with_element(&element, Some("sink"), Some("src"));
        harness.play();
        harness.set_src_caps_str(&caps);
        let out = harness
            .push_and_pull(gst::Buffer::from_mut_slice(raw))
            .unwrap();
        let meta = EmbeddingMeta::from_buffer(&out).unwrap_or_else(|| panic!("{name}: no meta"));
        assert_eq!(
            meta.dimension(),
            case["dimension"].as_u64().unwrap() as usize,
            "{name}"
        );
        let diff = common::max_abs_diff(&meta.embedding, &expected);
        println!("{name}: max abs diff {diff:.2e}");
        assert!(
            diff <= tolerance,
            "{name}: max abs diff {diff} > {tolerance}"
        );
        formats_seen.insert(format.to_string());
    }
    for format in [
        "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "xRGB", "xBGR", "ARGB", "ABGR", "I420",
        "NV12", "GRAY8",
    ] {
        assert!(
            formats_seen.contains(format),
            "no reference case for {format}"
        );
    }
}
