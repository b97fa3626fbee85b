// GObject/GStreamer glue of the `facenet` element. Pre-processing lives in
// crate::preprocess, inference in crate::backend; this file maps properties to their
// configuration and their errors to GStreamer errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use crate::align::{self, Alignment, FaceRegion};
use crate::backend::{self, FaceModel, ModelHints, NormalizationKind};
use crate::inference::{self, EpSettings, InputFormat, LoadFailure, ReloadGeneration};
use crate::meta::EmbeddingMeta;
use crate::meta::{FaceDetectionParam, ROI_EMBEDDING_PARAM};
use crate::preprocess::{self, AffineTransform, CropThreads, PreprocessConfig, Preprocessor};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "facenet",
        gst::DebugColorFlags::empty(),
        Some("Face embeddings with ONNX Runtime"),
    )
});

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceNetAspect")]
pub enum Aspect {
    #[default]
    #[enum_value(
        name = "Stretch: the whole frame to the model's input, aspect ratio not kept",
        nick = "stretch"
    )]
    Stretch = 0,
    #[enum_value(
        name = "Pad: the whole frame scaled to fit, centred, black borders",
        nick = "pad"
    )]
    Pad = 1,
    #[enum_value(
        name = "Crop: the centre of the frame with the model's aspect ratio",
        nick = "crop"
    )]
    Crop = 2,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceNetNormalization")]
pub enum Normalization {
    #[default]
    #[enum_value(
        name = "Prewhiten: per-image mean and standard deviation (FaceNet), std floored at 1/sqrt(values)",
        nick = "prewhiten"
    )]
    Prewhiten = 0,
    #[enum_value(
        name = "Fixed: (pixel - mean) / std per channel, from the mean and std properties",
        nick = "fixed"
    )]
    Fixed = 1,
    #[enum_value(name = "None: raw pixel values 0..255", nick = "none")]
    None = 2,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceNetChannelOrder")]
pub enum ChannelOrder {
    #[default]
    #[enum_value(name = "RGB", nick = "rgb")]
    Rgb = 0,
    #[enum_value(name = "BGR", nick = "bgr")]
    Bgr = 1,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceNetInferenceRegion")]
pub enum InferenceRegion {
    #[default]
    #[enum_value(
        name = "Full frame: one embedding per frame, as FaceNetEmbeddingMeta",
        nick = "full-frame"
    )]
    FullFrame = 0,
    #[enum_value(
        name = "ROI list: one embedding per region of interest (object-class), as a facenet-embedding param on its GstVideoRegionOfInterestMeta",
        nick = "roi-list"
    )]
    RoiList = 1,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceNetAlignment")]
pub enum AlignmentMode {
    #[default]
    #[enum_value(
        name = "Auto: the model's gst-facenet.alignment metadata, else dlib-chip for 150x150 inputs, arcface for 112x112, margin otherwise",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "dlib chip: five landmarks onto dlib's 150x150 face chip (dlib ResNet, face-api)",
        nick = "dlib-chip"
    )]
    DlibChip = 1,
    #[enum_value(
        name = "ArcFace: five landmarks onto InsightFace's 112x112 template",
        nick = "arcface"
    )]
    ArcFace = 2,
    #[enum_value(
        name = "Margin: the box grown by margin pixels, resized (FaceNet's original crop)",
        nick = "margin"
    )]
    Margin = 3,
}

impl From<Aspect> for preprocess::Aspect {
    fn from(a: Aspect) -> Self {
        match a {
            Aspect::Stretch => preprocess::Aspect::Stretch,
            Aspect::Pad => preprocess::Aspect::Pad,
            Aspect::Crop => preprocess::Aspect::Crop,
        }
    }
}

impl From<preprocess::Aspect> for Aspect {
    fn from(a: preprocess::Aspect) -> Self {
        match a {
            preprocess::Aspect::Stretch => Aspect::Stretch,
            preprocess::Aspect::Pad => Aspect::Pad,
            preprocess::Aspect::Crop => Aspect::Crop,
        }
    }
}

impl From<Normalization> for NormalizationKind {
    fn from(n: Normalization) -> Self {
        match n {
            Normalization::Prewhiten => NormalizationKind::Prewhiten,
            Normalization::Fixed => NormalizationKind::Fixed,
            Normalization::None => NormalizationKind::None,
        }
    }
}

impl From<NormalizationKind> for Normalization {
    fn from(n: NormalizationKind) -> Self {
        match n {
            NormalizationKind::Prewhiten => Normalization::Prewhiten,
            NormalizationKind::Fixed => Normalization::Fixed,
            NormalizationKind::None => Normalization::None,
        }
    }
}

impl From<ChannelOrder> for preprocess::ChannelOrder {
    fn from(c: ChannelOrder) -> Self {
        match c {
            ChannelOrder::Rgb => preprocess::ChannelOrder::Rgb,
            ChannelOrder::Bgr => preprocess::ChannelOrder::Bgr,
        }
    }
}

impl From<preprocess::ChannelOrder> for ChannelOrder {
    fn from(c: preprocess::ChannelOrder) -> Self {
        match c {
            preprocess::ChannelOrder::Rgb => ChannelOrder::Rgb,
            preprocess::ChannelOrder::Bgr => ChannelOrder::Bgr,
        }
    }
}

const DEFAULT_INPUT_SIZE: u32 = 160;
const MAX_INPUT_SIZE: u32 = backend::model::MAX_INPUT_SIDE as u32;
const DEFAULT_ASPECT: Aspect = Aspect::Stretch;
const DEFAULT_NORMALIZATION: Normalization = Normalization::Prewhiten;
/// facenet-pytorch's `fixed_image_standardization`, the usual `fixed` choice for
/// FaceNet weights trained in PyTorch.
const DEFAULT_MEAN: [f64; 3] = [127.5, 127.5, 127.5];
const DEFAULT_STD: [f64; 3] = [128.0, 128.0, 128.0];
const DEFAULT_CHANNEL_ORDER: ChannelOrder = ChannelOrder::Rgb;
const DEFAULT_L2_NORMALIZE: bool = false;
const DEFAULT_POST_MESSAGES: bool = false;
const DEFAULT_INFERENCE_INTERVAL: u32 = 1;
const DEFAULT_ASYNC_INFERENCE: bool = false;
const DEFAULT_INFERENCE_REGION: InferenceRegion = InferenceRegion::FullFrame;
const DEFAULT_OBJECT_CLASS: &str = crate::meta::face_detection::ROI_TYPE;
const DEFAULT_ALIGNMENT: AlignmentMode = AlignmentMode::Auto;
/// Sandberg's FaceNet aligns 160x160 validation crops with a 32-pixel margin.
const DEFAULT_MARGIN: u32 = 32;
/// One thread, as videoconvert's `n-threads`: ONNX Runtime's own threads (intra-op-threads,
/// one per core by default) spin-wait between runs and would compete with more.
const DEFAULT_N_THREADS: u32 = 1;

/// `n-threads=0`: one per core, looked up once (it reads cgroup limits: not per frame).
static CORES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, usize::from));

/// A property the model's metadata may default: `explicit` once the user sets it.
#[derive(Debug, Clone, Copy)]
struct Hinted<T> {
    value: T,
    explicit: bool,
}

impl<T: Copy> Hinted<T> {
    fn new(value: T) -> Self {
        Hinted {
            value,
            explicit: false,
        }
    }

    fn set(&mut self, value: T) {
        self.value = value;
        self.explicit = true;
    }

    /// The user's value, else the model's, else the built-in default.
    fn resolve(&self, hint: Option<T>) -> T {
        if self.explicit {
            self.value
        } else {
            hint.unwrap_or(self.value)
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    model_location: Option<String>,
    input_size: u32,
    aspect: Hinted<Aspect>,
    normalization: Hinted<Normalization>,
    mean: Hinted<[f64; 3]>,
    std: Hinted<[f64; 3]>,
    /// A `mean`/`std` value that was not three numbers (std > 0): reported at start.
    numbers_error: Option<String>,
    channel_order: Hinted<ChannelOrder>,
    ep: EpSettings,
    output_name: Option<String>,
    l2_normalize: bool,
    post_messages: bool,
    inference_region: InferenceRegion,
    object_class: Option<String>,
    alignment: AlignmentMode,
    margin: u32,
    n_threads: u32,
    inference_interval: u32,
    async_inference: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_location: None,
            input_size: DEFAULT_INPUT_SIZE,
            aspect: Hinted::new(DEFAULT_ASPECT),
            normalization: Hinted::new(DEFAULT_NORMALIZATION),
            mean: Hinted::new(DEFAULT_MEAN),
            std: Hinted::new(DEFAULT_STD),
            numbers_error: None,
            channel_order: Hinted::new(DEFAULT_CHANNEL_ORDER),
            ep: EpSettings::default(),
            output_name: None,
            l2_normalize: DEFAULT_L2_NORMALIZE,
            post_messages: DEFAULT_POST_MESSAGES,
            inference_region: DEFAULT_INFERENCE_REGION,
            object_class: Some(DEFAULT_OBJECT_CLASS.to_string()),
            alignment: DEFAULT_ALIGNMENT,
            margin: DEFAULT_MARGIN,
            n_threads: DEFAULT_N_THREADS,
            inference_interval: DEFAULT_INFERENCE_INTERVAL,
            async_inference: DEFAULT_ASYNC_INFERENCE,
        }
    }
}

/// What start() resolved from the properties and the model, reported back by the
/// property getters while the element runs.
#[derive(Debug, Clone)]
struct Effective {
    aspect: Aspect,
    normalization: Normalization,
    mean: [f64; 3],
    std: [f64; 3],
    channel_order: ChannelOrder,
}

struct State {
    /// The model-location this state was loaded from.
    location: String,
    model: FaceModel,
    model_name: String,
    preprocessor: Preprocessor,
    tensor: Vec<f32>,
    output: Vec<f32>,
    /// The model's output is already unit length (`gst-facenet.l2-normalized`).
    model_l2_normalized: bool,
    input: Option<InputFormat>,
    effective: Effective,
    alignment: Alignment,
    /// Region mode: the faces of the current frame and their tensor transforms.
    faces: Vec<RoiFace>,
    /// The retained faces' transforms, in batch order.
    transforms: Vec<AffineTransform>,
    /// Region mode: threads with copies of `preprocessor` that prepare a frame's faces
    /// beside the streaming thread (`n-threads`; started on the first frame with faces,
    /// stopped with the state).
    helpers: CropThreads,
}

/// A region of interest picked for embedding.
#[derive(Debug, Clone)]
struct RoiFace {
    roi_id: i32,
    /// The meta's position among the buffer's region-of-interest metas.
    index: usize,
    region: FaceRegion,
    transform: Option<AffineTransform>,
}

/// The last results, for frames the model skips (inference-interval, async-inference).
#[derive(Default)]
struct Carried {
    frame: Option<EmbeddingMeta>,
    faces: Vec<(i32, EmbeddingMeta)>,
    frames_since_inference: Option<u32>,
}

impl Carried {
    /// Whether this frame goes to the model, counting it either way.
    fn due(&mut self, interval: u32) -> bool {
        let due = self
            .frames_since_inference
            .is_none_or(|n| n + 1 >= interval);
        self.frames_since_inference = Some(match self.frames_since_inference {
            Some(n) if !due => n + 1,
            _ => 0,
        });
        due
    }
}

/// async-inference: the frame the worker takes next (only the newest waits).
#[derive(Default)]
struct WorkerSlot {
    next: Option<gst::Buffer>,
    quit: bool,
    failed: bool,
}

#[derive(Default)]
struct WorkerShared {
    slot: Mutex<WorkerSlot>,
    wake: Condvar,
}

impl WorkerShared {
    fn fail(&self) {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).failed = true;
    }
}

struct Worker {
    shared: Arc<WorkerShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The async worker: runs the synchronous path on each frame copy it is handed and keeps
/// the results for the frames passing meanwhile. A model error (already posted on the
/// bus by `infer`) ends it; the next frame then returns the error upstream.
fn worker_loop(element: &super::FaceNet, shared: &WorkerShared) {
    let imp = element.imp();
    loop {
        let mut buffer = {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if slot.quit {
                    return;
                }
                if let Some(buffer) = slot.next.take() {
                    break buffer;
                }
                slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        if imp.infer(buffer.make_mut()).is_err() {
            shared.fail();
            return;
        }
        imp.remember(&buffer);
    }
}

#[derive(Default)]
pub struct FaceNet {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Model runs since the element started (a batch of faces is one run).
    model_runs: AtomicU64,
    reload: ReloadGeneration,
    carried: Mutex<Carried>,
    worker: Mutex<Option<Worker>>,
}

impl FaceNet {
    /// Runs the model on `buf` (the whole frame, or its face regions) and attaches the
    /// results: the synchronous path, also what the async worker runs on its copies.
    fn infer(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (l2_normalize, post_messages, region) = {
            let s = self.settings();
            (s.l2_normalize, s.post_messages, s.inference_region)
        };
        if region == InferenceRegion::RoiList {
            return self.embed_regions(buf);
        }
        let mut guard = self.state();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let input = state.input.as_ref().ok_or(gst::FlowError::NotNegotiated)?;

        let preprocessor = &mut state.preprocessor;
        let tensor = &mut state.tensor;
        let prepared = input
            .with_frame(buf, |frame| {
                preprocessor
                    .process(frame, tensor)
                    .map_err(|e| e.to_string())
            })
            .and_then(|r| r);
        if let Err(e) = prepared {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("cannot read the frame: {}", e)
            );
            return Err(gst::FlowError::Error);
        }

        let (w, h) = {
            let c = state.preprocessor.config();
            (c.width, c.height)
        };
        let dim = state.model.spec().embedding_dim;
        state.output.resize(dim, 0.0);
        self.model_runs.fetch_add(1, Ordering::Relaxed);
        let element = self.obj();
        if let Err(e) = inference::run_with_fallback(
            element.upcast_ref(),
            &mut state.model,
            &state.tensor,
            1,
            h,
            w,
            &mut state.output,
        ) {
            gst::error!(CAT, imp = self, "{}", e);
            self.post_error_message(inference::error_message(&e));
            return Err(gst::FlowError::Error);
        }
        if l2_normalize && !state.model_l2_normalized {
            backend::l2_normalize(&mut state.output);
        }
        let meta = EmbeddingMeta {
            embedding: state.output.clone(),
            model: state.model_name.clone(),
            l2_normalized: l2_normalize || state.model_l2_normalized,
            fresh: true,
            source_pts: buf.pts().map(gst::ClockTime::nseconds),
        };
        drop(guard);

        meta.add_to_buffer(buf).map_err(|e| {
            gst::error!(CAT, imp = self, "cannot add the embedding meta: {}", e);
            gst::FlowError::Error
        })?;
        gst::trace!(CAT, imp = self, "embedding for {:?}", buf.pts());

        if post_messages {
            self.post_embedding_message(buf, &meta);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn carried(&self) -> MutexGuard<'_, Carried> {
        self.carried.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the results `infer` attached to `buf`, for the frames that follow.
    fn remember(&self, buf: &gst::BufferRef) {
        let frame = EmbeddingMeta::from_buffer(buf);
        let faces: Vec<(i32, EmbeddingMeta)> = buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter_map(|roi| {
                let param = roi.param(ROI_EMBEDDING_PARAM)?;
                Some((roi.id(), EmbeddingMeta::from_structure(param).ok()?))
            })
            .collect();
        let mut carried = self.carried();
        carried.frame = frame;
        carried.faces = faces;
    }

    /// Gives `buf` the last results, marked as not fresh: the frame's embedding, or the
    /// embedding of each face region whose ROI id had one.
    fn attach_carried(&self, buf: &mut gst::BufferRef) {
        let carried = self.carried();
        if let Some(frame) = &carried.frame {
            let mut meta = frame.clone();
            meta.fresh = false;
            if let Err(e) = meta.add_to_buffer(buf) {
                gst::warning!(CAT, imp = self, "cannot add the embedding meta: {}", e);
            }
        }
        if carried.faces.is_empty() {
            return;
        }
        for mut roi in buf.iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>() {
            if roi.param(ROI_EMBEDDING_PARAM).is_some() {
                continue;
            }
            let id = roi.id();
            if let Some((_, meta)) = carried.faces.iter().find(|(i, _)| *i == id) {
                let mut meta = meta.clone();
                meta.fresh = false;
                let mut param = gst::Structure::new_empty(ROI_EMBEDDING_PARAM);
                meta.write_fields(&mut param);
                roi.add_param(param);
            }
        }
    }

    /// async-inference: hands the worker (a shallow copy of) the frame when it is due,
    /// replacing one the worker has not started on, and lets the frame go on at once with
    /// the newest finished results.
    fn transform_async(
        &self,
        buf: &mut gst::BufferRef,
        interval: u32,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let shared = self
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|w| w.shared.clone())
            .ok_or(gst::FlowError::Flushing)?;
        if self.carried().due(interval) {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.failed {
                return Err(gst::FlowError::Error);
            }
            if slot.next.replace(buf.copy()).is_some() {
                gst::trace!(
                    CAT,
                    imp = self,
                    "the model is busy: an older frame is skipped"
                );
            }
            shared.wake.notify_one();
        }
        self.attach_carried(buf);
        Ok(gst::FlowSuccess::Ok)
    }

    fn start_worker(&self) {
        let shared = Arc::new(WorkerShared::default());
        let element = self.obj().clone();
        let worker_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("facenet-async".into())
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker_loop(&element, &worker_shared)
                }));
                if let Err(panic) = run {
                    worker_shared.fail();
                    gst::element_error!(
                        element,
                        gst::LibraryError::Failed,
                        (
                            "the inference worker panicked: {}",
                            inference::panic_text(panic.as_ref())
                        )
                    );
                }
            });
        match thread {
            Ok(thread) => {
                *self.worker.lock().unwrap_or_else(|e| e.into_inner()) = Some(Worker {
                    shared,
                    thread: Some(thread),
                })
            }
            Err(e) => {
                shared.fail();
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Thread,
                    ("cannot start the inference worker thread: {}", e)
                );
            }
        }
    }

    fn stop_worker(&self) {
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut worker) = worker {
            worker
                .shared
                .slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .quit = true;
            worker.shared.wake.notify_all();
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl FaceNet {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FaceNet {
    const NAME: &'static str = "GstFaceNet";
    type Type = super::FaceNet;
    type ParentType = gst_base::BaseTransform;
}

fn numbers_from_array(name: &str, array: &gst::Array) -> Result<[f64; 3], String> {
    let values: Vec<f64> = array
        .iter()
        .map(|v| {
            if let Ok(x) = v.get::<f64>() {
                Ok(x)
            } else if let Ok(x) = v.get::<f32>() {
                Ok(f64::from(x))
            } else if let Ok(x) = v.get::<i32>() {
                Ok(f64::from(x))
            } else if let Ok(x) = v.get::<u32>() {
                Ok(f64::from(x))
            } else if let Ok(x) = v.get::<i64>() {
                Ok(x as f64)
            } else if let Ok(x) = v.get::<u64>() {
                Ok(x as f64)
            } else {
                Err(format!(
                    "{name} holds a {} where a number is expected",
                    v.type_()
                ))
            }
        })
        .collect::<Result<_, _>>()?;
    if values.len() != 3 || values.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "{name} must be three numbers in R, G, B order, e.g. {name}=\"<122.782, 117.001, 104.298>\"; got {} values",
            values.len()
        ));
    }
    Ok([values[0], values[1], values[2]])
}

fn array_from_numbers(v: [f64; 3]) -> gst::Array {
    gst::Array::new(v.iter().map(|x| x.to_send_value()))
}

fn to_f32(v: [f64; 3]) -> [f32; 3] {
    [v[0] as f32, v[1] as f32, v[2] as f32]
}

impl ObjectImpl for FaceNet {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = vec![
                glib::ParamSpecString::builder("model-location")
                    .nick("Model location")
                    .blurb("Path of the ONNX face-embedding model (one image input, output [batch, D]); set while playing, the new model loads in the background and replaces the old one between frames")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("input-size")
                    .nick("Input size")
                    .blurb("Side of the square model input, used only where the model's own spatial size is dynamic")
                    .minimum(1)
                    .maximum(MAX_INPUT_SIZE)
                    .default_value(DEFAULT_INPUT_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("aspect", DEFAULT_ASPECT)
                    .nick("Aspect mode")
                    .blurb("How the frame's aspect ratio meets the model's (default: the model's gst-facenet.aspect metadata, else stretch)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("normalization", DEFAULT_NORMALIZATION)
                    .nick("Normalization")
                    .blurb("Pixel normalization the model was trained with (default: the model's gst-facenet.normalization metadata, else prewhiten)")
                    .mutable_ready()
                    .build(),
                gst::ParamSpecArray::builder("mean")
                    .nick("Mean")
                    .blurb("Per-channel mean (R, G, B; 0-255 scale) for normalization=fixed, e.g. <122.782, 117.001, 104.298> (default: the model's gst-facenet.mean metadata, else <127.5, 127.5, 127.5>)")
                    .mutable_ready()
                    .build(),
                gst::ParamSpecArray::builder("std")
                    .nick("Standard deviation")
                    .blurb("Per-channel divisor (R, G, B), positive, for normalization=fixed, e.g. <255, 255, 255> (default: the model's gst-facenet.std metadata, else <128, 128, 128>)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("channel-order", DEFAULT_CHANNEL_ORDER)
                    .nick("Channel order")
                    .blurb("Order of the colour channels in the model's input (default: the model's gst-facenet.channel-order metadata, else rgb)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("output-name")
                    .nick("Output name")
                    .blurb("Name of the embedding output when the model has several")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("l2-normalize")
                    .nick("L2-normalize")
                    .blurb("Scale each embedding to unit Euclidean length")
                    .default_value(DEFAULT_L2_NORMALIZE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("inference-interval")
                    .nick("Inference interval")
                    .blurb("Run the model on every Nth frame; frames in between carry the last embeddings (fresh=false; in roi-list mode matched by ROI id)")
                    .minimum(1)
                    .default_value(DEFAULT_INFERENCE_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("async-inference")
                    .nick("Asynchronous inference")
                    .blurb("Run the model on a worker thread so that a model slower than the stream never holds it up: each frame goes on at once with the newest finished embeddings (fresh=false, source-pts says from which frame); frames arriving while the model is busy are not queued, only the newest waits")
                    .default_value(DEFAULT_ASYNC_INFERENCE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a 'facenet-embedding' element message on the bus for each embedding")
                    .default_value(DEFAULT_POST_MESSAGES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("inference-region", DEFAULT_INFERENCE_REGION)
                    .nick("Inference region")
                    .blurb("Embed the whole frame, or every region of interest of object-class (faces from facedetect)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("object-class")
                    .nick("Object class")
                    .blurb("In roi-list mode, the GstVideoRegionOfInterestMeta type to embed (empty: every region)")
                    .default_value(Some(DEFAULT_OBJECT_CLASS))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("alignment", DEFAULT_ALIGNMENT)
                    .nick("Alignment")
                    .blurb("In roi-list mode, how a face is prepared for the model's training convention")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("margin")
                    .nick("Margin")
                    .blurb("In roi-list mode, pixels added around a face box (half on each side) for alignment=margin, and for faces without landmarks")
                    .maximum(4096)
                    .default_value(DEFAULT_MARGIN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("n-threads")
                    .nick("Threads")
                    .blurb("In roi-list mode, threads that prepare a frame's faces for the model (0 = one per core). Worth raising when the model runs elsewhere (CUDA, TensorRT, OpenVINO on a GPU/NPU) or on fewer threads than cores (intra-op-threads)")
                    .maximum(1024)
                    .default_value(DEFAULT_N_THREADS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("model-runs")
                    .nick("Model runs")
                    .blurb("Model runs since the element started (in roi-list mode, all faces of a frame are one batched run when the model allows)")
                    .read_only()
                    .build(),
            ];
            props.extend(EpSettings::param_specs());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings();
        let optional_string = |value: &glib::Value| {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
        };
        match pspec.name() {
            "model-location" => {
                settings.model_location = optional_string(value);
                let running = self.state().is_some();
                drop(settings);
                if running {
                    self.reload_model();
                }
            }
            "input-size" => settings.input_size = value.get().expect("type checked upstream"),
            "aspect" => settings
                .aspect
                .set(value.get().expect("type checked upstream")),
            "normalization" => settings
                .normalization
                .set(value.get().expect("type checked upstream")),
            name @ ("mean" | "std") => {
                let array = value.get::<gst::Array>().expect("type checked upstream");
                let parsed = numbers_from_array(name, &array).and_then(|v| {
                    if name == "std" && v.iter().any(|s| *s <= 0.0) {
                        Err(format!(
                            "std values must be positive, got <{}, {}, {}>",
                            v[0], v[1], v[2]
                        ))
                    } else {
                        Ok(v)
                    }
                });
                match parsed {
                    Ok(v) if name == "mean" => settings.mean.set(v),
                    Ok(v) => settings.std.set(v),
                    Err(e) => {
                        gst::error!(CAT, imp = self, "{}", e);
                        settings.numbers_error = Some(e);
                    }
                }
            }
            "channel-order" => settings
                .channel_order
                .set(value.get().expect("type checked upstream")),
            "output-name" => settings.output_name = optional_string(value),
            "l2-normalize" => settings.l2_normalize = value.get().expect("type checked upstream"),
            "post-messages" => settings.post_messages = value.get().expect("type checked upstream"),
            "inference-interval" => {
                settings.inference_interval = value.get().expect("type checked upstream")
            }
            "async-inference" => {
                settings.async_inference = value.get().expect("type checked upstream")
            }
            "inference-region" => {
                settings.inference_region = value.get().expect("type checked upstream")
            }
            "object-class" => settings.object_class = value.get().expect("type checked upstream"),
            "alignment" => settings.alignment = value.get().expect("type checked upstream"),
            "margin" => settings.margin = value.get().expect("type checked upstream"),
            "n-threads" => settings.n_threads = value.get().expect("type checked upstream"),
            "onnxruntime-library" if backend::runtime_attempted() => {
                settings.ep.set(pspec.name(), value);
                gst::warning!(
                    CAT,
                    imp = self,
                    "ONNX Runtime is already loaded in this process: onnxruntime-library takes effect only in a new process"
                );
            }
            name if settings.ep.set(name, value) => {}
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings();
        let effective = self.state().as_ref().map(|s| s.effective.clone());
        match pspec.name() {
            "model-location" => settings.model_location.to_value(),
            "input-size" => settings.input_size.to_value(),
            "aspect" => effective
                .map(|e| e.aspect)
                .unwrap_or(settings.aspect.value)
                .to_value(),
            "normalization" => effective
                .map(|e| e.normalization)
                .unwrap_or(settings.normalization.value)
                .to_value(),
            "mean" => array_from_numbers(effective.map(|e| e.mean).unwrap_or(settings.mean.value))
                .to_value(),
            "std" => array_from_numbers(effective.map(|e| e.std).unwrap_or(settings.std.value))
                .to_value(),
            "channel-order" => effective
                .map(|e| e.channel_order)
                .unwrap_or(settings.channel_order.value)
                .to_value(),
            "output-name" => settings.output_name.to_value(),
            "l2-normalize" => settings.l2_normalize.to_value(),
            "post-messages" => settings.post_messages.to_value(),
            "inference-interval" => settings.inference_interval.to_value(),
            "async-inference" => settings.async_inference.to_value(),
            "model-runs" => self.model_runs.load(Ordering::Relaxed).to_value(),
            "inference-region" => settings.inference_region.to_value(),
            "object-class" => settings.object_class.to_value(),
            "alignment" => settings.alignment.to_value(),
            "margin" => settings.margin.to_value(),
            "n-threads" => settings.n_threads.to_value(),
            name => settings
                .ep
                .get(name)
                .unwrap_or_else(|| unreachable!("unknown property {name}")),
        }
    }
}

impl GstObjectImpl for FaceNet {}

impl ElementImpl for FaceNet {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "FaceNet face embedding",
                "Filter/Analyzer/Video",
                "Computes a face embedding (FaceNet and similar models, through ONNX Runtime) for each frame and attaches it as FaceNetEmbeddingMeta; video passes through unchanged",
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

impl BaseTransformImpl for FaceNet {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.model_runs.store(0, Ordering::Relaxed);
        self.reload.cancel();
        let settings = self.settings().clone();
        let state = self.load_state(&settings).map_err(|f| f.error)?;
        *self.state() = Some(state);
        *self.carried() = Carried::default();
        if settings.async_inference {
            self.start_worker();
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.reload.cancel();
        self.stop_worker();
        // Dropping the state releases the ONNX Runtime session.
        *self.state() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let input =
            InputFormat::from_caps(incaps).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        let mut guard = self.state();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        gst::debug!(CAT, imp = self, "caps {} -> {}", incaps, outcaps);
        state.input = Some(input);
        drop(guard);
        // Results and a waiting frame of the old format mean nothing now.
        *self.carried() = Carried::default();
        if let Some(worker) = self
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            worker
                .shared
                .slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .next = None;
        }
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        #[cfg(feature = "fault-injection")]
        if crate::fault::fires(crate::fault::Fault::PanicInTransform) {
            panic!("injected fault: facenet panicked on a frame");
        }
        let (interval, asynchronous) = {
            let s = self.settings();
            (s.inference_interval.max(1), s.async_inference)
        };
        if asynchronous {
            return self.transform_async(buf, interval);
        }
        if interval == 1 {
            return self.infer(buf);
        }
        if !self.carried().due(interval) {
            self.attach_carried(buf);
            return Ok(gst::FlowSuccess::Ok);
        }
        let flow = self.infer(buf)?;
        self.remember(buf);
        Ok(flow)
    }
}

impl FaceNet {
    /// Hot reload: the model `model-location` now names loads on a thread of its own while
    /// the old one keeps serving frames, then the two swap between frames. A model that
    /// fails to load leaves the old one in place (and `model-location` pointing back at
    /// it) with a warning on the bus; success posts a `facenet-model-loaded` message.
    fn reload_model(&self) {
        let generation = self.reload.begin();
        let settings = self.settings().clone();
        let requested = settings.model_location.clone().unwrap_or_default();
        let element = self.obj().clone();
        gst::info!(
            CAT,
            imp = self,
            "loading {} to replace the running model",
            requested
        );
        inference::spawn_off_stream(self.obj().upcast_ref(), "model-reload", move || {
            let imp = element.imp();
            #[cfg(feature = "fault-injection")]
            if crate::fault::fires(crate::fault::Fault::PanicInReload) {
                panic!("injected fault: the model loader panicked");
            }
            let started = std::time::Instant::now();
            let loaded = imp.load_state(&settings);
            let mut guard = imp.state();
            // Superseded by a newer request, or the element stopped meanwhile.
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
                    let model = running.model_name.clone();
                    drop(guard);
                    gst::info!(
                        CAT,
                        imp = imp,
                        "now running {} ({}), loaded in {:?}",
                        requested,
                        model,
                        started.elapsed()
                    );
                    let s = gst::Structure::builder("facenet-model-loaded")
                        .field("location", requested.as_str())
                        .field("model", model.as_str())
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
                    drop(guard);
                    {
                        let mut s = imp.settings();
                        if s.model_location.as_deref() == Some(requested.as_str()) {
                            s.model_location = Some(serving.clone());
                        }
                    }
                    gst::element_imp_warning!(
                        imp,
                        gst::ResourceError::OpenRead,
                        (
                            "cannot switch to model {}: {}; still running {}",
                            requested,
                            failure.text,
                            serving
                        )
                    );
                }
            }
        });
    }

    /// Loads the model `settings` name and prepares everything a frame needs; start() and
    /// hot reloads (off the streaming thread) share it.
    fn load_state(&self, settings: &Settings) -> Result<State, LoadFailure> {
        if let Some(e) = &settings.numbers_error {
            return Err(LoadFailure::new(gst::LibraryError::Settings, e.clone()));
        }
        let Some(location) = settings.model_location.clone() else {
            return Err(LoadFailure::new(
                gst::LibraryError::Settings,
                "model-location is not set: give the path of an ONNX face-embedding model, e.g. facenet model-location=models/out/faceapi_resnet128.onnx",
            ));
        };
        let element = self.obj();
        let runtime = settings.ep.runtime(element.upcast_ref())?;
        gst::info!(
            CAT,
            imp = self,
            "ONNX Runtime {} from {}",
            runtime.version,
            runtime.library.display()
        );
        let config = settings
            .ep
            .session_config(&location, settings.output_name.clone());
        let model = FaceModel::load(runtime, &config).map_err(|e| LoadFailure::backend(&e))?;
        inference::post_warnings(element.upcast_ref(), model.warnings());
        let spec = model.spec().clone();
        let hints = ModelHints::from_spec_hints(&spec.hints).map_err(|e| {
            LoadFailure::new(gst::ResourceError::Settings, format!("{location}: {e}"))
        })?;

        let effective = Effective {
            aspect: settings.aspect.resolve(hints.aspect.map(Into::into)),
            normalization: settings
                .normalization
                .resolve(hints.normalization.map(Into::into)),
            mean: settings.mean.resolve(hints.mean.map(|m| m.map(f64::from))),
            std: settings.std.resolve(hints.std.map(|m| m.map(f64::from))),
            channel_order: settings
                .channel_order
                .resolve(hints.channel_order.map(Into::into)),
        };
        let size = settings.input_size as usize;
        let pconfig = PreprocessConfig {
            width: spec.width.or(size),
            height: spec.height.or(size),
            aspect: effective.aspect.into(),
            layout: spec.layout,
            channel_order: effective.channel_order.into(),
            normalization: NormalizationKind::from(effective.normalization)
                .with_numbers(to_f32(effective.mean), to_f32(effective.std)),
            reduce: true,
        };
        let preprocessor = Preprocessor::new(pconfig.clone())
            .map_err(|e| LoadFailure::new(gst::LibraryError::Settings, e.to_string()))?;
        let model_name = hints.display_name(&location);
        let margin = f64::from(settings.margin);
        let alignment = match settings.alignment {
            AlignmentMode::DlibChip => Alignment::DlibChip,
            AlignmentMode::ArcFace => Alignment::ArcFace,
            AlignmentMode::Margin => Alignment::Margin(margin),
            AlignmentMode::Auto => spec
                .hints
                .get("alignment")
                .and_then(|h| Alignment::from_hint(h, margin))
                .unwrap_or_else(|| {
                    Alignment::guess_for_input(pconfig.width, pconfig.height, margin)
                }),
        };
        gst::info!(
            CAT,
            imp = self,
            "model {} ({}): input '{}' {:?} {}x{}, output '{}' of {} values, on {}; {:?}; region {:?}, alignment {:?}",
            model_name,
            location,
            spec.image_input,
            spec.layout,
            pconfig.width,
            pconfig.height,
            spec.output,
            spec.embedding_dim,
            model.active_provider().nick(),
            effective,
            settings.inference_region,
            alignment
        );
        Ok(State {
            location,
            tensor: vec![0.0; pconfig.tensor_len()],
            output: vec![0.0; spec.embedding_dim],
            model,
            model_name,
            preprocessor,
            model_l2_normalized: spec
                .hints
                .get("l2-normalized")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            input: None,
            effective,
            alignment,
            faces: Vec::new(),
            transforms: Vec::new(),
            helpers: CropThreads::new(),
        })
    }

    /// Region mode: every face ROI of the buffer, prepared for the model's convention
    /// straight from the frame, embedded in one batched run (face by face for models with
    /// a fixed batch of 1); each ROI gets a `facenet-embedding` param.
    fn embed_regions(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (l2_normalize, post_messages, object_class, margin, n_threads) = {
            let s = self.settings();
            (
                s.l2_normalize,
                s.post_messages,
                s.object_class.clone(),
                f64::from(s.margin),
                match s.n_threads {
                    0 => *CORES,
                    n => n as usize,
                },
            )
        };
        let mut guard = self.state();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let input = state.input.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let (frame_w, frame_h) = (input.info.width() as usize, input.info.height() as usize);
        let (w, h) = {
            let c = state.preprocessor.config();
            (c.width, c.height)
        };

        state.faces.clear();
        for (index, roi) in buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .enumerate()
        {
            if object_class
                .as_deref()
                .is_some_and(|c| !c.is_empty() && c != roi.roi_type())
            {
                continue;
            }
            let (x, y, rw, rh) = roi.rect();
            let detection = roi
                .param(crate::meta::face_detection::NAME)
                .and_then(|p| FaceDetectionParam::from_structure(p).ok());
            let landmarks = detection
                .as_ref()
                .and_then(|p| p.landmarks)
                .map(|pts| pts.map(|[px, py]| [f64::from(px), f64::from(py)]));
            let landmarks68 = detection
                .as_ref()
                .and_then(|p| p.landmarks68.as_ref())
                .map(|v| {
                    let mut pts = [[0.0f64; 2]; 68];
                    for (i, p) in pts.iter_mut().enumerate() {
                        *p = [f64::from(v[2 * i]), f64::from(v[2 * i + 1])];
                    }
                    pts
                });
            let region = FaceRegion {
                x: f64::from(x),
                y: f64::from(y),
                width: f64::from(rw),
                height: f64::from(rh),
                landmarks,
                landmarks68,
            };
            let transform =
                align::face_transform(state.alignment, &region, frame_w, frame_h, w, h, margin);
            state.faces.push(RoiFace {
                roi_id: roi.id(),
                index,
                region,
                transform,
            });
        }
        // Degenerate regions (empty boxes, coincident landmarks) get no embedding.
        state.faces.retain(|f| f.transform.is_some());
        let n = state.faces.len();
        if n == 0 {
            return Ok(gst::FlowSuccess::Ok);
        }

        let images = n;
        let per_face = 3 * w * h;
        let dim = state.model.spec().embedding_dim;
        state.tensor.resize(images * per_face, 0.0);
        state.output.resize(images * dim, 0.0);
        state.transforms.clear();
        state
            .transforms
            .extend(state.faces.iter().filter_map(|f| f.transform));
        // Threads only as a frame's faces need them (n-threads can be large), kept for
        // the next frames; fewer if n-threads was lowered while playing.
        state.helpers.truncate(n_threads.saturating_sub(1));
        if let Err(e) = state
            .helpers
            .ensure(n_threads.min(n).saturating_sub(1), &state.preprocessor)
        {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Failed,
                (
                    "cannot start the n-threads={} pre-processing threads: {}",
                    n_threads,
                    e
                ),
                ["Lower n-threads (1 prepares the faces on the streaming thread)."]
            );
            return Err(gst::FlowError::Error);
        }
        let helpers = &state.helpers;
        let preprocessor = &mut state.preprocessor;
        let tensor = &mut state.tensor;
        let transforms = &state.transforms;
        let prepared = input
            .with_frame(buf, |frame| {
                preprocessor
                    .process_affine_batch(helpers, frame, transforms, tensor)
                    .map_err(|e| e.to_string())
            })
            .and_then(|r| r);
        if let Err(e) = prepared {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("cannot read the frame: {}", e)
            );
            return Err(gst::FlowError::Error);
        }

        let element = self.obj();
        let element: &gst::Element = element.upcast_ref();
        let run = if state.model.supports_batches() {
            self.model_runs.fetch_add(1, Ordering::Relaxed);
            inference::run_with_fallback(
                element,
                &mut state.model,
                &state.tensor,
                images,
                h,
                w,
                &mut state.output,
            )
        } else {
            (0..images).try_for_each(|i| {
                self.model_runs.fetch_add(1, Ordering::Relaxed);
                inference::run_with_fallback(
                    element,
                    &mut state.model,
                    &state.tensor[i * per_face..(i + 1) * per_face],
                    1,
                    h,
                    w,
                    &mut state.output[i * dim..(i + 1) * dim],
                )
            })
        };
        if let Err(e) = run {
            gst::error!(CAT, imp = self, "{}", e);
            self.post_error_message(inference::error_message(&e));
            return Err(gst::FlowError::Error);
        }
        let model_l2 = state.model_l2_normalized;
        let source_pts = buf.pts().map(gst::ClockTime::nseconds);
        let embeddings: Vec<(usize, i32, FaceRegion, EmbeddingMeta)> = state
            .faces
            .iter()
            .enumerate()
            .map(|(i, face)| {
                let mut embedding = state.output[i * dim..(i + 1) * dim].to_vec();
                if l2_normalize && !model_l2 {
                    backend::l2_normalize(&mut embedding);
                }
                let meta = EmbeddingMeta {
                    embedding,
                    model: state.model_name.clone(),
                    l2_normalized: l2_normalize || model_l2,
                    fresh: true,
                    source_pts,
                };
                (face.index, face.roi_id, face.region, meta)
            })
            .collect();
        drop(guard);

        let mut next = embeddings.iter().peekable();
        for (index, mut roi) in buf
            .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
            .enumerate()
        {
            let Some((_, _, _, meta)) = next.next_if(|(i, ..)| *i == index) else {
                continue;
            };
            let mut param = gst::Structure::new_empty(ROI_EMBEDDING_PARAM);
            meta.write_fields(&mut param);
            roi.add_param(param);
        }
        gst::trace!(CAT, imp = self, "{} face embeddings for {:?}", n, buf.pts());
        if post_messages {
            for (_, roi_id, region, meta) in &embeddings {
                self.post_face_message(buf, *roi_id, region, meta);
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn post_face_message(
        &self,
        buf: &gst::BufferRef,
        roi_id: i32,
        region: &FaceRegion,
        meta: &EmbeddingMeta,
    ) {
        let obj = self.obj();
        let mut s = gst::Structure::new_empty("facenet-embedding");
        s.set("timestamp", buf.pts());
        s.set("roi-id", roi_id);
        s.set("x", region.x as u32);
        s.set("y", region.y as u32);
        s.set("width", region.width as u32);
        s.set("height", region.height as u32);
        meta.write_fields(&mut s);
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    fn post_embedding_message(&self, buf: &gst::BufferRef, meta: &EmbeddingMeta) {
        let obj = self.obj();
        let segment = obj.segment();
        let (running_time, stream_time) =
            match (segment.downcast_ref::<gst::ClockTime>(), buf.pts()) {
                (Some(seg), Some(pts)) => (seg.to_running_time(pts), seg.to_stream_time(pts)),
                _ => (None, None),
            };
        let mut s = gst::Structure::new_empty("facenet-embedding");
        s.set("timestamp", buf.pts());
        s.set("running-time", running_time);
        s.set("stream-time", stream_time);
        s.set("duration", buf.duration());
        meta.write_fields(&mut s);
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }
}
