//! Hot reload under a running stream: `facenet` and `facedetect` swap models while
//! PLAYING (the new one loads off the streaming thread, the old one serves until then, a
//! failing load keeps the old one with a warning), and `faceidentify` picks up a gallery
//! file edited on disk.

mod common;

use std::time::{Duration, Instant};

use gst::prelude::*;

/// A running pipeline and everything its bus said so far.
struct Running {
    pipeline: gst::Pipeline,
    messages: Vec<gst::Message>,
}

impl Running {
    fn start(description: &str) -> Running {
        let pipeline = gst::parse::launch(description)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Running {
            pipeline,
            messages: Vec::new(),
        }
    }

    fn element(&self, name: &str) -> gst::Element {
        self.pipeline.by_name(name).unwrap()
    }

    /// Collects bus messages until `done` holds for what has arrived (panics after 60 s
    /// or on an error).
    fn until(&mut self, what: &str, done: impl Fn(&[gst::Message]) -> bool) {
        let bus = self.pipeline.bus().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.messages) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                if let gst::MessageView::Error(e) = msg.view() {
                    panic!(
                        "error while waiting for {what}: {} {:?}",
                        e.error(),
                        e.debug()
                    );
                }
                self.messages.push(msg);
            }
        }
    }

    fn mark(&self) -> usize {
        self.messages.len()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn element_named(messages: &[gst::Message], name: &str) -> Vec<gst::Structure> {
    messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == name)
                .map(|s| s.to_owned()),
            _ => None,
        })
        .collect()
}

fn embedding_dims(messages: &[gst::Message]) -> Vec<usize> {
    common::embedding_messages(messages)
        .iter()
        .map(|m| m.embedding.len())
        .collect()
}

/// Frame timestamps of the embeddings posted, in order.
fn embedding_times(messages: &[gst::Message]) -> Vec<u64> {
    element_named(messages, "facenet-embedding")
        .iter()
        .map(|s| {
            s.get::<Option<gst::ClockTime>>("timestamp")
                .unwrap()
                .unwrap()
                .nseconds()
        })
        .collect()
}

#[test]
fn facenet_swaps_models_while_playing() {
    common::init();
    let small = common::fixture("facenet_nchw.onnx");
    let wide = common::fixture("facenet_512.onnx");
    let mut run = Running::start(&format!(
        "videotestsrc is-live=true pattern=smpte ! \
         video/x-raw,width=160,height=160,framerate=30/1 ! \
         facenet name=net model-location={small} post-messages=true ! fakesink"
    ));
    run.until("128-d embeddings", |m| embedding_dims(m).len() >= 5);
    let net = run.element("net");

    // 128-d to 512-d: a loaded message, then 512-d embeddings, and every frame on the way
    // carries one (the stream never waited without a model).
    let before = run.mark();
    net.set_property("model-location", &wide);
    run.until("the 512-d model", |m| {
        // At least three embeddings after the request (`all` of none would be true).
        let dims = embedding_dims(&m[before..]);
        !element_named(&m[before..], "facenet-model-loaded").is_empty()
            && dims.len() >= 3
            && dims.iter().rev().take(3).all(|d| *d == 512)
    });
    let loaded = &element_named(&run.messages[before..], "facenet-model-loaded")[0];
    assert_eq!(loaded.get::<String>("location").unwrap(), wide);
    assert_eq!(loaded.get::<String>("previous-location").unwrap(), small);
    assert!(loaded.get::<gst::ClockTime>("load-time").is_ok());
    assert_eq!(net.property::<String>("model-location"), wide);
    let dims = embedding_dims(&run.messages);
    let switch = dims.iter().position(|d| *d == 512).unwrap();
    assert!(dims[..switch].iter().all(|d| *d == 128), "{dims:?}");
    assert!(dims[switch..].iter().all(|d| *d == 512), "{dims:?}");
    let times = embedding_times(&run.messages);
    let frame = 1_000_000_000 / 30;
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] <= frame + 1,
            "a frame without an embedding: {times:?}"
        );
    }

    // Models that do not load keep the running one, say why, and put the property back.
    for bad in [
        "/nonexistent/face.onnx".to_string(),
        common::fixture("truncated.onnx"),
        common::fixture("bad_gray.onnx"),
    ] {
        let before = run.mark();
        net.set_property("model-location", &bad);
        run.until("the warning", |m| {
            !common::warnings(&m[before..]).is_empty()
        });
        let warning = &common::warnings(&run.messages[before..])[0];
        assert!(
            warning.contains(&format!("cannot switch to model {bad}"))
                && warning.contains(&format!("still running {wide}")),
            "{warning}"
        );
        assert_eq!(net.property::<String>("model-location"), wide);
        let mark = run.mark();
        run.until("more 512-d embeddings", |m| {
            embedding_dims(&m[mark..]).len() >= 3
        });
        assert!(embedding_dims(&run.messages[mark..])
            .iter()
            .all(|d| *d == 512));
    }

    // Two requests in a row: the later one wins, the earlier one is never swapped in.
    let before = run.mark();
    net.set_property("model-location", &small);
    net.set_property("model-location", &wide);
    run.until("the second request", |m| {
        !element_named(&m[before..], "facenet-model-loaded").is_empty()
    });
    // Give a stale load time to land wrongly, then check nothing but 512-d came out.
    std::thread::sleep(Duration::from_millis(500));
    let mark = run.mark();
    run.until("more embeddings", |m| embedding_dims(&m[mark..]).len() >= 3);
    assert!(embedding_dims(&run.messages[before..])
        .iter()
        .all(|d| *d == 512));
    let loaded = element_named(&run.messages[before..], "facenet-model-loaded");
    assert!(loaded
        .iter()
        .all(|s| s.get::<String>("location").unwrap() == wide));

    // Stopping while a load is in flight: nothing lands after NULL.
    net.set_property("model-location", &small);
    run.pipeline.set_state(gst::State::Null).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(net.property::<String>("model-location"), small);
}

#[test]
fn facedetect_swaps_detectors_while_playing() {
    common::init();
    let detector = common::model("faceapi_ssd_mobilenetv1.onnx");
    let mut run = Running::start(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
         imagefreeze is-live=true ! video/x-raw,framerate=10/1 ! \
         facedetect name=det model-location={detector} ! \
         facenet model-location={} inference-region=roi-list post-messages=true ! fakesink",
        common::sample_photo("sample1.jpg").display(),
        common::model("faceapi_resnet128.onnx"),
    ));
    run.until("faces", |m| common::embedding_messages(m).len() >= 3);
    let det = run.element("det");

    let bad = common::fixture("not_onnx.onnx");
    let before = run.mark();
    det.set_property("model-location", &bad);
    run.until("the warning", |m| {
        !common::warnings(&m[before..]).is_empty()
    });
    let warning = &common::warnings(&run.messages[before..])[0];
    assert!(
        warning.contains(&format!("cannot switch to detector {bad}"))
            && warning.contains(&format!("still running {detector}")),
        "{warning}"
    );
    assert_eq!(det.property::<String>("model-location"), detector);
    let mark = run.mark();
    run.until("faces from the old detector", |m| {
        common::embedding_messages(&m[mark..]).len() >= 3
    });

    // The same file again reloads it (e.g. after the file was replaced).
    let before = run.mark();
    det.set_property("model-location", &detector);
    run.until("the reload", |m| {
        !element_named(&m[before..], "facedetect-model-loaded").is_empty()
    });
    let mark = run.mark();
    run.until("faces from the new detector", |m| {
        common::embedding_messages(&m[mark..]).len() >= 3
    });
}

#[test]
fn faceidentify_follows_a_gallery_edited_on_disk() {
    common::init();
    let dir = std::env::temp_dir().join(format!("gst-facenet-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gallery = dir.join("people.json");
    common::gallery_of_sample1(&gallery);

    let mut run = Running::start(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
         imagefreeze is-live=true ! video/x-raw,framerate=10/1 ! \
         facedetect model-location={} ! \
         facenet model-location={} inference-region=roi-list ! \
         faceidentify gallery={} post-messages=true ! fakesink",
        common::sample_photo("sample1.jpg").display(),
        common::model("faceapi_ssd_mobilenetv1.onnx"),
        common::model("faceapi_resnet128.onnx"),
        gallery.display()
    ));
    let labels = |m: &[gst::Message]| -> Vec<String> {
        element_named(m, "faceidentify")
            .iter()
            .flat_map(|s| {
                s.get::<gst::List>("faces")
                    .unwrap()
                    .iter()
                    .map(|f| {
                        f.get::<gst::Structure>()
                            .unwrap()
                            .get::<String>("label")
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    run.until("names", |m| labels(m).iter().any(|l| l == "person-0"));

    // Renamed people, written as facenet-enroll writes (a whole file, renamed into place).
    let text = std::fs::read_to_string(&gallery).unwrap();
    let mut file: gstfacenet::gallery::GalleryFile = serde_json::from_str(&text).unwrap();
    for p in &mut file.people {
        p.label = p.label.replace("person", "renamed");
    }
    gstfacenet::gallery::write_atomically(&gallery, &file.to_json()).unwrap();
    let mark = run.mark();
    run.until("the new names", |m| {
        labels(&m[mark..]).iter().any(|l| l == "renamed-0")
    });

    // A broken edit keeps the names and warns.
    std::fs::write(&gallery, &text[..text.len() / 3]).unwrap();
    let mark = run.mark();
    run.until("the warning", |m| !common::warnings(&m[mark..]).is_empty());
    assert!(
        common::warnings(&run.messages[mark..])[0].contains("keeping the gallery loaded before")
    );
    let mark = run.mark();
    run.until("names after the broken edit", |m| {
        !labels(&m[mark..]).is_empty()
    });
    assert!(labels(&run.messages[mark..])
        .iter()
        .all(|l| l.starts_with("renamed-") || l == "unknown"));
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}
