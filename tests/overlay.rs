//! `faceoverlay` through gstreamer-check's Harness: boxes, landmarks and labels land in
//! the frame in its own format, in the colour of the face's identity, and nothing else
//! changes.

mod common;

use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use gstfacenet::meta::FaceDetectionParam;

const BG: u8 = 100;
const W: u32 = 160;
const H: u32 = 72;
/// The face box of most tests; its label (font-scale 1: 10 px high) fits above it.
const BOX: (u32, u32, u32, u32) = (20, 24, 40, 36);

fn harness(props: &[(&str, &str)]) -> Harness {
    common::init();
    let element = gst::ElementFactory::make("faceoverlay")
        .build()
        .expect("faceoverlay element");
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.play();
    h
}

fn caps(format: &str) -> String {
    format!("video/x-raw,format={format},width={W},height={H},framerate=30/1,colorimetry=bt601")
}

fn info(format: &str) -> gst_video::VideoInfo {
    gst_video::VideoInfo::from_caps(&caps(format).parse::<gst::Caps>().unwrap()).unwrap()
}

fn detection(landmarks: bool) -> gst::Structure {
    common::init();
    FaceDetectionParam {
        confidence: 0.99,
        landmarks: landmarks.then_some([
            [32.0, 36.0],
            [48.0, 36.0],
            [40.0, 44.0],
            [33.0, 52.0],
            [47.0, 52.0],
        ]),
        landmarks68: None,
        fresh: true,
        detector: "test".into(),
    }
    .to_structure()
}

fn identity(label: &str, distance: f64) -> gst::Structure {
    common::init();
    gst::Structure::builder("faceidentify")
        .field("label", label)
        .field("distance", distance)
        .build()
}

/// A frame of `format` with every byte `BG` and one ROI per `(type, rect, params)`.
/// A region: its type, rectangle and params.
type Roi<'a> = (&'a str, (u32, u32, u32, u32), Vec<gst::Structure>);

fn frame(format: &str, rois: &[Roi]) -> gst::Buffer {
    common::init();
    let mut buffer = gst::Buffer::from_mut_slice(vec![BG; info(format).size()]);
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::ZERO);
        for (id, (roi_type, rect, params)) in rois.iter().enumerate() {
            let mut roi = gst_video::VideoRegionOfInterestMeta::add(b, roi_type, *rect);
            roi.set_id(id as i32);
            for p in params {
                roi.add_param(p.clone());
            }
        }
    }
    buffer
}

fn face_frame(format: &str, params: Vec<gst::Structure>) -> gst::Buffer {
    frame(format, &[("face", BOX, params)])
}

/// RGB of pixel (x, y) of `buffer`, converted from the frame's format (BT.601 limited
/// range for YUV, as the caps say; gray as R = G = B).
fn rgb_at(buffer: &gst::Buffer, format: &str, x: usize, y: usize) -> [f64; 3] {
    let info = info(format);
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).unwrap();
    let plane = |p: u32| frame.plane_data(p).unwrap();
    let stride = |p: usize| frame.plane_stride()[p] as usize;
    match format {
        "I420" | "NV12" => {
            let luma = f64::from(plane(0)[y * stride(0) + x]);
            let (u, v) = if format == "I420" {
                (
                    plane(1)[y / 2 * stride(1) + x / 2],
                    plane(2)[y / 2 * stride(2) + x / 2],
                )
            } else {
                let i = y / 2 * stride(1) + x / 2 * 2;
                (plane(1)[i], plane(1)[i + 1])
            };
            let yy = (luma - 16.0) / 219.0 * 255.0;
            let (cb, cr) = (
                (f64::from(u) - 128.0) / 224.0 * 255.0,
                (f64::from(v) - 128.0) / 224.0 * 255.0,
            );
            [
                yy + 1.402 * cr,
                yy - 0.344136 * cb - 0.714136 * cr,
                yy + 1.772 * cb,
            ]
        }
        "GRAY8" => [f64::from(plane(0)[y * stride(0) + x]); 3],
        _ => {
            let finfo = info.format_info();
            let px = &plane(0)[y * stride(0) + x * finfo.pixel_stride()[0] as usize..];
            let offsets = finfo.poffset();
            [
                f64::from(px[offsets[0] as usize]),
                f64::from(px[offsets[1] as usize]),
                f64::from(px[offsets[2] as usize]),
            ]
        }
    }
}

fn is_green(c: [f64; 3]) -> bool {
    c[1] > 180.0 && c[0] < 60.0 && c[2] < 60.0
}

fn is_orange_red(c: [f64; 3]) -> bool {
    c[0] > 200.0 && c[1] < 130.0 && c[2] < 60.0
}

fn is_yellow(c: [f64; 3]) -> bool {
    c[0] > 200.0 && c[1] > 180.0 && c[2] < 60.0
}

/// Whether every byte of pixel (x, y) still holds `BG` (luma and chroma for YUV).
fn untouched(buffer: &gst::Buffer, format: &str, x: usize, y: usize) -> bool {
    let info = info(format);
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).unwrap();
    let finfo = info.format_info();
    (0..finfo.n_components()).all(|c| {
        let plane = finfo.plane()[c as usize];
        let (sx, sy) = (finfo.w_sub()[c as usize], finfo.h_sub()[c as usize]);
        let i = (y >> sy) * frame.plane_stride()[plane as usize] as usize
            + (x >> sx) * finfo.pixel_stride()[c as usize] as usize
            + finfo.poffset()[c as usize] as usize;
        frame.plane_data(plane).unwrap()[i] == BG
    })
}

fn run(format: &str, props: &[(&str, &str)], input: gst::Buffer) -> gst::Buffer {
    let mut h = harness(props);
    h.set_src_caps_str(&caps(format));
    h.push_and_pull(input).expect("a buffer out")
}

fn check_known_face(format: &str) {
    let out = run(
        format,
        &[("font-scale", "1")],
        face_frame(format, vec![detection(true), identity("alice", 0.3)]),
    );
    let (bx, by, bw, bh) = (
        BOX.0 as usize,
        BOX.1 as usize,
        BOX.2 as usize,
        BOX.3 as usize,
    );
    // The outline (2 px, inside the box): left, right and bottom edges.
    for (x, y) in [
        (bx, by + bh / 2),
        (bx + 1, by + bh / 2),
        (bx + bw - 1, by + bh / 2),
        (bx + bw / 2, by + bh - 1),
        (bx + bw / 2, by + bh - 2),
    ] {
        let c = rgb_at(&out, format, x, y);
        assert!(is_green(c), "{format}: ({x},{y}) is {c:?}, not green");
    }
    // Inside the box, away from the landmarks, and far from it: unchanged.
    for (x, y) in [
        (bx + 4, by + bh - 6),
        (bx + bw - 5, by + 5),
        (0, H as usize - 1),
        (W as usize - 1, H as usize - 1),
        (W as usize - 2, 0),
        (bx + bw + 3, by + bh / 2),
    ] {
        assert!(untouched(&out, format, x, y), "{format}: ({x},{y}) changed");
    }
    // A landmark dot on the nose.
    assert!(
        is_green(rgb_at(&out, format, 40, 44)),
        "{format}: no nose dot"
    );
    // The label above the box: dark background with some green text on it.
    let (label_top, label_h) = (by - 10, 10);
    let mut dark = 0;
    let mut green = 0;
    for y in label_top..label_top + label_h {
        for x in bx..bx + 8 * "alice 0.30".len() + 2 {
            let c = rgb_at(&out, format, x, y);
            if c.iter().all(|&v| v < 40.0) {
                dark += 1;
            } else if is_green(c) {
                green += 1;
            }
        }
    }
    assert!(
        green > 60 && dark > green,
        "{format}: label green {green} dark {dark}"
    );
    assert!(
        untouched(&out, format, bx, label_top - 1),
        "{format}: above the label changed"
    );
}

#[test]
fn known_face_rgb() {
    check_known_face("RGB");
}

#[test]
fn known_face_i420() {
    check_known_face("I420");
}

#[test]
fn known_face_nv12_and_bgrx() {
    check_known_face("NV12");
    check_known_face("BGRx");
}

#[test]
fn colours_follow_identity() {
    let frame = frame(
        "RGB",
        &[
            (
                "face",
                (2, 30, 20, 20),
                vec![detection(false), identity("alice", 0.2)],
            ),
            (
                "face",
                (36, 30, 20, 20),
                vec![detection(false), identity("unknown", 0.9)],
            ),
            ("face", (70, 30, 20, 20), vec![detection(false)]),
        ],
    );
    let out = run("RGB", &[], frame);
    assert!(is_green(rgb_at(&out, "RGB", 2, 40)));
    assert!(is_orange_red(rgb_at(&out, "RGB", 36, 40)));
    assert!(is_yellow(rgb_at(&out, "RGB", 70, 40)));
    assert!(untouched(&out, "RGB", 12, 40));
}

#[test]
fn only_the_object_class_is_drawn() {
    let input = || frame("RGB", &[("car", BOX, vec![])]);
    let out = run("RGB", &[], input());
    assert_eq!(
        out.map_readable().unwrap().as_slice(),
        input().map_readable().unwrap().as_slice(),
        "a 'car' region was drawn with object-class=face"
    );
    let out = run("RGB", &[("object-class", "")], input());
    assert!(is_yellow(rgb_at(&out, "RGB", BOX.0 as usize, 40)));
}

#[test]
fn switches_turn_parts_off() {
    let input = || face_frame("RGB", vec![detection(true), identity("alice", 0.3)]);
    let out = run(
        "RGB",
        &[("draw-labels", "false"), ("draw-landmarks", "false")],
        input(),
    );
    assert!(untouched(&out, "RGB", 40, 44), "landmark drawn");
    assert!(
        untouched(&out, "RGB", BOX.0 as usize + 3, BOX.1 as usize - 3),
        "label drawn"
    );
    assert!(is_green(rgb_at(&out, "RGB", BOX.0 as usize, 40)));
    // A thicker line reaches further into the box.
    let out = run(
        "RGB",
        &[
            ("thickness", "6"),
            ("draw-labels", "false"),
            ("draw-landmarks", "false"),
        ],
        input(),
    );
    assert!(is_green(rgb_at(&out, "RGB", BOX.0 as usize + 5, 40)));
    assert!(untouched(&out, "RGB", BOX.0 as usize + 6, 40));
}

#[test]
fn frames_without_regions_pass_unchanged() {
    let out = run("I420", &[], frame("I420", &[]));
    assert!(out.map_readable().unwrap().iter().all(|&b| b == BG));
}

#[test]
fn every_format_and_boxes_crossing_the_edges() {
    for format in [
        "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "xRGB", "xBGR", "ARGB", "ABGR", "I420",
        "NV12", "GRAY8",
    ] {
        let params = || vec![detection(true), identity("bob", 0.5)];
        let input = frame(
            format,
            &[
                ("face", BOX, params()),
                // Reaching past the right and bottom edges.
                ("face", (80, 60, 100, 100), params()),
                // Wholly outside.
                ("face", (500, 500, 10, 10), params()),
                // Whole frame, landmarks off the frame.
                ("face", (0, 0, W, H), params()),
            ],
        );
        let out = run(format, &[], input);
        let c = rgb_at(&out, format, BOX.0 as usize, 40);
        if format == "GRAY8" {
            assert!(c[0] > 120.0, "{format}: box luma {c:?}");
        } else {
            assert!(is_green(c), "{format}: {c:?}");
        }
        assert!(
            !untouched(&out, format, 80, 65),
            "{format}: edge-crossing box missing"
        );
        assert!(
            !untouched(&out, format, W as usize - 1, H as usize - 1),
            "{format}: frame box"
        );
        // Not under a box, a line or a label (the box outside the frame gets no label).
        assert!(
            untouched(&out, format, 150, 30),
            "{format}: (150, 30) changed"
        );
    }
}
