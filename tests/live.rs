//! Never stall a live source: `inference-interval` on facenet (skipped frames carry the
//! last results, fresh=false) and `async-inference` (a model slower than the stream runs on
//! a worker thread; frames go on at once with the newest finished results).

mod common;

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstfacenet::meta::ROI_EMBEDDING_PARAM;
use gstfacenet::EmbeddingMeta;

/// What reached the sink: each buffer's PTS, frame embedding and face embeddings.
#[derive(Default, Clone)]
struct Seen {
    frames: Vec<(u64, Option<EmbeddingMeta>, Vec<EmbeddingMeta>)>,
}

fn run_collecting(description: &str) -> (Seen, u64, Vec<gst::Message>) {
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let collected = seen.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().unwrap();
                let faces = buffer
                    .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                    .filter_map(|roi| {
                        roi.param(ROI_EMBEDDING_PARAM)
                            .map(|p| EmbeddingMeta::from_structure(p).unwrap())
                    })
                    .collect();
                collected.lock().unwrap().frames.push((
                    buffer.pts().unwrap().nseconds(),
                    EmbeddingMeta::from_buffer(buffer),
                    faces,
                ));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let messages = common::run_to_end(pipeline.upcast_ref());
    let runs = pipeline
        .by_name("net")
        .unwrap()
        .property::<u64>("model-runs");
    pipeline.set_state(gst::State::Null).unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, runs, messages)
}

#[test]
fn inference_interval_carries_the_last_embedding() {
    common::init();
    let (seen, runs, messages) = run_collecting(&format!(
        "videotestsrc num-buffers=9 pattern=ball ! video/x-raw,width=160,height=160,framerate=30/1 ! \
         facenet name=net model-location={} inference-interval=3 ! appsink name=sink",
        common::fixture("facenet_nchw.onnx")
    ));
    assert!(common::errors(&messages).is_empty());
    assert_eq!(runs, 3);
    assert_eq!(seen.frames.len(), 9);
    let mut last_fresh: Option<(u64, EmbeddingMeta)> = None;
    for (i, (pts, meta, _)) in seen.frames.iter().enumerate() {
        let meta = meta.as_ref().expect("every frame carries an embedding");
        assert_eq!(meta.fresh, i % 3 == 0, "frame {i}");
        if meta.fresh {
            assert_eq!(meta.source_pts, Some(*pts));
            last_fresh = Some((*pts, meta.clone()));
        } else {
            let (source, fresh) = last_fresh.as_ref().unwrap();
            assert_eq!(meta.source_pts, Some(*source));
            assert_eq!(meta.embedding, fresh.embedding);
        }
    }
    // The ball moves: the model did see other frames.
    let fresh: Vec<_> = seen
        .frames
        .iter()
        .filter_map(|(_, m, _)| m.as_ref().filter(|m| m.fresh))
        .collect();
    assert!(common::max_abs_diff(&fresh[0].embedding, &fresh[1].embedding) > 0.0);
}

#[test]
fn inference_interval_in_region_mode_matches_faces_by_roi_id() {
    common::init();
    let (seen, runs, messages) = run_collecting(&common::faces_pipeline(
        "inference-interval=2 name=net ! appsink name=sink",
        6,
    ));
    assert!(common::errors(&messages).is_empty());
    assert_eq!(runs, 3);
    assert_eq!(seen.frames.len(), 6);
    for (i, (_, _, faces)) in seen.frames.iter().enumerate() {
        assert!(faces.len() >= 2, "frame {i}: every face keeps an embedding");
        assert!(faces.iter().all(|f| f.fresh == (i % 2 == 0)), "frame {i}");
    }
    for pair in seen.frames.chunks(2) {
        assert_eq!(pair[0].2.len(), pair[1].2.len());
        for (a, b) in pair[0].2.iter().zip(&pair[1].2) {
            assert_eq!(a.embedding, b.embedding);
        }
    }
}

#[test]
fn async_inference_never_holds_up_a_live_source() {
    common::init();
    // A 200 fps live source: a frame every 5 ms, several times less than one run of
    // Inception-ResNet-v1 on 160x160 on any CPU this runs on. The live source must still
    // deliver every frame, and the model can only have seen some of them.
    let frames = 60;
    let (seen, runs, messages) = run_collecting(&format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=ball ! \
         video/x-raw,width=320,height=240,framerate=200/1 ! \
         facenet name=net model-location={} async-inference=true ! \
         appsink name=sink sync=true",
        common::model("inception_resnet_v1_128.onnx")
    ));
    assert!(common::errors(&messages).is_empty(), "{messages:?}");
    assert_eq!(seen.frames.len(), frames, "every frame reached the sink");
    assert!(runs >= 1 && (runs as usize) < frames, "{runs} model runs");
    // From the first finished result on, every frame carries the newest one: not fresh,
    // computed from an earlier frame, and never older than what came before it.
    let first = seen
        .frames
        .iter()
        .position(|(_, m, _)| m.is_some())
        .expect("some frame carries a result");
    let mut newest_source = 0;
    for (pts, meta, _) in &seen.frames[first..] {
        let meta = meta.as_ref().expect("a result on every later frame");
        assert!(!meta.fresh);
        let source = meta.source_pts.unwrap();
        assert!(source < *pts && source >= newest_source);
        newest_source = source;
    }
}

#[test]
fn async_inference_reports_model_errors() {
    common::init();
    // A frame the model cannot take (a buffer shorter than its caps) fails on the worker;
    // the error reaches the bus and the stream stops.
    let (pipeline, src) = common::with_appsrc(&format!(
        "appsrc name=src caps=video/x-raw,format=RGB,width=160,height=160,framerate=0/1 format=time ! \
         facenet name=net model-location={} async-inference=true ! fakesink",
        common::fixture("facenet_nchw.onnx")
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..20u64 {
        let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; 1000]);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(40 * i));
        if src.push_buffer(buffer).is_err() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = src.end_of_stream();
    let messages = common::run_to_end(pipeline.upcast_ref());
    pipeline.set_state(gst::State::Null).unwrap();
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("1000 bytes"), "{errors:?}");
}
