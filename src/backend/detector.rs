//! A face-detector session: an SSD with an image input and decoded `boxes` [N, K, 4] and
//! `scores` [N, K] outputs (non-maximum suppression is done by crate::detection).

use std::collections::BTreeMap;

use ort::value::TensorRef;

use super::model::{ElementKind, TensorDesc, MAX_INPUT_SIDE, METADATA_PREFIX};
use super::session::{open_session, OpenedSession, SessionConfig};
use super::{BackendError, ExecutionProvider, Runtime};
use crate::preprocess::TensorLayout;

pub struct DetectorModel {
    session: ort::session::Session,
    input: String,
    layout: TensorLayout,
    width: usize,
    height: usize,
    boxes: String,
    scores: String,
    hints: BTreeMap<String, String>,
    active_provider: ExecutionProvider,
    warnings: Vec<String>,
    shape: Vec<usize>,
}

impl std::fmt::Debug for DetectorModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorModel")
            .field("input", &self.input)
            .field("size", &(self.width, self.height))
            .finish()
    }
}

fn list(descs: &[TensorDesc]) -> String {
    descs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl DetectorModel {
    pub fn load(runtime: &Runtime, cfg: &SessionConfig) -> Result<Self, BackendError> {
        let OpenedSession {
            session,
            active_provider,
            warnings,
            inputs,
            outputs,
            metadata,
        } = open_session(runtime, cfg)?;
        let invalid = |why: &str| {
            BackendError::InvalidModel(format!(
                "{} is not a supported face detector ({why}): expected one float32 image input [1 or N, 3, H, W] with a fixed size and outputs 'boxes' [N, K, 4] and 'scores' [N, K] (see models/faceapi/DETECTOR.md); the model has inputs {} and outputs {}",
                cfg.model_path.display(),
                list(&inputs),
                list(&outputs)
            ))
        };
        let [image] = inputs.as_slice() else {
            return Err(invalid("it needs exactly one input"));
        };
        let dims = match (&image.kind, &image.shape) {
            (ElementKind::Float32, Some(d)) if d.len() == 4 => d.clone(),
            _ => return Err(invalid("the input is not a float32 rank-4 tensor")),
        };
        let (layout, h, w) = if dims[1] == 3 {
            (TensorLayout::Nchw, dims[2], dims[3])
        } else if dims[3] == 3 {
            (TensorLayout::Nhwc, dims[1], dims[2])
        } else {
            return Err(invalid("the input does not have 3 colour channels"));
        };
        if !(1..=MAX_INPUT_SIDE).contains(&h) || !(1..=MAX_INPUT_SIDE).contains(&w) {
            return Err(invalid("the input size is not fixed"));
        }
        let find = |name: &str, rank: usize| {
            outputs.iter().find(|o| {
                o.name == name
                    && o.kind == ElementKind::Float32
                    && o.shape.as_ref().is_some_and(|s| s.len() == rank)
            })
        };
        let (Some(boxes), Some(scores)) = (find("boxes", 3), find("scores", 2)) else {
            return Err(invalid("the outputs are not named 'boxes' and 'scores'"));
        };
        Ok(DetectorModel {
            session,
            input: image.name.clone(),
            layout,
            width: w as usize,
            height: h as usize,
            boxes: boxes.name.clone(),
            scores: scores.name.clone(),
            hints: metadata
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(METADATA_PREFIX)
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect(),
            active_provider,
            warnings,
            shape: Vec::with_capacity(4),
        })
    }

    pub fn input_size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    pub fn layout(&self) -> TensorLayout {
        self.layout
    }

    /// `metadata_props` under `gst-facenet.`, prefix stripped.
    pub fn hints(&self) -> &BTreeMap<String, String> {
        &self.hints
    }

    pub fn active_provider(&self) -> ExecutionProvider {
        self.active_provider
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Runs one image (3 * H * W values in the model's layout); fills `boxes` (K * 4) and
    /// `scores` (K). Non-finite outputs are an error.
    pub fn run(
        &mut self,
        input: &[f32],
        boxes: &mut Vec<f32>,
        scores: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        self.shape.clear();
        match self.layout {
            TensorLayout::Nchw => self
                .shape
                .extend_from_slice(&[1, 3, self.height, self.width]),
            TensorLayout::Nhwc => self
                .shape
                .extend_from_slice(&[1, self.height, self.width, 3]),
        }
        let image = TensorRef::from_array_view((self.shape.as_slice(), input))
            .map_err(|e| BackendError::Inference(format!("cannot wrap the detector input: {e}")))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => image])
            .map_err(|e| BackendError::Inference(format!("the detector run failed: {e}")))?;
        let extract = |name: &str, out: &mut Vec<f32>, per: usize| -> Result<usize, BackendError> {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| BackendError::Inference(format!("detector output '{name}': {e}")))?;
            if data.iter().any(|v| !v.is_finite()) {
                return Err(BackendError::Inference(format!(
                    "the detector's '{name}' output holds non-finite values"
                )));
            }
            out.clear();
            out.extend_from_slice(data);
            Ok(shape
                .iter()
                .skip(1)
                .take(1)
                .map(|&k| k as usize)
                .next()
                .unwrap_or(0)
                * per)
        };
        let nb = extract(&self.boxes, boxes, 4)?;
        let ns = extract(&self.scores, scores, 1)?;
        if nb != boxes.len() || ns != scores.len() || nb != 4 * ns {
            return Err(BackendError::Inference(format!(
                "detector outputs disagree: {} box values for {} scores",
                boxes.len(),
                scores.len()
            )));
        }
        Ok(())
    }
}
