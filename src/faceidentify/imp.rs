// GObject/GStreamer glue of the `faceidentify` element: reads the embeddings `facenet`
// put on face ROIs, names them from a gallery (crate::gallery), writes the label on the
// ROI, and reports per-frame results as JSON lines and element messages.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::gallery::{self, Gallery};
use crate::inference;
use crate::meta::{self, face_detection, identity, EmbeddingMeta, FaceDetectionParam};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "faceidentify",
        gst::DebugColorFlags::empty(),
        Some("Face identification against a gallery"),
    )
});

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceIdentifyMetric")]
pub enum Metric {
    #[default]
    #[enum_value(name = "Euclidean distance", nick = "euclidean")]
    Euclidean = 0,
    #[enum_value(name = "Cosine distance (1 - cosine similarity)", nick = "cosine")]
    Cosine = 1,
}

const DEFAULT_METRIC: Metric = Metric::Euclidean;
/// dlib's (and face-api's) same-person threshold for its ResNet embeddings.
const DEFAULT_THRESHOLD: f64 = 0.6;
const DEFAULT_UNIQUE_LABELS: bool = true;
const DEFAULT_POST_MESSAGES: bool = false;
/// How often the gallery file is checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Settings {
    gallery: Option<String>,
    metric: Metric,
    threshold: f64,
    object_class: Option<String>,
    unique_labels: bool,
    results_location: Option<String>,
    post_messages: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gallery: None,
            metric: DEFAULT_METRIC,
            threshold: DEFAULT_THRESHOLD,
            object_class: Some(face_detection::ROI_TYPE.to_string()),
            unique_labels: DEFAULT_UNIQUE_LABELS,
            results_location: None,
            post_messages: DEFAULT_POST_MESSAGES,
        }
    }
}

struct LoadedGallery {
    path: PathBuf,
    gallery: Arc<Gallery>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// A gallery file that changed on disk is read and parsed on a thread of its own; the
/// streaming thread picks the outcome up at the next frame.
type PendingGallery = Arc<Mutex<Option<Result<LoadedGallery, String>>>>;

struct State {
    gallery: LoadedGallery,
    /// Set while a background load runs: its outcome lands here.
    pending: Option<PendingGallery>,
    results: Option<(String, BufWriter<Box<dyn Write + Send>>)>,
    /// The embedding model already checked against the gallery.
    checked_model: Option<String>,
}

#[derive(Default)]
pub struct FaceIdentify {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl FaceIdentify {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_gallery(path: &PathBuf) -> Result<LoadedGallery, String> {
    let stamp = modified(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read gallery {}: {e}", path.display()))?;
    let gallery =
        Gallery::from_json(&text).map_err(|e| format!("gallery {}: {e}", path.display()))?;
    Ok(LoadedGallery {
        path: path.clone(),
        gallery: Arc::new(gallery),
        modified: stamp,
        checked: Instant::now(),
    })
}

#[glib::object_subclass]
impl ObjectSubclass for FaceIdentify {
    const NAME: &'static str = "GstFaceIdentify";
    type Type = super::FaceIdentify;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for FaceIdentify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("gallery")
                    .nick("Gallery")
                    .blurb("JSON gallery of labelled embeddings (written by facenet-enroll); reloaded when the file changes or the property is set again")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("metric", DEFAULT_METRIC)
                    .nick("Metric")
                    .blurb("Distance between embeddings")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("threshold")
                    .nick("Threshold")
                    .blurb("Faces farther than this from every gallery embedding are 'unknown' (0.6 suits dlib's ResNet with euclidean; about 0.3 with cosine)")
                    .minimum(0.0)
                    .maximum(1000.0)
                    .default_value(DEFAULT_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("object-class")
                    .nick("Object class")
                    .blurb("The GstVideoRegionOfInterestMeta type to identify (empty: every region with an embedding)")
                    .default_value(Some(face_detection::ROI_TYPE))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("unique-labels")
                    .nick("Unique labels")
                    .blurb("Give a person to at most one face per frame (the closest); the others get their next nearest person or 'unknown'")
                    .default_value(DEFAULT_UNIQUE_LABELS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("results-location")
                    .nick("Results location")
                    .blurb("Write one JSON line per frame (timestamp, boxes, labels, distances) to this file, or '-' for standard output")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a 'faceidentify' element message per frame with its faces")
                    .default_value(DEFAULT_POST_MESSAGES)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings();
        match pspec.name() {
            "gallery" => {
                s.gallery = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty());
                let path = s.gallery.clone();
                drop(s);
                // While running, a new value (even the same path) reloads now, on the
                // caller's thread; the streaming thread only waits for the swap.
                if let Some(path) = path.filter(|_| self.state().is_some()) {
                    let loaded = load_gallery(&PathBuf::from(&path));
                    if let Some(state) = self.state().as_mut() {
                        self.apply_reload(state, loaded);
                    }
                }
            }
            "metric" => s.metric = value.get().expect("type checked upstream"),
            "threshold" => s.threshold = value.get().expect("type checked upstream"),
            "object-class" => s.object_class = value.get().expect("type checked upstream"),
            "unique-labels" => s.unique_labels = value.get().expect("type checked upstream"),
            "results-location" => {
                s.results_location = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty())
            }
            "post-messages" => s.post_messages = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "gallery" => s.gallery.to_value(),
            "metric" => s.metric.to_value(),
            "threshold" => s.threshold.to_value(),
            "object-class" => s.object_class.to_value(),
            "unique-labels" => s.unique_labels.to_value(),
            "results-location" => s.results_location.to_value(),
            "post-messages" => s.post_messages.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for FaceIdentify {}

impl ElementImpl for FaceIdentify {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Face identification",
                "Filter/Analyzer/Video",
                "Names the faces facenet embedded (roi-list mode) by their nearest neighbour in a gallery, 'unknown' past a threshold; adds a 'faceidentify' param (label, distance, known) to each face ROI and reports per-frame results as JSON lines and element messages",
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

/// One face of a frame, as reported.
struct FaceResult {
    roi_index: usize,
    roi_id: i32,
    rect: (u32, u32, u32, u32),
    confidence: Option<f64>,
    embedding: EmbeddingMeta,
    label: String,
    distance: f32,
    known: bool,
}

impl BaseTransformImpl for FaceIdentify {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings().clone();
        let Some(path) = settings.gallery.clone() else {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("gallery is not set: give a gallery JSON file written by facenet-enroll, e.g. faceidentify gallery=people.json")
            ));
        };
        let gallery = load_gallery(&PathBuf::from(&path))
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))?;
        gst::info!(
            CAT,
            imp = self,
            "gallery {}: {} people, {} embeddings of model {}",
            path,
            gallery.gallery.people(),
            gallery.gallery.embeddings(),
            gallery.gallery.model
        );
        let results = match settings.results_location.as_deref() {
            None => None,
            Some("-") => Some((
                "standard output".to_string(),
                BufWriter::new(Box::new(std::io::stdout()) as Box<dyn Write + Send>),
            )),
            Some(location) => {
                let file = File::create(location).map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::OpenWrite,
                        ("cannot create results-location {}: {}", location, e)
                    )
                })?;
                #[cfg(feature = "fault-injection")]
                let file = crate::fault::FaultyWriter(file);
                Some((
                    location.to_string(),
                    BufWriter::new(Box::new(file) as Box<dyn Write + Send>),
                ))
            }
        };
        *self.state() = Some(State {
            gallery,
            pending: None,
            results,
            checked_model: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(mut state) = self.state().take() {
            if let Some((location, mut w)) = state.results.take() {
                // Reported, not returned: a failed flush must not keep the element from
                // reaching NULL.
                if let Err(e) = w.flush() {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("cannot write results to {}: {}", location, e)
                    );
                }
            }
        }
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings().clone();
        let mut guard = self.state();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let finished = state
            .pending
            .as_ref()
            .and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(loaded) = finished {
            state.pending = None;
            // Unless the gallery property named another file meanwhile.
            let same_file = match &loaded {
                Ok(l) => l.path == state.gallery.path,
                Err(_) => true,
            };
            if same_file {
                self.apply_reload(state, loaded);
            }
        }
        if state.pending.is_none() && state.gallery.checked.elapsed() >= RELOAD_CHECK {
            state.gallery.checked = Instant::now();
            if modified(&state.gallery.path) != state.gallery.modified {
                let pending = PendingGallery::default();
                state.pending = Some(pending.clone());
                let path = state.gallery.path.clone();
                gst::debug!(CAT, imp = self, "{} changed: reloading", path.display());
                inference::spawn_off_stream(self.obj().upcast_ref(), "gallery-reload", move || {
                    let loaded = load_gallery(&path);
                    *pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
                });
            }
        }
        let gallery = state.gallery.gallery.clone();

        let mut faces: Vec<FaceResult> = buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .enumerate()
            .filter(|(_, roi)| {
                settings
                    .object_class
                    .as_deref()
                    .is_none_or(|c| c.is_empty() || c == roi.roi_type())
            })
            .filter_map(|(roi_index, roi)| {
                let embedding = roi
                    .param(meta::ROI_EMBEDDING_PARAM)
                    .and_then(|p| EmbeddingMeta::from_structure(p).ok())?;
                Some(FaceResult {
                    roi_index,
                    roi_id: roi.id(),
                    rect: roi.rect(),
                    confidence: roi
                        .param(face_detection::NAME)
                        .and_then(|p| FaceDetectionParam::from_structure(p).ok())
                        .map(|d| d.confidence),
                    embedding,
                    label: String::new(),
                    distance: 0.0,
                    known: false,
                })
            })
            .collect();

        if let Some(first) = faces.first() {
            if state.checked_model.as_deref() != Some(first.embedding.model.as_str()) {
                let e = &first.embedding;
                if e.model != gallery.model
                    || e.dimension() != gallery.dimension()
                    || e.l2_normalized != gallery.l2_normalized
                {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::WrongType,
                        (
                            "gallery {} was made with model '{}' ({} values, l2-normalized {}), but the faces come from '{}' ({} values, l2-normalized {}): embeddings of different models are not comparable; enroll the people again with this pipeline's model (facenet-enroll --model ...)",
                            state.gallery.path.display(),
                            gallery.model,
                            gallery.dimension(),
                            gallery.l2_normalized,
                            e.model,
                            e.dimension(),
                            e.l2_normalized
                        )
                    );
                    return Err(gst::FlowError::Error);
                }
                state.checked_model = Some(e.model.clone());
            }
        }

        let metric = match settings.metric {
            Metric::Euclidean => gallery::Metric::Euclidean,
            Metric::Cosine => gallery::Metric::Cosine,
        };
        let queries: Vec<&[f32]> = faces
            .iter()
            .map(|f| f.embedding.embedding.as_slice())
            .collect();
        let matches = gallery.identify(
            &queries,
            metric,
            settings.threshold as f32,
            settings.unique_labels,
        );
        for (face, m) in faces.iter_mut().zip(matches) {
            face.label = m.label;
            face.distance = m.distance;
            face.known = m.known;
        }

        // Each result goes back on the ROI it was read from, by position.
        let mut next = faces.iter().peekable();
        for (index, mut roi) in buf
            .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
            .enumerate()
        {
            if let Some(face) = next.next_if(|f| f.roi_index == index) {
                roi.add_param(
                    gst::Structure::builder(identity::NAME)
                        .field(identity::LABEL, face.label.as_str())
                        .field(identity::DISTANCE, f64::from(face.distance))
                        .field(identity::KNOWN, face.known)
                        .build(),
                );
            }
        }

        let running_time = self
            .obj()
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|seg| buf.pts().and_then(|pts| seg.to_running_time(pts)));
        if let Some((location, writer)) = state.results.as_mut() {
            let line = results_line(buf.pts(), running_time, &faces);
            if let Err(e) = writeln!(writer, "{line}").and_then(|_| writer.flush()) {
                let full = e.kind() == std::io::ErrorKind::StorageFull;
                let fix = if full {
                    ": free space on that disk or point results-location at another one"
                } else {
                    ""
                };
                let domain = if full {
                    gst::ResourceError::NoSpaceLeft
                } else {
                    gst::ResourceError::Write
                };
                gst::element_imp_error!(
                    self,
                    domain,
                    (
                        "cannot write results to {}: {} (results written so far are kept){}",
                        location,
                        e,
                        fix
                    )
                );
                // Whole lines already on disk stay; the unwritten rest is not retried.
                state.results = None;
                return Err(gst::FlowError::Error);
            }
        }
        drop(guard);

        if settings.post_messages {
            let list = gst::List::new(faces.iter().map(|f| {
                gst::Structure::builder("face")
                    .field("roi-id", f.roi_id)
                    .field("x", f.rect.0)
                    .field("y", f.rect.1)
                    .field("width", f.rect.2)
                    .field("height", f.rect.3)
                    .field(identity::LABEL, f.label.as_str())
                    .field(identity::DISTANCE, f64::from(f.distance))
                    .field(identity::KNOWN, f.known)
                    .build()
                    .to_send_value()
            }));
            let s = gst::Structure::builder("faceidentify")
                .field("timestamp", buf.pts())
                .field("running-time", running_time)
                .field("faces", list)
                .build();
            let obj = self.obj();
            let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// One JSON line: `{"timestamp": ns|null, "running_time": ns|null, "faces": [...]}`.
fn results_line(
    pts: Option<gst::ClockTime>,
    running_time: Option<gst::ClockTime>,
    faces: &[FaceResult],
) -> String {
    let faces: Vec<serde_json::Value> = faces
        .iter()
        .map(|f| {
            serde_json::json!({
                "roi_id": f.roi_id,
                "x": f.rect.0,
                "y": f.rect.1,
                "width": f.rect.2,
                "height": f.rect.3,
                "confidence": f.confidence,
                "label": f.label,
                "distance": if f.distance.is_finite() { Some(f64::from(f.distance)) } else { None },
                "known": f.known,
            })
        })
        .collect();
    serde_json::json!({
        "timestamp": pts.map(|t| t.nseconds()),
        "running_time": running_time.map(|t| t.nseconds()),
        "faces": faces,
    })
    .to_string()
}

impl FaceIdentify {
    /// Swaps in a reloaded gallery; a file that did not parse (e.g. half written) keeps the
    /// old gallery and posts a warning.
    fn apply_reload(&self, state: &mut State, loaded: Result<LoadedGallery, String>) {
        let path = state.gallery.path.clone();
        match loaded {
            Ok(loaded) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "reloaded gallery {}: {} people",
                    path.display(),
                    loaded.gallery.people()
                );
                state.gallery = loaded;
                state.checked_model = None;
            }
            Err(e) => {
                // Retry on the next change only.
                state.gallery.modified = modified(&path);
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Read,
                    (
                        "{}; keeping the gallery loaded before ({} people)",
                        e,
                        state.gallery.gallery.people()
                    )
                );
            }
        }
    }
}
