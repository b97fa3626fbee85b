//! Faults mid-stream, injected through the test-only `fault-injection` feature
//! (src/fault.rs): an execution provider that fails, panics in element code and on the
//! model loader's thread, a disk that fills up under the results file; and the ONNX
//! Runtime library removed between pipeline runs of one process.
//!
//! `cargo test --release --features fault-injection --test faults` (what `make test` runs).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstfacenet::fault::{self, Fault};

/// Faults are process-wide: one test at a time, each starting disarmed.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    fault::disarm_all();
    guard
}

fn frames(props: &str, buffers: u32) -> String {
    format!(
        "videotestsrc num-buffers={buffers} pattern=smpte ! video/x-raw,width=160,height=160 ! \
         facenet model-location={} post-messages=true {props} ! fakesink",
        common::fixture("facenet_nchw.onnx")
    )
}

#[test]
fn execution_provider_failing_mid_stream_hands_over_to_the_cpu() {
    common::init();
    let _serial = serial();
    let reference = common::run_pipeline(&frames("", 10));
    let reference = common::embedding_messages(&reference);
    assert_eq!(reference.len(), 10);

    // The OpenVINO provider (device CPU) fails from the fourth run on.
    fault::arm(Fault::ProviderRun, 3);
    let messages = common::run_pipeline(&frames("execution-provider=openvino device=CPU", 10));
    fault::disarm_all();
    assert!(
        common::errors(&messages).is_empty(),
        "{:?}",
        common::errors(&messages)
    );
    let warnings = common::warnings(&messages);
    assert!(
        warnings.iter().any(
            |w| w.contains("openvino execution provider failed mid-stream")
                && w.contains("continuing on the CPU provider")
                && w.contains("fallback-to-cpu=false")
        ),
        "{warnings:?}"
    );
    // No frame lost to the switch, and the CPU provider's embeddings are the same ones.
    let embeddings = common::embedding_messages(&messages);
    assert_eq!(embeddings.len(), 10);
    for (a, b) in embeddings.iter().zip(&reference) {
        assert!(common::max_abs_diff(&a.embedding, &b.embedding) < 1e-4);
    }

    // Without the fallback the failure stops the stream with the cause, after the frames
    // that went through.
    fault::arm(Fault::ProviderRun, 3);
    let messages = common::run_pipeline(&frames(
        "execution-provider=openvino device=CPU fallback-to-cpu=false",
        10,
    ));
    fault::disarm_all();
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("device failure"), "{errors:?}");
    assert_eq!(common::embedding_messages(&messages).len(), 3);
}

#[test]
fn a_panic_in_element_code_is_an_error_on_the_bus() {
    common::init();
    let _serial = serial();
    fault::arm(Fault::PanicInTransform, 2);
    let messages = common::run_pipeline(&frames("", 10));
    fault::disarm_all();
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("Panicked") && errors[0].contains("facenet panicked on a frame"),
        "{errors:?}"
    );
    assert_eq!(common::embedding_messages(&messages).len(), 2);
    // The process (the application) goes on: a new pipeline works.
    assert_eq!(
        common::embedding_messages(&common::run_pipeline(&frames("", 3))).len(),
        3
    );
}

/// `n-threads=2`: a panic on the thread preparing part of a frame's faces reaches the
/// streaming thread (the frame's other share done first: the thread never outlives the
/// frame it borrows), and so the bus, as any panic in element code: no hang, no crash;
/// the next pipeline's threads work.
#[test]
fn a_panic_on_a_preprocessing_thread_is_an_error_on_the_bus() {
    common::init();
    let _serial = serial();
    let description = format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
         imagefreeze num-buffers=4 ! facedetect model-location={} landmark-model-location={} ! \
         facenet model-location={} inference-region=roi-list n-threads=2 post-messages=true ! \
         fakesink",
        common::sample_photo("sample5.jpg").display(),
        common::model("faceapi_ssd_mobilenetv1.onnx"),
        common::model("faceapi_landmark68.onnx"),
        common::model("faceapi_resnet128.onnx"),
    );
    // The helper thread's share of the first frame passes, the second's panics.
    fault::arm(Fault::PanicInCropThread, 1);
    let messages = common::run_pipeline(&description);
    fault::disarm_all();
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("Panicked")
            && errors[0].contains("injected fault: a pre-processing thread panicked"),
        "{errors:?}"
    );
    // A message per face: the five faces of the photo, of the first frame only; then of
    // all four frames.
    assert_eq!(
        common::embedding_messages(&messages).len(),
        5,
        "the first frame's"
    );
    assert_eq!(
        common::embedding_messages(&common::run_pipeline(&description)).len(),
        4 * 5
    );
}

#[test]
fn a_panic_on_the_model_loader_thread_is_an_error_on_the_bus() {
    common::init();
    let _serial = serial();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=160,framerate=30/1 ! \
         facenet name=net model-location={} ! fakesink",
        common::fixture("facenet_nchw.onnx")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::AsyncDone],
    )
    .expect("the pipeline starts");
    fault::arm(Fault::PanicInReload, 0);
    pipeline
        .by_name("net")
        .unwrap()
        .set_property("model-location", common::fixture("facenet_512.onnx"));
    let error = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .expect("the loader's panic arrives as an error");
    fault::disarm_all();
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = error.view() else {
        unreachable!()
    };
    let text = e.error().to_string();
    assert!(
        text.contains("model-reload panicked") && text.contains("model loader panicked"),
        "{text}"
    );
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gst-facenet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_keeps_the_results_already_written() {
    common::init();
    let _serial = serial();
    let dir = TempDir::new("disk-full");
    let gallery = dir.0.join("people.json");
    common::gallery_of_sample1(&gallery);
    let results = dir.0.join("results.jsonl");

    fault::arm(Fault::DiskFull, 3);
    let messages = common::run_pipeline(&common::faces_pipeline(
        &format!(
            "! faceidentify gallery={} results-location={} ! fakesink",
            gallery.display(),
            results.display()
        ),
        8,
    ));
    fault::disarm_all();
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&results.display().to_string())
            && errors[0].contains("results written so far are kept")
            && errors[0].contains("free space on that disk"),
        "{errors:?}"
    );
    // The three lines written before the disk filled are whole and parse.
    let text = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(text.ends_with('\n'));
    for line in &lines {
        assert!(line["faces"].as_array().unwrap().len() >= 2);
    }
}

#[test]
fn a_real_full_disk_is_a_clear_error() {
    common::init();
    let _serial = serial();
    let dir = TempDir::new("dev-full");
    let gallery = dir.0.join("people.json");
    common::gallery_of_sample1(&gallery);
    // /dev/full answers every write with ENOSPC, as a full disk does.
    let messages = common::run_pipeline(&common::faces_pipeline(
        &format!(
            "! faceidentify gallery={} results-location=/dev/full ! fakesink",
            gallery.display()
        ),
        3,
    ));
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("/dev/full")
            && errors[0].contains("No space left on device")
            && errors[0].contains("free space on that disk"),
        "{errors:?}"
    );
}

const CHILD_VAR: &str = "GST_FACENET_FAULTS_CHILD";

/// In a child process: the ONNX Runtime library (a private copy) is removed, and another
/// one asked for, between two pipeline runs. The loaded library stays in use, with a
/// warning for the new path, and the second run's embeddings equal the first's.
fn library_child(copy: &Path) {
    gst::init().unwrap();
    gstfacenet::plugin_register_static().unwrap();
    let first = common::run_pipeline(&frames("", 3));
    assert!(
        common::errors(&first).is_empty(),
        "{:?}",
        common::errors(&first)
    );
    std::fs::remove_file(copy).unwrap();
    let second = common::run_pipeline(&frames(
        "onnxruntime-library=/nonexistent/other/libonnxruntime.so",
        3,
    ));
    assert!(
        common::errors(&second).is_empty(),
        "{:?}",
        common::errors(&second)
    );
    let warnings = common::warnings(&second);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("already loaded") && w.contains("once per process")),
        "{warnings:?}"
    );
    let (a, b) = (
        common::embedding_messages(&first),
        common::embedding_messages(&second),
    );
    assert_eq!((a.len(), b.len()), (3, 3));
    assert_eq!(a[0].embedding, b[0].embedding);
    println!("CHILD-OK");
}

#[test]
fn onnxruntime_library_removed_between_runs() {
    if let Ok(copy) = std::env::var(CHILD_VAR) {
        library_child(Path::new(&copy));
        return;
    }
    common::init();
    let original = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .or_else(|| gstfacenet::backend::DEFAULT_LIBRARY.map(PathBuf::from))
        .expect("the ONNX Runtime library (make test sets ORT_DYLIB_PATH)");
    let dir = TempDir::new("ort-copy");
    let copy = dir.0.join("libonnxruntime.so");
    std::fs::copy(&original, &copy).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "onnxruntime_library_removed_between_runs",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, &copy)
        .env("ORT_DYLIB_PATH", &copy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the child hung");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("CHILD-OK"), "{text}");
    assert!(!copy.exists());
}
