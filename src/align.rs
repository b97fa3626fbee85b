//! Preparing a detected face for a recognition model's own training convention: the
//! geometric transform from the model's input pixels to the source frame.
//!
//! * [`Alignment::DlibChip`]: a similarity transform (rotation, uniform scale,
//!   translation) from the five landmarks onto dlib's face chip, the 150x150 crop dlib's
//!   ResNet (and face-api's port of it) was trained on: `get_face_chip_details(shape, 150,
//!   0.25)`. The five template points are dlib's mean face shape (eye centres = the mean
//!   of iBUG points 36-41 and 42-47, nose tip 30, mouth corners 48 and 54) placed with
//!   dlib's 0.25 padding: `chip = (0.25 + mean) / 1.5 * size`.
//! * [`Alignment::ArcFace`]: the same onto InsightFace's 112x112 five-point template
//!   (ArcFace and most 112x112 512-d models).
//! * [`Alignment::Margin`]: FaceNet's original crop (Schroff et al.; Sandberg's
//!   `align_dataset_mtcnn.py`): the detection box grown by `margin` pixels in total (half
//!   on each side), clipped to the frame, resized to the input. No landmarks needed.
//!
//! Templates are defined for their native size and scaled to the model's input size.
//! Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right
//! mouth corner, "left" meaning the image's left (the subject's right eye).

use crate::preprocess::{AffineTransform, SourceRect};

/// Five landmarks in frame pixels, in the documented order.
pub type FivePoints = [[f64; 2]; 5];
/// The 68 iBUG 300-W landmarks in frame pixels.
pub type SixtyEightPoints = [[f64; 2]; 68];

/// dlib's mean face shape for iBUG points 17-67 (`get_face_chip_details`), x then y.
const DLIB_MEAN_FACE_68_X: [f64; 51] = [
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
];
const DLIB_MEAN_FACE_68_Y: [f64; 51] = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345,
    0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852,
    0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388,
    0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746,
    0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];

/// The points dlib fits its chip with: 17-67 without the eyebrows (17-26) and the lower
/// lip (55-59, 65-67), as `get_face_chip_details` does.
fn dlib_chip_points() -> impl Iterator<Item = usize> {
    (27..68).filter(|i| !((55..=59).contains(i) || (65..=67).contains(i)))
}

/// dlib's mean face shape (normalized 0..1 over the face; from dlib's
/// `get_face_chip_details`) at the five points we use.
const DLIB_MEAN_FACE: FivePoints = {
    // Means of iBUG 36-41 and 42-47 of dlib's table, nose tip 30, mouth corners 48 and 54.
    [
        [
            (0.121737 + 0.187122 + 0.265825 + 0.334606 + 0.260918 + 0.182743) / 6.0,
            (0.216423 + 0.178758 + 0.179852 + 0.231733 + 0.245099 + 0.244077) / 6.0,
        ],
        [
            (0.645647 + 0.714428 + 0.793132 + 0.858516 + 0.79751 + 0.719335) / 6.0,
            (0.231733 + 0.179852 + 0.178758 + 0.216423 + 0.244077 + 0.245099) / 6.0,
        ],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ]
};
/// dlib's recognition example and face-api's model use chips of 150 px with 0.25 padding.
const DLIB_CHIP_SIZE: f64 = 150.0;
const DLIB_CHIP_PADDING: f64 = 0.25;

/// InsightFace's five-point template for 112x112 ArcFace crops.
const ARCFACE_112: FivePoints = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];
const ARCFACE_SIZE: f64 = 112.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Alignment {
    DlibChip,
    ArcFace,
    /// Total margin in source pixels added around the box.
    Margin(f64),
}

impl Alignment {
    /// Parses a model's `gst-facenet.alignment` metadata value.
    pub fn from_hint(value: &str, margin: f64) -> Option<Alignment> {
        match value.trim().to_ascii_lowercase().as_str() {
            "dlib" | "dlib-chip" => Some(Alignment::DlibChip),
            "arcface" => Some(Alignment::ArcFace),
            "margin" | "facenet" => Some(Alignment::Margin(margin)),
            _ => None,
        }
    }

    /// The convention a model of this input size most likely expects, when it does not
    /// say: dlib's chip at 150, ArcFace's template at 112, FaceNet's margin crop else.
    pub fn guess_for_input(width: usize, height: usize, margin: f64) -> Alignment {
        match (width, height) {
            (150, 150) => Alignment::DlibChip,
            (112, 112) => Alignment::ArcFace,
            _ => Alignment::Margin(margin),
        }
    }

    /// The template for an output of `width` x `height`, `None` for the margin crop.
    pub fn template(&self, width: usize, height: usize) -> Option<FivePoints> {
        let (base, native) = match self {
            Alignment::DlibChip => (dlib_chip_native(), DLIB_CHIP_SIZE),
            Alignment::ArcFace => (ARCFACE_112, ARCFACE_SIZE),
            Alignment::Margin(_) => return None,
        };
        let (sx, sy) = (width as f64 / native, height as f64 / native);
        Some(base.map(|[x, y]| [x * sx, y * sy]))
    }
}

fn dlib_chip_native() -> FivePoints {
    DLIB_MEAN_FACE.map(|[x, y]| {
        [
            (DLIB_CHIP_PADDING + x) / (1.0 + 2.0 * DLIB_CHIP_PADDING) * DLIB_CHIP_SIZE,
            (DLIB_CHIP_PADDING + y) / (1.0 + 2.0 * DLIB_CHIP_PADDING) * DLIB_CHIP_SIZE,
        ]
    })
}

/// A face as a detector reports it: box in frame pixels and, when known, landmarks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceRegion {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub landmarks: Option<FivePoints>,
    /// All 68 points when the detector gives them: dlib-chip alignment then fits them
    /// exactly as dlib does instead of five.
    pub landmarks68: Option<SixtyEightPoints>,
}

/// Largest source-pixels-per-output-pixel scale of a landmark warp. The anti-aliasing
/// footprint of a rotated warp grows with the square of the scale (about (2.8·scale)² taps
/// per output pixel): past 32 (a face over ~3600 px for a 112 px model) one face would cost
/// seconds, so such faces get no embedding rather than stalling the stream.
pub const MAX_WARP_SCALE: f64 = 32.0;

/// A landmark warp worth running: finite, at most [`MAX_WARP_SCALE`] source pixels per
/// output pixel, and mapping the output onto a region that overlaps the frame (landmarks
/// far outside it, e.g. from a broken upstream detector, would give a black crop).
fn plausible_warp(
    t: &AffineTransform,
    out_w: usize,
    out_h: usize,
    frame_w: usize,
    frame_h: usize,
) -> bool {
    let scale = t.a.hypot(t.d).max(t.b.hypot(t.e));
    if !(scale.is_finite() && scale <= MAX_WARP_SCALE) {
        return false;
    }
    let (ow, oh) = (out_w as f64, out_h as f64);
    let corners = [[0.0, 0.0], [ow, 0.0], [0.0, oh], [ow, oh]].map(|p| t.apply(p));
    let (x0, x1) = corners.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p[0]), hi.max(p[0]))
    });
    let (y0, y1) = corners.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p[1]), hi.max(p[1]))
    });
    x1 > 0.0 && y1 > 0.0 && x0 < frame_w as f64 && y0 < frame_h as f64
}

/// The transform from model-input pixels to frame pixels that prepares `face` for a model
/// of `out_w` x `out_h` under `alignment`. Landmark alignments fall back to the margin
/// crop (with `fallback_margin`) for faces without landmarks. `None` for a degenerate
/// face (empty box, coincident landmarks) and for a landmark warp that is not
/// plausible (see [`MAX_WARP_SCALE`]).
pub fn face_transform(
    alignment: Alignment,
    face: &FaceRegion,
    frame_w: usize,
    frame_h: usize,
    out_w: usize,
    out_h: usize,
    fallback_margin: f64,
) -> Option<AffineTransform> {
    if let (Alignment::DlibChip, Some(points)) = (alignment, &face.landmarks68) {
        let (sx, sy) = (out_w as f64, out_h as f64);
        let chip = |v: f64| (DLIB_CHIP_PADDING + v) / (1.0 + 2.0 * DLIB_CHIP_PADDING);
        let (from, to): (Vec<[f64; 2]>, Vec<[f64; 2]>) = dlib_chip_points()
            .map(|i| {
                (
                    [
                        chip(DLIB_MEAN_FACE_68_X[i - 17]) * sx,
                        chip(DLIB_MEAN_FACE_68_Y[i - 17]) * sy,
                    ],
                    points[i],
                )
            })
            .unzip();
        return AffineTransform::similarity_from_points(&from, &to)
            .filter(|t| plausible_warp(t, out_w, out_h, frame_w, frame_h));
    }
    if let (Some(template), Some(points)) = (alignment.template(out_w, out_h), face.landmarks) {
        return AffineTransform::similarity_from_points(&template, &points)
            .filter(|t| plausible_warp(t, out_w, out_h, frame_w, frame_h));
    }
    let margin = match alignment {
        Alignment::Margin(m) => m,
        _ => fallback_margin,
    };
    let rect = margin_rect(face, margin, frame_w, frame_h)?;
    Some(AffineTransform::from_rect(rect, out_w, out_h))
}

/// How far five landmarks are from the shape of a face: the RMS distance, in pixels of
/// dlib's 150x150 chip, between the dlib template and the landmarks mapped into the chip
/// by their best similarity fit. A few pixels for a good detection; tens of pixels when a
/// landmark network collapsed the points (e.g. an eye under hair). `None` if degenerate.
pub fn template_fit_error(points: &FivePoints) -> Option<f64> {
    let template = Alignment::DlibChip.template(150, 150)?;
    let to_frame = AffineTransform::similarity_from_points(&template, points)?;
    let to_chip = to_frame.inverse()?;
    let sum: f64 = points
        .iter()
        .zip(&template)
        .map(|(p, t)| {
            let [x, y] = to_chip.apply(*p);
            (x - t[0]).powi(2) + (y - t[1]).powi(2)
        })
        .sum();
    Some((sum / 5.0).sqrt())
}

/// FaceNet's crop: the box grown by `margin / 2` on each side, clipped to the frame.
pub fn margin_rect(
    face: &FaceRegion,
    margin: f64,
    frame_w: usize,
    frame_h: usize,
) -> Option<SourceRect> {
    let x0 = (face.x - margin / 2.0).max(0.0);
    let y0 = (face.y - margin / 2.0).max(0.0);
    let x1 = (face.x + face.width + margin / 2.0).min(frame_w as f64);
    let y1 = (face.y + face.height + margin / 2.0).min(frame_h as f64);
    (x1 > x0 && y1 > y0).then(|| SourceRect::new(x0, y0, x1 - x0, y1 - y0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_warps_are_refused() {
        let face = |landmarks: FivePoints| FaceRegion {
            x: 0.0,
            y: 0.0,
            width: 2.0,
            height: 2.0,
            landmarks: Some(landmarks),
            landmarks68: None,
        };
        // The fuzzer's case: one landmark far outside a 2x6656 frame, the others at 0.
        let far = face([
            [36880.0, 0.0],
            [0.0, 0.0],
            [0.0, 0.0],
            [0.0, 0.0],
            [0.0, 0.0],
        ]);
        assert!(face_transform(Alignment::ArcFace, &far, 6656, 2, 112, 112, 0.0).is_none());
        // A face entirely outside the frame.
        let outside = face([
            [5038.3, 5051.7],
            [5073.5, 5051.5],
            [5056.0, 5071.7],
            [5041.5, 5092.4],
            [5070.7, 5092.2],
        ]);
        assert!(face_transform(Alignment::ArcFace, &outside, 640, 480, 112, 112, 0.0).is_none());
        // The same face inside the frame is fine.
        let inside = face([
            [38.3, 51.7],
            [73.5, 51.5],
            [56.0, 71.7],
            [41.5, 92.4],
            [70.7, 92.2],
        ]);
        assert!(face_transform(Alignment::ArcFace, &inside, 640, 480, 112, 112, 0.0).is_some());
    }

    #[test]
    fn dlib_template_is_a_plausible_chip() {
        let t = Alignment::DlibChip.template(150, 150).unwrap();
        // Eyes level and symmetric about the centre; mouth below the nose below the eyes.
        assert!((t[0][1] - t[1][1]).abs() < 1.0);
        assert!(((t[0][0] + t[1][0]) / 2.0 - 75.0).abs() < 1.5);
        assert!(t[2][1] > t[0][1] && t[3][1] > t[2][1]);
        // dlib's eye distance in a 150 chip is about 51 px (0.5 of the face / 1.5 * 150).
        let eye_distance = t[1][0] - t[0][0];
        assert!((eye_distance - 51.5).abs() < 2.0, "{eye_distance}");
        // Scaled templates scale.
        let t300 = Alignment::DlibChip.template(300, 300).unwrap();
        assert!((t300[2][0] - 2.0 * t[2][0]).abs() < 1e-9);
    }

    #[test]
    fn landmarks_on_the_template_give_the_identity_scaled() {
        let template = Alignment::ArcFace.template(112, 112).unwrap();
        // A face whose landmarks are the template doubled and shifted maps back onto it.
        let face = FaceRegion {
            x: 0.0,
            y: 0.0,
            width: 224.0,
            height: 224.0,
            landmarks: Some(template.map(|[x, y]| [2.0 * x + 10.0, 2.0 * y + 20.0])),
            landmarks68: None,
        };
        let t = face_transform(Alignment::ArcFace, &face, 640, 480, 112, 112, 32.0).unwrap();
        for [x, y] in template {
            let [sx, sy] = t.apply([x, y]);
            assert!((sx - (2.0 * x + 10.0)).abs() < 1e-9 && (sy - (2.0 * y + 20.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn margin_crop_and_fallback() {
        let face = FaceRegion {
            x: 100.0,
            y: 50.0,
            width: 80.0,
            height: 100.0,
            landmarks: None,
            landmarks68: None,
        };
        let r = margin_rect(&face, 32.0, 640, 480).unwrap();
        assert_eq!((r.x, r.y, r.width, r.height), (84.0, 34.0, 112.0, 132.0));
        // Clipped at the frame's edges.
        let edge = FaceRegion {
            x: 5.0,
            y: 5.0,
            width: 50.0,
            height: 50.0,
            landmarks: None,
            landmarks68: None,
        };
        let r = margin_rect(&edge, 32.0, 640, 480).unwrap();
        assert_eq!((r.x, r.y), (0.0, 0.0));
        // A landmark alignment without landmarks uses the margin crop.
        let t = face_transform(Alignment::DlibChip, &face, 640, 480, 150, 150, 32.0).unwrap();
        let [x, y] = t.apply([0.0, 0.0]);
        assert!((x - 84.0).abs() < 1e-9 && (y - 34.0).abs() < 1e-9);
        assert!(margin_rect(&FaceRegion { x: 700.0, ..face }, 0.0, 640, 480).is_none());
    }

    #[test]
    fn fit_error_tells_good_landmarks_from_collapsed_ones() {
        let template = Alignment::DlibChip.template(150, 150).unwrap();
        let good = template.map(|[x, y]| [3.0 * x + 100.0, 3.0 * y + 50.0]);
        assert!(template_fit_error(&good).unwrap() < 1e-9);
        // All five points bunched around one eye.
        let collapsed = [
            [300.0, 200.0],
            [330.0, 205.0],
            [320.0, 210.0],
            [305.0, 215.0],
            [325.0, 214.0],
        ];
        let e = template_fit_error(&collapsed).unwrap();
        assert!(e > 15.0, "{e}");
    }

    #[test]
    fn dlib_68_point_fit_reproduces_the_mean_face() {
        // Landmarks on dlib's mean face, scaled by 2 and shifted: the chip transform maps
        // the chip back onto them exactly (what dlib's get_face_chip_details computes).
        let mut points = [[0.0; 2]; 68];
        for i in 17..68 {
            points[i] = [
                2.0 * (0.25 + DLIB_MEAN_FACE_68_X[i - 17]) / 1.5 * 150.0 + 30.0,
                2.0 * (0.25 + DLIB_MEAN_FACE_68_Y[i - 17]) / 1.5 * 150.0 + 40.0,
            ];
        }
        let face = FaceRegion {
            x: 0.0,
            y: 0.0,
            width: 300.0,
            height: 300.0,
            landmarks: None,
            landmarks68: Some(points),
        };
        let t = face_transform(Alignment::DlibChip, &face, 640, 480, 150, 150, 32.0).unwrap();
        let [x, y] = t.apply([0.0, 0.0]);
        assert!(
            (x - 30.0).abs() < 1e-6 && (y - 40.0).abs() < 1e-6,
            "{x} {y}"
        );
        let [x, y] = t.apply([150.0, 150.0]);
        assert!(
            (x - 330.0).abs() < 1e-6 && (y - 340.0).abs() < 1e-6,
            "{x} {y}"
        );
    }

    #[test]
    fn hints_and_guesses() {
        assert_eq!(
            Alignment::from_hint("dlib-chip", 32.0),
            Some(Alignment::DlibChip)
        );
        assert_eq!(
            Alignment::from_hint("ArcFace", 32.0),
            Some(Alignment::ArcFace)
        );
        assert_eq!(
            Alignment::from_hint("margin", 10.0),
            Some(Alignment::Margin(10.0))
        );
        assert_eq!(Alignment::from_hint("other", 10.0), None);
        assert_eq!(
            Alignment::guess_for_input(150, 150, 32.0),
            Alignment::DlibChip
        );
        assert_eq!(
            Alignment::guess_for_input(112, 112, 32.0),
            Alignment::ArcFace
        );
        assert_eq!(
            Alignment::guess_for_input(160, 160, 32.0),
            Alignment::Margin(32.0)
        );
    }
}
