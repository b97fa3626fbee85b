//! Element behaviour through gstreamer-check's Harness and real pipelines: metadata on
//! every buffer, untouched video, renegotiation, state cycles, several elements and
//! pipelines at once.

mod common;

use gst::prelude::*;
use gst_check::Harness;
use gstfacenet::EmbeddingMeta;

fn harness(model: &str, props: &[(&str, &dyn ToValue)]) -> Harness {
    common::init();
    let element = gst::ElementFactory::make("facenet")
        .property("model-location", common::fixture(model))
        .build()
        .expect("facenet element");
    for (name, value) in props {
        element.set_property_from_str(name, &value.to_value().serialize().unwrap());
    }
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    h
}

fn parse_caps(s: &str) -> gst::Caps {
    s.parse().expect("valid caps")
}

fn frame_buffer(data: Vec<u8>, pts_ms: u64) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_mut_slice(data);
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(33));
    }
    buffer
}

#[test]
fn meta_on_every_buffer_and_video_untouched() {
    let mut h = harness("facenet_nchw.onnx", &[]);
    h.set_src_caps_str("video/x-raw,format=RGB,width=160,height=160,framerate=30/1");
    let mut previous: Option<Vec<f32>> = None;
    for i in 0..5u64 {
        let data = common::noise(160 * 160 * 3, i);
        let out = h.push_and_pull(frame_buffer(data.clone(), i * 33)).unwrap();
        assert_eq!(
            out.map_readable().unwrap().as_slice(),
            data.as_slice(),
            "video changed"
        );
        assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(i * 33)));
        let meta =
            EmbeddingMeta::from_buffer(&out).expect("every buffer carries FaceNetEmbeddingMeta");
        assert_eq!(meta.dimension(), 128);
        assert_eq!(meta.model, "facenet_nchw");
        assert!(meta.fresh);
        assert!(!meta.l2_normalized);
        assert!(meta.embedding.iter().all(|v| v.is_finite()));
        if let Some(prev) = &previous {
            assert!(
                common::max_abs_diff(prev, &meta.embedding) > 1e-3,
                "different frames, same embedding"
            );
        }
        previous = Some(meta.embedding);
    }
}

#[test]
fn same_frame_same_embedding_and_l2_option() {
    let mut h = harness("facenet_nchw.onnx", &[("l2-normalize", &true)]);
    h.set_src_caps_str("video/x-raw,format=RGB,width=160,height=160,framerate=30/1");
    let data = common::noise(160 * 160 * 3, 42);
    let a = EmbeddingMeta::from_buffer(&h.push_and_pull(frame_buffer(data.clone(), 0)).unwrap())
        .unwrap();
    let b = EmbeddingMeta::from_buffer(&h.push_and_pull(frame_buffer(data, 33)).unwrap()).unwrap();
    assert_eq!(a.embedding, b.embedding);
    assert!(a.l2_normalized);
    let norm: f32 = a.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[test]
fn swapped_channels_change_the_embedding() {
    // The fixture model is sensitive to channel order: feeding BGR bytes as RGB must not
    // give the same embedding, and declaring them BGR must give it back.
    common::init();
    let rgb = common::noise(160 * 160 * 3, 7);
    let bgr: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let embed = |data: &[u8], format: &str| {
        let mut h = harness("facenet_nchw.onnx", &[]);
        h.set_src_caps_str(&format!(
            "video/x-raw,format={format},width=160,height=160,framerate=30/1"
        ));
        EmbeddingMeta::from_buffer(&h.push_and_pull(frame_buffer(data.to_vec(), 0)).unwrap())
            .unwrap()
            .embedding
    };
    let reference = embed(&rgb, "RGB");
    let mislabelled = embed(&bgr, "RGB");
    let labelled = embed(&bgr, "BGR");
    assert!(common::max_abs_diff(&reference, &mislabelled) > 1e-2);
    assert!(common::max_abs_diff(&reference, &labelled) < 1e-5);

    // channel-order=bgr on the element feeds the model B,G,R: different from RGB.
    let mut h = harness("facenet_nchw.onnx", &[("channel-order", &"bgr")]);
    h.set_src_caps_str("video/x-raw,format=RGB,width=160,height=160,framerate=30/1");
    let swapped = EmbeddingMeta::from_buffer(&h.push_and_pull(frame_buffer(rgb, 0)).unwrap())
        .unwrap()
        .embedding;
    assert!(common::max_abs_diff(&reference, &swapped) > 1e-2);
}

#[test]
fn renegotiation_mid_stream() {
    let mut h = harness("facenet_nchw.onnx", &[]);
    let sizes = [
        (160usize, 160usize, "RGB"),
        (320, 240, "I420"),
        (97, 61, "BGRx"),
        (160, 160, "RGB"),
    ];
    let mut first = None;
    for (i, (w, h_, format)) in sizes.iter().enumerate() {
        h.set_src_caps_str(&format!(
            "video/x-raw,format={format},width={w},height={h_},framerate=30/1"
        ));
        let info = gst_video::VideoInfo::from_caps(&parse_caps(&format!(
            "video/x-raw,format={format},width={w},height={h_},framerate=30/1"
        )))
        .unwrap();
        let data = if i == 3 {
            common::noise(160 * 160 * 3, 1)
        } else {
            common::noise(info.size(), i as u64)
        };
        let out = h
            .push_and_pull(frame_buffer(data.clone(), i as u64 * 33))
            .unwrap();
        assert_eq!(out.size(), info.size());
        assert_eq!(out.map_readable().unwrap().as_slice(), data.as_slice());
        let meta = EmbeddingMeta::from_buffer(&out).expect("meta after renegotiation");
        assert!(meta.embedding.iter().all(|v| v.is_finite()));
        if i == 0 {
            first = Some((common::noise(160 * 160 * 3, 1), meta.embedding));
        }
    }
    // Back at the first caps, the same pixels give the same embedding as a fresh element.
    let (pixels, _) = first.unwrap();
    let mut fresh = harness("facenet_nchw.onnx", &[]);
    fresh.set_src_caps_str("video/x-raw,format=RGB,width=160,height=160,framerate=30/1");
    let expect = EmbeddingMeta::from_buffer(
        &fresh
            .push_and_pull(frame_buffer(pixels.clone(), 0))
            .unwrap(),
    )
    .unwrap();
    h.set_src_caps_str("video/x-raw,format=RGB,width=160,height=160,framerate=30/1");
    let got =
        EmbeddingMeta::from_buffer(&h.push_and_pull(frame_buffer(pixels, 200)).unwrap()).unwrap();
    assert_eq!(expect.embedding, got.embedding);
}

#[test]
fn uniform_frames_give_finite_output() {
    for value in [0u8, 128, 255] {
        let mut h = harness("facenet_nchw.onnx", &[]);
        h.set_src_caps_str("video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
        let out = h
            .push_and_pull(frame_buffer(vec![value; 64 * 48], 0))
            .unwrap();
        let meta = EmbeddingMeta::from_buffer(&out).unwrap();
        assert!(
            meta.embedding.iter().all(|v| v.is_finite()),
            "uniform {value}"
        );
    }
}

#[test]
fn odd_sizes_and_every_format() {
    let formats = [
        "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "xRGB", "xBGR", "ARGB", "ABGR", "I420",
        "NV12", "GRAY8",
    ];
    for format in formats {
        for (w, hgt) in [(1usize, 1usize), (3, 5), (161, 97), (1920, 1080)] {
            let caps = format!("video/x-raw,format={format},width={w},height={hgt},framerate=30/1");
            let info = gst_video::VideoInfo::from_caps(&parse_caps(&caps)).unwrap();
            let mut h = harness("facenet_nchw.onnx", &[]);
            h.set_src_caps_str(&caps);
            let data = common::noise(info.size(), w as u64);
            let out = h.push_and_pull(frame_buffer(data.clone(), 0)).unwrap();
            assert_eq!(out.map_readable().unwrap().as_slice(), data.as_slice());
            let meta =
                EmbeddingMeta::from_buffer(&out).unwrap_or_else(|| panic!("no meta for {caps}"));
            assert!(meta.embedding.iter().all(|v| v.is_finite()), "{caps}");
        }
    }
}

#[test]
fn model_metadata_sets_defaults_and_properties_win() {
    common::init();
    let element = gst::ElementFactory::make("facenet")
        .property("model-location", common::fixture("facenet_metadata.onnx"))
        .build()
        .unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", 1)
        .build()
        .unwrap();
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &element, &sink]).unwrap();
    gst::Element::link_many([&src, &element, &sink]).unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let _ = pipeline.state(gst::ClockTime::from_seconds(30));
    assert_eq!(
        element.property_value("normalization").serialize().unwrap(),
        "fixed"
    );
    assert_eq!(
        element.property_value("channel-order").serialize().unwrap(),
        "bgr"
    );
    assert_eq!(element.property_value("aspect").serialize().unwrap(), "pad");
    let mean = element.property::<gst::Array>("mean");
    let mean: Vec<f64> = mean.iter().map(|v| v.get::<f64>().unwrap()).collect();
    assert!(
        (mean[0] - 122.782).abs() < 1e-3 && (mean[2] - 104.298).abs() < 1e-3,
        "{mean:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();

    // Explicit properties win over the model's metadata.
    element.set_property_from_str("channel-order", "rgb");
    element.set_property_from_str("std", "<1, 2, 3>");
    pipeline.set_state(gst::State::Paused).unwrap();
    let _ = pipeline.state(gst::ClockTime::from_seconds(30));
    assert_eq!(
        element.property_value("channel-order").serialize().unwrap(),
        "rgb"
    );
    assert_eq!(
        element.property_value("normalization").serialize().unwrap(),
        "fixed"
    );
    let std: Vec<f64> = element
        .property::<gst::Array>("std")
        .iter()
        .map(|v| v.get::<f64>().unwrap())
        .collect();
    assert_eq!(std, vec![1.0, 2.0, 3.0]);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn state_cycles() {
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=false ! video/x-raw,width=160,height=120 ! facenet model-location={} ! fakesink",
        common::fixture("facenet_nchw.onnx")
    ))
    .unwrap();
    for _ in 0..20 {
        pipeline.set_state(gst::State::Playing).unwrap();
        let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(30));
        res.expect("reaches PLAYING");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn two_elements_in_one_pipeline() {
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=RGB,width=160,height=160 ! \
         facenet name=a model-location={} ! facenet name=b model-location={} ! appsink name=sink sync=false",
        common::fixture("facenet_nchw.onnx"),
        common::fixture("facenet_512.onnx")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut count = 0;
    while let Ok(sample) = sink.pull_sample() {
        // The second element replaces the first one's meta: the buffer carries the last.
        let meta = EmbeddingMeta::from_buffer(sample.buffer().unwrap()).unwrap();
        assert_eq!(meta.dimension(), 512);
        count += 1;
    }
    assert_eq!(count, 5);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn pipelines_in_parallel_threads() {
    common::init();
    let model = common::fixture("facenet_nchw.onnx");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let model = model.clone();
            std::thread::spawn(move || {
                let messages = common::run_pipeline(&format!(
                    "videotestsrc num-buffers=10 pattern={i} ! video/x-raw,width=200,height=150 ! \
                     facenet model-location={model} post-messages=true ! fakesink"
                ));
                assert!(
                    common::errors(&messages).is_empty(),
                    "{:?}",
                    common::errors(&messages)
                );
                messages
                    .iter()
                    .filter(|m| {
                        m.structure()
                            .is_some_and(|s| s.name() == "facenet-embedding")
                    })
                    .count()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 10);
    }
}

#[test]
fn element_messages_carry_the_embedding() {
    common::init();
    let messages = common::run_pipeline(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=160,height=160 ! facenet model-location={} post-messages=true ! fakesink",
        common::fixture("facenet_nchw.onnx")
    ));
    let embeddings: Vec<_> = messages
        .iter()
        .filter_map(|m| m.structure().filter(|s| s.name() == "facenet-embedding"))
        .map(|s| {
            assert!(s
                .get::<Option<gst::ClockTime>>("timestamp")
                .unwrap()
                .is_some());
            EmbeddingMeta::from_structure(s).unwrap()
        })
        .collect();
    assert_eq!(embeddings.len(), 3);
    assert!(embeddings.iter().all(|e| e.dimension() == 128 && e.fresh));
}
