//! The metadata contract: how an embedding travels on a buffer.
//!
//! Each processed buffer carries a GstCustomMeta registered under the name
//! [`EMBEDDING_META_NAME`] (`FaceNetEmbeddingMeta`). Its GstStructure (named like the meta)
//! has these fields:
//!
//! | field           | type                          | meaning                                          |
//! |-----------------|-------------------------------|--------------------------------------------------|
//! | `embedding`     | GstValueArray of `G_TYPE_FLOAT` | the embedding, `dimension` values              |
//! | `dimension`     | `G_TYPE_UINT`                 | number of values (128 for FaceNet)               |
//! | `model`         | `G_TYPE_STRING`               | the model's name (its `gst-facenet.model-name` metadata, else the file name without extension) |
//! | `l2-normalized` | `G_TYPE_BOOLEAN`              | whether the vector was scaled to unit length     |
//! | `fresh`         | `G_TYPE_BOOLEAN`              | computed from this buffer (`true`) or carried from an earlier one (`false`) |
//! | `source-pts`    | `G_TYPE_UINT64` (optional)    | PTS in nanoseconds of the frame the embedding was computed from; absent when that frame had none. With `fresh=false`, this buffer's PTS minus it is the result's age |
//!
//! C readers: `gst_buffer_get_custom_meta (buf, "FaceNetEmbeddingMeta")`, then
//! `gst_custom_meta_get_structure()`. Python: `buf.get_custom_meta("FaceNetEmbeddingMeta")`.
//! Rust: [`EmbeddingMeta::from_buffer`].

use gst::prelude::*;

/// Name under which the custom meta is registered.
pub const EMBEDDING_META_NAME: &str = "FaceNetEmbeddingMeta";

/// Field names of the meta's structure (and of element messages and ROI params).
pub mod fields {
    pub const EMBEDDING: &str = "embedding";
    pub const DIMENSION: &str = "dimension";
    pub const MODEL: &str = "model";
    pub const L2_NORMALIZED: &str = "l2-normalized";
    pub const FRESH: &str = "fresh";
    pub const SOURCE_PTS: &str = "source-pts";
}

/// Registers the custom meta (idempotent). The plugin does this when it loads; an
/// application reading metas only needs the plugin loaded.
pub fn register() {
    if !gst::meta::CustomMeta::is_registered(EMBEDDING_META_NAME) {
        // No tags: the embedding describes the picture's content, so elements that only
        // convert or scale the video may keep it.
        gst::meta::CustomMeta::register(EMBEDDING_META_NAME, &[]);
    }
}

/// An embedding as carried by `FaceNetEmbeddingMeta`.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingMeta {
    pub embedding: Vec<f32>,
    pub model: String,
    pub l2_normalized: bool,
    pub fresh: bool,
    /// PTS (ns) of the frame this was computed from.
    pub source_pts: Option<u64>,
}

impl EmbeddingMeta {
    pub fn dimension(&self) -> usize {
        self.embedding.len()
    }

    /// Reads the meta from a buffer; `None` when the buffer has none (or it is malformed).
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Self> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, EMBEDDING_META_NAME).ok()?;
        Self::from_structure(meta.structure()).ok()
    }

    /// Parses the documented fields from any structure that carries them (the custom
    /// meta, an element message or a region-of-interest param).
    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, String> {
        let array = s
            .get::<gst::Array>(fields::EMBEDDING)
            .map_err(|e| format!("field '{}': {e}", fields::EMBEDDING))?;
        let embedding = array
            .iter()
            .map(|v| v.get::<f32>().map_err(|e| format!("embedding value: {e}")))
            .collect::<Result<Vec<f32>, String>>()?;
        let dimension = s
            .get::<u32>(fields::DIMENSION)
            .map_err(|e| format!("field '{}': {e}", fields::DIMENSION))?;
        if dimension as usize != embedding.len() {
            return Err(format!(
                "dimension {dimension} does not match the {} embedding values",
                embedding.len()
            ));
        }
        Ok(EmbeddingMeta {
            embedding,
            model: s
                .get::<String>(fields::MODEL)
                .map_err(|e| format!("field '{}': {e}", fields::MODEL))?,
            l2_normalized: s
                .get::<bool>(fields::L2_NORMALIZED)
                .map_err(|e| format!("field '{}': {e}", fields::L2_NORMALIZED))?,
            fresh: s
                .get::<bool>(fields::FRESH)
                .map_err(|e| format!("field '{}': {e}", fields::FRESH))?,
            source_pts: s
                .get_optional::<u64>(fields::SOURCE_PTS)
                .map_err(|e| format!("field '{}': {e}", fields::SOURCE_PTS))?,
        })
    }

    /// Writes the documented fields into `s`.
    pub fn write_fields(&self, s: &mut gst::StructureRef) {
        s.set(
            fields::EMBEDDING,
            gst::Array::new(self.embedding.iter().map(|v| v.to_send_value())),
        );
        s.set(fields::DIMENSION, self.embedding.len() as u32);
        s.set(fields::MODEL, self.model.as_str());
        s.set(fields::L2_NORMALIZED, self.l2_normalized);
        s.set(fields::FRESH, self.fresh);
        match self.source_pts {
            Some(pts) => s.set(fields::SOURCE_PTS, pts),
            None => s.remove_field(fields::SOURCE_PTS),
        }
    }

    /// Attaches this embedding to `buffer` as `FaceNetEmbeddingMeta`, replacing any
    /// earlier one.
    pub fn add_to_buffer(&self, buffer: &mut gst::BufferRef) -> Result<(), gst::glib::BoolError> {
        if let Ok(existing) = gst::meta::CustomMeta::from_mut_buffer(buffer, EMBEDDING_META_NAME) {
            existing.remove()?;
        }
        let mut meta = gst::meta::CustomMeta::add(buffer, EMBEDDING_META_NAME)?;
        self.write_fields(meta.mut_structure());
        Ok(())
    }

    /// Squared Euclidean distance to another embedding of the same dimension.
    pub fn squared_distance(&self, other: &EmbeddingMeta) -> Option<f32> {
        (self.embedding.len() == other.embedding.len()).then(|| {
            self.embedding
                .iter()
                .zip(&other.embedding)
                .map(|(a, b)| (a - b) * (a - b))
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_through_buffer() {
        gst::init().unwrap();
        register();
        let meta = EmbeddingMeta {
            embedding: vec![0.5, -1.25, 3.0],
            model: "test".into(),
            l2_normalized: false,
            fresh: true,
            source_pts: Some(40_000_000),
        };
        let mut buffer = gst::Buffer::new();
        meta.add_to_buffer(buffer.get_mut().unwrap()).unwrap();
        // Replacing keeps one meta.
        meta.add_to_buffer(buffer.get_mut().unwrap()).unwrap();
        assert_eq!(EmbeddingMeta::from_buffer(&buffer), Some(meta.clone()));
        let copy = buffer.copy();
        assert_eq!(EmbeddingMeta::from_buffer(&copy), Some(meta));
        assert_eq!(EmbeddingMeta::from_buffer(&gst::Buffer::new()), None);
    }

    #[test]
    fn malformed_structure_is_an_error() {
        gst::init().unwrap();
        let s = gst::Structure::builder(EMBEDDING_META_NAME)
            .field(fields::EMBEDDING, gst::Array::new([1.0f32.to_send_value()]))
            .field(fields::DIMENSION, 2u32)
            .field(fields::MODEL, "m")
            .field(fields::L2_NORMALIZED, false)
            .field(fields::FRESH, true)
            .build();
        let e = EmbeddingMeta::from_structure(&s).unwrap_err();
        assert!(e.contains("dimension 2"), "{e}");
    }
}

/// The param structure `facedetect` attaches to each face's
/// GstVideoRegionOfInterestMeta (roi type `face`):
///
/// | field        | type                          | meaning                                      |
/// |--------------|-------------------------------|----------------------------------------------|
/// | `confidence` | `G_TYPE_DOUBLE`               | detector score, 0..1                         |
/// | `landmarks`  | GstValueArray of `G_TYPE_FLOAT` | 10 values: x, y (frame pixels) of the left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner ("left" = image left); absent without a landmark model |
/// | `landmarks-68` | GstValueArray of `G_TYPE_FLOAT` | 136 values: x, y of the 68 iBUG 300-W points (frame pixels); absent without a 68-point landmark model |
/// | `fresh`      | `G_TYPE_BOOLEAN`              | detected on this buffer, or carried from the last detection (`inference-interval`) |
/// | `detector`   | `G_TYPE_STRING`               | the detector model's name                    |
pub mod face_detection {
    pub const NAME: &str = "face-detection";
    pub const CONFIDENCE: &str = "confidence";
    pub const LANDMARKS: &str = "landmarks";
    pub const LANDMARKS_68: &str = "landmarks-68";
    pub const FRESH: &str = "fresh";
    pub const DETECTOR: &str = "detector";
    /// The ROI type `facedetect` gives faces.
    pub const ROI_TYPE: &str = "face";
}

/// The name of the param structure `facenet` adds to each face ROI in region mode; its
/// fields are those of [`EMBEDDING_META_NAME`]'s structure (see [`fields`]).
pub const ROI_EMBEDDING_PARAM: &str = "facenet-embedding";

/// A face as `facedetect` describes it on a region-of-interest meta.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceDetectionParam {
    pub confidence: f64,
    pub landmarks: Option<[[f32; 2]; 5]>,
    /// The 68 iBUG points, x then y interleaved (136 values).
    pub landmarks68: Option<Vec<f32>>,
    pub fresh: bool,
    pub detector: String,
}

impl FaceDetectionParam {
    pub fn to_structure(&self) -> gst::Structure {
        let mut s = gst::Structure::builder(face_detection::NAME)
            .field(face_detection::CONFIDENCE, self.confidence)
            .field(face_detection::FRESH, self.fresh)
            .field(face_detection::DETECTOR, self.detector.as_str())
            .build();
        if let Some(points) = &self.landmarks68 {
            s.set(
                face_detection::LANDMARKS_68,
                gst::Array::new(points.iter().map(|v| v.to_send_value())),
            );
        }
        if let Some(points) = &self.landmarks {
            s.set(
                face_detection::LANDMARKS,
                gst::Array::new(points.iter().flatten().map(|v| v.to_send_value())),
            );
        }
        s
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, String> {
        let landmarks = match s.get_optional::<gst::Array>(face_detection::LANDMARKS) {
            Ok(None) => None,
            Ok(Some(a)) => {
                let v: Vec<f32> = a
                    .iter()
                    .map(|v| v.get::<f32>().map_err(|e| format!("landmark value: {e}")))
                    .collect::<Result<_, _>>()?;
                if v.len() != 10 {
                    return Err(format!("{} landmark values, expected 10", v.len()));
                }
                Some([
                    [v[0], v[1]],
                    [v[2], v[3]],
                    [v[4], v[5]],
                    [v[6], v[7]],
                    [v[8], v[9]],
                ])
            }
            Err(e) => return Err(format!("field '{}': {e}", face_detection::LANDMARKS)),
        };
        let landmarks68 = match s.get_optional::<gst::Array>(face_detection::LANDMARKS_68) {
            Ok(None) => None,
            Ok(Some(a)) => {
                let v: Vec<f32> = a
                    .iter()
                    .map(|v| v.get::<f32>().map_err(|e| format!("landmark value: {e}")))
                    .collect::<Result<_, _>>()?;
                if v.len() != 136 {
                    return Err(format!("{} landmarks-68 values, expected 136", v.len()));
                }
                Some(v)
            }
            Err(e) => return Err(format!("field '{}': {e}", face_detection::LANDMARKS_68)),
        };
        Ok(FaceDetectionParam {
            landmarks68,
            confidence: s
                .get::<f64>(face_detection::CONFIDENCE)
                .map_err(|e| format!("field '{}': {e}", face_detection::CONFIDENCE))?,
            landmarks,
            fresh: s
                .get_optional::<bool>(face_detection::FRESH)
                .ok()
                .flatten()
                .unwrap_or(true),
            detector: s
                .get_optional::<String>(face_detection::DETECTOR)
                .ok()
                .flatten()
                .unwrap_or_default(),
        })
    }
}

/// The param structure `faceidentify` adds to each face ROI it names:
///
/// | field      | type             | meaning                                              |
/// |------------|------------------|------------------------------------------------------|
/// | `label`    | `G_TYPE_STRING`  | the nearest gallery person, or `unknown`             |
/// | `distance` | `G_TYPE_DOUBLE`  | distance to that person's nearest embedding          |
/// | `known`    | `G_TYPE_BOOLEAN` | whether the distance is within the threshold         |
pub mod identity {
    pub const NAME: &str = "faceidentify";
    pub const LABEL: &str = "label";
    pub const DISTANCE: &str = "distance";
    pub const KNOWN: &str = "known";
}
