// GStreamer glue shared by the elements that run models (`facenet`, `facedetect`): the
// execution-provider properties, loading a model with its warnings on the bus, mapping
// backend errors to GStreamer errors, and viewing a mapped video frame as a
// preprocess::Frame.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;

use crate::backend::{self, BackendError, FaceModel, Runtime, SessionConfig};
use crate::preprocess::{Frame, PixelFormat, YuvColorimetry, YuvMatrix};

static CAT_ORT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "onnxruntime",
        gst::DebugColorFlags::empty(),
        Some("ONNX Runtime's own log"),
    )
});

/// Sends ONNX Runtime's log to the `onnxruntime` debug category, at the level GST_DEBUG
/// asks for (ONNX Runtime formats nothing below it).
pub fn register_onnxruntime_log() {
    let threshold = CAT_ORT.threshold();
    let min_level = if threshold >= gst::DebugLevel::Log {
        backend::LogLevel::Verbose
    } else if threshold >= gst::DebugLevel::Info {
        backend::LogLevel::Info
    } else {
        backend::LogLevel::Warning
    };
    backend::set_log_sink(
        std::sync::Arc::new(|level, category, message| {
            let level = match level {
                backend::LogLevel::Verbose => gst::DebugLevel::Log,
                backend::LogLevel::Info => gst::DebugLevel::Info,
                backend::LogLevel::Warning => gst::DebugLevel::Warning,
                backend::LogLevel::Error | backend::LogLevel::Fatal => gst::DebugLevel::Error,
            };
            gst::log_with_level!(CAT_ORT, level, "[{}] {}", category, message);
        }),
        min_level,
    );
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstFaceNetExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 0,
    #[enum_value(
        name = "CUDA (NVIDIA GPU; needs the onnxruntime-gpu library)",
        nick = "cuda"
    )]
    Cuda = 1,
    #[enum_value(
        name = "TensorRT (NVIDIA GPU; needs the onnxruntime-gpu library and TensorRT)",
        nick = "tensorrt"
    )]
    TensorRt = 2,
    #[enum_value(name = "OpenVINO (Intel CPU, GPU, NPU)", nick = "openvino")]
    OpenVino = 3,
}

impl From<ExecutionProvider> for backend::ExecutionProvider {
    fn from(e: ExecutionProvider) -> Self {
        match e {
            ExecutionProvider::Cpu => backend::ExecutionProvider::Cpu,
            ExecutionProvider::Cuda => backend::ExecutionProvider::Cuda,
            ExecutionProvider::TensorRt => backend::ExecutionProvider::TensorRt,
            ExecutionProvider::OpenVino => backend::ExecutionProvider::OpenVino,
        }
    }
}

const DEFAULT_EXECUTION_PROVIDER: ExecutionProvider = ExecutionProvider::Cpu;
const DEFAULT_FALLBACK_TO_CPU: bool = true;
const DEFAULT_INTRA_OP_THREADS: u32 = 0;
/// ONNX Runtime's own default: its threads spin-wait for work, so that runs start sooner.
const DEFAULT_INTRA_OP_SPINNING: bool = true;

/// The execution-provider properties every model-running element has.
#[derive(Debug, Clone)]
pub struct EpSettings {
    pub execution_provider: ExecutionProvider,
    pub device: Option<String>,
    pub fallback_to_cpu: bool,
    pub intra_op_threads: u32,
    pub intra_op_spinning: bool,
    pub cache_dir: Option<String>,
    pub onnxruntime_library: Option<String>,
}

impl Default for EpSettings {
    fn default() -> Self {
        EpSettings {
            execution_provider: DEFAULT_EXECUTION_PROVIDER,
            device: None,
            fallback_to_cpu: DEFAULT_FALLBACK_TO_CPU,
            intra_op_threads: DEFAULT_INTRA_OP_THREADS,
            intra_op_spinning: DEFAULT_INTRA_OP_SPINNING,
            cache_dir: None,
            onnxruntime_library: None,
        }
    }
}

fn optional_string(value: &glib::Value) -> Option<String> {
    value
        .get::<Option<String>>()
        .expect("type checked upstream")
        .filter(|s| !s.is_empty())
}

impl EpSettings {
    pub fn param_specs() -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecEnum::builder_with_default("execution-provider", DEFAULT_EXECUTION_PROVIDER)
                .nick("Execution provider")
                .blurb("ONNX Runtime execution provider to run the model on")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("device")
                .nick("Device")
                .blurb("Device of the execution provider: OpenVINO CPU (default), GPU, GPU.N, NPU, AUTO:...; CUDA/TensorRT GPU index (default 0)")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("fallback-to-cpu")
                .nick("Fall back to CPU")
                .blurb("When the execution provider cannot be used: run on the CPU with a warning (true) or fail (false)")
                .default_value(DEFAULT_FALLBACK_TO_CPU)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("intra-op-threads")
                .nick("Intra-op threads")
                .blurb("ONNX Runtime threads per model run (0 = one per core)")
                .maximum(1024)
                .default_value(DEFAULT_INTRA_OP_THREADS)
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("intra-op-spinning")
                .nick("Intra-op spinning")
                .blurb("Let ONNX Runtime's intra-op threads spin-wait for work (its default: runs start sooner) instead of sleeping; false leaves those cores to the rest of the pipeline between model runs (decoders, other elements, n-threads)")
                .default_value(DEFAULT_INTRA_OP_SPINNING)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("cache-dir")
                .nick("Cache directory")
                .blurb("Directory for TensorRT engines and OpenVINO compiled blobs (created if missing; unset = no cache)")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("onnxruntime-library")
                .nick("ONNX Runtime library")
                .blurb("libonnxruntime.so to load (default: ORT_DYLIB_PATH, else the one installed beside the plugin, else the build's, else the system's); ONNX Runtime loads once per process, so only the first element started counts")
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets the property if it is one of ours; `false` otherwise.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "execution-provider" => {
                self.execution_provider = value.get().expect("type checked upstream")
            }
            "device" => self.device = optional_string(value),
            "fallback-to-cpu" => self.fallback_to_cpu = value.get().expect("type checked upstream"),
            "intra-op-threads" => {
                self.intra_op_threads = value.get().expect("type checked upstream")
            }
            "intra-op-spinning" => {
                self.intra_op_spinning = value.get().expect("type checked upstream")
            }
            "cache-dir" => self.cache_dir = optional_string(value),
            "onnxruntime-library" => self.onnxruntime_library = optional_string(value),
            _ => return false,
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "execution-provider" => self.execution_provider.to_value(),
            "device" => self.device.to_value(),
            "fallback-to-cpu" => self.fallback_to_cpu.to_value(),
            "intra-op-threads" => self.intra_op_threads.to_value(),
            "intra-op-spinning" => self.intra_op_spinning.to_value(),
            "cache-dir" => self.cache_dir.to_value(),
            "onnxruntime-library" => self.onnxruntime_library.to_value(),
            _ => return None,
        })
    }

    pub fn session_config(&self, model: &str, output_name: Option<String>) -> SessionConfig {
        SessionConfig {
            model_path: PathBuf::from(model),
            execution_provider: self.execution_provider.into(),
            device: self.device.clone(),
            fallback_to_cpu: self.fallback_to_cpu,
            intra_op_threads: self.intra_op_threads as usize,
            intra_op_spinning: self.intra_op_spinning,
            cache_dir: self.cache_dir.as_ref().map(PathBuf::from),
            output_name,
        }
    }

    /// The process-wide ONNX Runtime, with a bus warning when this element asked for a
    /// library other than the one already loaded.
    pub fn runtime(&self, element: &gst::Element) -> Result<&'static Runtime, LoadFailure> {
        let library = self.onnxruntime_library.as_ref().map(PathBuf::from);
        let (runtime, note) =
            backend::runtime(library.as_deref()).map_err(|e| LoadFailure::backend(&e))?;
        if let Some(note) = note {
            gst::element_warning!(element, gst::LibraryError::Settings, ("{}", note));
        }
        Ok(runtime)
    }
}

/// Why an element could not load its model: the GStreamer error start() returns, and the
/// same words for the warning a failed hot reload posts instead.
#[derive(Debug)]
pub struct LoadFailure {
    pub error: gst::ErrorMessage,
    pub text: String,
}

impl LoadFailure {
    pub fn new<T: gst::MessageErrorDomain>(domain: T, text: impl Into<String>) -> Self {
        let text = text.into();
        LoadFailure {
            error: gst::ErrorMessage::new(&domain, Some(&text), None, file!(), "load", line!()),
            text,
        }
    }

    pub fn backend(err: &BackendError) -> Self {
        LoadFailure {
            error: error_message(err),
            text: err.to_string(),
        }
    }
}

/// Hot reload bookkeeping. Each request takes a generation number; a load that finishes
/// after a newer request, or after stop(), is thrown away instead of being swapped in.
#[derive(Debug, Default)]
pub struct ReloadGeneration(AtomicU64);

impl ReloadGeneration {
    pub fn begin(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Makes every load in flight stale (stop(), start()).
    pub fn cancel(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_current(&self, generation: u64) -> bool {
        self.0.load(Ordering::SeqCst) == generation
    }
}

/// The text of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string())
}

/// Runs `job` on a thread of its own, off the streaming thread. A panic there would only
/// end that thread silently; it becomes an error on the element's bus instead.
pub fn spawn_off_stream(element: &gst::Element, what: &str, job: impl FnOnce() + Send + 'static) {
    let weak = element.downgrade();
    let task = what.to_string();
    let spawned = std::thread::Builder::new()
        .name(format!("facenet-{what}"))
        .spawn(move || {
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(job)) {
                if let Some(element) = weak.upgrade() {
                    gst::element_error!(
                        element,
                        gst::LibraryError::Failed,
                        ("{} panicked: {}", task, panic_text(panic.as_ref()))
                    );
                }
            }
        });
    if let Err(e) = spawned {
        gst::element_warning!(
            element,
            gst::CoreError::Thread,
            ("cannot start a thread for {}: {}", what, e)
        );
    }
}

/// Runs `model`. An accelerator that fails mid-stream (a device reset, a driver fault)
/// hands over to the CPU provider, with a warning, where `fallback-to-cpu` allows; the
/// run is retried there, so no frame is lost to the switch.
pub fn run_with_fallback(
    element: &gst::Element,
    model: &mut FaceModel,
    input: &[f32],
    batch: usize,
    height: usize,
    width: usize,
    output: &mut [f32],
) -> Result<(), BackendError> {
    let failure = match model.run(input, batch, height, width, output) {
        Ok(()) => return Ok(()),
        Err(e) if model.can_fall_back_to_cpu() => e,
        Err(e) => return Err(e),
    };
    let provider = model.active_provider().nick();
    let cpu = model.reopen_on_cpu().map_err(|e| {
        BackendError::Inference(format!(
            "{failure}; reopening the model on the CPU provider failed too: {e}"
        ))
    })?;
    gst::element_warning!(
        element,
        gst::LibraryError::Failed,
        (
            "the {} execution provider failed mid-stream ({}); continuing on the CPU provider (set fallback-to-cpu=false to stop instead)",
            provider,
            failure
        )
    );
    *model = cpu;
    model.run(input, batch, height, width, output)
}

/// Posts a backend warning (e.g. a CPU fallback) on the bus.
pub fn post_warnings(element: &gst::Element, warnings: &[String]) {
    for warning in warnings {
        gst::element_warning!(element, gst::LibraryError::Init, ("{}", warning));
    }
}

/// The GStreamer error for a backend error; the text names the cause and the fix.
pub fn error_message(err: &BackendError) -> gst::ErrorMessage {
    let text = err.to_string();
    match err {
        BackendError::Library(_) => gst::error_msg!(gst::LibraryError::Init, ("{}", text)),
        BackendError::ModelNotFound(_) => {
            gst::error_msg!(gst::ResourceError::NotFound, ("{}", text))
        }
        BackendError::ModelLoad(_) => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", text)),
        BackendError::InvalidModel(_) => {
            gst::error_msg!(gst::ResourceError::Settings, ("{}", text))
        }
        BackendError::Configuration(_) => {
            gst::error_msg!(gst::LibraryError::Settings, ("{}", text))
        }
        BackendError::ExecutionProvider(_) => {
            gst::error_msg!(gst::LibraryError::Init, ("{}", text))
        }
        BackendError::Inference(_) => gst::error_msg!(gst::StreamError::Failed, ("{}", text)),
    }
}

pub const SUPPORTED_FORMATS: [gst_video::VideoFormat; 13] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Gray8,
];

/// Sink and src templates for an in-place video element over the supported formats.
pub fn pad_templates() -> Vec<gst::PadTemplate> {
    let caps = gst_video::VideoCapsBuilder::new()
        .format_list(SUPPORTED_FORMATS)
        .build();
    vec![
        gst::PadTemplate::new(
            "src",
            gst::PadDirection::Src,
            gst::PadPresence::Always,
            &caps,
        )
        .expect("valid template"),
        gst::PadTemplate::new(
            "sink",
            gst::PadDirection::Sink,
            gst::PadPresence::Always,
            &caps,
        )
        .expect("valid template"),
    ]
}

pub fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match format {
        V::Rgb => PixelFormat::Rgb,
        V::Bgr => PixelFormat::Bgr,
        V::Rgba => PixelFormat::Rgba,
        V::Bgra => PixelFormat::Bgra,
        V::Rgbx => PixelFormat::Rgbx,
        V::Bgrx => PixelFormat::Bgrx,
        V::Xrgb => PixelFormat::Xrgb,
        V::Xbgr => PixelFormat::Xbgr,
        V::Argb => PixelFormat::Argb,
        V::Abgr => PixelFormat::Abgr,
        V::I420 => PixelFormat::I420,
        V::Nv12 => PixelFormat::Nv12,
        V::Gray8 => PixelFormat::Gray8,
        _ => return None,
    })
}

/// The YUV to RGB matrix and range the caps' colorimetry states. GStreamer fills in its
/// defaults (BT.601 for SD, BT.709 for HD) when caps leave colorimetry out.
pub fn yuv_colorimetry(info: &gst_video::VideoInfo) -> YuvColorimetry {
    use gst_video::{VideoColorMatrix as M, VideoColorRange as R};
    let colorimetry = info.colorimetry();
    let matrix = match colorimetry.matrix() {
        M::Bt709 | M::Smpte240m => YuvMatrix::Bt709,
        M::Bt2020 => YuvMatrix::Bt2020,
        // FCC's coefficients (0.30, 0.11) are within rounding of BT.601's.
        _ => YuvMatrix::Bt601,
    };
    YuvColorimetry {
        matrix,
        full_range: colorimetry.range() == R::Range0_255,
    }
}

/// Negotiated input: what a mapped buffer is.
#[derive(Debug, Clone)]
pub struct InputFormat {
    pub info: gst_video::VideoInfo,
    pub format: PixelFormat,
    pub colorimetry: YuvColorimetry,
}

impl InputFormat {
    pub fn from_caps(caps: &gst::Caps) -> Result<Self, String> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| format!("cannot parse caps {caps}"))?;
        let format =
            pixel_format(info.format()).ok_or_else(|| format!("unsupported format in {caps}"))?;
        Ok(InputFormat {
            colorimetry: yuv_colorimetry(&info),
            format,
            info,
        })
    }

    /// Maps `buf` for reading and hands its planes to `f` as a preprocess::Frame. A
    /// buffer smaller than the caps say is an error naming both sizes.
    pub fn with_frame<R>(
        &self,
        buf: &gst::BufferRef,
        f: impl FnOnce(&Frame) -> R,
    ) -> Result<R, String> {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &self.info).map_err(|_| {
            format!(
                "buffer of {} bytes cannot hold a {}x{} {} frame ({} bytes); the upstream element sent a buffer that does not match its caps",
                buf.size(),
                self.info.width(),
                self.info.height(),
                self.info.format().to_str(),
                self.info.size()
            )
        })?;
        let mut planes: [&[u8]; 3] = [&[], &[], &[]];
        let mut strides = [0usize; 3];
        for plane in 0..(frame.n_planes() as usize).min(3) {
            planes[plane] = frame
                .plane_data(plane as u32)
                .map_err(|e| format!("cannot map plane {plane}: {e}"))?;
            strides[plane] = frame.plane_stride()[plane] as usize;
        }
        let view = Frame {
            format: self.format,
            width: frame.width() as usize,
            height: frame.height() as usize,
            planes,
            strides,
            colorimetry: self.colorimetry,
        };
        Ok(f(&view))
    }
}
