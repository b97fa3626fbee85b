//! Bad input gives a clear message on the bus naming the cause and the fix: never a
//! panic, an abort or a hang. Cases that need a process of their own (ONNX Runtime loads
//! once per process) run this test binary again as a child.

mod common;

use std::process::{Command, Stdio};

use gst::prelude::*;
use std::time::{Duration, Instant};

fn pipeline_with(facenet_props: &str) -> String {
    format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=160,height=160 ! facenet {facenet_props} ! fakesink"
    )
}

fn single_error(props: &str) -> String {
    common::init();
    let messages = common::run_pipeline(&pipeline_with(props));
    let errors = common::errors(&messages);
    assert_eq!(
        errors.len(),
        1,
        "expected one error for '{props}', got {errors:?}"
    );
    errors[0].clone()
}

#[test]
fn model_location_missing_or_unset() {
    let e = single_error("model-location=/nonexistent/face.onnx");
    assert!(
        e.contains("/nonexistent/face.onnx") && e.contains("No such file"),
        "{e}"
    );
    let e = single_error("");
    assert!(e.contains("model-location is not set"), "{e}");
}

#[test]
fn files_that_are_not_onnx_models() {
    for name in ["not_onnx.onnx", "truncated.onnx"] {
        let path = common::fixture(name);
        let e = single_error(&format!("model-location={path}"));
        assert!(
            e.contains("could not load") && e.contains(&path),
            "{name}: {e}"
        );
    }
    let dir = std::env::temp_dir();
    let e = single_error(&format!("model-location={}", dir.display()));
    assert!(e.contains("is not a file"), "{e}");
}

#[test]
fn models_with_the_wrong_interface() {
    let cases = [
        ("bad_gray.onnx", "[1, 1, 160, 160]"),
        ("bad_two_images.onnx", "exactly one image input"),
        ("bad_output_rank3.onnx", "rank 3"),
        ("bad_batch2.onnx", "batch size is fixed at 2"),
        ("facenet_two_outputs.onnx", "output-name"),
    ];
    for (name, expect) in cases {
        let e = single_error(&format!("model-location={}", common::fixture(name)));
        assert!(e.contains("is not a supported face model"), "{name}: {e}");
        assert!(e.contains(expect), "{name}: expected '{expect}' in {e}");
    }
    // Naming the output makes the two-output model usable.
    common::init();
    let messages = common::run_pipeline(&pipeline_with(&format!(
        "model-location={} output-name=embedding post-messages=true",
        common::fixture("facenet_two_outputs.onnx")
    )));
    assert!(
        common::errors(&messages).is_empty(),
        "{:?}",
        common::errors(&messages)
    );
}

#[test]
fn bad_property_values() {
    let model = common::fixture("facenet_nchw.onnx");
    let e = single_error(&format!(
        "model-location={model} normalization=fixed mean=\"<1, 2>\""
    ));
    assert!(e.contains("three numbers"), "{e}");
    let e = single_error(&format!(
        "model-location={model} normalization=fixed std=\"<1, 0, 1>\""
    ));
    assert!(e.contains("positive"), "{e}");
    let e = single_error(&format!(
        "model-location={model} execution-provider=openvino device=MYRIAD"
    ));
    assert!(e.contains("NPU") && e.contains("MYRIAD"), "{e}");
    let e = single_error(&format!(
        "model-location={model} execution-provider=openvino device=CPU_FP32"
    ));
    assert!(e.contains("device=CPU"), "{e}");
    let e = single_error(&format!(
        "model-location={model} execution-provider=cuda device=GPU"
    ));
    assert!(e.contains("GPU index"), "{e}");
}

#[test]
fn unavailable_execution_provider_falls_back_or_fails() {
    common::init();
    let model = common::fixture("facenet_nchw.onnx");
    for ep in ["cuda", "tensorrt"] {
        // Default: a warning naming the cause and the fix, then embeddings from the CPU.
        let messages = common::run_pipeline(&pipeline_with(&format!(
            "model-location={model} execution-provider={ep} post-messages=true"
        )));
        assert!(
            common::errors(&messages).is_empty(),
            "{:?}",
            common::errors(&messages)
        );
        let warnings = common::warnings(&messages);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("running on the CPU instead")
                && warnings[0].contains("onnxruntime-gpu"),
            "{}",
            warnings[0]
        );
        let embeddings = messages
            .iter()
            .filter(|m| {
                m.structure()
                    .is_some_and(|s| s.name() == "facenet-embedding")
            })
            .count();
        assert_eq!(embeddings, 3);

        // Strict: an error instead.
        let e = single_error(&format!(
            "model-location={model} execution-provider={ep} fallback-to-cpu=false"
        ));
        assert!(
            e.contains("is not compiled into the ONNX Runtime library")
                && e.contains("fallback-to-cpu"),
            "{e}"
        );
    }
}

const CHILD_VAR: &str = "GST_FACENET_TEST_CHILD";

/// Runs one library scenario in a child process (this binary, this test) and returns
/// what it printed.
fn run_child(scenario: &str, envs: &[(&str, &str)], remove: &[&str]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "onnxruntime_library_problems",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_VAR, scenario)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "child '{scenario}' hung");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child '{scenario}' failed ({:?}):\n{text}",
        out.status
    );
    text
}

/// In the child: run a pipeline whose ONNX Runtime library is broken and print the bus
/// error, which the parent checks. gst and the plugin are set up without common::init,
/// which insists on a working library.
fn child_main(scenario: &str) {
    gst::init().unwrap();
    gstfacenet::plugin_register_static().unwrap();
    let model = common::fixture("facenet_nchw.onnx");
    let props = match scenario {
        "property" => format!(
            "model-location={model} onnxruntime-library=/nonexistent/prop/libonnxruntime.so"
        ),
        _ => format!("model-location={model}"),
    };
    let messages = common::run_pipeline(&pipeline_with(&props));
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    println!("CHILD-ERROR: {}", errors[0]);
    // The first outcome sticks: a second pipeline in the same process says the same.
    let again = common::errors(&common::run_pipeline(&pipeline_with(&props)));
    assert_eq!(again.len(), 1);
    println!("CHILD-AGAIN: {}", again[0]);
}

#[test]
fn onnxruntime_library_problems() {
    if let Ok(scenario) = std::env::var(CHILD_VAR) {
        child_main(&scenario);
        return;
    }
    common::init();
    let out = run_child(
        "env",
        &[("ORT_DYLIB_PATH", "/nonexistent/env/libonnxruntime.so")],
        &[],
    );
    assert!(out.contains("CHILD-ERROR"), "{out}");
    assert!(
        out.contains("/nonexistent/env/libonnxruntime.so") && out.contains("ORT_DYLIB_PATH"),
        "{out}"
    );
    assert!(
        out.contains("does not exist") && out.contains("make setup"),
        "{out}"
    );
    assert!(
        out.contains("CHILD-AGAIN") && out.contains("loads once per process"),
        "{out}"
    );

    let out = run_child("property", &[], &["ORT_DYLIB_PATH"]);
    assert!(
        out.contains("/nonexistent/prop/libonnxruntime.so")
            && out.contains("onnxruntime-library property"),
        "{out}"
    );

    let corrupt =
        std::env::temp_dir().join(format!("gst-facenet-corrupt-{}.so", std::process::id()));
    std::fs::write(&corrupt, b"this is not a shared library").unwrap();
    let out = run_child(
        "corrupt",
        &[("ORT_DYLIB_PATH", corrupt.to_str().unwrap())],
        &[],
    );
    std::fs::remove_file(&corrupt).unwrap();
    assert!(
        out.contains("could not load the ONNX Runtime library")
            && out.contains(corrupt.to_str().unwrap()),
        "{out}"
    );
}

/// Hostile models: a right-looking interface with wrong numbers, absurd sizes or
/// operators nobody implements. Each is refused with the cause; none hands out an
/// embedding, and none makes the element allocate what the model declares.
#[test]
fn hostile_models_are_refused() {
    for (name, expect) in [
        ("hostile_nan.onnx", "non-finite value (NaN)"),
        ("hostile_inf.onnx", "non-finite value"),
        // 1x3x100000x100000 float32 is 120 GB: refused at start, before any allocation.
        ("hostile_huge_input.onnx", "outside 1..=4096"),
        ("hostile_unknown_op.onnx", "FaceMagic"),
    ] {
        let props = format!(
            "model-location={} post-messages=true",
            common::fixture(name)
        );
        common::init();
        let messages = common::run_pipeline(&pipeline_with(&props));
        let errors = common::errors(&messages);
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert!(errors[0].contains(expect), "{name}: {}", errors[0]);
        assert!(
            common::embedding_messages(&messages).is_empty(),
            "{name}: an embedding was handed out"
        );
    }
    // The same in region mode, where the faces of a frame are embedded in one batch.
    let messages = common::run_pipeline(&common::faces_pipeline(
        &format!(
            "! facenet model-location={} inference-region=roi-list ! fakesink",
            common::fixture("hostile_nan.onnx")
        ),
        1,
    ));
    let errors = common::errors(&messages);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("non-finite value"), "{errors:?}");
}

/// Frames whose caps make no sense: zero-size video is refused at negotiation with the
/// reason, not a crash.
#[test]
fn zero_size_caps_are_refused() {
    common::init();
    for caps in [
        "video/x-raw,format=RGB,width=0,height=160,framerate=0/1",
        "video/x-raw,format=I420,width=160,height=0,framerate=0/1",
    ] {
        let (pipeline, src) = common::with_appsrc(&format!(
            "appsrc name=src caps={caps} format=time ! facenet model-location={} ! fakesink",
            common::fixture("facenet_nchw.onnx")
        ));
        pipeline.set_state(gst::State::Playing).unwrap();
        let _ = src.push_buffer(gst::Buffer::from_mut_slice(vec![0u8; 16]));
        let _ = src.end_of_stream();
        let messages = common::run_to_end(pipeline.upcast_ref());
        pipeline.set_state(gst::State::Null).unwrap();
        let errors = common::errors(&messages);
        assert_eq!(errors.len(), 1, "{caps}: {errors:?}");
        assert!(
            errors[0].contains("not-negotiated") || errors[0].contains("caps"),
            "{caps}: {errors:?}"
        );
    }
}

/// A buffer smaller than its caps say is an error naming both sizes, in every element
/// that reads pixels: facenet and facedetect (every frame), faceoverlay (frames with faces
/// to draw).
#[test]
fn short_buffers_are_errors_in_every_element_that_reads_pixels() {
    common::init();
    for element in [
        format!(
            "facenet model-location={}",
            common::fixture("facenet_nchw.onnx")
        ),
        format!(
            "facedetect model-location={}",
            common::model("faceapi_ssd_mobilenetv1.onnx")
        ),
        "faceoverlay".to_string(),
    ] {
        let (pipeline, src) = common::with_appsrc(&format!(
            "appsrc name=src caps=video/x-raw,format=RGB,width=160,height=160,framerate=0/1 format=time ! \
             {element} ! fakesink"
        ));
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; 1000]);
        gst_video::VideoRegionOfInterestMeta::add(
            buffer.get_mut().unwrap(),
            "face",
            (10, 10, 50, 50),
        );
        let _ = src.push_buffer(buffer);
        let _ = src.end_of_stream();
        let messages = common::run_to_end(pipeline.upcast_ref());
        pipeline.set_state(gst::State::Null).unwrap();
        let errors = common::errors(&messages);
        assert_eq!(errors.len(), 1, "{element}: {errors:?}");
        assert!(
            errors[0].contains("1000 bytes") && errors[0].contains("76800"),
            "{element}: {errors:?}"
        );
    }
}
