// GObject/GStreamer glue of the `faceoverlay` element: reads the
// GstVideoRegionOfInterestMeta of each buffer (as `facedetect` and an identifying element
// leave them) and draws boxes, landmarks and labels into the frame in place, in its own
// pixel format, with crate::draw.
//
// Colours: a face whose `faceidentify` param names someone is green, one labelled
// `unknown` is orange-red, a face without a `faceidentify` param (detection only) is
// yellow. Box, landmark dots and label text of a face share its colour; labels are drawn
// on a black box.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use crate::draw::{self, Canvas, Rgb};
use crate::inference::{self, InputFormat};
use crate::meta::{face_detection, FaceDetectionParam};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "faceoverlay",
        gst::DebugColorFlags::empty(),
        Some("Draws detected and identified faces"),
    )
});

/// The ROI param an identifying element writes: `label` (string) and `distance` (double).
const IDENTITY_PARAM: &str = "faceidentify";
const IDENTITY_LABEL: &str = "label";
const IDENTITY_DISTANCE: &str = "distance";
/// The label of a face that matched nobody.
const UNKNOWN_LABEL: &str = "unknown";

/// A face identified as someone.
const KNOWN_COLOR: Rgb = Rgb::new(0, 230, 0);
/// A face labelled `unknown`.
const UNKNOWN_COLOR: Rgb = Rgb::new(255, 80, 0);
/// A face without identity (detection only).
const UNIDENTIFIED_COLOR: Rgb = Rgb::new(255, 220, 0);
const LABEL_BACKGROUND: Rgb = Rgb::new(0, 0, 0);

const DEFAULT_OBJECT_CLASS: &str = face_detection::ROI_TYPE;
const DEFAULT_DRAW_LABELS: bool = true;
const DEFAULT_DRAW_LANDMARKS: bool = true;
const DEFAULT_THICKNESS: u32 = 2;
const DEFAULT_FONT_SCALE: u32 = 2;

#[derive(Debug, Clone)]
struct Settings {
    object_class: String,
    draw_labels: bool,
    draw_landmarks: bool,
    thickness: u32,
    font_scale: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            object_class: DEFAULT_OBJECT_CLASS.to_string(),
            draw_labels: DEFAULT_DRAW_LABELS,
            draw_landmarks: DEFAULT_DRAW_LANDMARKS,
            thickness: DEFAULT_THICKNESS,
            font_scale: DEFAULT_FONT_SCALE,
        }
    }
}

/// What is drawn for one region.
#[derive(Debug)]
struct Face {
    rect: (i64, i64, i64, i64),
    color: Rgb,
    label: String,
    landmarks: Option<[[f32; 2]; 5]>,
}

impl Face {
    fn from_roi(roi: &gst_video::VideoRegionOfInterestMeta) -> Self {
        let (x, y, w, h) = roi.rect();
        let detection = roi
            .param(face_detection::NAME)
            .and_then(|p| FaceDetectionParam::from_structure(p).ok());
        let identity = roi.param(IDENTITY_PARAM).and_then(|p| {
            let label = p.get::<String>(IDENTITY_LABEL).ok()?;
            let distance = p
                .get::<f64>(IDENTITY_DISTANCE)
                .ok()
                .or_else(|| p.get::<f32>(IDENTITY_DISTANCE).ok().map(f64::from));
            Some((label, distance))
        });
        let (label, color) = match (identity, &detection) {
            (Some((label, distance)), _) => {
                let color = if label.eq_ignore_ascii_case(UNKNOWN_LABEL) {
                    UNKNOWN_COLOR
                } else {
                    KNOWN_COLOR
                };
                let text = match distance {
                    Some(d) => format!("{label} {d:.2}"),
                    None => label,
                };
                (text, color)
            }
            (None, Some(d)) => (
                format!("{} {:.2}", roi.roi_type(), d.confidence),
                UNIDENTIFIED_COLOR,
            ),
            (None, None) => (roi.roi_type().to_string(), UNIDENTIFIED_COLOR),
        };
        Face {
            rect: (i64::from(x), i64::from(y), i64::from(w), i64::from(h)),
            color,
            label,
            landmarks: detection.and_then(|d| d.landmarks),
        }
    }
}

#[derive(Default)]
pub struct FaceOverlay {
    settings: Mutex<Settings>,
    input: Mutex<Option<InputFormat>>,
}

impl FaceOverlay {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn input(&self) -> MutexGuard<'_, Option<InputFormat>> {
        self.input.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FaceOverlay {
    const NAME: &'static str = "GstFaceOverlay";
    type Type = super::FaceOverlay;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for FaceOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("object-class")
                    .nick("Object class")
                    .blurb("GstVideoRegionOfInterestMeta type to draw (empty: every region)")
                    .default_value(Some(DEFAULT_OBJECT_CLASS))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-labels")
                    .nick("Draw labels")
                    .blurb("Write each face's identity and distance (from its 'faceidentify' param), else its detection confidence, above its box")
                    .default_value(DEFAULT_DRAW_LABELS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-landmarks")
                    .nick("Draw landmarks")
                    .blurb("Mark the five landmarks of faces whose 'face-detection' param has them")
                    .default_value(DEFAULT_DRAW_LANDMARKS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("thickness")
                    .nick("Thickness")
                    .blurb("Width in pixels of box lines (landmark dots grow with it)")
                    .minimum(1)
                    .maximum(20)
                    .default_value(DEFAULT_THICKNESS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("font-scale")
                    .nick("Font scale")
                    .blurb("Label size: the 8x8 pixel font magnified this many times")
                    .minimum(1)
                    .maximum(16)
                    .default_value(DEFAULT_FONT_SCALE)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings();
        match pspec.name() {
            "object-class" => {
                s.object_class = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "draw-labels" => s.draw_labels = value.get().expect("type checked upstream"),
            "draw-landmarks" => s.draw_landmarks = value.get().expect("type checked upstream"),
            "thickness" => s.thickness = value.get().expect("type checked upstream"),
            "font-scale" => s.font_scale = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "object-class" => s.object_class.to_value(),
            "draw-labels" => s.draw_labels.to_value(),
            "draw-landmarks" => s.draw_landmarks.to_value(),
            "thickness" => s.thickness.to_value(),
            "font-scale" => s.font_scale.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for FaceOverlay {}

impl ElementImpl for FaceOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Face overlay",
                "Filter/Effect/Video",
                "Draws the faces of GstVideoRegionOfInterestMeta (type 'face' by default) into the video: box outlines, the five landmarks of the 'face-detection' param, and a label with the 'faceidentify' identity and distance or the detection confidence. Green: identified; orange-red: 'unknown'; yellow: not identified",
                "gst-facenet developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(inference::pad_templates);
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for FaceOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.input() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let input =
            InputFormat::from_caps(incaps).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        *self.input() = Some(input);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings().clone();
        let input = self.input().clone().ok_or(gst::FlowError::NotNegotiated)?;

        let faces: Vec<Face> = buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter(|roi| {
                settings.object_class.is_empty() || roi.roi_type() == settings.object_class
            })
            .map(|roi| Face::from_roi(&roi))
            .collect();
        if faces.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        gst::trace!(
            CAT,
            imp = self,
            "drawing {} faces on {:?}",
            faces.len(),
            buf.pts()
        );

        if let Err(e) = draw_faces(buf, &input, &settings, &faces) {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// Maps `buf` for writing and draws `faces` into it: boxes, then landmarks, then labels
/// (so that labels stay readable over neighbouring boxes).
fn draw_faces(
    buf: &mut gst::BufferRef,
    input: &InputFormat,
    settings: &Settings,
    faces: &[Face],
) -> Result<(), String> {
    let size = buf.size();
    let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &input.info).map_err(|_| {
        format!(
            "buffer of {} bytes cannot hold a {}x{} {} frame ({} bytes); the upstream element sent a buffer that does not match its caps",
            size,
            input.info.width(),
            input.info.height(),
            input.info.format().to_str(),
            input.info.size()
        )
    })?;
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    let mut strides = [0usize; 3];
    for (plane, stride) in frame.plane_stride().iter().take(3).enumerate() {
        strides[plane] =
            usize::try_from(*stride).map_err(|_| format!("plane {plane}: negative stride"))?;
    }
    let [p0, p1, p2, _] = frame.planes_data_mut();
    let mut canvas = Canvas::new(
        input.format,
        width,
        height,
        [p0, p1, p2],
        strides,
        input.colorimetry,
    )
    .map_err(|e| format!("cannot draw on the frame: {e}"))?;

    for face in faces {
        let (x, y, w, h) = face.rect;
        canvas.rect_outline(x, y, w, h, settings.thickness, face.color);
    }
    if settings.draw_landmarks {
        let radius = f64::from(settings.thickness) + 0.5;
        for face in faces {
            for [px, py] in face.landmarks.iter().flatten() {
                canvas.dot(f64::from(*px), f64::from(*py), radius, face.color);
            }
        }
    }
    if settings.draw_labels {
        let scale = settings.font_scale as usize;
        for face in faces {
            let (x, y, w, h) = face.rect;
            let visible = w > 0 && h > 0 && x < width as i64 && y < height as i64;
            if !visible {
                // No label for a box wholly outside the frame.
                continue;
            }
            let (lw, lh) = draw::label_size(&face.label, scale);
            let (lx, ly) = draw::label_origin(face.rect.0, face.rect.1, lw, lh, width, height);
            canvas.label(lx, ly, &face.label, scale, face.color, LABEL_BACKGROUND);
        }
    }
    Ok(())
}
