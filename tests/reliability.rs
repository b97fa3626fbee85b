//! Reliability (issue #7, "Hardening I"): many pipelines at once on the process-wide ONNX
//! Runtime, NULL -> PLAYING -> NULL cycles without growth in memory, file descriptors or
//! threads, and a soak with the resident set sampled. RELIABILITY.md has the figures.
//!
//! The tests take turns (one lock), so that each one's memory figures are its own. Their
//! sizes can be raised through the environment; `scripts/soak.sh` (`make soak`) runs the
//! long versions:
//!
//! * `GST_FACENET_SOAK_FRAMES` (default 3000): frames of the soak.
//! * `GST_FACENET_SOAK_CSV`: where to write the soak's RSS samples (frame, seconds, KiB).
//! * `GST_FACENET_CYCLES` (default 1000): state cycles.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;
use gstfacenet::gallery::{GalleryFile, Person};
use gstfacenet::meta::{face_detection, identity, ROI_EMBEDDING_PARAM};
use gstfacenet::EmbeddingMeta;

use common::image::decode;

/// One test at a time: the memory and descriptor figures are per process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// A line of /proc/self/status, in KiB (VmRSS, VmHWM) or a count (Threads).
fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn rss_kib() -> u64 {
    proc_status("VmRSS")
}

fn threads() -> u64 {
    proc_status("Threads")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "gst-facenet-reliability-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn detector_props() -> String {
    format!(
        "model-location={} landmark-model-location={}",
        common::model("faceapi_ssd_mobilenetv1.onnx"),
        common::model("faceapi_landmark68.onnx")
    )
}

type Rect = (u32, u32, u32, u32);

/// A stand-in face detector for the state cycles (the real SSD takes half a second to
/// open, 1000 times over): input [1, 3, 64, 64], and constant outputs `boxes` [1, 4, 4]
/// (y0, x0, y1, x1, relative to the frame's longer side) and `scores` [1, 4]: the three
/// faces of sample1 (face-api's boxes) and a fourth candidate under the confidence
/// threshold. Written as ONNX protobuf by hand (IR 8, opset 17); the same model as
/// tests/valgrind/tiny_detector.py writes for scripts/memcheck.sh.
fn tiny_detector(path: &Path) {
    const BOXES: [[f32; 4]; 4] = [
        [0.1849, 0.2151, 0.3094, 0.3083],
        [0.2188, 0.4365, 0.3380, 0.5339],
        [0.1036, 0.7688, 0.2292, 0.8745],
        [0.5, 0.5, 0.6, 0.6],
    ];
    const SCORES: [f32; 4] = [0.99, 0.95, 0.9, 0.1];

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn int_field(out: &mut Vec<u8>, field: u64, v: u64) {
        varint(out, field << 3);
        varint(out, v);
    }
    fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
        varint(out, (field << 3) | 2);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }
    const FLOAT: u64 = 1;
    let tensor = |name: &str, dims: &[u64], values: &[f32]| {
        let mut t = Vec::new();
        for &d in dims {
            int_field(&mut t, 1, d);
        }
        int_field(&mut t, 2, FLOAT);
        bytes_field(&mut t, 8, name.as_bytes());
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes_field(&mut t, 9, &raw);
        t
    };
    let value_info = |name: &str, dims: &[u64]| {
        let mut shape = Vec::new();
        for &d in dims {
            let mut dim = Vec::new();
            int_field(&mut dim, 1, d);
            bytes_field(&mut shape, 1, &dim);
        }
        let mut tensor_type = Vec::new();
        int_field(&mut tensor_type, 1, FLOAT);
        bytes_field(&mut tensor_type, 2, &shape);
        let mut ty = Vec::new();
        bytes_field(&mut ty, 1, &tensor_type);
        let mut v = Vec::new();
        bytes_field(&mut v, 1, name.as_bytes());
        bytes_field(&mut v, 2, &ty);
        v
    };
    let identity = |input: &str, output: &str| {
        let mut n = Vec::new();
        bytes_field(&mut n, 1, input.as_bytes());
        bytes_field(&mut n, 2, output.as_bytes());
        bytes_field(&mut n, 3, output.as_bytes());
        bytes_field(&mut n, 4, b"Identity");
        n
    };
    let mut graph = Vec::new();
    bytes_field(&mut graph, 1, &identity("boxes_value", "boxes"));
    bytes_field(&mut graph, 1, &identity("scores_value", "scores"));
    bytes_field(&mut graph, 2, b"tiny_detector");
    let boxes: Vec<f32> = BOXES.iter().flatten().copied().collect();
    bytes_field(&mut graph, 5, &tensor("boxes_value", &[1, 4, 4], &boxes));
    bytes_field(&mut graph, 5, &tensor("scores_value", &[1, 4], &SCORES));
    bytes_field(&mut graph, 11, &value_info("image", &[1, 3, 64, 64]));
    bytes_field(&mut graph, 12, &value_info("boxes", &[1, 4, 4]));
    bytes_field(&mut graph, 12, &value_info("scores", &[1, 4]));
    let mut model = Vec::new();
    int_field(&mut model, 1, 8);
    bytes_field(&mut model, 2, b"gst-facenet tests/reliability.rs");
    bytes_field(&mut model, 7, &graph);
    let mut opset = Vec::new();
    bytes_field(&mut opset, 1, b"");
    int_field(&mut opset, 2, 17);
    bytes_field(&mut model, 8, &opset);
    std::fs::write(path, model).unwrap();
}

/// The faces `facedetect ! facenet` finds in `photo`, left to right.
fn embed_faces(photo: &Path, detector: &str, facenet_model: &str) -> Vec<(Rect, EmbeddingMeta)> {
    let image = decode(photo);
    let mut h = Harness::new_parse(&format!(
        "facedetect {detector} ! facenet model-location={facenet_model} inference-region=roi-list"
    ));
    h.play();
    h.set_src_caps_str(&image.caps());
    let out = h.push_and_pull(image.buffer()).unwrap();
    let mut faces: Vec<(Rect, EmbeddingMeta)> = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|roi| roi.roi_type() == face_detection::ROI_TYPE)
        .map(|roi| {
            let e = roi
                .param(ROI_EMBEDDING_PARAM)
                .map(|p| EmbeddingMeta::from_structure(p).unwrap())
                .expect("every face has an embedding");
            (roi.rect(), e)
        })
        .collect();
    faces.sort_by_key(|(r, _)| r.0);
    faces
}

/// A gallery of everyone in `photos` (label `sampleN-personI`, left to right), written to
/// `path`; returns the labelled boxes per photo.
fn enroll(
    photos: &[&str],
    detector: &str,
    facenet_model: &str,
    path: &Path,
) -> HashMap<String, Vec<(String, Rect)>> {
    let mut gallery: Option<GalleryFile> = None;
    let mut truth = HashMap::new();
    for name in photos {
        let faces = embed_faces(
            &common::sample_photo(&format!("{name}.jpg")),
            detector,
            facenet_model,
        );
        assert!(!faces.is_empty(), "no face in {name}");
        let mut labelled = Vec::new();
        for (i, (rect, e)) in faces.into_iter().enumerate() {
            let label = format!("{name}-person{i}");
            let g = gallery
                .get_or_insert_with(|| GalleryFile::new(&e.model, e.dimension(), e.l2_normalized));
            g.people.push(Person {
                label: label.clone(),
                embeddings: vec![e.embedding],
                sources: vec![format!("{name}.jpg")],
            });
            labelled.push((label, rect));
        }
        truth.insert(name.to_string(), labelled);
    }
    std::fs::write(path, gallery.unwrap().to_json()).unwrap();
    truth
}

fn iou(a: Rect, b: Rect) -> f64 {
    let (ax, ay, aw, ah) = (a.0 as f64, a.1 as f64, a.2 as f64, a.3 as f64);
    let (bx, by, bw, bh) = (b.0 as f64, b.1 as f64, b.2 as f64, b.3 as f64);
    let ix = (ax + aw).min(bx + bw) - ax.max(bx);
    let iy = (ay + ah).min(by + bh) - ay.max(by);
    let inter = ix.max(0.0) * iy.max(0.0);
    inter / (aw * ah + bw * bh - inter)
}

/// What one output buffer carried: per face ROI, its box, whether the detection and
/// embedding params are there, and the identity (label, distance).
#[derive(Debug, Clone)]
struct SeenFace {
    rect: Rect,
    detected: bool,
    embedded: bool,
    identity: Option<(String, f64)>,
}

fn seen_faces(buffer: &gst::BufferRef) -> Vec<SeenFace> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|roi| roi.roi_type() == face_detection::ROI_TYPE)
        .map(|roi| SeenFace {
            rect: roi.rect(),
            detected: roi.param(face_detection::NAME).is_some(),
            embedded: roi.param(ROI_EMBEDDING_PARAM).is_some(),
            identity: roi.param(identity::NAME).map(|p| {
                (
                    p.get::<String>(identity::LABEL).unwrap(),
                    p.get::<f64>(identity::DISTANCE).unwrap(),
                )
            }),
        })
        .collect()
}

/// Calls `f` with every buffer that reaches the element named `sink`.
fn on_buffers(pipeline: &gst::Element, f: impl Fn(&gst::BufferRef) + Send + Sync + 'static) {
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("sink")
        .expect("an element named sink");
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                f(buffer);
            }
            gst::PadProbeReturn::Ok
        });
}

/// (a) Eight pipelines, each `facedetect ! facenet ! faceidentify` on a real photo, in
/// eight threads at once, all on the one ONNX Runtime environment of the process: every
/// frame carries every face with its detection, embedding and the right identity.
#[test]
fn eight_pipelines_in_parallel_threads_share_one_runtime() {
    const PIPELINES: usize = 8;
    const FRAMES: usize = 3;
    let _turn = serial();
    common::init();
    let dir = TempDir::new("parallel");
    let gallery = dir.join("people.json");
    let resnet = common::model("faceapi_resnet128.onnx");
    // sample1 and sample2 enrolled: their faces must be named; sample4's people are not
    // enrolled and must come out unknown.
    let truth = Arc::new(enroll(
        &["sample1", "sample2"],
        &detector_props(),
        &resnet,
        &gallery,
    ));
    let photos = ["sample1", "sample2", "sample4"];
    let description = |photo: &str| {
        format!(
            "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
             imagefreeze num-buffers={FRAMES} ! facedetect {} ! \
             facenet model-location={resnet} inference-region=roi-list ! \
             faceidentify gallery={} ! fakesink name=sink sync=false",
            common::sample_photo(&format!("{photo}.jpg")).display(),
            detector_props(),
            gallery.display()
        )
    };
    // What each photo gives with one pipeline alone: the parallel runs must give the same.
    let alone: HashMap<&str, Vec<SeenFace>> = photos
        .iter()
        .map(|photo| {
            let (messages, frames) = run_collecting(&description(photo));
            assert!(
                common::errors(&messages).is_empty(),
                "{photo}: {messages:?}"
            );
            (*photo, frames[0].clone())
        })
        .collect();

    let start = Arc::new(Barrier::new(PIPELINES));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..PIPELINES)
        .map(|i| {
            let photo = photos[i % photos.len()];
            let description = description(photo);
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let (messages, frames) = run_collecting(&description);
                let (runtime, note) = gstfacenet::backend::runtime(None).expect("runtime");
                assert!(note.is_none(), "{note:?}");
                (
                    photo,
                    messages,
                    frames,
                    runtime as *const gstfacenet::backend::Runtime as usize,
                )
            })
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    println!(
        "{PIPELINES} pipelines x {FRAMES} frames of full-size photos in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let runtime = results[0].3;
    for (photo, messages, frames, rt) in &results {
        assert_eq!(*rt, runtime, "one ONNX Runtime environment per process");
        assert!(
            common::errors(messages).is_empty(),
            "{photo}: {:?}",
            common::errors(messages)
        );
        assert!(
            common::warnings(messages).is_empty(),
            "{photo}: {:?}",
            common::warnings(messages)
        );
        assert_eq!(frames.len(), FRAMES, "{photo}: every frame comes out");
        let expected = [("sample1", 3usize), ("sample2", 3), ("sample4", 4)]
            .iter()
            .find(|(p, _)| p == photo)
            .unwrap()
            .1;
        for faces in frames {
            assert_eq!(faces.len(), expected, "{photo}: {faces:?}");
            for f in faces {
                assert!(f.detected && f.embedded, "{photo}: {f:?}");
                let (label, distance) = f.identity.clone().expect("every face is identified");
                // As with the pipeline alone.
                let same = alone[photo]
                    .iter()
                    .find(|a| iou(a.rect, f.rect) > 0.95)
                    .unwrap_or_else(|| {
                        panic!("{photo}: {f:?} not found alone: {:?}", alone[photo])
                    });
                let (alone_label, alone_distance) = same.identity.clone().unwrap();
                assert_eq!(label, alone_label, "{photo}: {f:?} vs {same:?}");
                assert!(
                    (distance - alone_distance).abs() < 1e-3,
                    "{photo}: {f:?} vs {same:?}"
                );
                if let Some(people) = truth.get(*photo) {
                    // Enrolled: named, from the same pixels as at enrollment.
                    let (want, _) = people
                        .iter()
                        .find(|(_, r)| iou(*r, f.rect) > 0.8)
                        .unwrap_or_else(|| panic!("{photo}: {f:?} is not an enrolled face"));
                    assert_eq!(&label, want, "{photo}: {f:?}");
                    assert!(distance < 0.05, "{photo}: {f:?}");
                }
            }
        }
    }
    // sample4's people are not enrolled: most come out unknown (one of them resembles
    // an enrolled person at 0.52, under the 0.6 threshold, alone and in parallel alike).
    let strangers = &alone["sample4"];
    let unknown = strangers
        .iter()
        .filter(|f| f.identity.as_ref().is_some_and(|(l, _)| l == "unknown"))
        .count();
    assert!(unknown >= 3, "{strangers:?}");
}

/// Runs `description` (with a `sink` element) to the end; the bus messages and the faces
/// of each frame that reached the sink.
fn run_collecting(description: &str) -> (Vec<gst::Message>, Vec<Vec<SeenFace>>) {
    let pipeline = gst::parse::launch(description).unwrap();
    let frames: Arc<Mutex<Vec<Vec<SeenFace>>>> = Arc::default();
    let sink_frames = frames.clone();
    on_buffers(&pipeline, move |b| {
        sink_frames.lock().unwrap().push(seen_faces(b))
    });
    let messages = common::run_to_end(&pipeline);
    pipeline.set_state(gst::State::Null).unwrap();
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (messages, frames)
}

extern "C" {
    /// glibc: hands the free memory of every malloc arena back to the kernel.
    fn malloc_trim(pad: usize) -> i32;
}

/// The resident set once free heap memory is handed back: what is still allocated, less
/// the arenas' slack, which comes and goes with the order of frees between threads.
fn trimmed_rss_kib() -> u64 {
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    unsafe { malloc_trim(0) };
    rss_kib()
}

/// Resource figures of the process.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kib: u64,
    fds: usize,
    threads: u64,
}

fn usage() -> Usage {
    Usage {
        rss_kib: trimmed_rss_kib(),
        fds: open_fds(),
        threads: threads(),
    }
}

/// (b) NULL -> PLAYING -> NULL, GST_FACENET_CYCLES times (1000), through all four
/// elements: each cycle opens every model and the gallery again, runs two frames with
/// three faces through them and writes the results file again. No errors, every frame
/// complete, and after a warm-up neither memory, nor file descriptors, nor threads grow.
///
/// The detector is a stand-in with the real detector's interface ([`tiny_detector`]) and
/// the embedder the fixture one, so that a cycle costs milliseconds;
/// GST_FACENET_CYCLES_MODELS=real (`make soak`) takes the real detector, landmark model
/// and embedder instead.
#[test]
fn state_cycles_leave_no_growth() {
    let cycles = env_usize("GST_FACENET_CYCLES", 1000);
    assert!(cycles >= 100, "GST_FACENET_CYCLES of at least 100");
    let real = match std::env::var("GST_FACENET_CYCLES_MODELS").as_deref() {
        Ok("real") => true,
        Ok("fixture") | Err(_) => false,
        Ok(other) => panic!("GST_FACENET_CYCLES_MODELS={other}: real or fixture"),
    };
    let _turn = serial();
    common::init();
    let dir = TempDir::new("cycles");
    let (detector, embedder) = if real {
        (detector_props(), common::model("faceapi_resnet128.onnx"))
    } else {
        let tiny = dir.join("tiny_detector.onnx");
        tiny_detector(&tiny);
        (
            format!(
                "model-location={} landmark-model-location={}",
                tiny.display(),
                common::model("faceapi_landmark68.onnx")
            ),
            common::fixture("facenet_dynamic.onnx"),
        )
    };
    let gallery = dir.join("people.json");
    enroll(&["sample1"], &detector, &embedder, &gallery);
    let results = dir.join("results.jsonl");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width=480,height=320 ! imagefreeze num-buffers=2 ! \
         facedetect {detector} ! facenet model-location={embedder} inference-region=roi-list ! \
         faceidentify gallery={} results-location={} ! faceoverlay draw-landmarks=true ! \
         fakesink name=sink sync=false",
        common::sample_photo("sample1.jpg").display(),
        gallery.display(),
        results.display()
    ))
    .unwrap();
    let frames: Arc<Mutex<Vec<Vec<SeenFace>>>> = Arc::default();
    let sink_frames = frames.clone();
    on_buffers(&pipeline, move |b| {
        sink_frames.lock().unwrap().push(seen_faces(b))
    });

    // Sampled every 1 % of the cycles; the first 10 % are warm-up.
    let every = (cycles / 100).max(1);
    let warm_up = cycles / 10;
    let mut samples: Vec<(usize, Usage)> = Vec::new();
    let t0 = Instant::now();
    for cycle in 0..cycles {
        let messages = common::run_to_end(&pipeline);
        assert!(
            common::errors(&messages).is_empty(),
            "cycle {cycle}: {:?}",
            common::errors(&messages)
        );
        pipeline.set_state(gst::State::Null).unwrap();
        let frames = std::mem::take(&mut *frames.lock().unwrap());
        assert_eq!(frames.len(), 2, "cycle {cycle}");
        for faces in &frames {
            assert_eq!(faces.len(), 3, "cycle {cycle}: {faces:?}");
            assert!(
                faces
                    .iter()
                    .all(|f| f.detected && f.embedded && f.identity.is_some()),
                "cycle {cycle}: {faces:?}"
            );
        }
        let lines = std::fs::read_to_string(&results).unwrap();
        assert_eq!(lines.lines().count(), 2, "cycle {cycle}: results file");
        if (cycle + 1) % every == 0 {
            samples.push((cycle + 1, usage()));
        }
    }
    let elapsed = t0.elapsed();
    let after: Vec<&(usize, Usage)> = samples.iter().filter(|s| s.0 > warm_up).collect();
    let quarter = (after.len() / 4).max(1);
    let floor = |s: &[&(usize, Usage)]| s.iter().map(|s| s.1.rss_kib).min().unwrap();
    let (early, late) = (
        floor(&after[..quarter]),
        floor(&after[after.len() - quarter..]),
    );
    let first = after[0].1;
    let end = after[after.len() - 1].1;
    let peak = samples.iter().map(|s| s.1.rss_kib).max().unwrap();
    println!(
        "{cycles} cycles ({} models) in {:.1} s ({:.1} ms each); trimmed RSS: {} KiB at cycle {every}, \
         floor {early} KiB just after warm-up, floor {late} KiB in the last quarter, peak {peak} KiB; \
         fds {} -> {}, threads {} -> {}",
        if real { "real" } else { "stand-in" },
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / cycles as f64,
        samples[0].1.rss_kib,
        first.fds,
        end.fds,
        first.threads,
        end.threads
    );
    // A session leaked per cycle (the landmark model alone is 1.4 MB of weights; the
    // real detector 22 MB) or a frame per cycle (450 KB) would raise the floor by far
    // more; the allocator's noise stays under it.
    let bound_kib = 16 * 1024;
    assert!(
        late <= early + bound_kib,
        "the trimmed RSS floor rose by {} KiB over {} cycles after warm-up (bound {bound_kib} KiB)",
        late - early,
        cycles - warm_up
    );
    for (cycle, u) in &after {
        assert!(
            u.fds <= first.fds,
            "file descriptors: {} after warm-up, {} at cycle {cycle}",
            first.fds,
            u.fds
        );
        assert!(
            u.threads <= first.threads,
            "threads: {} after warm-up, {} at cycle {cycle}",
            first.threads,
            u.threads
        );
    }
}

/// Least-squares slope of `points` (x, y), in y per unit x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

/// One resident-set sample of the soak.
#[derive(Debug, Clone, Copy)]
struct RssSample {
    frame: u64,
    seconds: f64,
    /// VmRSS as it is.
    rss_kib: u64,
    /// VmRSS after malloc_trim(0).
    trimmed_kib: u64,
}

/// (c) A soak: GST_FACENET_SOAK_FRAMES frames (3000; `make soak`: 100,000) of a face
/// through `facedetect ! facenet ! faceidentify` with the real models, the resident set
/// sampled every 1 % of the frames. After a warm-up of 10 % the resident set stays flat.
#[test]
fn soak_keeps_memory_flat() {
    let frames = env_usize("GST_FACENET_SOAK_FRAMES", 3000) as u64;
    assert!(frames >= 1000, "GST_FACENET_SOAK_FRAMES of at least 1000");
    let interval = env_usize("GST_FACENET_SOAK_INTERVAL", 10);
    let every = (frames / 100).max(1);
    let warm_up = frames / 10;
    let _turn = serial();
    common::init();
    let dir = TempDir::new("soak");
    let gallery = dir.join("people.json");
    let resnet = common::model("faceapi_resnet128.onnx");
    enroll(&["sample1"], &detector_props(), &resnet, &gallery);
    // sample1's right-hand person (face-api's box near 1476,199 203x241) alone: a 640x480
    // cut around the face, scaled to 320x240. The detector (with landmarks) runs on every
    // GST_FACENET_SOAK_INTERVAL-th frame (10; the frames in between carry its faces,
    // fresh=false), the embedder and faceidentify on every frame.
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! \
         videocrop left=1280 right=0 top=100 bottom=700 ! videoscale ! \
         video/x-raw,format=RGB,width=320,height=240 ! imagefreeze num-buffers={frames} ! \
         facedetect {} inference-interval={interval} ! \
         facenet model-location={resnet} inference-region=roi-list ! \
         faceidentify gallery={} ! fakesink name=sink sync=false",
        common::sample_photo("sample1.jpg").display(),
        detector_props(),
        gallery.display()
    ))
    .unwrap();
    #[derive(Default)]
    struct Count {
        frames: u64,
        samples: Vec<RssSample>,
        wrong: Vec<String>,
    }
    let count: Arc<Mutex<Count>> = Arc::default();
    // The samples go to the CSV as they come, so that a long run can be watched.
    let csv = std::env::var_os("GST_FACENET_SOAK_CSV").map(|path| {
        let mut f = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", Path::new(&path).display()));
        writeln!(f, "frame,seconds,rss_kib,trimmed_rss_kib").unwrap();
        Mutex::new(f)
    });
    let t0 = Instant::now();
    let c = count.clone();
    on_buffers(&pipeline, move |b| {
        let faces = seen_faces(b);
        let mut c = c.lock().unwrap();
        let ok = faces.len() == 1
            && faces[0].detected
            && faces[0].embedded
            && faces[0]
                .identity
                .as_ref()
                .is_some_and(|(label, _)| label == "sample1-person2");
        if !ok && c.wrong.len() < 10 {
            let n = c.frames;
            c.wrong.push(format!("frame {n}: {faces:?}"));
        }
        c.frames += 1;
        if c.frames.is_multiple_of(every) {
            let rss_kib = rss_kib();
            let sample = RssSample {
                frame: c.frames,
                seconds: t0.elapsed().as_secs_f64(),
                rss_kib,
                trimmed_kib: trimmed_rss_kib(),
            };
            c.samples.push(sample);
            if let Some(f) = &csv {
                let mut f = f.lock().unwrap();
                writeln!(
                    f,
                    "{},{:.2},{},{}",
                    sample.frame, sample.seconds, sample.rss_kib, sample.trimmed_kib
                )
                .and_then(|_| f.flush())
                .expect("the soak CSV is writable");
            }
        }
    });
    let progress = count.clone();
    let messages = run_to_end_within(&pipeline, Duration::from_secs(60), move || {
        progress.lock().unwrap().frames
    });
    pipeline.set_state(gst::State::Null).unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    assert!(
        common::errors(&messages).is_empty(),
        "{:?}",
        common::errors(&messages)
    );
    let count = std::mem::take(&mut *count.lock().unwrap());
    assert_eq!(count.frames, frames);
    assert!(count.wrong.is_empty(), "{:?}", count.wrong);
    let samples = count.samples;
    let after: Vec<RssSample> = samples
        .iter()
        .copied()
        .filter(|s| s.frame > warm_up)
        .collect();
    let quarter = (after.len() / 4).max(1);
    let floor = |s: &[RssSample]| s.iter().map(|s| s.trimmed_kib).min().unwrap();
    let (early, late) = (
        floor(&after[..quarter]),
        floor(&after[after.len() - quarter..]),
    );
    let trend = 1000.0
        * slope(
            &after
                .iter()
                .map(|s| (s.frame as f64, s.trimmed_kib as f64))
                .collect::<Vec<_>>(),
        );
    let raw_max = after.iter().map(|s| s.rss_kib).max().unwrap();
    println!(
        "soak: {frames} frames in {elapsed:.1} s ({:.2} ms/frame, detector every {interval}); \
         RSS {} KiB at frame {every}; after warm-up (frame {warm_up}): trimmed RSS floor {early} KiB \
         in the first quarter, {late} KiB in the last, trend {trend:+.2} KiB per 1000 frames; \
         untrimmed RSS {} -> {} KiB (max {raw_max}); VmHWM {} KiB",
        elapsed * 1000.0 / frames as f64,
        samples[0].rss_kib,
        after[0].rss_kib,
        after[after.len() - 1].rss_kib,
        proc_status("VmHWM")
    );
    // Flat: the floor of the trimmed resident set rises by less than 4 MiB from the
    // first to the last quarter after warm-up (a leak of 2 KiB per frame in the short
    // run, 60 bytes per frame in the long one would pass it), and the trend stays under
    // 1 KiB per 1000 frames... scaled: under 4 MiB over the run after warm-up.
    let bound_kib = 4 * 1024;
    assert!(
        late <= early + bound_kib,
        "the trimmed RSS floor rose by {} KiB after warm-up (bound {bound_kib} KiB)",
        late - early
    );
    let run_after_warm_up = (frames - warm_up) as f64 / 1000.0;
    assert!(
        trend * run_after_warm_up < bound_kib as f64,
        "trimmed RSS trend {trend:+.2} KiB per 1000 frames after warm-up, {:.0} KiB over the run",
        trend * run_after_warm_up
    );
}

/// Like `common::run_to_end`, but for a run of minutes: it fails only when `progress`
/// (frames through) stands still for `idle`.
fn run_to_end_within(
    pipeline: &gst::Element,
    idle: Duration,
    progress: impl Fn() -> u64,
) -> Vec<gst::Message> {
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    let (mut seen, mut since) = (progress(), Instant::now());
    loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(1)) else {
            let now = progress();
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
            assert!(
                since.elapsed() < idle,
                "no frame for {idle:?} after frame {seen}"
            );
            continue;
        };
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
