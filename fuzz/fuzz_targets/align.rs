//! Face alignment and detector post-processing over random boxes, scores and landmark
//! positions (five points, 68 points, raw landmark-network outputs, non-finite values
//! included), ending in an aligned crop through `Preprocessor::process_affine`.
//!
//! Invariants: `face_transform` gives a finite transform or `None`; `margin_rect` lies
//! inside the frame; `template_fit_error` is finite and >= 0 when it is `Some`; SSD
//! post-processing keeps at most `max_results` boxes, each with a positive size inside the
//! frame and a score above the threshold; the crop of an aligned face is Err or a finite
//! tensor; nothing panics.
#![no_main]

use arbitrary::Arbitrary;
use fuzz_support::{affine_work, all_finite, check_build, Rng, MAX_AFFINE_WORK};
use gstfacenet::align::{
    face_transform, margin_rect, template_fit_error, Alignment, FaceRegion, FivePoints,
    SixtyEightPoints,
};
use gstfacenet::detection::{
    five_of_68, five_points_from_68, five_points_from_68_mirrored, iou, landmark_region, points68,
    ssd_detections, Detection, NmsParams, NmsScratch,
};
use gstfacenet::preprocess::{Frame, PixelFormat, PreprocessConfig, Preprocessor, SourceRect};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    frame_w: u16,
    frame_h: u16,
    out: u8,
    alignment: u8,
    margin: f64,
    fallback_margin: f64,
    params: (f32, f32, u8, f64),
    /// SSD outputs: boxes (ymin, xmin, ymax, xmax relative to the padded square), scores.
    ssd: Vec<([f32; 4], f32)>,
    faces: Vec<FaceGen>,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Coord {
    /// Any f64 (non-finite included).
    Any(f64),
    /// Plausible: 1/16 pixels.
    Pixels(i32),
}

impl Coord {
    fn get(&self) -> f64 {
        match *self {
            Coord::Any(v) => v,
            Coord::Pixels(v) => f64::from(v) / 16.0,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct FaceGen {
    bbox: [Coord; 4],
    landmarks: Option<[[Coord; 2]; 5]>,
    /// Raw 68-point network output (x, y pairs relative to the landmark region),
    /// repeated to 136 values; `mirrored` as the element's flip test does.
    raw68: Option<Vec<f32>>,
    mirrored: bool,
    use68: bool,
}

fn finite_transform(t: &gstfacenet::preprocess::AffineTransform) -> bool {
    [t.a, t.b, t.c, t.d, t.e, t.f].iter().all(|v| v.is_finite())
}

fuzz_target!(|input: Input| {
    check_build();
    let (fw, fh) = (
        usize::from(input.frame_w % 1024) + 1,
        usize::from(input.frame_h % 1024) + 1,
    );
    let out = usize::from(input.out % 160) + 1;
    let alignment = match input.alignment % 4 {
        0 => Alignment::DlibChip,
        1 => Alignment::ArcFace,
        2 => Alignment::Margin(input.margin),
        _ => Alignment::guess_for_input(out, out, input.margin),
    };
    let _ = alignment.template(out, out);

    // Detector post-processing.
    let boxes: Vec<f32> = input.ssd.iter().flat_map(|(b, _)| *b).collect();
    let scores: Vec<f32> = input.ssd.iter().map(|(_, s)| *s).collect();
    let (min_confidence, iou_threshold, max_results, min_size) = input.params;
    let params = NmsParams {
        min_confidence,
        iou_threshold,
        max_results: usize::from(max_results),
        min_size,
    };
    let mut scratch = NmsScratch::default();
    let mut dets = Vec::new();
    ssd_detections(&boxes, &scores, fw, fh, &params, &mut scratch, &mut dets);
    assert!(dets.len() <= params.max_results);
    for d in &dets {
        assert!(
            d.width > 0.0 && d.height > 0.0,
            "detection with an empty or NaN size: {d:?}"
        );
        assert!(d.x >= 0.0 && d.y >= 0.0);
        assert!(d.x + d.width <= fw as f64 + 1e-9 && d.y + d.height <= fh as f64 + 1e-9);
        assert!(d.confidence > min_confidence);
    }
    for pair in boxes.chunks_exact(8) {
        let v = iou(&pair[..4], &pair[4..]);
        let all = pair.iter().all(|v| v.is_finite());
        if all && v.is_finite() {
            assert!((0.0..=1.0 + 1e-5).contains(&v), "iou {v} of {pair:?}");
        }
    }

    // Frame for the crops.
    let mut rng = Rng::new(input.seed);
    let mut data = vec![0u8; fw * fh * 3];
    rng.fill(&mut data, input.seed as u8);
    let frame = Frame::packed(PixelFormat::Rgb, fw, fh, &data, fw * 3);
    let mut pre = Preprocessor::new(PreprocessConfig::new(out, out)).unwrap();
    let mut tensor = vec![0.0f32; 3 * out * out];

    let mut faces: Vec<FaceRegion> = dets
        .iter()
        .take(2)
        .map(|d| FaceRegion {
            x: d.x,
            y: d.y,
            width: d.width,
            height: d.height,
            landmarks: None,
            landmarks68: None,
        })
        .collect();
    for f in input.faces.iter().take(3) {
        let [x, y, w, h] = [&f.bbox[0], &f.bbox[1], &f.bbox[2], &f.bbox[3]].map(Coord::get);
        let mut face = FaceRegion {
            x,
            y,
            width: w,
            height: h,
            landmarks: f
                .landmarks
                .as_ref()
                .map(|l| -> FivePoints { std::array::from_fn(|i| [l[i][0].get(), l[i][1].get()]) }),
            landmarks68: None,
        };
        if let Some(raw) = f.raw68.as_ref().filter(|r| !r.is_empty()) {
            let raw: Vec<f32> = raw.iter().copied().cycle().take(136).collect();
            let det = Detection {
                x,
                y,
                width: w,
                height: h,
                confidence: 1.0,
                landmarks: None,
                landmarks68: None,
            };
            let region = landmark_region(&det);
            let five = if f.mirrored {
                five_points_from_68_mirrored(&raw, &region)
            } else {
                five_points_from_68(&raw, &region)
            };
            let p68: Option<SixtyEightPoints> = points68(&raw, &region, f.mirrored);
            if let Some(p) = &p68 {
                let _ = five_of_68(p);
            }
            // Finite raw values and a finite region give finite points.
            let region_finite = [region.x, region.y, region.width, region.height]
                .iter()
                .all(|v| v.is_finite());
            if region_finite && raw.iter().all(|v| v.is_finite()) {
                let five = five.expect("finite landmarks refused");
                if five.iter().flatten().all(|v| v.is_finite()) {
                    if let Some(e) = template_fit_error(&five) {
                        assert!(e.is_finite() && e >= 0.0, "template_fit_error {e}");
                    }
                }
            }
            if five.is_some() {
                face.landmarks = five;
            }
            if f.use68 {
                face.landmarks68 = p68;
            }
        }
        if let Some(l) = &face.landmarks {
            if let Some(e) = template_fit_error(l) {
                assert!(e.is_finite() && e >= 0.0, "template_fit_error {e}");
            }
        }
        faces.push(face);
    }

    for face in &faces {
        if let Some(r) = margin_rect(face, input.margin, fw, fh) {
            assert!(r.width > 0.0 && r.height > 0.0);
            assert!(r.x >= 0.0 && r.y >= 0.0);
            assert!(r.x + r.width <= fw as f64 + 1e-6 && r.y + r.height <= fh as f64 + 1e-6);
            let _ = SourceRect::validate(&r);
        }
        let t = face_transform(alignment, face, fw, fh, out, out, input.fallback_margin);
        if let Some(t) = t {
            assert!(
                finite_transform(&t),
                "face_transform gave {t:?} for {face:?}"
            );
            if affine_work(&t, out, out) > MAX_AFFINE_WORK {
                continue;
            }
            match pre.process_affine(&frame, &t, &mut tensor) {
                Ok(()) => assert!(all_finite(&tensor), "non-finite crop for {t:?}"),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
});
