//! One face-model session: execution-provider registration (with CPU fallback or a hard
//! failure, as configured), validation of the model's interface, and batched runs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use ort::ep::ExecutionProviderDispatch;
use ort::session::builder::SessionBuilder;
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueType};

use super::model::{self, ElementKind, ModelSpec, TensorDesc};
use super::{available_providers, parse_device, BackendError, Device, ExecutionProvider, Runtime};
use crate::preprocess::TensorLayout;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub model_path: PathBuf,
    pub execution_provider: ExecutionProvider,
    pub device: Option<String>,
    /// Fall back to the CPU provider (with a warning) when the requested one cannot be
    /// used; otherwise that is an error.
    pub fallback_to_cpu: bool,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per core).
    pub intra_op_threads: usize,
    /// Let ONNX Runtime's intra-op threads spin-wait for work (its default) instead of
    /// sleeping: a lone model run back to back gains a little latency, but in a pipeline
    /// the spinning threads hold cores that the streaming threads and the other elements
    /// need between runs.
    pub intra_op_spinning: bool,
    /// Where TensorRT engines and OpenVINO compiled blobs are cached.
    pub cache_dir: Option<PathBuf>,
    pub output_name: Option<String>,
}

/// A loaded, validated face-embedding model.
pub struct FaceModel {
    session: Session,
    spec: ModelSpec,
    active_provider: ExecutionProvider,
    warnings: Vec<String>,
    bool_inputs: Vec<(String, Tensor<bool>)>,
    shape: Vec<usize>,
    config: SessionConfig,
}

impl std::fmt::Debug for FaceModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceModel")
            .field("spec", &self.spec)
            .field("active_provider", &self.active_provider)
            .finish()
    }
}

fn describe(outlet: &ort::value::Outlet) -> TensorDesc {
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => TensorDesc {
            name: outlet.name().to_string(),
            kind: match ty {
                TensorElementType::Float32 => ElementKind::Float32,
                TensorElementType::Bool => ElementKind::Bool,
                _ => ElementKind::Other,
            },
            shape: Some(shape.iter().copied().collect()),
            type_name: match ty {
                TensorElementType::Float32 => "float32".to_string(),
                other => format!("{other}").to_lowercase(),
            },
        },
        other => TensorDesc {
            name: outlet.name().to_string(),
            kind: ElementKind::Other,
            shape: None,
            type_name: format!("{other:?}").to_lowercase(),
        },
    }
}

fn provider_dispatches(
    cfg: &SessionConfig,
    device: &Device,
) -> Result<Vec<ExecutionProviderDispatch>, BackendError> {
    let cache_dir = match &cfg.cache_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                BackendError::Configuration(format!(
                    "cannot create cache-dir {}: {e}",
                    dir.display()
                ))
            })?;
            Some(dir.to_string_lossy().into_owned())
        }
        None => None,
    };
    let gpu_id = match device {
        Device::CudaId(id) => *id,
        _ => 0,
    };
    Ok(match cfg.execution_provider {
        ExecutionProvider::Cpu => Vec::new(),
        ExecutionProvider::Cuda => {
            vec![ort::ep::CUDA::default()
                .with_device_id(gpu_id)
                .build()
                .error_on_failure()]
        }
        ExecutionProvider::TensorRt => {
            let mut trt = ort::ep::TensorRT::default().with_device_id(gpu_id);
            if let Some(dir) = &cache_dir {
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir)
                    .with_timing_cache(true)
                    .with_timing_cache_path(dir);
            }
            // Nodes TensorRT cannot take run on CUDA rather than the CPU.
            vec![
                trt.build().error_on_failure(),
                ort::ep::CUDA::default()
                    .with_device_id(gpu_id)
                    .build()
                    .error_on_failure(),
            ]
        }
        ExecutionProvider::OpenVino => {
            let device_type = match device {
                Device::OpenVino(d) => d.clone(),
                _ => "CPU".to_string(),
            };
            let mut ov = ort::ep::OpenVINO::default().with_device_type(device_type);
            if let Some(dir) = &cache_dir {
                ov = ov.with_cache_dir(dir);
            }
            if cfg.intra_op_threads > 0 {
                ov = ov.with_num_threads(cfg.intra_op_threads);
            }
            vec![ov.build().error_on_failure()]
        }
    })
}

fn new_builder(runtime: &Runtime, cfg: &SessionConfig) -> Result<SessionBuilder, String> {
    let mut builder = Session::builder(runtime.environment()).map_err(|e| e.to_string())?;
    if cfg.intra_op_threads > 0 {
        builder = builder
            .with_intra_threads(cfg.intra_op_threads)
            .map_err(|e| e.to_string())?;
    }
    builder = builder
        .with_intra_op_spinning(cfg.intra_op_spinning)
        .map_err(|e| e.to_string())?;
    Ok(builder)
}

/// A session as opened, with its declared interface, before any model-specific checks.
pub(crate) struct OpenedSession {
    pub session: Session,
    pub active_provider: ExecutionProvider,
    pub warnings: Vec<String>,
    pub inputs: Vec<TensorDesc>,
    pub outputs: Vec<TensorDesc>,
    pub metadata: BTreeMap<String, String>,
}

/// Opens `cfg.model_path` on the requested execution provider, falling back to the CPU
/// (with a warning) or failing, as configured.
pub(crate) fn open_session(
    runtime: &Runtime,
    cfg: &SessionConfig,
) -> Result<OpenedSession, BackendError> {
    let path = &cfg.model_path;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(BackendError::ModelNotFound(format!(
                "model-location {} is not a file",
                path.display()
            )))
        }
        Err(e) => {
            return Err(BackendError::ModelNotFound(format!(
                "cannot read model-location {}: {e}; set model-location to an ONNX face model (see models/README.md; `make models` builds the bundled ones)",
                path.display()
            )))
        }
    }
    let device = parse_device(cfg.execution_provider, cfg.device.as_deref())?;
    let mut warnings = Vec::new();
    let ep = cfg.execution_provider;

    let attempt_with_provider = || -> Result<Session, String> {
        if ep != ExecutionProvider::Cpu {
            use ort::ep::ExecutionProvider as _;
            let compiled_in = match ep {
                ExecutionProvider::Cuda => ort::ep::CUDA::is_available(),
                ExecutionProvider::TensorRt => ort::ep::TensorRT::is_available(),
                ExecutionProvider::OpenVino => ort::ep::OpenVINO::is_available(),
                ExecutionProvider::Cpu => Ok(true),
            }
            .unwrap_or(false);
            if !compiled_in {
                return Err(format!(
                    "{} is not compiled into the ONNX Runtime library {} (version {}; it has {}){}",
                    ep.ort_name(),
                    runtime.library.display(),
                    runtime.version,
                    available_providers().join(", "),
                    ep.install_hint()
                ));
            }
        }
        let dispatches = provider_dispatches(cfg, &device).map_err(|e| e.to_string())?;
        let builder = new_builder(runtime, cfg)?;
        let mut builder = builder.with_execution_providers(dispatches).map_err(|e| {
            format!(
                "{} could not be registered: {e}{}",
                ep.ort_name(),
                ep.install_hint()
            )
        })?;
        builder.commit_from_file(path).map_err(|e| e.to_string())
    };

    let (session, active_provider) = match attempt_with_provider() {
        Ok(s) => (s, ep),
        Err(msg) if ep == ExecutionProvider::Cpu => {
            return Err(BackendError::ModelLoad(format!(
                "ONNX Runtime could not load {}: {msg}; is it a complete ONNX model file (opset supported by ONNX Runtime {})?",
                path.display(),
                runtime.version
            )))
        }
        Err(msg) if !cfg.fallback_to_cpu => {
            return Err(BackendError::ExecutionProvider(format!(
                "execution-provider={} failed: {msg}; set fallback-to-cpu=true to run on the CPU instead",
                ep.nick()
            )))
        }
        Err(msg) => {
            let mut builder = new_builder(runtime, cfg).map_err(BackendError::ModelLoad)?;
            let session = builder.commit_from_file(path).map_err(|e| {
                BackendError::ModelLoad(format!(
                    "ONNX Runtime could not load {}: {e}; is it a complete ONNX model file?",
                    path.display()
                ))
            })?;
            warnings.push(format!(
                "execution-provider={} is unavailable, running on the CPU instead: {msg} (set fallback-to-cpu=false to make this an error)",
                ep.nick()
            ));
            (session, ExecutionProvider::Cpu)
        }
    };

    let inputs: Vec<TensorDesc> = session.inputs().iter().map(describe).collect();
    let outputs: Vec<TensorDesc> = session.outputs().iter().map(describe).collect();
    let mut metadata = BTreeMap::new();
    if let Ok(meta) = session.metadata() {
        for key in meta.custom_keys().unwrap_or_default() {
            if let Some(value) = meta.custom(&key) {
                metadata.insert(key, value);
            }
        }
    }
    Ok(OpenedSession {
        session,
        active_provider,
        warnings,
        inputs,
        outputs,
        metadata,
    })
}

impl FaceModel {
    /// Loads and validates the model. Warnings (e.g. a CPU fallback) are kept for the
    /// caller to post: see [`FaceModel::warnings`].
    pub fn load(runtime: &Runtime, cfg: &SessionConfig) -> Result<Self, BackendError> {
        let path = &cfg.model_path;
        let OpenedSession {
            session,
            active_provider,
            warnings,
            inputs,
            outputs,
            metadata,
        } = open_session(runtime, cfg)?;
        let spec = model::validate(&inputs, &outputs, cfg.output_name.as_deref(), &metadata)
            .map_err(|e| {
                BackendError::InvalidModel(format!(
                    "{} is not a supported face model: {e}",
                    path.display()
                ))
            })?;

        let mut bool_inputs = Vec::new();
        for name in &spec.bool_inputs {
            let rank = inputs
                .iter()
                .find(|d| &d.name == name)
                .and_then(|d| d.shape.as_ref().map(Vec::len))
                .unwrap_or(0);
            let shape: Vec<usize> = vec![1; rank];
            let tensor = Tensor::from_array((shape, vec![false])).map_err(|e| {
                BackendError::Inference(format!("cannot create the '{name}' input: {e}"))
            })?;
            bool_inputs.push((name.clone(), tensor));
        }

        Ok(FaceModel {
            session,
            spec,
            active_provider,
            warnings,
            bool_inputs,
            shape: Vec::with_capacity(4),
            config: cfg.clone(),
        })
    }

    /// Whether a failure of the provider in use may hand over to the CPU provider.
    pub fn can_fall_back_to_cpu(&self) -> bool {
        self.config.fallback_to_cpu && self.active_provider != ExecutionProvider::Cpu
    }

    /// The same model on the CPU provider: where an accelerator failed mid-stream (a
    /// device reset, a driver fault), the stream goes on there.
    pub fn reopen_on_cpu(&self) -> Result<FaceModel, BackendError> {
        let (runtime, _) = super::runtime(None)?;
        let cfg = SessionConfig {
            execution_provider: ExecutionProvider::Cpu,
            device: None,
            ..self.config.clone()
        };
        FaceModel::load(runtime, &cfg)
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn active_provider(&self) -> ExecutionProvider {
        self.active_provider
    }

    /// Things the caller should tell the user (e.g. the provider fell back to the CPU).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether several images can go through one run.
    pub fn supports_batches(&self) -> bool {
        self.spec.batch == super::Dim::Dynamic
    }

    /// Runs `batch` images of `height` x `width` (already in the model's layout, `input`
    /// holds batch * 3 * height * width values) and writes batch * D embedding values to
    /// `output`. Non-finite results are an error, never passed on.
    pub fn run(
        &mut self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
        output: &mut [f32],
    ) -> Result<(), BackendError> {
        let dim = self.spec.embedding_dim;
        if input.len() != batch * 3 * height * width || output.len() != batch * dim {
            return Err(BackendError::Inference(format!(
                "internal size mismatch: {} input values for {batch}x3x{height}x{width}, {} output values for {batch}x{dim}",
                input.len(),
                output.len()
            )));
        }
        if batch > 1 && !self.supports_batches() {
            return Err(BackendError::Inference(
                "the model has a fixed batch size of 1".to_string(),
            ));
        }
        self.shape.clear();
        match self.spec.layout {
            TensorLayout::Nchw => self.shape.extend_from_slice(&[batch, 3, height, width]),
            TensorLayout::Nhwc => self.shape.extend_from_slice(&[batch, height, width, 3]),
        }
        let image = TensorRef::from_array_view((self.shape.as_slice(), input))
            .map_err(|e| BackendError::Inference(format!("cannot wrap the input tensor: {e}")))?;
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(1 + self.bool_inputs.len());
        feeds.push((Cow::Borrowed(self.spec.image_input.as_str()), image.into()));
        for (name, value) in &self.bool_inputs {
            feeds.push((Cow::Borrowed(name.as_str()), value.into()));
        }
        #[cfg(feature = "fault-injection")]
        if self.active_provider != ExecutionProvider::Cpu
            && crate::fault::fires(crate::fault::Fault::ProviderRun)
        {
            return Err(BackendError::Inference(format!(
                "the model run failed: the {} execution provider reported a device failure (injected fault)",
                self.active_provider.nick()
            )));
        }
        let outputs = self
            .session
            .run(feeds)
            .map_err(|e| BackendError::Inference(format!("the model run failed: {e}")))?;
        let value = outputs.get(&self.spec.output).ok_or_else(|| {
            BackendError::Inference(format!(
                "the model produced no '{}' output",
                self.spec.output
            ))
        })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| {
            BackendError::Inference(format!(
                "the '{}' output is not float32: {e}",
                self.spec.output
            ))
        })?;
        if shape.len() != 2 || shape[0] as usize != batch || shape[1] as usize != dim {
            return Err(BackendError::Inference(format!(
                "the '{}' output has shape {shape}, expected [{batch}, {dim}]",
                self.spec.output
            )));
        }
        if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
            return Err(BackendError::Inference(format!(
                "the model returned a non-finite value ({}) at index {bad} of its output: the model or its input is broken",
                data[bad]
            )));
        }
        output.copy_from_slice(data);
        Ok(())
    }
}
