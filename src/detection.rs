//! Face-detector post-processing, without GStreamer types: SSD outputs to face boxes
//! (face-api's greedy non-maximum suppression), and landmark-network outputs to the five
//! alignment points.
//!
//! The SSD (face-api's `ssd_mobilenetv1`, see models/faceapi/DETECTOR.md) sees the frame
//! zero-padded at the bottom/right to a square of side `S = max(W, H)` and scaled to its
//! input; its boxes are `(ymin, xmin, ymax, xmax)` relative to that square.

use crate::align::{FivePoints, SixtyEightPoints};
use crate::preprocess::SourceRect;

/// A detected face in frame pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub confidence: f32,
    pub landmarks: Option<FivePoints>,
    /// All 68 iBUG points, when a 68-point landmark model ran.
    pub landmarks68: Option<SixtyEightPoints>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NmsParams {
    /// Candidates need a score strictly above this.
    pub min_confidence: f32,
    /// A candidate overlapping a kept box by more than this IoU is dropped.
    pub iou_threshold: f32,
    pub max_results: usize,
    /// Boxes whose smaller side is below this many frame pixels are dropped.
    pub min_size: f64,
}

/// Intersection over union of two `(ymin, xmin, ymax, xmax)` boxes, face-api's way:
/// coordinates sorted per axis, empty boxes overlap nothing.
pub fn iou(a: &[f32], b: &[f32]) -> f32 {
    let sorted = |v: &[f32]| {
        (
            v[0].min(v[2]),
            v[1].min(v[3]),
            v[0].max(v[2]),
            v[1].max(v[3]),
        )
    };
    let (ay0, ax0, ay1, ax1) = sorted(a);
    let (by0, bx0, by1, bx1) = sorted(b);
    let area_a = (ay1 - ay0) * (ax1 - ax0);
    let area_b = (by1 - by0) * (bx1 - bx0);
    if area_a <= 0.0 || area_b <= 0.0 {
        return 0.0;
    }
    let inter = (ay1.min(by1) - ay0.max(by0)).max(0.0) * (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
    inter / (area_a + area_b - inter)
}

/// Reusable buffers, so steady-state detection allocates nothing.
#[derive(Debug, Default)]
pub struct NmsScratch {
    candidates: Vec<usize>,
    kept: Vec<usize>,
}

/// Turns SSD outputs (`boxes`: K x 4, `scores`: K) into faces in pixels of a `frame_w` x
/// `frame_h` frame that was padded to a square of side `max(frame_w, frame_h)`. Results
/// are in descending score order, written to `out` (cleared first).
pub fn ssd_detections(
    boxes: &[f32],
    scores: &[f32],
    frame_w: usize,
    frame_h: usize,
    params: &NmsParams,
    scratch: &mut NmsScratch,
    out: &mut Vec<Detection>,
) {
    out.clear();
    let count = scores.len().min(boxes.len() / 4);
    scratch.candidates.clear();
    scratch
        .candidates
        .extend((0..count).filter(|&i| scores[i] > params.min_confidence));
    // Equal scores keep prior order, as face-api's (stable) sort does; an unstable sort
    // with the index as tie-break gives that order without the stable sort's allocation.
    scratch
        .candidates
        .sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    scratch.kept.clear();
    let side = frame_w.max(frame_h) as f64;
    for &i in &scratch.candidates {
        if out.len() >= params.max_results {
            break;
        }
        let b = &boxes[4 * i..4 * i + 4];
        if scratch
            .kept
            .iter()
            .any(|&k| iou(&boxes[4 * k..4 * k + 4], b) > params.iou_threshold)
        {
            continue;
        }
        scratch.kept.push(i);
        // Clamped to the frame: the padding at the bottom/right holds no face.
        let y0 = (f64::from(b[0].min(b[2])) * side).clamp(0.0, frame_h as f64);
        let x0 = (f64::from(b[1].min(b[3])) * side).clamp(0.0, frame_w as f64);
        let y1 = (f64::from(b[0].max(b[2])) * side).clamp(0.0, frame_h as f64);
        let x1 = (f64::from(b[1].max(b[3])) * side).clamp(0.0, frame_w as f64);
        let (w, h) = (x1 - x0, y1 - y0);
        // `!(.. > 0.0)`: a NaN coordinate (NaN survives `clamp`) drops the box too.
        if !(w > 0.0 && h > 0.0) || w.min(h) < params.min_size {
            continue;
        }
        out.push(Detection {
            x: x0,
            y: y0,
            width: w,
            height: h,
            confidence: scores[i],
            landmarks: None,
            landmarks68: None,
        });
    }
}

/// The square region the landmark network sees for a face: centred on the box, side the
/// box's larger side. (face-api zero-pads its box crop to a centred square instead; here
/// the frame's own pixels fill that margin.)
pub fn landmark_region(d: &Detection) -> SourceRect {
    let side = d.width.max(d.height).max(1.0);
    SourceRect::new(
        d.x + d.width / 2.0 - side / 2.0,
        d.y + d.height / 2.0 - side / 2.0,
        side,
        side,
    )
}

/// Five alignment points from face-api's 68 landmarks (x, y pairs relative to `region`):
/// eye centres (iBUG 36-41, 42-47), nose tip (30), mouth corners (48, 54).
pub fn five_points_from_68(raw: &[f32], region: &SourceRect) -> Option<FivePoints> {
    if raw.len() < 136 || raw.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let point = |i: usize| {
        [
            region.x + f64::from(raw[2 * i]) * region.width,
            region.y + f64::from(raw[2 * i + 1]) * region.height,
        ]
    };
    let mean = |range: std::ops::Range<usize>| {
        let n = range.len() as f64;
        let (sx, sy) = range.fold((0.0, 0.0), |(sx, sy), i| {
            let [x, y] = point(i);
            (sx + x, sy + y)
        });
        [sx / n, sy / n]
    };
    Some([mean(36..42), mean(42..48), point(30), point(48), point(54)])
}

/// Where each iBUG-68 point goes when the face is mirrored left to right (jaw, brows,
/// eyes and mouth swap sides; the nose bridge stays).
const IBUG68_MIRROR: [usize; 68] = [
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, // jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17, // eyebrows
    27, 28, 29, 30, 35, 34, 33, 32, 31, // nose
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, // eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, // outer lips
    64, 63, 62, 61, 60, 67, 66, 65, // inner lips
];

/// The 68 points in frame pixels from a landmark network's output (x, y pairs relative
/// to `region`); `mirrored` when the network was shown the region mirrored left to right.
pub fn points68(raw: &[f32], region: &SourceRect, mirrored: bool) -> Option<SixtyEightPoints> {
    if raw.len() < 136 || raw.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut out = [[0.0f64; 2]; 68];
    for i in 0..68 {
        let (u, v) = (f64::from(raw[2 * i]), f64::from(raw[2 * i + 1]));
        let (target, u) = if mirrored {
            (IBUG68_MIRROR[i], 1.0 - u)
        } else {
            (i, u)
        };
        out[target] = [region.x + u * region.width, region.y + v * region.height];
    }
    Some(out)
}

/// The five alignment points of 68: eye centres (36-41, 42-47), nose tip (30), mouth
/// corners (48, 54).
pub fn five_of_68(p: &SixtyEightPoints) -> FivePoints {
    let mean = |range: std::ops::Range<usize>| {
        let n = range.len() as f64;
        let (sx, sy) = range.fold((0.0, 0.0), |(sx, sy), i| (sx + p[i][0], sy + p[i][1]));
        [sx / n, sy / n]
    };
    [mean(36..42), mean(42..48), p[30], p[48], p[54]]
}

/// As [`five_points_from_68`] for a landmark network that was shown the region mirrored
/// left to right: x is mirrored back, and the left/right points swap roles.
pub fn five_points_from_68_mirrored(raw: &[f32], region: &SourceRect) -> Option<FivePoints> {
    let mirrored = SourceRect::new(
        region.x + region.width,
        region.y,
        -region.width,
        region.height,
    );
    let p = five_points_from_68(raw, &mirrored)?;
    Some([p[1], p[0], p[2], p[4], p[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NmsParams {
        NmsParams {
            min_confidence: 0.5,
            iou_threshold: 0.5,
            max_results: 100,
            min_size: 0.0,
        }
    }

    #[test]
    fn iou_values() {
        let a = [0.0, 0.0, 1.0, 1.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert!((iou(&a, &[0.0, 0.5, 1.0, 1.5]) - 1.0 / 3.0).abs() < 1e-6);
        // Reversed corners are sorted first; empty boxes overlap nothing.
        assert_eq!(iou(&a, &[1.0, 1.0, 0.0, 0.0]), 1.0);
        assert_eq!(iou(&a, &[0.5, 0.5, 0.5, 0.9]), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        // Two overlapping boxes and one apart, in a 200 x 100 frame (square side 200).
        let boxes = [
            0.10, 0.10, 0.30, 0.30, // 0: score 0.7
            0.11, 0.11, 0.31, 0.31, // 1: score 0.9, overlaps 0
            0.10, 0.60, 0.30, 0.80, // 2: score 0.8
            0.60, 0.60, 0.80, 0.80, // 3: score 0.95 but in the padding (y > 100 px)
            0.00, 0.00, 0.10, 0.10, // 4: below threshold
        ];
        let scores = [0.7, 0.9, 0.8, 0.95, 0.5];
        let mut out = Vec::new();
        ssd_detections(
            &boxes,
            &scores,
            200,
            100,
            &params(),
            &mut NmsScratch::default(),
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].confidence, 0.9);
        assert!((out[0].x - 22.0).abs() < 1e-4 && (out[0].width - 40.0).abs() < 1e-4);
        assert_eq!(out[1].confidence, 0.8);
        let mut p = params();
        p.max_results = 1;
        ssd_detections(
            &boxes,
            &scores,
            200,
            100,
            &p,
            &mut NmsScratch::default(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        p.max_results = 100;
        p.min_size = 50.0;
        ssd_detections(
            &boxes,
            &scores,
            200,
            100,
            &p,
            &mut NmsScratch::default(),
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn five_points() {
        let mut raw = vec![0.0f32; 136];
        for i in 36..42 {
            raw[2 * i] = 0.3;
            raw[2 * i + 1] = 0.4;
        }
        for i in 42..48 {
            raw[2 * i] = 0.7;
            raw[2 * i + 1] = 0.4;
        }
        raw[60] = 0.5;
        raw[61] = 0.6;
        raw[96] = 0.35;
        raw[97] = 0.8;
        raw[108] = 0.65;
        raw[109] = 0.8;
        let region = SourceRect::new(100.0, 200.0, 50.0, 50.0);
        let p = five_points_from_68(&raw, &region).unwrap();
        let close =
            |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4;
        assert!(close(p[0], [115.0, 220.0]));
        assert!(close(p[1], [135.0, 220.0]));
        assert!(close(p[2], [125.0, 230.0]));
        assert!(close(p[3], [117.5, 240.0]));
        assert!(close(p[4], [132.5, 240.0]));
        // The same face seen mirrored gives the same points.
        let mut mirrored = raw.clone();
        for i in 0..68 {
            mirrored[2 * i] = 1.0 - raw[2 * i];
        }
        let swap = |m: &mut Vec<f32>, a: std::ops::Range<usize>, b: std::ops::Range<usize>| {
            for (i, j) in a.zip(b) {
                m.swap(2 * i, 2 * j);
                m.swap(2 * i + 1, 2 * j + 1);
            }
        };
        swap(&mut mirrored, 36..42, 42..48);
        swap(&mut mirrored, 48..49, 54..55);
        let q = five_points_from_68_mirrored(&mirrored, &region).unwrap();
        for k in 0..5 {
            assert!(close(p[k], q[k]), "{k}: {:?} vs {:?}", p[k], q[k]);
        }
        raw[0] = f32::NAN;
        assert!(five_points_from_68(&raw, &region).is_none());
    }

    #[test]
    fn landmark_region_is_centred_square() {
        let d = Detection {
            x: 10.0,
            y: 20.0,
            width: 40.0,
            height: 60.0,
            confidence: 1.0,
            landmarks: None,
            landmarks68: None,
        };
        let r = landmark_region(&d);
        assert_eq!((r.x, r.y, r.width, r.height), (0.0, 20.0, 60.0, 60.0));
    }
}
