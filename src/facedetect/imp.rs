// GObject/GStreamer glue of the `facedetect` element: an SSD face detector and an
// optional landmark network, run through crate::backend, their outputs turned into faces
// by crate::detection and attached as GstVideoRegionOfInterestMeta.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::align;
use crate::backend::{DetectorModel, FaceModel, ModelHints, NormalizationKind};
use crate::detection::{self, Detection, NmsParams, NmsScratch};
use crate::inference::{self, EpSettings, InputFormat, LoadFailure, ReloadGeneration};
use crate::meta::{face_detection, FaceDetectionParam};
use crate::preprocess::{
    AffineTransform, Aspect, ChannelOrder, PreprocessConfig, Preprocessor, SourceRect,
};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "facedetect",
        gst::DebugColorFlags::empty(),
        Some("Face detection with ONNX Runtime"),
    )
});

const DEFAULT_MIN_CONFIDENCE: f64 = 0.5;
const DEFAULT_IOU_THRESHOLD: f64 = 0.5;
const DEFAULT_MAX_FACES: u32 = 100;
const DEFAULT_MIN_FACE_SIZE: u32 = 20;
const DEFAULT_INFERENCE_INTERVAL: u32 = 1;
/// The detector's own normalization when its model does not state one (face-api's SSD:
/// x / 127.5 - 1).
const DETECTOR_MEAN: [f32; 3] = [127.5; 3];
const DETECTOR_STD: [f32; 3] = [127.5; 3];
/// face-api's landmark network: (x - mean RGB) / 255.
const LANDMARK_MEAN: [f32; 3] = [122.782, 117.001, 104.298];
const LANDMARK_STD: [f32; 3] = [255.0; 3];

#[derive(Debug, Clone)]
struct Settings {
    model_location: Option<String>,
    landmark_model_location: Option<String>,
    min_confidence: f64,
    iou_threshold: f64,
    max_faces: u32,
    min_face_size: u32,
    inference_interval: u32,
    ep: EpSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_location: None,
            landmark_model_location: None,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
            iou_threshold: DEFAULT_IOU_THRESHOLD,
            max_faces: DEFAULT_MAX_FACES,
            min_face_size: DEFAULT_MIN_FACE_SIZE,
            inference_interval: DEFAULT_INFERENCE_INTERVAL,
            ep: EpSettings::default(),
        }
    }
}

struct Landmarker {
    model: FaceModel,
    preprocessor: Preprocessor,
    tensor: Vec<f32>,
    output: Vec<f32>,
    regions: Vec<SourceRect>,
}

struct State {
    /// The model-location and landmark-model-location this state was loaded from.
    location: String,
    landmark_location: Option<String>,
    detector: DetectorModel,
    detector_name: String,
    preprocessor: Preprocessor,
    tensor: Vec<f32>,
    boxes: Vec<f32>,
    scores: Vec<f32>,
    scratch: NmsScratch,
    faces: Vec<Detection>,
    landmarker: Option<Landmarker>,
    /// The detector wants TensorFlow's legacy bilinear resize (`gst-facenet.resize`).
    legacy_resize: bool,
    input: Option<InputFormat>,
    frames_since_detection: Option<u32>,
}

#[derive(Default)]
pub struct FaceDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    reload: ReloadGeneration,
}

impl FaceDetect {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FaceDetect {
    const NAME: &'static str = "GstFaceDetect";
    type Type = super::FaceDetect;
    type ParentType = gst_base::BaseTransform;
}

/// A preprocessor configured by a model's own metadata, with fallbacks.
fn preprocessor_for(
    width: usize,
    height: usize,
    layout: crate::preprocess::TensorLayout,
    hints: &ModelHints,
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<Preprocessor, String> {
    let normalization = hints
        .normalization
        .unwrap_or(NormalizationKind::Fixed)
        .with_numbers(hints.mean.unwrap_or(mean), hints.std.unwrap_or(std));
    Preprocessor::new(PreprocessConfig {
        width,
        height,
        aspect: Aspect::Stretch,
        layout,
        channel_order: hints.channel_order.unwrap_or(ChannelOrder::Rgb),
        normalization,
        reduce: true,
    })
    .map_err(|e| e.to_string())
}

impl ObjectImpl for FaceDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = vec![
                glib::ParamSpecString::builder("model-location")
                    .nick("Detector model")
                    .blurb("Path of the ONNX face detector (an SSD with 'boxes' and 'scores' outputs, e.g. models/out/faceapi_ssd_mobilenetv1.onnx); set while playing, the new detector loads in the background and replaces the old one between frames")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("landmark-model-location")
                    .nick("Landmark model")
                    .blurb("Path of the ONNX 68-point landmark model (e.g. models/out/faceapi_landmark68.onnx); unset = faces without landmarks")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("min-confidence")
                    .nick("Minimum confidence")
                    .blurb("Faces need a detector score above this")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_MIN_CONFIDENCE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("iou-threshold")
                    .nick("Overlap threshold")
                    .blurb("Non-maximum suppression: a face overlapping a better one by more than this intersection-over-union is dropped")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_IOU_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-faces")
                    .nick("Maximum faces")
                    .blurb("Most faces reported per frame (the best scoring)")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(DEFAULT_MAX_FACES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-face-size")
                    .nick("Minimum face size")
                    .blurb("Faces whose smaller side is below this many pixels are dropped")
                    .maximum(65535)
                    .default_value(DEFAULT_MIN_FACE_SIZE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("inference-interval")
                    .nick("Inference interval")
                    .blurb("Detect on every Nth frame; frames in between carry the last faces, marked fresh=false")
                    .minimum(1)
                    .maximum(10000)
                    .default_value(DEFAULT_INFERENCE_INTERVAL)
                    .mutable_playing()
                    .build(),
            ];
            props.extend(EpSettings::param_specs());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings();
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|p| !p.is_empty())
        };
        match pspec.name() {
            name @ ("model-location" | "landmark-model-location") => {
                if name == "model-location" {
                    s.model_location = path(value);
                } else {
                    s.landmark_model_location = path(value);
                }
                let running = self.state().is_some();
                drop(s);
                if running {
                    self.reload_model();
                }
            }
            "min-confidence" => s.min_confidence = value.get().expect("type checked upstream"),
            "iou-threshold" => s.iou_threshold = value.get().expect("type checked upstream"),
            "max-faces" => s.max_faces = value.get().expect("type checked upstream"),
            "min-face-size" => s.min_face_size = value.get().expect("type checked upstream"),
            "inference-interval" => {
                s.inference_interval = value.get().expect("type checked upstream")
            }
            name if s.ep.set(name, value) => {}
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "model-location" => s.model_location.to_value(),
            "landmark-model-location" => s.landmark_model_location.to_value(),
            "min-confidence" => s.min_confidence.to_value(),
            "iou-threshold" => s.iou_threshold.to_value(),
            "max-faces" => s.max_faces.to_value(),
            "min-face-size" => s.min_face_size.to_value(),
            "inference-interval" => s.inference_interval.to_value(),
            name => {
                s.ep.get(name)
                    .unwrap_or_else(|| unreachable!("unknown property {name}"))
            }
        }
    }
}

impl GstObjectImpl for FaceDetect {}

impl ElementImpl for FaceDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Face detector",
                "Filter/Analyzer/Video",
                "Finds faces (and, with a landmark model, five landmarks each) through ONNX Runtime and attaches one GstVideoRegionOfInterestMeta of type 'face' per face, with a 'face-detection' param; video passes through unchanged",
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

impl BaseTransformImpl for FaceDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.reload.cancel();
        let settings = self.settings().clone();
        let state = self.load_state(&settings).map_err(|f| f.error)?;
        *self.state() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.reload.cancel();
        *self.state() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let input =
            InputFormat::from_caps(incaps).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        let mut state = self.state();
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        // Faces found at another size mean nothing now.
        state.faces.clear();
        state.frames_since_detection = None;
        state.input = Some(input);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings().clone();
        let mut guard = self.state();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let input = state.input.clone().ok_or(gst::FlowError::NotNegotiated)?;

        let due = match state.frames_since_detection {
            None => true,
            Some(n) => n + 1 >= settings.inference_interval,
        };
        if due {
            let params = NmsParams {
                min_confidence: settings.min_confidence as f32,
                iou_threshold: settings.iou_threshold as f32,
                max_results: settings.max_faces as usize,
                min_size: f64::from(settings.min_face_size),
            };
            let result = input
                .with_frame(buf, |frame| self.detect(state, frame, &params))
                .and_then(|r| r);
            if let Err(e) = result {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                return Err(gst::FlowError::Error);
            }
            state.frames_since_detection = Some(0);
        } else {
            state.frames_since_detection = state.frames_since_detection.map(|n| n + 1);
        }

        let (fw, fh) = (input.info.width() as f64, input.info.height() as f64);
        for (i, face) in state.faces.iter().enumerate() {
            // Whole pixels covering the face, inside the frame.
            let x0 = face.x.floor().clamp(0.0, fw);
            let y0 = face.y.floor().clamp(0.0, fh);
            let x1 = (face.x + face.width).ceil().clamp(0.0, fw);
            let y1 = (face.y + face.height).ceil().clamp(0.0, fh);
            let mut roi = gst_video::VideoRegionOfInterestMeta::add(
                buf,
                face_detection::ROI_TYPE,
                (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32),
            );
            roi.set_id(i as i32);
            roi.add_param(
                FaceDetectionParam {
                    confidence: f64::from(face.confidence),
                    landmarks: face.landmarks.map(|p| p.map(|[x, y]| [x as f32, y as f32])),
                    landmarks68: face
                        .landmarks68
                        .map(|p| p.iter().flatten().map(|v| *v as f32).collect()),
                    fresh: due,
                    detector: state.detector_name.clone(),
                }
                .to_structure(),
            );
        }
        gst::trace!(
            CAT,
            imp = self,
            "{} faces on {:?} (fresh {})",
            state.faces.len(),
            buf.pts(),
            due
        );
        Ok(gst::FlowSuccess::Ok)
    }
}

impl FaceDetect {
    /// Hot reload, as in `facenet`: the detector and landmark models `model-location` and
    /// `landmark-model-location` now name load on a thread of their own while the old ones
    /// keep serving; a failure keeps them (and the properties pointing at them) and warns;
    /// success posts a `facedetect-model-loaded` message.
    fn reload_model(&self) {
        let generation = self.reload.begin();
        let settings = self.settings().clone();
        let requested = settings.model_location.clone().unwrap_or_default();
        let element = self.obj().clone();
        gst::info!(
            CAT,
            imp = self,
            "loading {} to replace the running detector",
            requested
        );
        inference::spawn_off_stream(self.obj().upcast_ref(), "model-reload", move || {
            let imp = element.imp();
            let started = std::time::Instant::now();
            let loaded = imp.load_state(&settings);
            let mut guard = imp.state();
            if !imp.reload.is_current(generation) {
                return;
            }
            let Some(running) = guard.as_mut() else {
                return;
            };
            match loaded {
                Ok(mut state) => {
                    state.input = running.input.take();
                    let previous = std::mem::replace(running, state);
                    let model = running.detector_name.clone();
                    drop(guard);
                    let s = gst::Structure::builder("facedetect-model-loaded")
                        .field("location", requested.as_str())
                        .field("model", model.as_str())
                        .field(
                            "landmark-location",
                            settings.landmark_model_location.as_deref(),
                        )
                        .field("previous-location", previous.location.as_str())
                        .field(
                            "load-time",
                            gst::ClockTime::from_nseconds(started.elapsed().as_nanos() as u64),
                        )
                        .build();
                    drop(previous);
                    let _ = element
                        .post_message(gst::message::Element::builder(s).src(&element).build());
                }
                Err(failure) => {
                    let serving = running.location.clone();
                    let serving_landmarks = running.landmark_location.clone();
                    drop(guard);
                    {
                        let mut s = imp.settings();
                        if s.model_location == settings.model_location
                            && s.landmark_model_location == settings.landmark_model_location
                        {
                            s.model_location = Some(serving.clone());
                            s.landmark_model_location = serving_landmarks;
                        }
                    }
                    gst::element_imp_warning!(
                        imp,
                        gst::ResourceError::OpenRead,
                        (
                            "cannot switch to detector {}: {}; still running {}",
                            requested,
                            failure.text,
                            serving
                        )
                    );
                }
            }
        });
    }

    /// Loads the detector (and landmark model) `settings` name; start() and hot reloads
    /// (off the streaming thread) share it.
    fn load_state(&self, settings: &Settings) -> Result<State, LoadFailure> {
        let Some(location) = settings.model_location.clone() else {
            return Err(LoadFailure::new(
                gst::LibraryError::Settings,
                "model-location is not set: give the path of an ONNX face detector, e.g. facedetect model-location=models/out/faceapi_ssd_mobilenetv1.onnx",
            ));
        };
        let element = self.obj();
        let runtime = settings.ep.runtime(element.upcast_ref())?;
        let detector = DetectorModel::load(runtime, &settings.ep.session_config(&location, None))
            .map_err(|e| LoadFailure::backend(&e))?;
        inference::post_warnings(element.upcast_ref(), detector.warnings());
        let hints = ModelHints::from_spec_hints(detector.hints()).map_err(|e| {
            LoadFailure::new(gst::ResourceError::Settings, format!("{location}: {e}"))
        })?;
        let (w, h) = detector.input_size();
        let legacy_resize = detector
            .hints()
            .get("resize")
            .is_some_and(|r| r.trim() == "bilinear-legacy");
        let preprocessor =
            preprocessor_for(w, h, detector.layout(), &hints, DETECTOR_MEAN, DETECTOR_STD)
                .map_err(|e| LoadFailure::new(gst::LibraryError::Settings, e))?;

        let landmarker = match &settings.landmark_model_location {
            None => None,
            Some(lm_location) => {
                let model =
                    FaceModel::load(runtime, &settings.ep.session_config(lm_location, None))
                        .map_err(|e| LoadFailure::backend(&e))?;
                inference::post_warnings(element.upcast_ref(), model.warnings());
                let spec = model.spec().clone();
                if spec.embedding_dim != 136 {
                    return Err(LoadFailure::new(
                        gst::ResourceError::Settings,
                        format!(
                            "{} outputs {} values per face; a 68-point landmark model outputs 136 (x, y pairs)",
                            lm_location, spec.embedding_dim
                        ),
                    ));
                }
                let lm_hints = ModelHints::from_spec_hints(&spec.hints).map_err(|e| {
                    LoadFailure::new(gst::ResourceError::Settings, format!("{lm_location}: {e}"))
                })?;
                let (lw, lh) = (spec.width.or(112), spec.height.or(112));
                let preprocessor =
                    preprocessor_for(lw, lh, spec.layout, &lm_hints, LANDMARK_MEAN, LANDMARK_STD)
                        .map_err(|e| LoadFailure::new(gst::LibraryError::Settings, e))?;
                Some(Landmarker {
                    model,
                    preprocessor,
                    tensor: Vec::new(),
                    output: Vec::new(),
                    regions: Vec::new(),
                })
            }
        };
        gst::info!(
            CAT,
            imp = self,
            "detector {} ({}x{}) on {}, landmarks: {}",
            location,
            w,
            h,
            detector.active_provider().nick(),
            settings
                .landmark_model_location
                .as_deref()
                .unwrap_or("none")
        );
        Ok(State {
            detector_name: hints.display_name(&location),
            location,
            tensor: vec![0.0; 3 * w * h],
            detector,
            preprocessor,
            boxes: Vec::new(),
            scores: Vec::new(),
            scratch: NmsScratch::default(),
            faces: Vec::new(),
            landmarker,
            legacy_resize,
            input: None,
            frames_since_detection: None,
            landmark_location: settings.landmark_model_location.clone(),
        })
    }

    /// Runs the detector (and landmarks) on `frame`, leaving the faces in `state.faces`.
    fn detect(
        &self,
        state: &mut State,
        frame: &crate::preprocess::Frame,
        params: &NmsParams,
    ) -> Result<(), String> {
        // The detector was trained on frames zero-padded at the bottom/right to a square,
        // resized the way its metadata names (face-api: TensorFlow's legacy bilinear).
        let side = frame.width.max(frame.height) as f64;
        if state.legacy_resize {
            state
                .preprocessor
                .process_square_legacy_bilinear(frame, &mut state.tensor)
        } else {
            state.preprocessor.process_rect(
                frame,
                SourceRect::new(0.0, 0.0, side, side),
                &mut state.tensor,
            )
        }
        .map_err(|e| format!("cannot read the frame: {e}"))?;
        state
            .detector
            .run(&state.tensor, &mut state.boxes, &mut state.scores)
            .map_err(|e| e.to_string())?;
        detection::ssd_detections(
            &state.boxes,
            &state.scores,
            frame.width,
            frame.height,
            params,
            &mut state.scratch,
            &mut state.faces,
        );
        let Some(lm) = state.landmarker.as_mut() else {
            return Ok(());
        };
        if state.faces.is_empty() {
            return Ok(());
        }
        let (w, h) = {
            let c = lm.preprocessor.config();
            (c.width, c.height)
        };
        // Each face is shown to the landmark network as it is and mirrored; the mirrored
        // prediction is mapped back, and the one closer to a face's shape wins. Landmark
        // networks can collapse all points onto one visible eye (hair over the other, a
        // tilted head), and usually do so on one side only.
        let per_face = 3 * w * h;
        let n = state.faces.len();
        let crops = 2 * n;
        lm.tensor.resize(crops * per_face, 0.0);
        lm.output.resize(crops * 136, 0.0);
        lm.regions.clear();
        for (i, face) in state.faces.iter().enumerate() {
            let region = detection::landmark_region(face);
            let direct = AffineTransform::from_rect(region, w, h);
            let mirrored = AffineTransform {
                a: -direct.a,
                c: direct.c + region.width,
                ..direct
            };
            for (k, t) in [direct, mirrored].iter().enumerate() {
                let slot = 2 * i + k;
                lm.preprocessor
                    .process_affine(
                        frame,
                        t,
                        &mut lm.tensor[slot * per_face..(slot + 1) * per_face],
                    )
                    .map_err(|e| format!("cannot prepare a face for the landmark model: {e}"))?;
            }
            lm.regions.push(region);
        }
        if lm.model.supports_batches() {
            lm.model
                .run(&lm.tensor, crops, h, w, &mut lm.output)
                .map_err(|e| e.to_string())?;
        } else {
            for i in 0..crops {
                lm.model
                    .run(
                        &lm.tensor[i * per_face..(i + 1) * per_face],
                        1,
                        h,
                        w,
                        &mut lm.output[i * 136..(i + 1) * 136],
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        for (i, face) in state.faces.iter_mut().enumerate() {
            let region = &lm.regions[i];
            let candidates = [
                detection::points68(&lm.output[2 * i * 136..(2 * i + 1) * 136], region, false),
                detection::points68(
                    &lm.output[(2 * i + 1) * 136..(2 * i + 2) * 136],
                    region,
                    true,
                ),
            ];
            let best = candidates
                .into_iter()
                .flatten()
                .map(|p| {
                    let five = detection::five_of_68(&p);
                    (
                        align::template_fit_error(&five).unwrap_or(f64::INFINITY),
                        p,
                        five,
                    )
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, p68, five)) = best {
                face.landmarks = Some(five);
                face.landmarks68 = Some(p68);
            }
        }
        gst::log!(CAT, imp = self, "faces: {:?}", state.faces);
        Ok(())
    }
}
