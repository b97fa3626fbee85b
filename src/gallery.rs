//! Galleries of labelled face embeddings and nearest-neighbour identification, without
//! GStreamer types.
//!
//! # File format
//!
//! A gallery is a JSON document:
//!
//! ```json
//! {
//!   "format": "gst-facenet-gallery",
//!   "version": 1,
//!   "model": "faceapi-dlib-resnet-128",
//!   "dimension": 128,
//!   "l2-normalized": false,
//!   "people": [
//!     { "label": "alice", "embeddings": [[0.01, ...], [0.02, ...]], "sources": ["alice/1.jpg", "alice/2.jpg"] }
//!   ]
//! }
//! ```
//!
//! `model` is the `model` field of the embeddings it was made from (`FaceNetEmbeddingMeta`):
//! embeddings of another model are not comparable, so such a gallery is refused. Each
//! person has one or more embeddings; `sources` is informational. `l2-normalized` says
//! whether the embeddings were scaled to unit length, which must match the pipeline's.
//! `facenet-enroll` writes galleries from the same elements the pipeline uses.

use ndarray::{Array1, Array2, ArrayView1};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "gst-facenet-gallery";
pub const VERSION: u32 = 1;
/// The label of a face no gallery entry is close enough to.
pub const UNKNOWN: &str = "unknown";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub label: String,
    pub embeddings: Vec<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryFile {
    pub format: String,
    pub version: u32,
    pub model: String,
    pub dimension: usize,
    #[serde(rename = "l2-normalized", default)]
    pub l2_normalized: bool,
    pub people: Vec<Person>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Metric {
    /// Euclidean distance (dlib and FaceNet thresholds: 0.6 for dlib's ResNet).
    #[default]
    Euclidean,
    /// 1 - cosine similarity (0 = same direction, 2 = opposite).
    Cosine,
}

/// A loaded, validated gallery: every embedding a row of one matrix.
#[derive(Clone, Debug)]
pub struct Gallery {
    pub model: String,
    pub l2_normalized: bool,
    labels: Vec<String>,
    /// Row i belongs to `labels[owner[i]]`.
    owner: Vec<usize>,
    vectors: Array2<f32>,
    squared_norms: Array1<f32>,
    /// Each row scaled to length 1 (its length taken in f64), zero rows left zero: cosine
    /// distances from unit vectors stay exact to rounding for embeddings of any magnitude
    /// (f32 squared lengths and dot products of tiny ones are subnormal, off by percents).
    unit_vectors: Array2<f32>,
}

/// The identification of one face.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// The nearest person's label, or [`UNKNOWN`] past the threshold.
    pub label: String,
    /// Distance to the nearest embedding of that person (or of anyone, when unknown).
    pub distance: f32,
    /// Whether the label is a gallery entry (distance within the threshold).
    pub known: bool,
}

/// `1 / length` of a vector, its length taken in f64 (no f32 underflow or overflow of the
/// squares); `None` for a zero (or non-finite) length.
fn unit_scale<'v>(values: impl Iterator<Item = &'v f32>) -> Option<f64> {
    let length = values.map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    (length > 0.0 && length.is_finite()).then(|| 1.0 / length)
}

impl Gallery {
    /// Parses and validates a gallery document; errors say what is wrong and where.
    pub fn from_json(text: &str) -> Result<Gallery, String> {
        let file: GalleryFile =
            serde_json::from_str(text).map_err(|e| format!("not a gallery file: {e}"))?;
        Gallery::from_file(file)
    }

    pub fn from_file(file: GalleryFile) -> Result<Gallery, String> {
        if file.format != FORMAT {
            return Err(format!(
                "\"format\" is '{}', expected '{FORMAT}'",
                file.format
            ));
        }
        if file.version != VERSION {
            return Err(format!(
                "gallery version {} is not supported (this build reads version {VERSION})",
                file.version
            ));
        }
        if file.dimension == 0 {
            return Err("\"dimension\" is 0".into());
        }
        let mut labels = Vec::new();
        let mut owner = Vec::new();
        let mut flat = Vec::new();
        for person in &file.people {
            if person.label.trim().is_empty() {
                return Err("a person has an empty label".into());
            }
            if person.label == UNKNOWN {
                return Err(format!(
                    "'{UNKNOWN}' is reserved for faces that match nobody"
                ));
            }
            if labels.contains(&person.label) {
                return Err(format!("label '{}' appears twice", person.label));
            }
            if person.embeddings.is_empty() {
                return Err(format!("'{}' has no embeddings", person.label));
            }
            for (i, e) in person.embeddings.iter().enumerate() {
                if e.len() != file.dimension {
                    return Err(format!(
                        "embedding {i} of '{}' has {} values, the gallery's dimension is {}",
                        person.label,
                        e.len(),
                        file.dimension
                    ));
                }
                if e.iter().any(|v| !v.is_finite()) {
                    return Err(format!(
                        "embedding {i} of '{}' holds a non-finite value",
                        person.label
                    ));
                }
                owner.push(labels.len());
                flat.extend_from_slice(e);
            }
            labels.push(person.label.clone());
        }
        let rows = owner.len();
        let vectors =
            Array2::from_shape_vec((rows, file.dimension), flat).map_err(|e| e.to_string())?;
        let squared_norms: Array1<f32> = vectors.rows().into_iter().map(|r| r.dot(&r)).collect();
        // Finite values can still overflow: |g|² = inf would make every distance to g
        // inf − inf = NaN, read as 0 (a perfect match).
        if let Some(row) = squared_norms.iter().position(|n| !n.is_finite()) {
            let person = owner[row];
            let index = row - owner.iter().position(|&p| p == person).unwrap_or(row);
            return Err(format!(
                "embedding {index} of '{}' is too large (its squared length overflows f32)",
                labels[person]
            ));
        }
        let mut unit_vectors = vectors.clone();
        for mut row in unit_vectors.rows_mut() {
            if let Some(unit) = unit_scale(row.iter()) {
                row.mapv_inplace(|v| (f64::from(v) * unit) as f32);
            }
        }
        Ok(Gallery {
            model: file.model,
            l2_normalized: file.l2_normalized,
            labels,
            owner,
            vectors,
            squared_norms,
            unit_vectors,
        })
    }

    pub fn dimension(&self) -> usize {
        self.vectors.ncols()
    }

    pub fn people(&self) -> usize {
        self.labels.len()
    }

    pub fn embeddings(&self) -> usize {
        self.vectors.nrows()
    }

    /// Distance from `query` to every gallery embedding.
    fn distances(&self, query: ArrayView1<f32>, metric: Metric) -> Array1<f32> {
        match metric {
            Metric::Euclidean => {
                let dots = self.vectors.dot(&query);
                let qq = query.dot(&query);
                // |g - q|^2 = |g|^2 - 2 g.q + |q|^2, clamped against rounding below zero.
                // NaN (inf − inf, from a query too large for f32) is no match, not 0.
                (&self.squared_norms - &(2.0 * &dots) + qq).mapv(|d| {
                    if d.is_nan() {
                        f32::INFINITY
                    } else {
                        d.max(0.0).sqrt()
                    }
                })
            }
            Metric::Cosine => {
                // 1 − cos from unit vectors. A zero query or embedding gives cos 0, so
                // distance 1 (no match at any threshold below 1); a non-finite query,
                // NaN (never a match).
                let unit_query = if query.iter().any(|v| !v.is_finite()) {
                    Array1::from_elem(query.len(), f32::NAN)
                } else {
                    match unit_scale(query.iter()) {
                        Some(unit) => query.mapv(|v| (f64::from(v) * unit) as f32),
                        None => Array1::zeros(query.len()),
                    }
                };
                self.unit_vectors.dot(&unit_query).mapv(|cos| 1.0 - cos)
            }
        }
    }

    /// The nearest person's distance for each label (the closest of their embeddings).
    fn per_person(&self, query: &[f32], metric: Metric) -> Vec<f32> {
        let d = self.distances(ArrayView1::from(query), metric);
        let mut best = vec![f32::INFINITY; self.labels.len()];
        for (row, &dist) in d.iter().enumerate() {
            let p = self.owner[row];
            if dist < best[p] {
                best[p] = dist;
            }
        }
        best
    }

    /// Identifies each of `queries` (embeddings of the gallery's dimension): the nearest
    /// person (not the first within the threshold), `unknown` beyond `threshold`. With
    /// `unique`, a person is given to at most one face of the set (the faces of one frame):
    /// pairs are assigned in order of increasing distance, so the closest face keeps the
    /// label and the other gets its next nearest person, or `unknown`.
    pub fn identify(
        &self,
        queries: &[&[f32]],
        metric: Metric,
        threshold: f32,
        unique: bool,
    ) -> Vec<Match> {
        let table: Vec<Vec<f32>> = queries.iter().map(|q| self.per_person(q, metric)).collect();
        let nearest = |row: &Vec<f32>| {
            row.iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(p, &d)| (p, d))
        };
        let unknown = |d: f32| Match {
            label: UNKNOWN.to_string(),
            distance: d,
            known: false,
        };
        if !unique {
            return table
                .iter()
                .map(|row| match nearest(row) {
                    Some((p, d)) if d <= threshold => Match {
                        label: self.labels[p].clone(),
                        distance: d,
                        known: true,
                    },
                    Some((_, d)) => unknown(d),
                    None => unknown(f32::INFINITY),
                })
                .collect();
        }
        let mut pairs: Vec<(f32, usize, usize)> = table
            .iter()
            .enumerate()
            .flat_map(|(f, row)| row.iter().enumerate().map(move |(p, &d)| (d, f, p)))
            .filter(|(d, ..)| *d <= threshold)
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut result: Vec<Option<Match>> = vec![None; queries.len()];
        let mut taken = vec![false; self.labels.len()];
        for (d, f, p) in pairs {
            if result[f].is_none() && !taken[p] {
                taken[p] = true;
                result[f] = Some(Match {
                    label: self.labels[p].clone(),
                    distance: d,
                    known: true,
                });
            }
        }
        result
            .into_iter()
            .zip(&table)
            .map(|(m, row)| {
                m.unwrap_or_else(|| unknown(nearest(row).map_or(f32::INFINITY, |(_, d)| d)))
            })
            .collect()
    }
}

impl GalleryFile {
    pub fn new(model: &str, dimension: usize, l2_normalized: bool) -> Self {
        GalleryFile {
            format: FORMAT.to_string(),
            version: VERSION,
            model: model.to_string(),
            dimension,
            l2_normalized,
            people: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a gallery serializes")
    }
}

/// Writes `text` to `path` through a temporary file beside it and a rename: a reader (a
/// running faceidentify) never sees a half-written gallery, and a full disk or a crash
/// leaves the old file whole.
pub fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the gallery path names no file"))?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::File::create(&temporary).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    match written.and_then(|_| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&temporary);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery() -> Gallery {
        let mut f = GalleryFile::new("m", 2, false);
        f.people.push(Person {
            label: "alice".into(),
            embeddings: vec![vec![0.0, 0.0], vec![0.0, 0.5]],
            sources: vec![],
        });
        f.people.push(Person {
            label: "bob".into(),
            embeddings: vec![vec![1.0, 0.0]],
            sources: vec![],
        });
        Gallery::from_json(&f.to_json()).unwrap()
    }

    #[test]
    fn nearest_not_first_match() {
        let g = gallery();
        assert_eq!((g.people(), g.embeddings(), g.dimension()), (2, 3, 2));
        // 0.55 from alice's first embedding, but 0.45 from bob: bob is nearest even
        // though alice comes first and is within the threshold too.
        let m = g.identify(&[&[0.55, 0.0]], Metric::Euclidean, 0.6, false);
        assert_eq!(m[0].label, "bob");
        assert!((m[0].distance - 0.45).abs() < 1e-6);
        // Several embeddings per person: the closest counts.
        let m = g.identify(&[&[0.0, 0.45]], Metric::Euclidean, 0.6, false);
        assert_eq!(m[0].label, "alice");
        assert!((m[0].distance - 0.05).abs() < 1e-6);
        // Beyond the threshold: unknown, with the nearest distance.
        let m = g.identify(&[&[5.0, 5.0]], Metric::Euclidean, 0.6, false);
        assert_eq!((m[0].label.as_str(), m[0].known), (UNKNOWN, false));
        assert!(m[0].distance > 4.0);
    }

    #[test]
    fn unique_assignment_never_gives_a_label_twice() {
        let g = gallery();
        // Both faces nearest to alice; the closer keeps her, the other gets bob.
        let faces: [&[f32]; 2] = [&[0.3, 0.0], &[0.0, 0.0]];
        let m = g.identify(&faces, Metric::Euclidean, 0.8, true);
        assert_eq!(m[1].label, "alice");
        assert_eq!(m[0].label, "bob");
        // Order of the faces does not matter.
        let swapped: [&[f32]; 2] = [&[0.0, 0.0], &[0.3, 0.0]];
        let m2 = g.identify(&swapped, Metric::Euclidean, 0.8, true);
        assert_eq!(
            (m2[0].label.as_str(), m2[1].label.as_str()),
            ("alice", "bob")
        );
        // With a tight threshold the second face becomes unknown instead.
        let m3 = g.identify(&faces, Metric::Euclidean, 0.5, true);
        assert_eq!(
            (m3[0].label.as_str(), m3[1].label.as_str()),
            (UNKNOWN, "alice")
        );
        // Without uniqueness both are alice.
        let m4 = g.identify(&faces, Metric::Euclidean, 0.8, false);
        assert_eq!(
            (m4[0].label.as_str(), m4[1].label.as_str()),
            ("alice", "alice")
        );
    }

    #[test]
    fn cosine() {
        let g = gallery();
        let m = g.identify(&[&[2.0, 0.1]], Metric::Cosine, 0.1, false);
        assert_eq!(m[0].label, "bob");
        assert!(m[0].distance < 0.01);
    }

    /// Found by the gallery fuzzer: an embedding of tiny values (its f32 squared length
    /// and dot products subnormal) had a cosine distance of -0.008 to itself.
    #[test]
    fn cosine_holds_for_tiny_and_zero_vectors() {
        let g = Gallery::from_json(
            r#"{"format":"gst-facenet-gallery","version":1,"model":"m","dimension":2,
                "people":[{"label":"tiny","embeddings":[[-1e-22,-1e-40]]},
                          {"label":"zero","embeddings":[[0.0,0.0]]}]}"#,
        )
        .unwrap();
        let same: &[f32] = &[-1e-22, -1e-40];
        let opposite: &[f32] = &[3e-30, 0.0];
        let m = g.identify(&[same, opposite, &[0.0, 0.0]], Metric::Cosine, 0.5, false);
        assert_eq!(m[0].label, "tiny");
        assert!(m[0].distance.abs() < 1e-6, "{}", m[0].distance);
        assert!(
            !m[1].known && (m[1].distance - 1.0).abs() < 1e-6,
            "{:?}",
            m[1]
        );
        assert!(!m[2].known && m[2].distance == 1.0, "{:?}", m[2]);
        let nan = g.identify(&[&[f32::NAN, 1.0]], Metric::Cosine, 1e30, false);
        assert!(!nan[0].known, "{:?}", nan[0]);
    }

    #[test]
    fn malformed_galleries_are_refused_with_reasons() {
        let ok = GalleryFile::new("m", 2, false);
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "not a gallery file"),
            ("[]".into(), "not a gallery file"),
            (ok.to_json().replace(FORMAT, "other"), "expected 'gst-facenet-gallery'"),
            (ok.to_json().replace("\"version\": 1", "\"version\": 9"), "version 9"),
            (
                ok.to_json()
                    .replace("\"people\": []", "\"people\": [{\"label\": \"a\", \"embeddings\": [[1, 2, 3]]}]"),
                "has 3 values",
            ),
            (
                ok.to_json()
                    .replace("\"people\": []", "\"people\": [{\"label\": \"a\", \"embeddings\": []}]"),
                "no embeddings",
            ),
            (
                ok.to_json().replace(
                    "\"people\": []",
                    "\"people\": [{\"label\": \"a\", \"embeddings\": [[1, 2]]}, {\"label\": \"a\", \"embeddings\": [[1, 2]]}]",
                ),
                "appears twice",
            ),
            (
                ok.to_json()
                    .replace("\"people\": []", "\"people\": [{\"label\": \"unknown\", \"embeddings\": [[1, 2]]}]"),
                "reserved",
            ),
        ];
        for (text, expect) in cases {
            let e = Gallery::from_json(&text).unwrap_err();
            assert!(e.contains(expect), "{expect}: {e}");
        }
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_keep_them_on_failure() {
        let dir = std::env::temp_dir().join(format!("gst-facenet-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("people.json");
        write_atomically(&path, "first").unwrap();
        write_atomically(&path, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        // A directory where the file should go: the write fails, nothing is left behind.
        let blocked = dir.join("blocked.json");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write_atomically(&blocked, "third").is_err());
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
