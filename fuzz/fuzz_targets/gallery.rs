//! The gallery parser (`Gallery::from_json`) on arbitrary text, then identification.
//!
//! Invariants: the parser returns Err or a gallery whose dimension, people and embedding
//! counts are those of the document (parsed independently with serde_json); `identify`
//! with finite queries of the gallery's dimension returns one match per query, each with
//! a finite, non-negative (up to rounding) distance (Euclidean: the nearest embedding's, checked against
//! an f64 reference), within the threshold when the label is known, labels from the
//! gallery, a person given at most once with `unique`; nothing panics.
#![no_main]

use fuzz_support::{check_build, Rng};
use gstfacenet::gallery::{Gallery, GalleryFile, Metric, UNKNOWN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_build();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let gallery = match Gallery::from_json(text) {
        Ok(g) => g,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    let file: GalleryFile = serde_json::from_str(text).expect("accepted by the parser");
    assert_eq!(gallery.dimension(), file.dimension);
    assert_eq!(gallery.people(), file.people.len());
    assert_eq!(
        gallery.embeddings(),
        file.people
            .iter()
            .map(|p| p.embeddings.len())
            .sum::<usize>()
    );
    assert_eq!(gallery.model, file.model);
    let labels: Vec<&str> = file.people.iter().map(|p| p.label.as_str()).collect();

    let dim = gallery.dimension();
    if dim > 4096 {
        return;
    }
    // Queries: unit-scale values, an exact copy of a gallery embedding, and zero.
    let mut rng = Rng::new(data.len() as u64 ^ u64::from(data.first().copied().unwrap_or(0)));
    let mut queries: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..dim)
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 22) as f32 - 2.0)
                .collect()
        })
        .collect();
    if let Some(e) = file.people.first().and_then(|p| p.embeddings.first()) {
        queries.push(e.clone());
    }
    queries.push(vec![0.0; dim]);
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let threshold = [0.6f32, 0.0, 1e30, f32::INFINITY][data.len() % 4];
    // Reference: the nearest Euclidean distance in f64, and the largest norm involved
    // (the f32 expansion |g|² − 2g·q + |q|² loses about sqrt(eps)·norm to cancellation).
    let all: Vec<&Vec<f32>> = file.people.iter().flat_map(|p| &p.embeddings).collect();
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let reference: Vec<(f64, f64)> = refs
        .iter()
        .map(|q| {
            let nearest = all
                .iter()
                .map(|g| {
                    g.iter()
                        .zip(q.iter())
                        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .fold(f64::INFINITY, f64::min);
            let scale = all.iter().map(|g| norm(g)).fold(norm(q), f64::max);
            (nearest, scale)
        })
        .collect();
    for metric in [Metric::Euclidean, Metric::Cosine] {
        for unique in [false, true] {
            let matches = gallery.identify(&refs, metric, threshold, unique);
            assert_eq!(matches.len(), refs.len());
            let mut given = Vec::new();
            if metric == Metric::Euclidean && !unique && !all.is_empty() {
                for (m, (nearest, scale)) in matches.iter().zip(&reference) {
                    let tol = 1e-2 * (1.0 + scale);
                    assert!(
                        (f64::from(m.distance) - nearest).abs() <= tol,
                        "distance {} but the nearest embedding is {nearest} away",
                        m.distance
                    );
                }
            }
            for m in &matches {
                if gallery.people() > 0 {
                    assert!(
                        // Cosine: 1 − cos rounds to about −1e-7 for parallel vectors.
                        m.distance.is_finite() && m.distance >= -1e-5,
                        "{metric:?} distance {} for a finite query",
                        m.distance
                    );
                }
                if m.known {
                    assert!(m.distance <= threshold);
                    assert!(labels.contains(&m.label.as_str()));
                    if unique {
                        assert!(!given.contains(&m.label), "'{}' given twice", m.label);
                        given.push(m.label.clone());
                    }
                } else {
                    assert_eq!(m.label, UNKNOWN);
                }
            }
        }
    }
});
