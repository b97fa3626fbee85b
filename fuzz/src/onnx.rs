//! Structured generation of (mostly malformed) ONNX models for the `onnx_model` target.
//!
//! [`ModelGen`] is built by `arbitrary` from the fuzzer's bytes and encoded with the
//! hand-written protobuf writer in [`crate::proto`] (field numbers from onnx.proto3). A
//! model is a *template* (an interface the element accepts when its dimensions line up:
//! an embedding model `image -> Flatten / GlobalAveragePool -> embedding`, or an SSD-like
//! detector with `boxes` / `scores` outputs) plus any number of extra inputs, outputs,
//! nodes (known and unknown operators, random attributes), initializers (inline, wrong
//! sized, external) and metadata entries, with dimensions drawn from interesting values:
//! zero, negative, huge (`100000`, `i64::MAX`), symbolic, unset, or [`DimGen::Auto`] (the
//! value that makes the template consistent).

use arbitrary::Arbitrary;

use crate::proto::Msg;

// onnx.proto3 TensorProto.DataType
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT32: i64 = 6;
const INT64: i64 = 7;
const STRING: i64 = 8;
const BOOL: i64 = 9;
const FLOAT16: i64 = 10;
const DOUBLE: i64 = 11;

// AttributeProto.AttributeType
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_STRING: i64 = 3;
const ATTR_TENSOR: i64 = 4;
const ATTR_INTS: i64 = 7;

/// Tensor / value names: a small pool, so that nodes, inputs, outputs and initializers
/// refer to each other, plus arbitrary bytes (possibly not UTF-8).
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum Name {
    Input,
    Image,
    Embedding,
    Boxes,
    Scores,
    PhaseTrain,
    Logits,
    T0,
    T1,
    T2,
    Empty,
    Raw(Vec<u8>),
}

impl Name {
    pub fn bytes(&self) -> Vec<u8> {
        let s: &[u8] = match self {
            Name::Input => b"input",
            Name::Image => b"image",
            Name::Embedding => b"embedding",
            Name::Boxes => b"boxes",
            Name::Scores => b"scores",
            Name::PhaseTrain => b"phase_train",
            Name::Logits => b"logits",
            Name::T0 => b"t0",
            Name::T1 => b"t1",
            Name::T2 => b"t2",
            Name::Empty => b"",
            Name::Raw(v) => &v[..v.len().min(12)],
        };
        s.to_vec()
    }

    /// The name as the model file spells it, for `SessionConfig::output_name`.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Elem {
    Float,
    Bool,
    Uint8,
    Int32,
    Int64,
    Double,
    Float16,
    String,
    Other(u8),
}

impl Elem {
    fn code(self) -> i64 {
        match self {
            Elem::Float => FLOAT,
            Elem::Bool => BOOL,
            Elem::Uint8 => UINT8,
            Elem::Int32 => INT32,
            Elem::Int64 => INT64,
            Elem::Double => DOUBLE,
            Elem::Float16 => FLOAT16,
            Elem::String => STRING,
            Elem::Other(v) => i64::from(v % 32),
        }
    }
}

/// A dimension of a declared shape.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum DimGen {
    /// The value that makes the template consistent (a plain value elsewhere: 1).
    Auto,
    Value(Interesting),
    /// `dim_param` (symbolic, ONNX Runtime reports -1).
    Param(u8),
    /// Neither value nor param.
    Unset,
    Raw(i64),
}

/// Dimension values worth trying.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Interesting {
    Zero,
    One,
    Two,
    Three,
    Four,
    Eight,
    N112,
    N128,
    N150,
    N160,
    N512,
    N4096,
    N4097,
    N65536,
    N65537,
    N100000,
    Neg1,
    Neg7,
    Max,
    Min,
}

impl Interesting {
    pub fn value(self) -> i64 {
        match self {
            Interesting::Zero => 0,
            Interesting::One => 1,
            Interesting::Two => 2,
            Interesting::Three => 3,
            Interesting::Four => 4,
            Interesting::Eight => 8,
            Interesting::N112 => 112,
            Interesting::N128 => 128,
            Interesting::N150 => 150,
            Interesting::N160 => 160,
            Interesting::N512 => 512,
            Interesting::N4096 => 4096,
            Interesting::N4097 => 4097,
            Interesting::N65536 => 65536,
            Interesting::N65537 => 65537,
            Interesting::N100000 => 100_000,
            Interesting::Neg1 => -1,
            Interesting::Neg7 => -7,
            Interesting::Max => i64::MAX,
            Interesting::Min => i64::MIN,
        }
    }
}

/// `TensorShapeProto.Dimension`.
fn dim_msg(d: DimGen, auto: i64) -> Msg {
    let mut m = Msg::new();
    match d {
        DimGen::Auto => {
            m.int(1, auto);
        }
        DimGen::Value(v) => {
            m.int(1, v.value());
        }
        DimGen::Param(p) => {
            m.string(2, &format!("d{}", p % 4));
        }
        DimGen::Unset => {}
        DimGen::Raw(v) => {
            m.int(1, v);
        }
    }
    m
}

/// A declared value type.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum TypeGen {
    /// `shape: None` = unknown rank.
    Tensor {
        elem: Elem,
        shape: Option<Vec<DimGen>>,
    },
    Sequence(Elem),
    Map(Elem),
    Optional(Elem),
    SparseTensor(Elem, Vec<DimGen>),
    /// No `type` field at all.
    Missing,
}

fn tensor_type(elem: Elem, shape: Option<&[DimGen]>, autos: &[i64]) -> Msg {
    let mut t = Msg::new();
    t.int(1, elem.code());
    if let Some(dims) = shape {
        let mut s = Msg::new();
        for (i, d) in dims.iter().take(6).enumerate() {
            s.msg(1, &dim_msg(*d, autos.get(i).copied().unwrap_or(1)));
        }
        t.msg(2, &s);
    }
    t
}

/// `TypeProto` (None when the type is missing).
fn type_msg(ty: &TypeGen, autos: &[i64]) -> Option<Msg> {
    let mut m = Msg::new();
    match ty {
        TypeGen::Tensor { elem, shape } => {
            m.msg(1, &tensor_type(*elem, shape.as_deref(), autos));
        }
        TypeGen::Sequence(e) => {
            let mut inner = Msg::new();
            inner.msg(1, &tensor_type(*e, None, &[]));
            let mut seq = Msg::new();
            seq.msg(1, &inner);
            m.msg(4, &seq);
        }
        TypeGen::Map(e) => {
            let mut inner = Msg::new();
            inner.msg(1, &tensor_type(*e, None, &[]));
            let mut map = Msg::new();
            map.int(1, INT64).msg(2, &inner);
            m.msg(5, &map);
        }
        TypeGen::Optional(e) => {
            let mut inner = Msg::new();
            inner.msg(1, &tensor_type(*e, Some(&[DimGen::Auto]), &[1]));
            let mut opt = Msg::new();
            opt.msg(1, &inner);
            m.msg(9, &opt);
        }
        TypeGen::SparseTensor(e, dims) => {
            m.msg(8, &tensor_type(*e, Some(dims), &[]));
        }
        TypeGen::Missing => return None,
    }
    Some(m)
}

/// A graph input or output (`ValueInfoProto`).
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct ValueGen {
    pub name: Name,
    pub ty: TypeGen,
}

fn value_info(name: &[u8], ty: &TypeGen, autos: &[i64]) -> Msg {
    let mut m = Msg::new();
    m.bytes(1, name);
    if let Some(t) = type_msg(ty, autos) {
        m.msg(2, &t);
    }
    m
}

/// Initializer data.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum DataGen {
    /// `raw_data` of `n` bytes (possibly not the size the dims say).
    Raw(u16),
    Floats(Vec<f32>),
    Int64s(Vec<i64>),
    /// `external_data` pointing at `location` (a plain file name next to the model) with
    /// an offset and a length.
    External {
        location: Location,
        offset: Option<i64>,
        length: Option<i64>,
    },
    Empty,
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Location {
    /// The model file itself.
    Model,
    /// A file that does not exist.
    Missing,
    /// A path leaving the model's directory (must be refused, never read).
    Parent,
    Absolute,
}

/// A `TensorProto` (an initializer or a `value` attribute).
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct TensorGen {
    pub name: Name,
    pub elem: Elem,
    pub dims: Vec<DimGen>,
    pub data: DataGen,
}

fn tensor_msg(t: &TensorGen, model_file: &str) -> Msg {
    let mut m = Msg::new();
    let dims: Vec<i64> = t
        .dims
        .iter()
        .take(6)
        .map(|d| match d {
            DimGen::Auto | DimGen::Unset => 1,
            DimGen::Value(v) => v.value(),
            DimGen::Param(p) => i64::from(*p % 8),
            DimGen::Raw(v) => *v,
        })
        .collect();
    m.packed_ints(1, &dims);
    m.int(2, t.elem.code());
    m.bytes(8, &t.name.bytes());
    match &t.data {
        DataGen::Raw(n) => {
            let n = usize::from(*n % 4096);
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            m.bytes(9, &bytes);
        }
        DataGen::Floats(v) => {
            m.packed_floats(4, &v[..v.len().min(256)]);
        }
        DataGen::Int64s(v) => {
            m.packed_ints(7, &v[..v.len().min(256)]);
        }
        DataGen::External {
            location,
            offset,
            length,
        } => {
            let loc = match location {
                Location::Model => model_file.to_string(),
                Location::Missing => "no-such-weights.bin".to_string(),
                Location::Parent => format!("../{model_file}"),
                Location::Absolute => "/etc/hostname".to_string(),
            };
            let mut entry = |k: &str, v: &str| {
                let mut e = Msg::new();
                e.string(1, k).string(2, v);
                m.msg(13, &e);
            };
            entry("location", &loc);
            if let Some(o) = offset {
                entry("offset", &o.to_string());
            }
            if let Some(l) = length {
                entry("length", &l.to_string());
            }
            m.int(14, 1); // data_location = EXTERNAL
        }
        DataGen::Empty => {}
    }
    m
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum Op {
    Identity,
    Flatten,
    GlobalAveragePool,
    ReduceMean,
    Reshape,
    Transpose,
    Gemm,
    Conv,
    Resize,
    Add,
    Mul,
    Cast,
    Constant,
    ConstantOfShape,
    Expand,
    Tile,
    Shape,
    Gather,
    Concat,
    Loop,
    Unknown(String),
}

impl Op {
    fn name(&self) -> &str {
        match self {
            Op::Identity => "Identity",
            Op::Flatten => "Flatten",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::ReduceMean => "ReduceMean",
            Op::Reshape => "Reshape",
            Op::Transpose => "Transpose",
            Op::Gemm => "Gemm",
            Op::Conv => "Conv",
            Op::Resize => "Resize",
            Op::Add => "Add",
            Op::Mul => "Mul",
            Op::Cast => "Cast",
            Op::Constant => "Constant",
            Op::ConstantOfShape => "ConstantOfShape",
            Op::Expand => "Expand",
            Op::Tile => "Tile",
            Op::Shape => "Shape",
            Op::Gather => "Gather",
            Op::Concat => "Concat",
            Op::Loop => "Loop",
            Op::Unknown(s) => s,
        }
    }
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum AttrName {
    Axis,
    Axes,
    Perm,
    To,
    Value,
    Keepdims,
    KernelShape,
    Alpha,
    Mode,
    Other(String),
}

impl AttrName {
    fn name(&self) -> &str {
        match self {
            AttrName::Axis => "axis",
            AttrName::Axes => "axes",
            AttrName::Perm => "perm",
            AttrName::To => "to",
            AttrName::Value => "value",
            AttrName::Keepdims => "keepdims",
            AttrName::KernelShape => "kernel_shape",
            AttrName::Alpha => "alpha",
            AttrName::Mode => "mode",
            AttrName::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(String),
    Tensor(TensorGen),
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct NodeGen {
    pub op: Op,
    pub custom_domain: bool,
    pub inputs: Vec<Name>,
    pub outputs: Vec<Name>,
    pub attrs: Vec<(AttrName, AttrValue)>,
}

fn node_msg(n: &NodeGen, model_file: &str) -> Msg {
    let mut m = Msg::new();
    for i in n.inputs.iter().take(4) {
        m.bytes(1, &i.bytes());
    }
    for o in n.outputs.iter().take(3) {
        m.bytes(2, &o.bytes());
    }
    m.string(4, n.op.name());
    if n.custom_domain {
        m.string(7, "com.example.fuzz");
    }
    for (name, value) in n.attrs.iter().take(4) {
        let mut a = Msg::new();
        a.string(1, name.name());
        match value {
            AttrValue::Int(v) => a.int(20, ATTR_INT).int(3, *v),
            AttrValue::Ints(v) => a.int(20, ATTR_INTS).packed_ints(8, &v[..v.len().min(8)]),
            AttrValue::Float(v) => a.int(20, ATTR_FLOAT).float(2, *v),
            AttrValue::Str(s) => a.int(20, ATTR_STRING).string(4, s),
            AttrValue::Tensor(t) => a.int(20, ATTR_TENSOR).msg(5, &tensor_msg(t, model_file)),
        };
        m.msg(5, &a);
    }
    m
}

/// The interface skeleton of the model.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum Template {
    /// Nothing: only the extra inputs, outputs and nodes.
    None,
    /// `input [b, 3, h, w]` (or NHWC) -> `Flatten` -> `embedding [b, 3·h·w]`.
    Flatten(ImageGen),
    /// `input` -> `GlobalAveragePool` -> `Flatten` -> `embedding [b, 3]` (NCHW only).
    Pool(ImageGen),
    /// `input` -> `ReduceMean(axes)` -> `embedding`, plus a boolean `phase_train` input.
    PhaseTrain(ImageGen, TypeGen),
    /// An SSD-like detector: `input [1, 3, h, w]`, constant `boxes [1, K, 4]` and
    /// `scores [1, K]` outputs.
    Detector {
        image: ImageGen,
        k: u8,
        boxes: Vec<f32>,
        scores: Vec<f32>,
        boxes_shape: Option<Vec<DimGen>>,
        scores_shape: Option<Vec<DimGen>>,
    },
}

/// The image input of a template and its embedding output's declaration.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct ImageGen {
    pub name: Name,
    pub elem: Elem,
    pub nhwc: bool,
    /// Batch, channels, height, width (in NCHW order; permuted for NHWC).
    pub dims: [DimGen; 4],
    /// Extra declared dimensions (rank > 4).
    pub extra_rank: Vec<DimGen>,
    pub output: Name,
    pub output_elem: Elem,
    /// Declared output shape; `None`: `[Auto, Auto]`.
    pub output_shape: Option<Vec<DimGen>>,
}

impl ImageGen {
    /// The input's declared dims (auto values: batch 1, 3 channels, 8x8) and the actual
    /// `(c, h, w)` they give (for the output's auto dims).
    fn input(&self) -> (Vec<DimGen>, Vec<i64>, [i64; 3]) {
        let autos = [1, 3, 8, 8];
        let value = |i: usize| match self.dims[i] {
            DimGen::Auto => autos[i],
            DimGen::Value(v) => v.value(),
            DimGen::Raw(v) => v,
            // Symbolic: the run feeds 160 (the element's fallback for dynamic sizes) or
            // whatever the model fixes.
            DimGen::Param(_) | DimGen::Unset => {
                if i == 1 {
                    3
                } else if i == 0 {
                    1
                } else {
                    160
                }
            }
        };
        let chw = [value(1), value(2), value(3)];
        let mut dims = self.dims.to_vec();
        let mut auto = autos.to_vec();
        if self.nhwc {
            dims = vec![dims[0], dims[2], dims[3], dims[1]];
            auto = vec![1, 8, 8, 3];
        }
        dims.extend(self.extra_rank.iter().take(2));
        (dims, auto, chw)
    }

    fn output_shape(&self, autos: &[i64]) -> (Vec<DimGen>, Vec<i64>) {
        let shape = self
            .output_shape
            .clone()
            .unwrap_or_else(|| vec![DimGen::Auto, DimGen::Auto]);
        (shape, autos.to_vec())
    }
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum MetaKey {
    Normalization,
    Mean,
    Std,
    ChannelOrder,
    Aspect,
    ModelName,
    Alignment,
    Other(String),
}

#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub enum MetaValue {
    Known(u8),
    Triple(f32, f32, f32),
    Text(String),
}

/// A whole model file.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct ModelGen {
    /// `None`: IR version 8.
    pub ir_version: Option<i64>,
    /// `None`: the default domain at opset 17.
    pub opsets: Option<Vec<(bool, i64)>>,
    pub template: Template,
    pub extra_inputs: Vec<ValueGen>,
    pub extra_outputs: Vec<ValueGen>,
    pub nodes: Vec<NodeGen>,
    pub initializers: Vec<TensorGen>,
    pub metadata: Vec<(MetaKey, MetaValue)>,
    /// Passed as `output-name`.
    pub output_name: Option<Name>,
    /// `>= 0xF000`: cut the encoded file to `truncate - 0xF000` bytes.
    pub truncate: u16,
    /// Appended to the file.
    pub junk: Vec<u8>,
}

/// The name under which the model is written, for `external_data` locations.
pub const MODEL_FILE: &str = "model.onnx";

fn node(op: &str, inputs: &[&[u8]], outputs: &[&[u8]], attrs: &[(&str, Vec<i64>)]) -> Msg {
    let mut m = Msg::new();
    for i in inputs {
        m.bytes(1, i);
    }
    for o in outputs {
        m.bytes(2, o);
    }
    m.string(4, op);
    for (name, v) in attrs {
        let mut a = Msg::new();
        a.string(1, name);
        if v.len() == 1 {
            a.int(20, ATTR_INT).int(3, v[0]);
        } else {
            a.int(20, ATTR_INTS).packed_ints(8, v);
        }
        m.msg(5, &a);
    }
    m
}

fn constant(name: &[u8], dims: &[i64], values: &[f32]) -> Msg {
    let mut t = Msg::new();
    t.packed_ints(1, dims)
        .int(2, FLOAT)
        .packed_floats(4, values);
    let mut a = Msg::new();
    a.string(1, "value").int(20, ATTR_TENSOR).msg(5, &t);
    let mut m = Msg::new();
    m.bytes(2, name).string(4, "Constant").msg(5, &a);
    m
}

impl ModelGen {
    /// The ONNX bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut graph = Msg::new();
        let mut inputs: Vec<Msg> = Vec::new();
        let mut outputs: Vec<Msg> = Vec::new();
        let mut nodes: Vec<Msg> = Vec::new();

        let tensor = |elem, shape: Vec<DimGen>| TypeGen::Tensor {
            elem,
            shape: Some(shape),
        };
        match &self.template {
            Template::None => {}
            Template::Flatten(img) | Template::Pool(img) | Template::PhaseTrain(img, _) => {
                let (dims, autos, [c, h, w]) = img.input();
                let input = img.name.bytes();
                inputs.push(value_info(&input, &tensor(img.elem, dims), &autos));
                let out = img.output.bytes();
                let d = match &self.template {
                    Template::Flatten(_) => {
                        nodes.push(node("Flatten", &[&input], &[&out], &[("axis", vec![1])]));
                        c.saturating_mul(h).saturating_mul(w)
                    }
                    Template::Pool(_) => {
                        nodes.push(node("GlobalAveragePool", &[&input], &[b"pooled"], &[]));
                        nodes.push(node("Flatten", &[b"pooled"], &[&out], &[("axis", vec![1])]));
                        if img.nhwc {
                            w
                        } else {
                            c
                        }
                    }
                    _ => {
                        let axes = if img.nhwc { vec![1, 2] } else { vec![2, 3] };
                        nodes.push(node(
                            "ReduceMean",
                            &[&input],
                            &[&out],
                            &[("axes", axes), ("keepdims", vec![0])],
                        ));
                        if img.nhwc {
                            w
                        } else {
                            c
                        }
                    }
                };
                if let Template::PhaseTrain(_, ty) = &self.template {
                    inputs.push(value_info(b"phase_train", ty, &[]));
                }
                let (shape, autos) = img.output_shape(&[1, d]);
                outputs.push(value_info(&out, &tensor(img.output_elem, shape), &autos));
            }
            Template::Detector {
                image,
                k,
                boxes,
                scores,
                boxes_shape,
                scores_shape,
            } => {
                let (dims, autos, _) = image.input();
                let input = image.name.bytes();
                inputs.push(value_info(&input, &tensor(image.elem, dims), &autos));
                let k = i64::from(*k % 8);
                let n = k as usize;
                let vals = |v: &[f32], len: usize| -> Vec<f32> {
                    (0..len)
                        .map(|i| v.get(i).copied().unwrap_or(0.25 * i as f32))
                        .collect()
                };
                nodes.push(constant(b"boxes", &[1, k, 4], &vals(boxes, 4 * n)));
                nodes.push(constant(b"scores", &[1, k], &vals(scores, n)));
                let shape = |s: &Option<Vec<DimGen>>, rank: usize| {
                    s.clone().unwrap_or_else(|| vec![DimGen::Auto; rank])
                };
                outputs.push(value_info(
                    b"boxes",
                    &tensor(image.output_elem, shape(boxes_shape, 3)),
                    &[1, k, 4],
                ));
                outputs.push(value_info(
                    b"scores",
                    &tensor(Elem::Float, shape(scores_shape, 2)),
                    &[1, k],
                ));
            }
        }
        for n in self.nodes.iter().take(6) {
            nodes.push(node_msg(n, MODEL_FILE));
        }
        for v in self.extra_inputs.iter().take(3) {
            inputs.push(value_info(&v.name.bytes(), &v.ty, &[]));
        }
        for v in self.extra_outputs.iter().take(3) {
            outputs.push(value_info(&v.name.bytes(), &v.ty, &[]));
        }

        for n in &nodes {
            graph.msg(1, n);
        }
        graph.string(2, "fuzz");
        for t in self.initializers.iter().take(3) {
            graph.msg(5, &tensor_msg(t, MODEL_FILE));
        }
        for i in &inputs {
            graph.msg(11, i);
        }
        for o in &outputs {
            graph.msg(12, o);
        }

        let mut model = Msg::new();
        model.int(1, self.ir_version.unwrap_or(8));
        match &self.opsets {
            None => {
                let mut o = Msg::new();
                o.string(1, "").int(2, 17);
                model.msg(8, &o);
            }
            Some(list) => {
                for (custom, version) in list.iter().take(3) {
                    let mut o = Msg::new();
                    o.string(1, if *custom { "com.example.fuzz" } else { "" })
                        .int(2, *version);
                    model.msg(8, &o);
                }
            }
        }
        model.string(2, "gst-facenet-fuzz");
        model.msg(7, &graph);
        for (k, v) in self.metadata.iter().take(6) {
            let key = match k {
                MetaKey::Normalization => "gst-facenet.normalization".to_string(),
                MetaKey::Mean => "gst-facenet.mean".to_string(),
                MetaKey::Std => "gst-facenet.std".to_string(),
                MetaKey::ChannelOrder => "gst-facenet.channel-order".to_string(),
                MetaKey::Aspect => "gst-facenet.aspect".to_string(),
                MetaKey::ModelName => "gst-facenet.model-name".to_string(),
                MetaKey::Alignment => "gst-facenet.alignment".to_string(),
                MetaKey::Other(s) => s.clone(),
            };
            let value = match v {
                MetaValue::Known(i) => [
                    "prewhiten",
                    "fixed",
                    "none",
                    "rgb",
                    "bgr",
                    "stretch",
                    "pad",
                    "crop",
                    "dlib",
                    "arcface",
                    "margin",
                ][usize::from(*i) % 11]
                    .to_string(),
                MetaValue::Triple(a, b, c) => format!("{a},{b},{c}"),
                MetaValue::Text(s) => s.clone(),
            };
            let mut e = Msg::new();
            e.string(1, &key).string(2, &value);
            model.msg(14, &e);
        }
        let mut bytes = model.into_bytes();
        if self.truncate >= 0xF000 {
            bytes.truncate(usize::from(self.truncate - 0xF000));
        }
        bytes.extend_from_slice(&self.junk[..self.junk.len().min(16)]);
        bytes
    }
}
