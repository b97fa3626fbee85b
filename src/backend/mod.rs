//! The inference backend: loading the ONNX Runtime library once per process, the single
//! process-wide ort Environment, execution-provider selection and a face-model session.
//!
//! No GStreamer types here: errors are plain values that the elements' `imp.rs` turn
//! into GStreamer errors and warnings.

mod detector;
pub mod model;
mod session;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use detector::DetectorModel;
pub use model::{Dim, InvalidModel, ModelHints, ModelSpec, NormalizationKind};
pub use session::{FaceModel, SessionConfig};

/// What to tell a user who has no ONNX Runtime library.
pub const INSTALL_HINT: &str = "run `make setup` in the gst-facenet source tree (it extracts the pinned \
onnxruntime-openvino wheel from PyPI into .ort/), or install the plugin with `make install` or its Debian \
package (they put ONNX Runtime in gst-facenet/ beside the GStreamer plugin folder), or point the ORT_DYLIB_PATH environment variable or the \
element's onnxruntime-library property at a libonnxruntime.so (ONNX Runtime 1.17 or newer), e.g. the one in \
the onnxruntime, onnxruntime-openvino or onnxruntime-gpu Python wheels (onnxruntime/capi/)";

/// Library path baked in at build time by `make build` (see build.rs).
pub const DEFAULT_LIBRARY: Option<&str> = option_env!("GST_FACENET_DEFAULT_ORT_DYLIB");
/// What the dynamic loader is asked for when nothing else names a library.
pub const SYSTEM_LIBRARY: &str = "libonnxruntime.so";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// The ONNX Runtime library could not be loaded (this outcome sticks for the process).
    Library(String),
    /// Model file missing or unreadable.
    ModelNotFound(String),
    /// ONNX Runtime refused the file (not ONNX, truncated, unsupported operators...).
    ModelLoad(String),
    /// The model loaded but its interface is not a face-embedding model's.
    InvalidModel(String),
    /// Bad `device` string or settings for the chosen execution provider.
    Configuration(String),
    /// The requested execution provider could not be used and fallback is off.
    ExecutionProvider(String),
    /// A model run failed or returned unusable numbers.
    Inference(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Library(m)
            | BackendError::ModelNotFound(m)
            | BackendError::ModelLoad(m)
            | BackendError::InvalidModel(m)
            | BackendError::Configuration(m)
            | BackendError::ExecutionProvider(m)
            | BackendError::Inference(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BackendError {}

/// Severity of a line ONNX Runtime logs, for routing it to the host's logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Verbose,
    Info,
    Warning,
    Error,
    Fatal,
}

/// Receives ONNX Runtime's own log lines: (level, ORT category, message).
pub type LogSink = Arc<dyn Fn(LogLevel, &str, &str) + Send + Sync>;

static LOG_SINK: OnceLock<(LogSink, LogLevel)> = OnceLock::new();

/// Routes ONNX Runtime's log to `sink` for lines at `min_level` and above. Only the first
/// call counts, and only if made before the runtime loads (the plugin does it in
/// `plugin_init`).
pub fn set_log_sink(sink: LogSink, min_level: LogLevel) {
    let _ = LOG_SINK.set((sink, min_level));
}

/// The loaded ONNX Runtime: which file, which version, and the process-wide environment
/// (ort allows one per process).
pub struct Runtime {
    pub library: PathBuf,
    pub version: String,
    environment: ort::environment::Environment,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("version", &self.version)
            .finish()
    }
}

impl Runtime {
    pub(crate) fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Where `make install` (and the Debian package) put ONNX Runtime for this build: a
/// `gst-facenet` folder beside the GStreamer plugin folder, e.g.
/// `/usr/lib/x86_64-linux-gnu/gst-facenet/` for a plugin in
/// `/usr/lib/x86_64-linux-gnu/gstreamer-1.0/`. Outside the plugin folder, so the plugin
/// scanner never tries ONNX Runtime's libraries as plugins.
pub const INSTALLED_DIR_NAME: &str = "gst-facenet";
static INSTALLED_LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// Tells the backend where this code was loaded from: the plugin file (`plugin_init`) or
/// an installed program. The first call wins.
pub fn set_installed_from(plugin_file: &Path) {
    if let Some(lib_dir) = plugin_file.parent().and_then(Path::parent) {
        let _ = INSTALLED_LIBRARY.set(lib_dir.join(INSTALLED_DIR_NAME).join(SYSTEM_LIBRARY));
    }
}

fn installed_library() -> Option<PathBuf> {
    INSTALLED_LIBRARY.get().filter(|p| p.exists()).cloned()
}

/// Where the library comes from, in order of precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LibrarySource {
    Property(PathBuf),
    Environment(PathBuf),
    Installed(PathBuf),
    BuildDefault(PathBuf),
    System,
}

impl LibrarySource {
    /// The choice for this process: the element property, else `ORT_DYLIB_PATH`, else the
    /// library installed with the plugin (`make install`, the Debian package), else the
    /// library `make build` baked in (if it still exists), else the dynamic loader's search.
    pub fn resolve(property: Option<&Path>) -> LibrarySource {
        if let Some(p) = property.filter(|p| !p.as_os_str().is_empty()) {
            return LibrarySource::Property(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            return LibrarySource::Environment(PathBuf::from(p));
        }
        if let Some(p) = installed_library() {
            return LibrarySource::Installed(p);
        }
        if let Some(p) = DEFAULT_LIBRARY.map(PathBuf::from).filter(|p| p.exists()) {
            return LibrarySource::BuildDefault(p);
        }
        LibrarySource::System
    }

    fn path(&self) -> PathBuf {
        match self {
            LibrarySource::Property(p)
            | LibrarySource::Environment(p)
            | LibrarySource::Installed(p)
            | LibrarySource::BuildDefault(p) => p.clone(),
            LibrarySource::System => PathBuf::from(SYSTEM_LIBRARY),
        }
    }

    fn describe(&self) -> String {
        match self {
            LibrarySource::Property(p) => {
                format!("{} (from the onnxruntime-library property)", p.display())
            }
            LibrarySource::Environment(p) => format!("{} (from ORT_DYLIB_PATH)", p.display()),
            LibrarySource::Installed(p) => {
                format!("{} (installed with the plugin)", p.display())
            }
            LibrarySource::BuildDefault(p) => format!("{} (the build's default)", p.display()),
            LibrarySource::System => {
                let mut s = format!("{SYSTEM_LIBRARY} (the dynamic loader's search path");
                if let Some(d) = DEFAULT_LIBRARY {
                    s.push_str(&format!("; the build's default {d} does not exist"));
                }
                s.push(')');
                s
            }
        }
    }
}

fn load(source: &LibrarySource) -> Result<Runtime, String> {
    let path = source.path();
    if matches!(
        source,
        LibrarySource::Property(_) | LibrarySource::Environment(_)
    ) && !path.exists()
    {
        return Err(format!(
            "ONNX Runtime library not found: {} does not exist; {INSTALL_HINT}",
            source.describe()
        ));
    }
    let builder = ort::init_from(&path).map_err(|e| {
        format!(
            "could not load the ONNX Runtime library {}: {e}; {INSTALL_HINT}",
            source.describe()
        )
    })?;
    let mut builder = builder.with_name("gst-facenet").with_telemetry(false);
    if let Some((sink, min_level)) = LOG_SINK.get() {
        let sink = sink.clone();
        let min_level = *min_level;
        builder = builder.with_logger(Arc::new(
            move |level: ort::logging::LogLevel,
                  category: &str,
                  _id: &str,
                  location: &str,
                  msg: &str| {
                let level = match level {
                    ort::logging::LogLevel::Verbose => LogLevel::Verbose,
                    ort::logging::LogLevel::Info => LogLevel::Info,
                    ort::logging::LogLevel::Warning => LogLevel::Warning,
                    ort::logging::LogLevel::Error => LogLevel::Error,
                    ort::logging::LogLevel::Fatal => LogLevel::Fatal,
                };
                if level >= min_level {
                    // ONNX Runtime calls this from C++: a panic must not unwind into it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        sink(level, category, &format!("{location}: {msg}"))
                    }));
                }
            },
        ));
    }
    let environment = builder
        .build()
        .map_err(|e| format!("could not create the ONNX Runtime environment: {e}"))?;
    // The custom logger is registered at VERBOSE; ask ONNX Runtime itself to drop what
    // nobody will read, so verbose lines are not even formatted.
    let env_level = match LOG_SINK.get().map(|(_, l)| *l).unwrap_or(LogLevel::Warning) {
        LogLevel::Verbose => ort::logging::LogLevel::Verbose,
        LogLevel::Info => ort::logging::LogLevel::Info,
        LogLevel::Warning => ort::logging::LogLevel::Warning,
        LogLevel::Error => ort::logging::LogLevel::Error,
        LogLevel::Fatal => ort::logging::LogLevel::Fatal,
    };
    environment.set_log_level(env_level);
    let version = library_version(&path);
    Ok(Runtime {
        library: path,
        version,
        environment,
    })
}

/// ONNX Runtime's version, from the versioned file the library name resolves to
/// (`libonnxruntime.so.1.24.1`) or else its build-info string.
fn library_version(path: &Path) -> String {
    let from_name = std::fs::canonicalize(path).ok().and_then(|p| {
        let name = p.file_name()?.to_string_lossy().into_owned();
        let (_, v) = name.split_once(".so.")?;
        v.chars()
            .all(|c| c.is_ascii_digit() || c == '.')
            .then(|| v.to_string())
    });
    from_name
        .or_else(|| {
            ort::info()
                .split(',')
                .find_map(|part| part.trim().strip_prefix("git-branch=rel-"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "of unknown version".to_string())
}

/// The runtime, loading it on first use. `property` is honoured only by the first load in
/// the process; later callers get the loaded runtime and, if they asked for another
/// library, a note saying theirs was ignored.
pub fn runtime(
    property: Option<&Path>,
) -> Result<(&'static Runtime, Option<String>), BackendError> {
    let source = LibrarySource::resolve(property);
    let outcome = RUNTIME.get_or_init(|| load(&source));
    match outcome {
        Ok(rt) => {
            let note = match &source {
                // Paths compared as written where they no longer resolve (a library file
                // removed after it was loaded, a path that never existed).
                LibrarySource::Property(p) | LibrarySource::Environment(p)
                    if std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())
                        != std::fs::canonicalize(&rt.library)
                            .unwrap_or_else(|_| rt.library.clone()) =>
                {
                    Some(format!(
                        "ONNX Runtime is already loaded in this process from {}; {} is ignored (the library loads once per process)",
                        rt.library.display(),
                        source.describe()
                    ))
                }
                _ => None,
            };
            Ok((rt, note))
        }
        Err(e) => Err(BackendError::Library(format!(
            "{e} (ONNX Runtime loads once per process: restart the application after fixing this)"
        ))),
    }
}

/// Whether the runtime has been loaded (successfully or not) in this process.
pub fn runtime_attempted() -> bool {
    RUNTIME.get().is_some()
}

/// The execution providers the element offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda,
    TensorRt,
    OpenVino,
}

impl ExecutionProvider {
    pub fn nick(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::TensorRt => "tensorrt",
            ExecutionProvider::OpenVino => "openvino",
        }
    }

    /// ONNX Runtime's own name for the provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
            ExecutionProvider::TensorRt => "TensorrtExecutionProvider",
            ExecutionProvider::OpenVino => "OpenVINOExecutionProvider",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "",
            ExecutionProvider::Cuda | ExecutionProvider::TensorRt => {
                "; CUDA and TensorRT need a GPU build of ONNX Runtime: install the onnxruntime-gpu wheel (with CUDA 12 and cuDNN 9 libraries; TensorRT libraries for tensorrt) and set ORT_DYLIB_PATH to its onnxruntime/capi/libonnxruntime.so"
            }
            ExecutionProvider::OpenVino => {
                "; OpenVINO needs the onnxruntime-openvino build (the default library `make setup` installs)"
            }
        }
    }
}

/// The device an execution provider should use, parsed from the `device` property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    Default,
    CudaId(i32),
    OpenVino(String),
}

/// Parses the `device` property for `ep`. OpenVINO takes its device names (`CPU`, `GPU`,
/// `GPU.1`, `NPU`, `AUTO:GPU,CPU`, `HETERO:...`, `MULTI:...`); CUDA and TensorRT take a
/// GPU index. Legacy OpenVINO names are refused with what to use instead.
pub fn parse_device(ep: ExecutionProvider, device: Option<&str>) -> Result<Device, BackendError> {
    let device = match device.map(str::trim).filter(|d| !d.is_empty()) {
        None => return Ok(Device::Default),
        Some(d) => d,
    };
    match ep {
        ExecutionProvider::Cpu => Err(BackendError::Configuration(format!(
            "device '{device}' has no meaning for execution-provider=cpu; unset device, or choose execution-provider=openvino (device CPU, GPU or NPU) or cuda/tensorrt (device = GPU index)"
        ))),
        ExecutionProvider::Cuda | ExecutionProvider::TensorRt => {
            let id = device
                .strip_prefix("cuda:")
                .or_else(|| device.strip_prefix("CUDA:"))
                .unwrap_or(device);
            id.parse::<i32>()
                .ok()
                .filter(|id| *id >= 0)
                .map(Device::CudaId)
                .ok_or_else(|| {
                    BackendError::Configuration(format!(
                        "device '{device}' is not a GPU index for execution-provider={}: use 0, 1, ... (as in CUDA_VISIBLE_DEVICES order)",
                        ep.nick()
                    ))
                })
        }
        ExecutionProvider::OpenVino => {
            let upper = device.to_ascii_uppercase();
            let base = upper.split(['.', ':']).next().unwrap_or("");
            if ["MYRIAD", "HDDL", "VAD-M", "VAD-F", "VPUX"].iter().any(|l| upper.starts_with(l)) {
                return Err(BackendError::Configuration(format!(
                    "OpenVINO device '{device}' is a legacy Movidius/VPU name that OpenVINO 2022.3+ no longer supports (the MYRIAD plugin for the Neural Compute Stick 2 was removed); use device=NPU for Intel NPUs (Core Ultra), or CPU or GPU"
                )));
            }
            if let Some((dev, precision)) = upper.split_once('_') {
                if ["FP32", "FP16", "INT8"].contains(&precision) {
                    return Err(BackendError::Configuration(format!(
                        "OpenVINO device '{device}' uses the old DEVICE_PRECISION form that ONNX Runtime 1.18 replaced; use device={dev} (the precision now defaults per device: FP32 on CPU, FP16 on GPU and NPU)"
                    )));
                }
            }
            if ["CPU", "GPU", "NPU", "AUTO", "HETERO", "MULTI"].contains(&base) {
                Ok(Device::OpenVino(upper))
            } else {
                Err(BackendError::Configuration(format!(
                    "'{device}' is not an OpenVINO device: use CPU, GPU (or GPU.0, GPU.1, ...), NPU, or AUTO:/HETERO:/MULTI: lists of them"
                )))
            }
        }
    }
}

/// The execution providers compiled into the loaded library, by ONNX Runtime name.
pub fn available_providers() -> Vec<&'static str> {
    use ort::ep::ExecutionProvider as _;
    let mut out = Vec::new();
    if ort::ep::OpenVINO::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::OpenVino.ort_name());
    }
    if ort::ep::CUDA::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::Cuda.ort_name());
    }
    if ort::ep::TensorRT::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::TensorRt.ort_name());
    }
    out.push(ExecutionProvider::Cpu.ort_name());
    out
}

/// Scales `v` to unit Euclidean length; a zero vector is left as it is.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        use ExecutionProvider::*;
        assert_eq!(parse_device(OpenVino, None).unwrap(), Device::Default);
        assert_eq!(
            parse_device(OpenVino, Some("cpu")).unwrap(),
            Device::OpenVino("CPU".into())
        );
        assert_eq!(
            parse_device(OpenVino, Some("GPU.1")).unwrap(),
            Device::OpenVino("GPU.1".into())
        );
        assert_eq!(
            parse_device(OpenVino, Some("AUTO:GPU,CPU")).unwrap(),
            Device::OpenVino("AUTO:GPU,CPU".into())
        );
        let e = parse_device(OpenVino, Some("MYRIAD"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("NPU") && e.contains("MYRIAD"), "{e}");
        let e = parse_device(OpenVino, Some("CPU_FP32"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("device=CPU"), "{e}");
        assert!(parse_device(OpenVino, Some("TPU")).is_err());
        assert_eq!(parse_device(Cuda, Some("1")).unwrap(), Device::CudaId(1));
        assert_eq!(
            parse_device(TensorRt, Some("cuda:0")).unwrap(),
            Device::CudaId(0)
        );
        assert!(parse_device(Cuda, Some("GPU")).is_err());
        assert!(parse_device(Cuda, Some("-1")).is_err());
        assert!(parse_device(Cpu, Some("0")).is_err());
        assert_eq!(parse_device(Cpu, Some(" ")).unwrap(), Device::Default);
    }

    #[test]
    fn l2() {
        let mut v = [3.0f32, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut z = [0.0f32; 3];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0; 3]);
    }

    #[test]
    fn property_wins_over_environment() {
        let s = LibrarySource::resolve(Some(Path::new("/x/libonnxruntime.so")));
        assert_eq!(
            s,
            LibrarySource::Property(PathBuf::from("/x/libonnxruntime.so"))
        );
        assert!(s.describe().contains("onnxruntime-library property"));
    }
}
