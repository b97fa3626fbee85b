//! Faces in video: `facedetect` on real photos, `facenet inference-region=roi-list`
//! against the full-frame path, batching, and frames without faces.

mod common;

use gst::prelude::*;
use gst_check::Harness;
use gstfacenet::meta::{face_detection, FaceDetectionParam, ROI_EMBEDDING_PARAM};
use gstfacenet::EmbeddingMeta;

use common::image::{decode, Image};

#[derive(Debug)]
struct Face {
    rect: (u32, u32, u32, u32),
    detection: Option<FaceDetectionParam>,
    embedding: Option<EmbeddingMeta>,
}

fn faces_of(buffer: &gst::BufferRef) -> Vec<Face> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|roi| roi.roi_type() == face_detection::ROI_TYPE)
        .map(|roi| Face {
            rect: roi.rect(),
            detection: roi
                .param(face_detection::NAME)
                .map(|p| FaceDetectionParam::from_structure(p).unwrap()),
            embedding: roi
                .param(ROI_EMBEDDING_PARAM)
                .map(|p| EmbeddingMeta::from_structure(p).unwrap()),
        })
        .collect()
}

/// `facedetect` (with landmarks) then `facenet` in region mode, as one Harness.
fn face_pipeline(facenet_props: &str) -> Harness {
    common::init();
    let mut h = Harness::new_parse(&format!(
        "facedetect model-location={} landmark-model-location={} ! facenet name=fn model-location={} inference-region=roi-list {facenet_props}",
        common::model("faceapi_ssd_mobilenetv1.onnx"),
        common::model("faceapi_landmark68.onnx"),
        common::model("faceapi_resnet128.onnx"),
    ));
    h.play();
    h
}

fn distance(a: &EmbeddingMeta, b: &EmbeddingMeta) -> f32 {
    a.squared_distance(b).unwrap().sqrt()
}

#[test]
fn detector_finds_the_faces_in_the_sample_photos() {
    common::init();
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::repo_file("models/faceapi/detector_expected.json")).unwrap(),
    )
    .unwrap();
    // Counts checked by eye on the photos (models/faceapi/DETECTOR.md): 3, 3, 3, 4, 5, 4.
    let by_eye = [3usize, 3, 3, 4, 5, 4];
    for (i, want) in by_eye.iter().enumerate() {
        let name = format!("sample{}", i + 1);
        let image = decode(&common::sample_photo(&format!("{name}.jpg")));
        let mut h = face_pipeline("");
        h.set_src_caps_str(&image.caps());
        let out = h.push_and_pull(image.buffer()).unwrap();
        let faces = faces_of(&out);
        assert_eq!(faces.len(), *want, "{name}: {faces:?}");
        let reference = expected["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|im| im["name"] == name.as_str())
            .unwrap();
        let ref_boxes = reference["faces"].as_array().unwrap();
        assert_eq!(ref_boxes.len(), *want, "face-api's count for {name}");
        for face in &faces {
            let (x, y, w, hh) = face.rect;
            let det = face.detection.as_ref().expect("face-detection param");
            assert!(det.confidence > 0.5 && det.confidence <= 1.0);
            assert!(det.fresh);
            // Each face matches one of face-api's boxes (same network, another resize kernel).
            let best_iou = ref_boxes
                .iter()
                .map(|r| {
                    let b = &r["box"];
                    let (rx, ry, rw, rh) = (
                        b["x"].as_f64().unwrap(),
                        b["y"].as_f64().unwrap(),
                        b["width"].as_f64().unwrap(),
                        b["height"].as_f64().unwrap(),
                    );
                    let ix = ((x + w) as f64).min(rx + rw) - (x as f64).max(rx);
                    let iy = ((y + hh) as f64).min(ry + rh) - (y as f64).max(ry);
                    let inter = ix.max(0.0) * iy.max(0.0);
                    inter / ((w * hh) as f64 + rw * rh - inter)
                })
                .fold(0.0, f64::max);
            assert!(
                best_iou > 0.85,
                "{name}: box {:?} matches face-api's at IoU {best_iou}",
                face.rect
            );
            // Landmarks fall inside their boxes, in the documented order.
            let lm = det.landmarks.expect("landmarks");
            for [px, py] in lm {
                assert!(
                    px >= x as f32 - 2.0
                        && px <= (x + w) as f32 + 2.0
                        && py >= y as f32 - 2.0
                        && py <= (y + hh) as f32 + 2.0,
                    "{name}: landmark ({px}, {py}) outside {:?}",
                    face.rect
                );
            }
            assert!(lm[0][0] < lm[1][0], "left eye left of right eye");
            assert!(lm[3][0] < lm[4][0], "left mouth corner left of right one");
            assert!(lm[2][1] > lm[0][1].min(lm[1][1]), "nose below the eyes");
            let emb = face.embedding.as_ref().expect("facenet-embedding param");
            assert_eq!(emb.dimension(), 128);
        }
    }
}

#[test]
fn n_faces_are_one_batched_run() {
    let image = decode(&common::sample_photo("sample5.jpg"));
    let mut h = face_pipeline("");
    h.set_src_caps_str(&image.caps());
    let out = h.push_and_pull(image.buffer()).unwrap();
    let faces = faces_of(&out);
    assert_eq!(faces.len(), 5);
    assert!(faces.iter().all(|f| f.embedding.is_some()));
    let facenet = h.find_element("facenet").unwrap();
    assert_eq!(
        facenet.property::<u64>("model-runs"),
        1,
        "5 faces, one model run"
    );
    // Different people, different embeddings.
    let e: Vec<&EmbeddingMeta> = faces
        .iter()
        .map(|f| f.embedding.as_ref().unwrap())
        .collect();
    for i in 0..e.len() {
        for j in i + 1..e.len() {
            assert!(distance(e[i], e[j]) > 0.3);
        }
    }
    // No buffer-level embedding in region mode.
    assert!(EmbeddingMeta::from_buffer(&out).is_none());
}

/// `n-threads` spreads a frame's faces over helper threads; each has its own scratch
/// space, so the tensors, and so the embeddings, are the same bits as with one thread.
#[test]
fn faces_prepared_on_several_threads_embed_identically() {
    common::init();
    let image = decode(&common::sample_photo("sample5.jpg"));
    let embeddings = |props: &str| {
        let mut h = face_pipeline(props);
        h.set_src_caps_str(&image.caps());
        let facenet = h.find_element("facenet").unwrap();
        let mut frames = Vec::new();
        // Two frames: the second reuses the helpers the first created.
        for _ in 0..2 {
            let out = h.push_and_pull(image.buffer()).unwrap();
            frames.push(
                faces_of(&out)
                    .into_iter()
                    .map(|f| (f.rect, f.embedding.expect("embedding").embedding))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            facenet.property::<u64>("model-runs"),
            2,
            "{props}: one run a frame"
        );
        if props.is_empty() {
            assert_eq!(facenet.property::<u32>("n-threads"), 1, "the default");
        }
        frames
    };
    let one = embeddings("");
    assert_eq!(one[0].len(), 5);
    assert_eq!(one[0], one[1]);
    for props in ["n-threads=3", "n-threads=0", "n-threads=16"] {
        assert_eq!(embeddings(props), one, "{props}");
    }
}

/// A region embedded in roi-list mode equals the full-frame embedding of the same crop
/// fed alone: with a transform that is an exact pixel translation the crop is the same
/// pixels, so only the region machinery differs.
#[test]
fn region_embedding_equals_full_frame_embedding_of_the_crop() {
    common::init();
    let photo = decode(&common::sample_photo("sample1.jpg"));
    // face-api's first face of sample1 is near (414, 355) 178x238: take a 150x150 square
    // around its centre (150 is the model's input).
    let crop = photo.crop(427, 399, 150, 150);

    let embed_full_frame = |img: &Image| {
        let element = gst::ElementFactory::make("facenet")
            .property("model-location", common::model("faceapi_resnet128.onnx"))
            .build()
            .unwrap();
        let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
        h.play();
        h.set_src_caps_str(&img.caps());
        EmbeddingMeta::from_buffer(&h.push_and_pull(img.buffer()).unwrap()).unwrap()
    };
    let alone = embed_full_frame(&crop);

    for (alignment, landmarks) in [("margin margin=0", None), ("dlib-chip", Some(()))] {
        let element = gst::ElementFactory::make("facenet")
            .property("model-location", common::model("faceapi_resnet128.onnx"))
            .property_from_str("inference-region", "roi-list")
            .build()
            .unwrap();
        for prop in alignment.split(' ') {
            let (k, v) = prop.split_once('=').unwrap_or(("alignment", prop));
            element.set_property_from_str(k, v);
        }
        let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
        h.play();
        h.set_src_caps_str(&photo.caps());
        let mut buffer = photo.buffer();
        {
            let b = buffer.get_mut().unwrap();
            let mut roi =
                gst_video::VideoRegionOfInterestMeta::add(b, "face", (427, 399, 150, 150));
            if landmarks.is_some() {
                // The dlib chip template shifted by the crop's origin: the alignment is then
                // the pure translation that cuts out the crop.
                let template = gstfacenet::align::Alignment::DlibChip
                    .template(150, 150)
                    .unwrap();
                let points = template.map(|[x, y]| [(x + 427.0) as f32, (y + 399.0) as f32]);
                roi.add_param(
                    FaceDetectionParam {
                        confidence: 1.0,
                        landmarks: Some(points),
                        landmarks68: None,
                        fresh: true,
                        detector: "test".into(),
                    }
                    .to_structure(),
                );
            }
        }
        let out = h.push_and_pull(buffer).unwrap();
        let faces = faces_of(&out);
        assert_eq!(faces.len(), 1);
        let region = faces[0].embedding.as_ref().unwrap();
        let diff = common::max_abs_diff(&region.embedding, &alone.embedding);
        println!("{alignment}: max abs diff {diff:.2e}");
        assert!(
            diff <= 1e-4,
            "{alignment}: region vs alone differ by {diff}"
        );
    }
}

#[test]
fn same_face_at_other_positions_and_scales() {
    let photo = decode(&common::sample_photo("sample1.jpg"));
    // The first face of sample1 with some context around it.
    let face = photo.crop(360, 300, 290, 350);
    let mut canvas = Image {
        width: 1280,
        height: 720,
        rgb: vec![96; 1280 * 720 * 3],
    };
    canvas.paste(&face, 40, 30);
    canvas.paste(&face.scaled(0.6), 600, 80);
    canvas.paste(&face.scaled(1.4).crop(0, 0, 406, 490), 860, 200);
    let mut h = face_pipeline("");
    h.set_src_caps_str(&canvas.caps());
    let out = h.push_and_pull(canvas.buffer()).unwrap();
    let faces = faces_of(&out);
    assert_eq!(faces.len(), 3, "{faces:?}");
    let e: Vec<&EmbeddingMeta> = faces
        .iter()
        .map(|f| f.embedding.as_ref().unwrap())
        .collect();
    let mut worst = 0.0f32;
    for i in 0..3 {
        for j in i + 1..3 {
            worst = worst.max(distance(e[i], e[j]));
        }
    }
    println!("same face at 3 positions/scales: largest distance {worst:.3}");
    // dlib's same-person threshold is 0.6; the same pixels moved and rescaled stay far below.
    assert!(worst < 0.25, "largest distance {worst}");
}

#[test]
fn frames_without_faces_carry_no_face_meta() {
    let mut h = face_pipeline("");
    for (i, (w, hh)) in [(640usize, 480usize), (320, 240)].iter().enumerate() {
        h.set_src_caps_str(&format!(
            "video/x-raw,format=RGB,width={w},height={hh},framerate=0/1"
        ));
        for frame in [vec![0u8; w * hh * 3], common::noise(w * hh * 3, i as u64)] {
            let img = Image {
                width: *w,
                height: *hh,
                rgb: frame,
            };
            let out = h.push_and_pull(img.buffer()).unwrap();
            assert!(faces_of(&out).is_empty());
            assert_eq!(
                out.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                    .count(),
                0
            );
        }
    }
    let facenet = h.find_element("facenet").unwrap();
    assert_eq!(
        facenet.property::<u64>("model-runs"),
        0,
        "no faces, no model runs"
    );
}

#[test]
fn inference_interval_carries_faces_marked_not_fresh() {
    common::init();
    let image = decode(&common::sample_photo("sample1.jpg"));
    let mut h = Harness::new_parse(&format!(
        "facedetect model-location={} inference-interval=3",
        common::model("faceapi_ssd_mobilenetv1.onnx")
    ));
    h.play();
    h.set_src_caps_str(&image.caps());
    let mut fresh = Vec::new();
    for _ in 0..6 {
        let out = h.push_and_pull(image.buffer()).unwrap();
        let faces = faces_of(&out);
        assert_eq!(faces.len(), 3);
        fresh.push(faces[0].detection.as_ref().unwrap().fresh);
    }
    assert_eq!(fresh, [true, false, false, true, false, false]);
}

#[test]
fn fixed_batch_models_run_face_by_face() {
    common::init();
    // The fixture model has a fixed batch of 1: three faces are three runs.
    let element = gst::ElementFactory::make("facenet")
        .property("model-location", common::fixture("facenet_nchw.onnx"))
        .property_from_str("inference-region", "roi-list")
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=640,height=480,framerate=0/1");
    let image = Image {
        width: 640,
        height: 480,
        rgb: common::noise(640 * 480 * 3, 5),
    };
    let mut buffer = image.buffer();
    for (i, x) in [10u32, 200, 400].iter().enumerate() {
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(
            buffer.get_mut().unwrap(),
            "face",
            (*x, 50, 120, 150),
        );
        roi.set_id(i as i32);
    }
    // A region of another class is left alone.
    gst_video::VideoRegionOfInterestMeta::add(
        buffer.get_mut().unwrap(),
        "person",
        (0, 0, 640, 480),
    );
    let out = h.push_and_pull(buffer).unwrap();
    let embedded: Vec<_> = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|r| {
            (
                r.roi_type().to_string(),
                r.param(ROI_EMBEDDING_PARAM).is_some(),
            )
        })
        .collect();
    assert_eq!(
        embedded,
        vec![
            ("face".to_string(), true),
            ("face".to_string(), true),
            ("face".to_string(), true),
            ("person".to_string(), false)
        ]
    );
    assert_eq!(element.property::<u64>("model-runs"), 3);
}
