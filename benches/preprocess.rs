//! Bench 2, pre-processing: `Preprocessor::process` of a whole 1920x1080 frame (NV12, I420,
//! RGB, BGRx) into a 160x160 prewhitened NCHW tensor, and `process_affine` of one 200x200
//! face region of a 1080p NV12 frame into 150x150 (against the same through the f32 image,
//! as an NHWC tensor still is written), and a frame already at the model's size
//! (150x150 RGB, fixed normalization) with warm and with cold caches. Single thread (the
//! bench's own). The same-run baseline is a memcpy of the frame's bytes (what merely
//! touching the frame costs on this machine).
//!
//! `cargo bench --bench preprocess`

mod common;

use common::*;
use gstfacenet::preprocess::{
    AffineTransform, Frame, Normalization, PixelFormat, PreprocessConfig, Preprocessor, SourceRect,
    TensorLayout, YuvColorimetry, YuvMatrix,
};

const W: usize = 1920;
const H: usize = 1080;

/// Plane buffers of a 1080p frame in `format` (tightly packed, GStreamer's default strides
/// for these sizes).
fn frame_data(format: PixelFormat) -> (Vec<Vec<u8>>, [usize; 3]) {
    match format {
        PixelFormat::Nv12 => (vec![texture(W * H, 1), texture(W * H / 2, 2)], [W, W, 0]),
        PixelFormat::I420 => (
            vec![
                texture(W * H, 1),
                texture(W * H / 4, 2),
                texture(W * H / 4, 3),
            ],
            [W, W / 2, W / 2],
        ),
        f => {
            let bpp = f.bytes_per_pixel().unwrap();
            (vec![texture(W * H * bpp, 1)], [W * bpp, 0, 0])
        }
    }
}

fn frame<'a>(format: PixelFormat, planes: &'a [Vec<u8>], strides: [usize; 3]) -> Frame<'a> {
    let p = |i: usize| planes.get(i).map(|v| v.as_slice()).unwrap_or(&[]);
    Frame {
        format,
        width: W,
        height: H,
        planes: [p(0), p(1), p(2)],
        strides,
        colorimetry: YuvColorimetry {
            matrix: YuvMatrix::Bt709,
            full_range: false,
        },
    }
}

fn main() {
    let mut report = Report::new("2. Pre-processing (single thread)");
    report.line(&format!("Machine: {}.", machine()));
    report.line("");
    let avx2 = {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    };
    report.line(&format!("CPU has AVX2: {avx2}. Iterations interleaved across the cases; median, min and max per case. Baseline: memcpy of the frame's bytes, in the same loop."));
    report.line("");
    report.line(
        "### Whole 1920x1080 frame -> 160x160, stretch, prewhiten, NCHW (`Preprocessor::process`)",
    );
    report.line("");
    report.line("| format | median | min | max | memcpy of the frame (median) | process / memcpy | goal <= 1 ms |");
    report.line("|---|---|---|---|---|---|---|");

    let formats = [
        ("NV12", PixelFormat::Nv12),
        ("I420", PixelFormat::I420),
        ("RGB", PixelFormat::Rgb),
        ("BGRx", PixelFormat::Bgrx),
    ];
    let data: Vec<_> = formats.iter().map(|(_, f)| frame_data(*f)).collect();
    let mut cfg = PreprocessConfig::new(160, 160);
    cfg.normalization = Normalization::Prewhiten;
    let mut pre = Preprocessor::new(cfg.clone()).unwrap();
    let mut out = vec![0.0f32; cfg.tensor_len()];
    let iters = scale(150);
    let mut times = vec![Vec::new(); formats.len()];
    let mut copy_times = vec![Vec::new(); formats.len()];
    let mut scratch: Vec<Vec<u8>> = data
        .iter()
        .map(|(p, _)| vec![0u8; p.iter().map(Vec::len).sum()])
        .collect();
    for it in 0..iters + 5 {
        for (i, (_, format)) in formats.iter().enumerate() {
            let (planes, strides) = &data[i];
            let fr = frame(*format, planes, *strides);
            let t = time(|| pre.process(&fr, &mut out).unwrap());
            let c = time(|| {
                let dst = &mut scratch[i];
                let mut off = 0;
                for p in planes {
                    dst[off..off + p.len()].copy_from_slice(p);
                    off += p.len();
                }
                std::hint::black_box(&dst);
            });
            std::hint::black_box(&out);
            if it >= 5 {
                times[i].push(t);
                copy_times[i].push(c);
            }
        }
    }
    for (i, (name, _)) in formats.iter().enumerate() {
        let m = median(&times[i]);
        let c = median(&copy_times[i]);
        report.line(&format!(
            "| {name} | **{}** | {} | {} | {} | {:.1}x | {} |",
            fmt_ms(m),
            fmt_ms(min(&times[i])),
            fmt_ms(max(&times[i])),
            fmt_ms(c),
            m / c,
            if m <= 1e-3 {
                "met".to_string()
            } else {
                format!("**missed** ({:.2}x the goal)", m / 1e-3)
            }
        ));
    }

    // One face region of a 1080p NV12 frame into 150x150.
    report.line("");
    report.line("### One 200x200 face region of a 1080p NV12 frame -> 150x150 (`process_affine`)");
    report.line("");
    report.line("| transform | median | min | max | goal <= 100 µs |");
    report.line("|---|---|---|---|---|");
    let (planes, strides) = frame_data(PixelFormat::Nv12);
    let fr = frame(PixelFormat::Nv12, &planes, strides);
    let mut cfg = PreprocessConfig::new(150, 150);
    cfg.normalization = Normalization::Fixed {
        mean: [122.782, 117.001, 104.298],
        std: [255.0, 255.0, 255.0],
    };
    let mut pre = Preprocessor::new(cfg.clone()).unwrap();
    // The same-run baseline of the close-up: its grid not reduced first (`reduce = false`,
    // the resize kernel on every source pixel of the face, as before grids were reduced).
    let mut unreduced = Preprocessor::new(PreprocessConfig {
        reduce: false,
        ..cfg.clone()
    })
    .unwrap();
    // The same-run baseline of the goal cases: an NHWC tensor, which is still written
    // through the f32 image (resampled, then normalized and laid out), as NCHW tensors were
    // before they were written straight from the resampler; the same work otherwise.
    let mut via_image = Preprocessor::new(PreprocessConfig {
        layout: TensorLayout::Nhwc,
        ..cfg.clone()
    })
    .unwrap();
    let mut out = vec![0.0f32; cfg.tensor_len()];
    let rect = SourceRect::new(861.0, 437.0, 200.0, 200.0);
    let axis = AffineTransform::from_rect(rect, 150, 150);
    // A `side x side` source square centred on (cx, cy), rotated by 15 degrees about its
    // centre, into 150x150 (an aligned, tilted face): src = R·s·(out − 75) + centre.
    let tilted = |side: f64, (cx, cy): (f64, f64)| {
        let (s, a) = (side / 150.0, 15f64.to_radians());
        let (ca, sa) = (a.cos() * s, a.sin() * s);
        AffineTransform {
            a: ca,
            b: -sa,
            c: cx - ca * 75.0 + sa * 75.0,
            d: sa,
            e: ca,
            f: cy - sa * 75.0 - ca * 75.0,
        }
    };
    let rotated = tilted(200.0, (861.0 + 100.0, 437.0 + 100.0));
    // A close-up: an 800x800 face region (the grid reduced first, see the module docs'
    // "Large downscales"). Reported, not part of the goal.
    let close_up = tilted(800.0, (960.0, 540.0));
    let cases: [(&str, Option<&AffineTransform>); 7] = [
        ("axis-aligned (`AffineTransform::from_rect`)", Some(&axis)),
        (
            "rotated 15° (similarity, as dlib-chip alignment produces)",
            Some(&rotated),
        ),
        (
            "same box via `process_rect` (separable resizer, reference)",
            None,
        ),
        (
            "close-up: 800x800 region rotated 15° (not a goal case)",
            Some(&close_up),
        ),
        (
            "close-up with `reduce = false` (baseline for the row above)",
            Some(&close_up),
        ),
        (
            "axis-aligned, NHWC through the f32 image (baseline)",
            Some(&axis),
        ),
        (
            "rotated 15°, NHWC through the f32 image (baseline)",
            Some(&rotated),
        ),
    ];
    let iters = scale(1000);
    let mut times = vec![Vec::new(); cases.len()];
    for it in 0..iters + 20 {
        for (i, (_, t)) in cases.iter().enumerate() {
            let d = match t {
                Some(t) if i == 4 => time(|| unreduced.process_affine(&fr, t, &mut out).unwrap()),
                Some(t) if i >= 5 => time(|| via_image.process_affine(&fr, t, &mut out).unwrap()),
                Some(t) => time(|| pre.process_affine(&fr, t, &mut out).unwrap()),
                None => time(|| pre.process_rect(&fr, rect, &mut out).unwrap()),
            };
            std::hint::black_box(&out);
            if it >= 20 {
                times[i].push(d);
            }
        }
    }
    // The two goal cases again, each on its own: the same region call after call (weight
    // tables reused, caches warm), for comparison with the interleaved rows above, where
    // every call rebuilds its tables as it does for each new face.
    let mut alone = Vec::new();
    for t in [&axis, &rotated] {
        let mut v = Vec::new();
        for it in 0..iters + 20 {
            let d = time(|| pre.process_affine(&fr, t, &mut out).unwrap());
            std::hint::black_box(&out);
            if it >= 20 {
                v.push(d);
            }
        }
        alone.push(v);
    }
    for (i, (name, t)) in cases.iter().enumerate() {
        let m = median(&times[i]);
        let goal = if i == 3 {
            format!(
                "(reported: {:.2}x the time of the unreduced grid)",
                m / median(&times[4])
            )
        } else if i >= 4 {
            "(baseline)".to_string()
        } else if t.is_some() {
            // The goal rows against their baselines through the image (rows 6 and 7).
            let via = median(&times[i + 5]);
            let ratio = format!("{:.2}x the time through the image", m / via);
            if m <= 100e-6 {
                format!("met; {ratio}")
            } else {
                format!("**missed** ({:.2}x the goal; {ratio})", m / 100e-6)
            }
        } else {
            "(reference)".to_string()
        };
        report.line(&format!(
            "| {name} | **{}** | {} | {} | {goal} |",
            fmt_us(m),
            fmt_us(min(&times[i])),
            fmt_us(max(&times[i])),
        ));
    }
    for (name, v) in ["axis-aligned", "rotated 15°"].iter().zip(&alone) {
        report.line(&format!(
            "| {name}, alone (the same region call after call) | **{}** | {} | {} | (reported) |",
            fmt_us(median(v)),
            fmt_us(min(v)),
            fmt_us(max(v)),
        ));
    }
    // The first of the rotated crop's two steps on its own, as near as the public API
    // comes: the separable resample of the footprint's bounding box onto a grid at the
    // chip's scale (the geometry of `prefilter_plan`: one cell of margin each side), here
    // with every cell computed and written as a tensor (the warp computes about two thirds
    // of them), so an upper bound on that step. The rest of the rotated row is the bilinear
    // step.
    let (grid_side, grid_rect) = {
        let m = rotated.a.hypot(rotated.d);
        let corners =
            [[0.0, 0.0], [150.0, 0.0], [0.0, 150.0], [150.0, 150.0]].map(|p| rotated.apply(p));
        let (xs, ys) = (corners.map(|p| p[0]), corners.map(|p| p[1]));
        let lo = |v: [f64; 4]| v.iter().cloned().fold(f64::MAX, f64::min);
        let hi = |v: [f64; 4]| v.iter().cloned().fold(f64::MIN, f64::max);
        let cells = ((hi(xs) - lo(xs)) / m).ceil() + 2.0;
        let side = cells * m;
        let (cx, cy) = ((lo(xs) + hi(xs)) / 2.0, (lo(ys) + hi(ys)) / 2.0);
        (
            cells as usize,
            SourceRect::new(cx - side / 2.0, cy - side / 2.0, side, side),
        )
    };
    let grid_cfg = PreprocessConfig {
        normalization: Normalization::None,
        ..PreprocessConfig::new(grid_side, grid_side)
    };
    let mut grid_pre = Preprocessor::new(grid_cfg.clone()).unwrap();
    let mut grid_out = vec![0.0f32; grid_cfg.tensor_len()];
    let mut v = Vec::new();
    for it in 0..iters + 20 {
        let d = time(|| {
            grid_pre
                .process_rect(&fr, grid_rect, &mut grid_out)
                .unwrap()
        });
        std::hint::black_box(&grid_out);
        if it >= 20 {
            v.push(d);
        }
    }
    report.line(&format!(
        "| rotated 15°, its first step alone (upper bound): `process_rect` of its {0:.0}x{0:.0} bounding box into {1}x{1} (the grid), call after call | **{2}** | {3} | {4} | (reported: {5:.2}x the rotated row alone; the bilinear step is the rest) |",
        grid_rect.width,
        grid_side,
        fmt_us(median(&v)),
        fmt_us(min(&v)),
        fmt_us(max(&v)),
        median(&v) / median(&alone[1]),
    ));
    model_size(&mut report, iters);
    report.finish();
}

/// A frame already at the model's size (what bench 1 feeds the element): `process` writes
/// the tensor from the bytes through a row buffer; `process_rect` over the whole frame takes
/// the two passes through the f32 image (the same bits). Cold: 32 MB written before each
/// call evicts the caches, as the model run before it does in a pipeline.
fn model_size(report: &mut Report, iters: usize) {
    const SIDE: usize = 150;
    report.line("");
    report.line("### A frame at the model's size: 150x150 RGB -> fixed normalization, NCHW (as the dlib ResNet takes it)");
    report.line("");
    report.line("`process` (bytes straight to the tensor through an L1-sized row buffer) against `process_rect` over the whole frame (the identity resample, here straight into the NCHW tensor, see bench 2b's baseline rows: the same bits), alternated; cold = 32 MB written before each call, evicting the caches as a model run does.");
    report.line("");
    report.line("| caches | `process` (median) | two passes (median) | two passes / `process` (median of pairs) |");
    report.line("|---|---|---|---|");
    let rgb = texture(SIDE * SIDE * 3, 11);
    let frame = Frame::packed(PixelFormat::Rgb, SIDE, SIDE, &rgb, SIDE * 3);
    let mut cfg = PreprocessConfig::new(SIDE, SIDE);
    cfg.normalization = Normalization::Fixed {
        mean: [122.782, 117.001, 104.298],
        std: [255.0; 3],
    };
    let mut pre = Preprocessor::new(cfg).unwrap();
    let mut out = vec![0.0f32; 3 * SIDE * SIDE];
    let mut evict = vec![0u8; 32 << 20];
    for cold in [false, true] {
        let (mut direct, mut two_pass) = (Vec::new(), Vec::new());
        for it in 0..iters + 20 {
            for k in 0..2 {
                if cold {
                    for b in evict.iter_mut().step_by(64) {
                        *b = b.wrapping_add(1);
                    }
                }
                std::hint::black_box(&evict);
                let d = if (it + k) % 2 == 0 {
                    time(|| pre.process(&frame, &mut out).unwrap())
                } else {
                    time(|| {
                        pre.process_rect(&frame, SourceRect::full(SIDE, SIDE), &mut out)
                            .unwrap()
                    })
                };
                std::hint::black_box(&out);
                if it >= 20 {
                    if (it + k) % 2 == 0 {
                        direct.push(d);
                    } else {
                        two_pass.push(d);
                    }
                }
            }
        }
        let (ratio, q1, q3) = paired_quartiles(&two_pass, &direct);
        report.line(&format!(
            "| {} | **{}** | {} | {ratio:.2}x (q1..q3 {q1:.2}..{q3:.2}) |",
            if cold { "cold" } else { "warm" },
            fmt_us(median(&direct)),
            fmt_us(median(&two_pass)),
        ));
    }
}
