//! Who is it: `faceidentify` against galleries made from the pipeline's own embeddings.
//!
//! No person appears in two of face-api's sample photos, so the people of sample1-3 are
//! enrolled and tested on augmented copies of their photos (shift, flip, scale,
//! brightness, JPEG at quality 60), while the people of sample4-6 must come out `unknown`.

mod common;

use std::path::PathBuf;

use gst::prelude::*;
use gst_check::Harness;
use gstfacenet::gallery::{GalleryFile, Person, UNKNOWN};
use gstfacenet::meta::{identity, ROI_EMBEDDING_PARAM};
use gstfacenet::EmbeddingMeta;

use common::image::{decode, Image};

#[derive(Debug, Clone)]
struct Face {
    rect: (u32, u32, u32, u32),
    embedding: Option<EmbeddingMeta>,
    label: Option<String>,
    distance: Option<f64>,
}

fn faces_of(buffer: &gst::BufferRef) -> Vec<Face> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| Face {
            rect: roi.rect(),
            embedding: roi
                .param(ROI_EMBEDDING_PARAM)
                .map(|p| EmbeddingMeta::from_structure(p).unwrap()),
            label: roi
                .param(identity::NAME)
                .map(|p| p.get::<String>(identity::LABEL).unwrap()),
            distance: roi
                .param(identity::NAME)
                .map(|p| p.get::<f64>(identity::DISTANCE).unwrap()),
        })
        .collect()
}

fn pipeline(extra: &str) -> Harness {
    common::init();
    let mut h = Harness::new_parse(&format!(
        "facedetect model-location={} landmark-model-location={} ! facenet model-location={} inference-region=roi-list {extra}",
        common::model("faceapi_ssd_mobilenetv1.onnx"),
        common::model("faceapi_landmark68.onnx"),
        common::model("faceapi_resnet128.onnx"),
    ));
    h.play();
    h
}

fn run(h: &mut Harness, image: &Image) -> Vec<Face> {
    h.set_src_caps_str(&image.caps());
    faces_of(&h.push_and_pull(image.buffer()).unwrap())
}

fn iou(a: (f64, f64, f64, f64), b: (u32, u32, u32, u32)) -> f64 {
    let b = (b.0 as f64, b.1 as f64, b.2 as f64, b.3 as f64);
    let ix = (a.0 + a.2).min(b.0 + b.2) - a.0.max(b.0);
    let iy = (a.1 + a.3).min(b.1 + b.3) - a.1.max(b.1);
    let inter = ix.max(0.0) * iy.max(0.0);
    inter / (a.2 * a.3 + b.2 * b.3 - inter)
}

type Rect = (u32, u32, u32, u32);

struct Enrolled {
    gallery: PathBuf,
    /// Per sample photo: (label, box) of each face, labels for photos 1-3 only.
    photos: Vec<(Image, Vec<(String, Rect)>)>,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gst-facenet-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Embeds the six photos with the pipeline and enrolls the people of sample1-3.
fn enroll(name: &str) -> Enrolled {
    let dir = TempDir::new(name);
    let mut h = pipeline("");
    let mut gallery: Option<GalleryFile> = None;
    let mut photos = Vec::new();
    for n in 1..=6 {
        let image = decode(&common::sample_photo(&format!("sample{n}.jpg")));
        let mut faces = run(&mut h, &image);
        faces.sort_by_key(|f| f.rect.0);
        let mut labelled = Vec::new();
        for (i, f) in faces.iter().enumerate() {
            let label = if n <= 3 {
                format!("sample{n}-person{i}")
            } else {
                UNKNOWN.to_string()
            };
            if n <= 3 {
                let e = f.embedding.as_ref().unwrap();
                let g = gallery.get_or_insert_with(|| {
                    GalleryFile::new(&e.model, e.dimension(), e.l2_normalized)
                });
                g.people.push(Person {
                    label: label.clone(),
                    embeddings: vec![e.embedding.clone()],
                    sources: vec![format!("sample{n}.jpg")],
                });
            }
            labelled.push((label, f.rect));
        }
        photos.push((image, labelled));
    }
    let path = dir.0.join("people.json");
    std::fs::write(&path, gallery.unwrap().to_json()).unwrap();
    Enrolled {
        gallery: path,
        photos,
        _dir: dir,
    }
}

type Augment = fn(
    &Image,
) -> (
    Image,
    Box<dyn Fn((u32, u32, u32, u32)) -> (f64, f64, f64, f64)>,
);

fn augmentations() -> Vec<(&'static str, Augment)> {
    vec![
        ("shift", |im| {
            let out = im.crop(7, 5, im.width - 7, im.height - 5);
            (
                out,
                Box::new(|r| (r.0 as f64 + 7.0, r.1 as f64 + 5.0, r.2 as f64, r.3 as f64)),
            )
        }),
        ("flip", |im| {
            let w = im.width as f64;
            (
                im.mirrored(),
                Box::new(move |r| {
                    (
                        w - r.0 as f64 - r.2 as f64,
                        r.1 as f64,
                        r.2 as f64,
                        r.3 as f64,
                    )
                }),
            )
        }),
        ("scale0.75", |im| {
            (
                im.scaled(0.75),
                Box::new(|r| {
                    (
                        r.0 as f64 / 0.75,
                        r.1 as f64 / 0.75,
                        r.2 as f64 / 0.75,
                        r.3 as f64 / 0.75,
                    )
                }),
            )
        }),
        ("bright1.15", |im| {
            (
                im.brighter(1.15),
                Box::new(|r| (r.0 as f64, r.1 as f64, r.2 as f64, r.3 as f64)),
            )
        }),
        ("jpeg60", |im| {
            (
                im.jpeg_roundtrip(60),
                Box::new(|r| (r.0 as f64, r.1 as f64, r.2 as f64, r.3 as f64)),
            )
        }),
    ]
}

#[test]
fn enrolled_people_are_named_and_strangers_unknown() {
    let enrolled = enroll("identify");
    let mut h = pipeline(&format!(
        "! faceidentify gallery={}",
        enrolled.gallery.display()
    ));
    let (mut known_right, mut known_total, mut unknown_right, mut unknown_total) = (0, 0, 0, 0);
    let mut mistakes = Vec::new();
    for (photo_index, (image, truth)) in enrolled.photos.iter().enumerate() {
        for (name, augment) in augmentations() {
            let (variant, to_original) = augment(image);
            let faces = run(&mut h, &variant);
            for f in &faces {
                let Some((expected, _)) = truth
                    .iter()
                    .map(|(label, rect)| (label, iou(to_original(f.rect), *rect)))
                    .filter(|(_, overlap)| *overlap > 0.5)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                else {
                    continue;
                };
                let got = f
                    .label
                    .as_deref()
                    .expect("every face with an embedding gets a label");
                let right = got == expected.as_str();
                if expected == UNKNOWN {
                    unknown_total += 1;
                    unknown_right += right as usize;
                } else {
                    known_total += 1;
                    known_right += right as usize;
                }
                if !right {
                    mistakes.push(format!(
                        "sample{} {name}: {expected} taken for {got} ({:.3})",
                        photo_index + 1,
                        f.distance.unwrap()
                    ));
                }
            }
        }
    }
    let known_rate = known_right as f64 / known_total as f64;
    let unknown_rate = unknown_right as f64 / unknown_total as f64;
    println!(
        "enrolled faces named right: {known_right}/{known_total} ({:.1} %); strangers unknown: {unknown_right}/{unknown_total} ({:.1} %)",
        100.0 * known_rate,
        100.0 * unknown_rate
    );
    for m in &mistakes {
        println!("  {m}");
    }
    // 9 enrolled people x 5 variants, 13 strangers x 5 variants (a face lost by the
    // detector in a variant is simply not counted).
    assert!(
        known_total >= 43 && unknown_total >= 60,
        "{known_total} {unknown_total}"
    );
    // Measured: 100 % (45/45) of enrolled faces named right; strangers unknown 89 % (58/65)
    // (a few look-alikes sit between 0.5 and 0.6 from an enrolled person, as in
    // models/README.md's different-face figures).
    assert_eq!(known_right, known_total, "{mistakes:?}");
    assert!(unknown_rate >= 0.8, "{mistakes:?}");
}

#[test]
fn several_faces_per_frame_keep_their_own_labels() {
    let enrolled = enroll("several");
    let mut h = pipeline(&format!(
        "! faceidentify gallery={}",
        enrolled.gallery.display()
    ));
    // sample3's three people in one frame, and the same frame with the faces shuffled
    // around: each box keeps the label of the person in it.
    let (image, truth) = &enrolled.photos[2];
    let faces = run(&mut h, image);
    assert_eq!(faces.len(), 3);
    for f in &faces {
        let (label, _) = truth
            .iter()
            .find(|(_, r)| iou((r.0 as f64, r.1 as f64, r.2 as f64, r.3 as f64), f.rect) > 0.5)
            .unwrap();
        assert_eq!(f.label.as_deref(), Some(label.as_str()));
    }
    let mut canvas = Image {
        width: 1600,
        height: 600,
        rgb: vec![128; 1600 * 600 * 3],
    };
    let mut placed = Vec::new();
    for (k, (label, r)) in truth.iter().enumerate() {
        let (x0, y0) = (
            r.0.saturating_sub(r.2 / 2) as usize,
            r.1.saturating_sub(r.3 / 2) as usize,
        );
        let (w, hh) = ((2 * r.2) as usize, (2 * r.3) as usize);
        let w = w.min(image.width - x0);
        let hh = hh.min(image.height - y0).min(590);
        let crop = image.crop(x0, y0, w.min(500), hh);
        // Reverse order: the rightmost person goes left.
        let x = 20 + (truth.len() - 1 - k) * 520;
        canvas.paste(&crop, x, 5);
        placed.push((label.clone(), x));
    }
    let faces = run(&mut h, &canvas);
    assert_eq!(faces.len(), 3, "{faces:?}");
    for f in &faces {
        let (label, _) = placed
            .iter()
            .filter(|(_, x)| (*x as u32) <= f.rect.0)
            .max_by_key(|(_, x)| *x)
            .unwrap();
        assert_eq!(f.label.as_deref(), Some(label.as_str()), "{faces:?}");
    }
}

#[test]
fn gallery_errors_are_clear() {
    common::init();
    let dir = TempDir::new("gallery-errors");
    let image = decode(&common::sample_photo("sample1.jpg"));
    let run_with = |gallery: &str| -> Vec<String> {
        let path = dir.0.join("image.jpg");
        std::fs::copy(common::sample_photo("sample1.jpg"), &path).unwrap();
        let messages = common::run_pipeline(&format!(
            "filesrc location={} ! jpegdec ! videoconvert ! facedetect model-location={} landmark-model-location={} ! \
             facenet model-location={} inference-region=roi-list ! faceidentify gallery={gallery} ! fakesink",
            path.display(),
            common::model("faceapi_ssd_mobilenetv1.onnx"),
            common::model("faceapi_landmark68.onnx"),
            common::model("faceapi_resnet128.onnx"),
        ));
        common::errors(&messages)
    };
    let _ = image;
    let missing = run_with("/nonexistent/people.json");
    assert!(
        missing[0].contains("cannot read gallery /nonexistent/people.json"),
        "{missing:?}"
    );

    let malformed = dir.0.join("malformed.json");
    std::fs::write(
        &malformed,
        "{\"format\": \"gst-facenet-gallery\", \"version\": 1, \"model\": ",
    )
    .unwrap();
    let e = run_with(malformed.to_str().unwrap());
    assert!(
        e[0].contains("not a gallery file") && e[0].contains("malformed.json"),
        "{e:?}"
    );

    let other_model = dir.0.join("other.json");
    let mut g = GalleryFile::new("some-arcface-model", 512, true);
    g.people.push(Person {
        label: "alice".into(),
        embeddings: vec![vec![0.0; 512]],
        sources: vec![],
    });
    std::fs::write(&other_model, g.to_json()).unwrap();
    let e = run_with(other_model.to_str().unwrap());
    assert!(
        e[0].contains("some-arcface-model")
            && e[0].contains("faceapi-dlib-resnet-128")
            && e[0].contains("enroll"),
        "{e:?}"
    );
}

#[test]
fn results_as_json_lines_and_messages_and_hot_reload() {
    let enrolled = enroll("results");
    let dir = TempDir::new("results-out");
    let results = dir.0.join("results.jsonl");
    let live_gallery = dir.0.join("live.json");
    std::fs::copy(&enrolled.gallery, &live_gallery).unwrap();
    let mut h = pipeline(&format!(
        "! faceidentify name=id gallery={} results-location={} post-messages=true",
        live_gallery.display(),
        results.display()
    ));
    let (image, _) = &enrolled.photos[0];
    let faces = run(&mut h, image);
    assert!(faces.iter().all(|f| f
        .label
        .as_deref()
        .is_some_and(|l| l.starts_with("sample1-"))));

    // A half-written gallery keeps the old one (and warns).
    let text = std::fs::read_to_string(&enrolled.gallery).unwrap();
    std::fs::write(&live_gallery, &text[..text.len() / 2]).unwrap();
    let element = h.find_element("faceidentify").unwrap();
    element.set_property("gallery", live_gallery.to_str().unwrap());
    let faces = run(&mut h, image);
    assert!(faces.iter().all(|f| f
        .label
        .as_deref()
        .is_some_and(|l| l.starts_with("sample1-"))));

    // A gallery without sample1's people: nobody is named after them any more (their
    // nearest remaining person, or unknown).
    let mut g: GalleryFile = serde_json::from_str(&text).unwrap();
    g.people.retain(|p| !p.label.starts_with("sample1-"));
    std::fs::write(&live_gallery, g.to_json()).unwrap();
    element.set_property("gallery", live_gallery.to_str().unwrap());
    let faces = run(&mut h, image);
    assert!(
        faces.iter().all(|f| f
            .label
            .as_deref()
            .is_some_and(|l| !l.starts_with("sample1-"))),
        "{:?}",
        faces.iter().map(|f| &f.label).collect::<Vec<_>>()
    );

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert!(line["timestamp"].is_u64() || line["timestamp"].is_null());
        let faces = line["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 3);
        for f in faces {
            assert!(
                f["x"].is_u64()
                    && f["width"].is_u64()
                    && f["label"].is_string()
                    && f["distance"].is_f64()
            );
        }
    }
    assert!(lines[0]["faces"][0]["label"]
        .as_str()
        .unwrap()
        .starts_with("sample1-"));
    assert!(!lines[2]["faces"][0]["label"]
        .as_str()
        .unwrap()
        .starts_with("sample1-"));
}

#[test]
fn element_messages_list_the_faces() {
    let enrolled = enroll("messages");
    let messages = common::run_pipeline(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! facedetect model-location={} landmark-model-location={} ! \
         facenet model-location={} inference-region=roi-list ! faceidentify gallery={} post-messages=true ! fakesink",
        common::sample_photo("sample2.jpg").display(),
        common::model("faceapi_ssd_mobilenetv1.onnx"),
        common::model("faceapi_landmark68.onnx"),
        common::model("faceapi_resnet128.onnx"),
        enrolled.gallery.display()
    ));
    assert!(
        common::errors(&messages).is_empty(),
        "{:?}",
        common::errors(&messages)
    );
    let s = messages
        .iter()
        .find_map(|m| m.structure().filter(|s| s.name() == "faceidentify"))
        .expect("a faceidentify message");
    let faces = s.get::<gst::List>("faces").unwrap();
    assert_eq!(faces.len(), 3);
    for f in faces.iter() {
        let f = f.get::<gst::Structure>().unwrap();
        assert!(f.get::<String>("label").unwrap().starts_with("sample2-"));
        assert!(f.get::<f64>("distance").unwrap() < 0.6);
        assert!(f.get::<u32>("width").unwrap() > 50);
    }
}
