//! What the element needs to know about a face model, read from its declared inputs,
//! outputs and `metadata_props`, and the validation that refuses anything else with a
//! message stating the model's actual shapes.
//!
//! This module works on plain descriptions ([`TensorDesc`]) so that validation is tested
//! without ONNX Runtime; `session.rs` builds them from ort's outlets.

use std::collections::BTreeMap;
use std::fmt;

use crate::preprocess::{Aspect, ChannelOrder, Normalization, TensorLayout};

/// Largest spatial input side accepted from a model: anything bigger is a malformed or
/// hostile model, and refusing it here avoids allocating a huge tensor.
pub const MAX_INPUT_SIDE: i64 = 4096;
/// Largest embedding dimension accepted.
pub const MAX_EMBEDDING_DIM: i64 = 65536;

/// Prefix of the ONNX `metadata_props` keys our converters write.
pub const METADATA_PREFIX: &str = "gst-facenet.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementKind {
    Float32,
    Bool,
    Other,
}

/// One declared model input or output. Dynamic dimensions are negative (ONNX Runtime
/// reports them as -1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    pub name: String,
    pub kind: ElementKind,
    /// `None` for non-tensor values (sequences, maps).
    pub shape: Option<Vec<i64>>,
    pub type_name: String,
}

impl fmt::Display for TensorDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            Some(shape) => {
                let dims: Vec<String> = shape
                    .iter()
                    .map(|d| {
                        if *d < 0 {
                            "?".to_string()
                        } else {
                            d.to_string()
                        }
                    })
                    .collect();
                write!(
                    f,
                    "'{}' {} [{}]",
                    self.name,
                    self.type_name,
                    dims.join(", ")
                )
            }
            None => write!(f, "'{}' {}", self.name, self.type_name),
        }
    }
}

/// A spatial or batch dimension as the model declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Dynamic,
}

impl Dim {
    fn from_onnx(d: i64) -> Self {
        if d < 0 {
            Dim::Dynamic
        } else {
            Dim::Fixed(d as usize)
        }
    }

    /// The size to use: the model's own, or `fallback` where the model leaves it open.
    pub fn or(self, fallback: usize) -> usize {
        match self {
            Dim::Fixed(n) => n,
            Dim::Dynamic => fallback,
        }
    }
}

/// The validated interface of a face-embedding model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub image_input: String,
    pub layout: TensorLayout,
    pub batch: Dim,
    pub height: Dim,
    pub width: Dim,
    /// Boolean scalar inputs such as TF FaceNet's `phase_train`: fed `false`.
    pub bool_inputs: Vec<String>,
    pub output: String,
    pub embedding_dim: usize,
    /// `metadata_props` entries under [`METADATA_PREFIX`], prefix stripped.
    pub hints: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidModel(pub String);

impl fmt::Display for InvalidModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidModel {}

fn describe_all(descs: &[TensorDesc]) -> String {
    if descs.is_empty() {
        return "none".to_string();
    }
    descs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_bool_scalar(desc: &TensorDesc) -> bool {
    desc.kind == ElementKind::Bool
        && matches!(&desc.shape, Some(s) if s.is_empty() || (s.len() == 1 && (s[0] == 1 || s[0] < 0)))
}

/// Checks the declared interface and works out layout and sizes.
///
/// Accepted: exactly one float32 rank-4 image input with batch 1 or dynamic, 3 channels
/// (NCHW when dimension 1 is 3, else NHWC when dimension 3 is 3) and fixed or dynamic
/// spatial size, plus any number of boolean scalars; the chosen output is float32
/// `[batch, D]` with a fixed D.
pub fn validate(
    inputs: &[TensorDesc],
    outputs: &[TensorDesc],
    output_name: Option<&str>,
    metadata: &BTreeMap<String, String>,
) -> Result<ModelSpec, InvalidModel> {
    let shapes = || {
        format!(
            "the model has inputs {} and outputs {}",
            describe_all(inputs),
            describe_all(outputs)
        )
    };
    let (bools, others): (Vec<&TensorDesc>, Vec<&TensorDesc>) =
        inputs.iter().partition(|d| is_bool_scalar(d));
    let image = match others.as_slice() {
        [one] => *one,
        [] => {
            return Err(InvalidModel(format!(
                "no image input: expected one float32 input of shape [1 or N, 3, H, W] or [1 or N, H, W, 3]; {}",
                shapes()
            )))
        }
        _ => {
            return Err(InvalidModel(format!(
                "expected exactly one image input (plus optional boolean scalars such as phase_train), found {}; {}",
                others.len(),
                shapes()
            )))
        }
    };
    let bad_image = |why: &str| {
        InvalidModel(format!(
            "input {image} is not a face image input ({why}); expected float32 [1 or N, 3, H, W] (NCHW) or [1 or N, H, W, 3] (NHWC); {}",
            shapes()
        ))
    };
    if image.kind != ElementKind::Float32 {
        return Err(bad_image("its element type is not float32"));
    }
    let dims = match &image.shape {
        Some(dims) if dims.len() == 4 => dims.clone(),
        Some(dims) => return Err(bad_image(&format!("it has rank {}, not 4", dims.len()))),
        None => return Err(bad_image("it is not a tensor")),
    };
    let batch = Dim::from_onnx(dims[0]);
    if let Dim::Fixed(n) = batch {
        if n != 1 {
            return Err(bad_image(&format!(
                "its batch size is fixed at {n}; only 1 or a dynamic batch is supported"
            )));
        }
    }
    let (layout, h, w) = if dims[1] == 3 {
        (TensorLayout::Nchw, dims[2], dims[3])
    } else if dims[3] == 3 {
        (TensorLayout::Nhwc, dims[1], dims[2])
    } else {
        return Err(bad_image(
            "neither dimension 1 (NCHW) nor dimension 3 (NHWC) is 3 colour channels",
        ));
    };
    for side in [h, w] {
        if side == 0 || side > MAX_INPUT_SIDE {
            return Err(bad_image(&format!(
                "a spatial size of {side} is outside 1..={MAX_INPUT_SIDE}"
            )));
        }
    }

    let output = match output_name {
        Some(name) => outputs.iter().find(|o| o.name == name).ok_or_else(|| {
            InvalidModel(format!(
                "output-name '{name}' is not an output of the model; {}",
                shapes()
            ))
        })?,
        None => match outputs {
            [one] => one,
            [] => return Err(InvalidModel(format!("the model has no outputs; {}", shapes()))),
            _ => {
                return Err(InvalidModel(format!(
                    "the model has several outputs: set the output-name property to the embedding output; {}",
                    shapes()
                )))
            }
        },
    };
    let bad_output = |why: &str| {
        InvalidModel(format!(
            "output {output} is not an embedding ({why}); expected float32 [1 or N, D]; {}",
            shapes()
        ))
    };
    if output.kind != ElementKind::Float32 {
        return Err(bad_output("its element type is not float32"));
    }
    let out_dims = match &output.shape {
        Some(d) if d.len() == 2 => d.clone(),
        Some(d) => return Err(bad_output(&format!("it has rank {}, not 2", d.len()))),
        None => return Err(bad_output("it is not a tensor")),
    };
    if out_dims[0] > 1 {
        return Err(bad_output(&format!(
            "its batch size is fixed at {}",
            out_dims[0]
        )));
    }
    if out_dims[1] <= 0 || out_dims[1] > MAX_EMBEDDING_DIM {
        return Err(bad_output(
            "its embedding dimension is not a fixed size between 1 and 65536",
        ));
    }

    Ok(ModelSpec {
        image_input: image.name.clone(),
        layout,
        batch,
        height: Dim::from_onnx(h),
        width: Dim::from_onnx(w),
        bool_inputs: bools.iter().map(|d| d.name.clone()).collect(),
        output: output.name.clone(),
        embedding_dim: out_dims[1] as usize,
        hints: metadata
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(METADATA_PREFIX)
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect(),
    })
}

/// Pre-processing defaults a model states about itself through `metadata_props`
/// (`gst-facenet.normalization`, `.mean`, `.std`, `.channel-order`, `.aspect`). Each is
/// `None` where the model says nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelHints {
    pub normalization: Option<NormalizationKind>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub channel_order: Option<ChannelOrder>,
    pub aspect: Option<Aspect>,
    pub model_name: Option<String>,
}

/// The normalization choice without its numbers (those are separate properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormalizationKind {
    Prewhiten,
    Fixed,
    None,
}

impl NormalizationKind {
    pub fn with_numbers(self, mean: [f32; 3], std: [f32; 3]) -> Normalization {
        match self {
            NormalizationKind::Prewhiten => Normalization::Prewhiten,
            NormalizationKind::Fixed => Normalization::Fixed { mean, std },
            NormalizationKind::None => Normalization::None,
        }
    }
}

fn parse_triple(key: &str, value: &str) -> Result<[f32; 3], InvalidModel> {
    let parts: Vec<&str> = value
        .trim()
        .trim_start_matches(['<', '[', '('])
        .trim_end_matches(['>', ']', ')'])
        .split(',')
        .map(str::trim)
        .collect();
    let numbers: Result<Vec<f32>, _> = parts.iter().map(|p| p.parse::<f32>()).collect();
    match numbers {
        Ok(n) if n.len() == 3 && n.iter().all(|v| v.is_finite()) => Ok([n[0], n[1], n[2]]),
        _ => Err(InvalidModel(format!(
            "model metadata {METADATA_PREFIX}{key} = '{value}' is not three comma-separated numbers (R,G,B)"
        ))),
    }
}

impl ModelHints {
    /// The name embeddings and detections are labelled with: the model's
    /// `gst-facenet.model-name`, else its file name without extension.
    pub fn display_name(&self, location: &str) -> String {
        self.model_name.clone().unwrap_or_else(|| {
            std::path::Path::new(location)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| location.to_string())
        })
    }

    pub fn from_spec_hints(hints: &BTreeMap<String, String>) -> Result<Self, InvalidModel> {
        let mut out = ModelHints::default();
        for (key, value) in hints {
            let v = value.trim().to_ascii_lowercase();
            let unknown = |what: &str| {
                InvalidModel(format!(
                    "model metadata {METADATA_PREFIX}{key} = '{value}' is not one of {what}"
                ))
            };
            match key.as_str() {
                "normalization" => {
                    out.normalization = Some(match v.as_str() {
                        "prewhiten" => NormalizationKind::Prewhiten,
                        "fixed" => NormalizationKind::Fixed,
                        "none" => NormalizationKind::None,
                        _ => return Err(unknown("prewhiten, fixed, none")),
                    })
                }
                "mean" => out.mean = Some(parse_triple(key, value)?),
                "std" => {
                    let std = parse_triple(key, value)?;
                    if std.iter().any(|s| *s <= 0.0) {
                        return Err(InvalidModel(format!(
                            "model metadata {METADATA_PREFIX}std = '{value}' must be positive"
                        )));
                    }
                    out.std = Some(std)
                }
                "channel-order" => {
                    out.channel_order = Some(match v.as_str() {
                        "rgb" => ChannelOrder::Rgb,
                        "bgr" => ChannelOrder::Bgr,
                        _ => return Err(unknown("rgb, bgr")),
                    })
                }
                "aspect" => {
                    out.aspect = Some(match v.as_str() {
                        "stretch" => Aspect::Stretch,
                        "pad" => Aspect::Pad,
                        "crop" => Aspect::Crop,
                        _ => return Err(unknown("stretch, pad, crop")),
                    })
                }
                "model-name" => out.model_name = Some(value.trim().to_string()),
                // Other keys (source, licence, thresholds) are informational.
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, kind: ElementKind, shape: &[i64]) -> TensorDesc {
        TensorDesc {
            name: name.into(),
            kind,
            shape: Some(shape.to_vec()),
            type_name: format!("{kind:?}").to_lowercase(),
        }
    }

    fn ok(inputs: &[TensorDesc], outputs: &[TensorDesc]) -> ModelSpec {
        validate(inputs, outputs, None, &BTreeMap::new()).unwrap()
    }

    fn err(inputs: &[TensorDesc], outputs: &[TensorDesc]) -> String {
        validate(inputs, outputs, None, &BTreeMap::new())
            .unwrap_err()
            .0
    }

    const F: ElementKind = ElementKind::Float32;
    const B: ElementKind = ElementKind::Bool;

    #[test]
    fn nchw_fixed() {
        let s = ok(
            &[t("input", F, &[1, 3, 160, 160])],
            &[t("emb", F, &[1, 128])],
        );
        assert_eq!(s.layout, TensorLayout::Nchw);
        assert_eq!((s.height, s.width), (Dim::Fixed(160), Dim::Fixed(160)));
        assert_eq!(s.batch, Dim::Fixed(1));
        assert_eq!(s.embedding_dim, 128);
        assert_eq!(s.output, "emb");
    }

    #[test]
    fn nhwc_dynamic_with_phase_train() {
        let s = ok(
            &[t("input", F, &[-1, -1, -1, 3]), t("phase_train", B, &[])],
            &[t("embeddings", F, &[-1, 512])],
        );
        assert_eq!(s.layout, TensorLayout::Nhwc);
        assert_eq!(s.batch, Dim::Dynamic);
        assert_eq!(s.height, Dim::Dynamic);
        assert_eq!(s.height.or(160), 160);
        assert_eq!(s.bool_inputs, vec!["phase_train".to_string()]);
        assert_eq!(s.embedding_dim, 512);
    }

    #[test]
    fn rejects_with_actual_shapes() {
        let e = err(&[t("input", F, &[1, 1, 160, 160])], &[t("o", F, &[1, 128])]);
        assert!(e.contains("'input' float32 [1, 1, 160, 160]"), "{e}");
        let e = err(&[t("input", F, &[2, 3, 160, 160])], &[t("o", F, &[1, 128])]);
        assert!(e.contains("batch size is fixed at 2"), "{e}");
        let e = err(
            &[t("input", F, &[1, 3, 160, 160])],
            &[t("o", F, &[1, 128, 1])],
        );
        assert!(
            e.contains("rank 3") && e.contains("'o' float32 [1, 128, 1]"),
            "{e}"
        );
        let e = err(
            &[t("a", F, &[1, 3, 160, 160]), t("b", F, &[1, 3, 160, 160])],
            &[t("o", F, &[1, 128])],
        );
        assert!(e.contains("exactly one image input"), "{e}");
        let e = err(
            &[t("input", F, &[1, 3, 1_000_000, 160])],
            &[t("o", F, &[1, 128])],
        );
        assert!(e.contains("outside"), "{e}");
        let e = err(&[t("input", F, &[1, 3, -1, -1])], &[t("o", F, &[1, -1])]);
        assert!(e.contains("embedding dimension"), "{e}");
    }

    #[test]
    fn several_outputs_need_a_name() {
        let inputs = [t("input", F, &[1, 3, 160, 160])];
        let outputs = [t("embedding", F, &[1, 128]), t("logits", F, &[1, 10])];
        let e = validate(&inputs, &outputs, None, &BTreeMap::new())
            .unwrap_err()
            .0;
        assert!(e.contains("output-name"), "{e}");
        let s = validate(&inputs, &outputs, Some("embedding"), &BTreeMap::new()).unwrap();
        assert_eq!(s.embedding_dim, 128);
        let e = validate(&inputs, &outputs, Some("nope"), &BTreeMap::new())
            .unwrap_err()
            .0;
        assert!(e.contains("'nope'"), "{e}");
    }

    #[test]
    fn hints_parse_and_reject() {
        let mut m = BTreeMap::new();
        m.insert("normalization".to_string(), "fixed".to_string());
        m.insert("mean".to_string(), "122.782, 117.001,104.298".to_string());
        m.insert("std".to_string(), "<255, 255, 255>".to_string());
        m.insert("channel-order".to_string(), "BGR".to_string());
        m.insert("aspect".to_string(), "pad".to_string());
        m.insert("source".to_string(), "whatever".to_string());
        let h = ModelHints::from_spec_hints(&m).unwrap();
        assert_eq!(h.normalization, Some(NormalizationKind::Fixed));
        assert_eq!(h.mean, Some([122.782, 117.001, 104.298]));
        assert_eq!(h.std, Some([255.0; 3]));
        assert_eq!(h.channel_order, Some(ChannelOrder::Bgr));
        assert_eq!(h.aspect, Some(Aspect::Pad));
        m.insert("std".to_string(), "1,2".to_string());
        assert!(ModelHints::from_spec_hints(&m).is_err());
        m.insert("std".to_string(), "1,0,1".to_string());
        assert!(ModelHints::from_spec_hints(&m).is_err());
    }

    #[test]
    fn metadata_prefix_is_stripped() {
        let mut meta = BTreeMap::new();
        meta.insert("gst-facenet.aspect".to_string(), "crop".to_string());
        meta.insert("author".to_string(), "x".to_string());
        let s = validate(
            &[t("input", F, &[1, 3, 160, 160])],
            &[t("o", F, &[1, 128])],
            None,
            &meta,
        )
        .unwrap();
        assert_eq!(s.hints.len(), 1);
        assert_eq!(s.hints["aspect"], "crop");
    }
}
