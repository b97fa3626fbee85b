//! Frame -> tensor pre-processing over random pixel formats, sizes, strides, plane
//! lengths, colorimetry, configurations, source rectangles and affine transforms.
//!
//! Invariants: a frame that fails `Frame::validate` is refused by every entry point (Err,
//! never a panic); every Ok tensor has the config's length and is finite; the resampled
//! image is within 0..=255 up to f32 rounding (so `Normalization::None` output is too); `process` with
//! `Aspect::Stretch` equals `process_rect` of the whole frame bit for bit (documented); an NCHW
//! tensor, which a fixed normalization or none writes straight from the resampler, holds the
//! bits of the same call's NHWC tensor, which still goes through the f32 image (a twin
//! `Preprocessor` runs every call with the NHWC layout).
#![no_main]

use arbitrary::Arbitrary;
use fuzz_support::{affine_work, all_finite, check_build, Rng, MAX_AFFINE_WORK};
use gstfacenet::preprocess::{
    AffineTransform, Aspect, ChannelOrder, Frame, Normalization, PixelFormat, PreprocessConfig,
    Preprocessor, Resampler, SourceRect, TensorLayout, YuvColorimetry, YuvMatrix,
};
use libfuzzer_sys::fuzz_target;

/// Plane bytes generated per frame at most (bigger requests are skipped).
const MAX_FRAME_BYTES: usize = 1 << 20;

#[derive(Arbitrary, Debug)]
struct Input {
    width: u8,
    height: u8,
    aspect: u8,
    nhwc: bool,
    bgr: bool,
    norm: Norm,
    frames: Vec<FrameGen>,
}

#[derive(Arbitrary, Debug)]
enum Norm {
    Prewhiten,
    None,
    Fixed([f32; 3], [f32; 3]),
}

#[derive(Arbitrary, Debug)]
struct FrameGen {
    format: u8,
    width: u16,
    height: u16,
    /// Added to each plane's minimum stride; `stride_short` subtracts instead.
    stride_pad: [u8; 3],
    stride_short: [bool; 3],
    /// Added to (or, negative, taken off) each plane's required length.
    len_delta: [i16; 3],
    matrix: u8,
    full_range: bool,
    pattern: u8,
    seed: u64,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Process,
    Legacy,
    /// Any rectangle (non-finite, negative, huge included).
    Rect(f64, f64, f64, f64),
    /// A plausible crop around the frame: coordinates in 1/16 pixels.
    Crop(i16, i16, u16, u16),
    /// Any transform.
    Affine([f64; 6]),
    /// A similarity: angle (1/100 degree), scale (1/256), translation (1/16 pixel).
    Similarity(u16, u16, i16, i16),
    /// `Resampler::resample_rgb_f32` on the frame's resampled image: rect, destination size.
    Resample(i16, i16, u16, u16, u8, u8),
}

fn format(i: u8) -> PixelFormat {
    PixelFormat::ALL[usize::from(i) % PixelFormat::ALL.len()]
}

fn config(input: &Input) -> PreprocessConfig {
    let mut c = PreprocessConfig::new(usize::from(input.width), usize::from(input.height));
    c.aspect = [Aspect::Stretch, Aspect::Pad, Aspect::Crop][usize::from(input.aspect % 3)];
    c.layout = if input.nhwc {
        TensorLayout::Nhwc
    } else {
        TensorLayout::Nchw
    };
    c.channel_order = if input.bgr {
        ChannelOrder::Bgr
    } else {
        ChannelOrder::Rgb
    };
    c.normalization = match input.norm {
        Norm::Prewhiten => Normalization::Prewhiten,
        Norm::None => Normalization::None,
        Norm::Fixed(mean, std) => Normalization::Fixed { mean, std },
    };
    c
}

/// Within 0..=255, up to the f32 rounding of the resampler's pivot form (the module
/// docs' tolerance, 1e-3 on the 0..255 scale).
fn in_range(v: f32) -> bool {
    (-1e-3..=255.001).contains(&v)
}

/// The NHWC twin of an NCHW preprocessor (see [`check`]) and its tensor.
struct Twin {
    p: Preprocessor,
    out: Vec<f32>,
}

impl Twin {
    fn new(cfg: &PreprocessConfig) -> Option<Twin> {
        if cfg.layout != TensorLayout::Nchw {
            return None;
        }
        let cfg = PreprocessConfig {
            layout: TensorLayout::Nhwc,
            ..cfg.clone()
        };
        let out = vec![0.0f32; cfg.tensor_len()];
        Some(Twin {
            p: Preprocessor::new(cfg).expect("the layout does not make a config invalid"),
            out,
        })
    }

    /// The primary's resampled image, or the twin's where the primary wrote its tensor
    /// straight from the resampler (and so left its image empty).
    fn image<'a>(twin: &'a Option<Twin>, p: &'a Preprocessor) -> &'a [f32] {
        match twin {
            Some(t) if p.resampled_image().is_empty() => t.p.resampled_image(),
            _ => p.resampled_image(),
        }
    }
}

/// Runs `call` on the primary preprocessor and on its NHWC twin (if any) and checks the
/// result: Err for an invalid frame (both alike); for Ok, a finite tensor, a resampled
/// image within 0..=255, and the twin's tensor the primary's transposed, bit for bit.
fn check(
    what: &str,
    frame_ok: bool,
    p: &mut Preprocessor,
    out: &mut [f32],
    twin: &mut Option<Twin>,
    call: impl Fn(&mut Preprocessor, &mut [f32]) -> Result<(), gstfacenet::preprocess::PreprocessError>,
) -> bool {
    let r = call(p, out);
    if let Some(t) = twin.as_mut() {
        let rt = call(&mut t.p, &mut t.out);
        assert_eq!(
            r.is_ok(),
            rt.is_ok(),
            "{what}: the NHWC twin disagrees on {r:?}"
        );
        if r.is_ok() {
            let (w, h) = (p.config().width, p.config().height);
            let plane = w * h;
            for (i, px) in t.out.chunks_exact(3).enumerate() {
                for (c, v) in px.iter().enumerate() {
                    let direct = out[c * plane + i];
                    assert!(
                        direct.to_bits() == v.to_bits(),
                        "{what}: NCHW value {direct} != NHWC value {v} at pixel {i} channel {c} ({:?})",
                        p.config()
                    );
                }
            }
        }
    }
    match r {
        Ok(()) => {
            assert!(frame_ok, "{what}: accepted an invalid frame");
            assert_eq!(out.len(), p.config().tensor_len());
            assert!(
                all_finite(out),
                "{what}: non-finite tensor value with {:?}",
                p.config()
            );
            let img = Twin::image(twin, p);
            if let Some(bad) = img.iter().find(|v| !in_range(**v)) {
                panic!(
                    "{what}: resampled value {bad} outside 0..=255 ({:?})",
                    p.config()
                );
            }
            if p.config().normalization == Normalization::None {
                assert!(out.iter().all(|v| in_range(*v)));
            }
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

fuzz_target!(|input: Input| {
    check_build();
    let cfg = config(&input);
    let mut p = match Preprocessor::new(cfg.clone()) {
        Ok(p) => p,
        Err(e) => {
            assert!(cfg.validate().is_err());
            let _ = e.to_string();
            return;
        }
    };
    let mut out = vec![0.0f32; cfg.tensor_len()];
    let mut other = vec![0.0f32; cfg.tensor_len()];
    let mut resampler = Resampler::new();
    let mut twin = Twin::new(&cfg);

    for fg in input.frames.iter().take(3) {
        let fmt = format(fg.format);
        let (w, h) = (usize::from(fg.width % 2048), usize::from(fg.height % 2048));
        let mut strides = [0usize; 3];
        let mut lens = [0usize; 3];
        let mut total = 0usize;
        for plane in 0..fmt.n_planes() {
            let (row, rows) = fmt.plane_size(plane, w, h).unwrap_or((0, 0));
            let pad = usize::from(fg.stride_pad[plane]);
            strides[plane] = if fg.stride_short[plane] {
                row.saturating_sub(pad)
            } else {
                row + pad
            };
            let required = strides[plane] * rows.saturating_sub(1) + row;
            let delta = fg.len_delta[plane];
            lens[plane] = if delta < 0 {
                required.saturating_sub(usize::from(delta.unsigned_abs()))
            } else {
                required + usize::from(delta as u16 % 64)
            };
            total += lens[plane];
        }
        if total > MAX_FRAME_BYTES {
            continue;
        }
        let mut rng = Rng::new(fg.seed);
        let mut data: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0u8; n]).collect();
        for d in &mut data {
            rng.fill(d, fg.pattern);
        }
        let frame = Frame {
            format: fmt,
            width: w,
            height: h,
            planes: [&data[0], &data[1], &data[2]],
            strides,
            colorimetry: YuvColorimetry {
                matrix: [YuvMatrix::Bt601, YuvMatrix::Bt709, YuvMatrix::Bt2020]
                    [usize::from(fg.matrix % 3)],
                full_range: fg.full_range,
            },
        };
        let frame_ok = frame.validate().is_ok();

        // process (and the documented identity with process_rect of the whole frame).
        let ok = check("process", frame_ok, &mut p, &mut out, &mut twin, |p, o| {
            p.process(&frame, o)
        });
        if ok && cfg.aspect == Aspect::Stretch {
            let r = p.process_rect(&frame, SourceRect::full(w, h), &mut other);
            assert!(r.is_ok());
            assert!(
                out.iter()
                    .zip(&other)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "process(stretch) != process_rect(full frame)"
            );
        }
        for op in fg.ops.iter().take(4) {
            match *op {
                Op::Process => {
                    check("process", frame_ok, &mut p, &mut out, &mut twin, |p, o| {
                        p.process(&frame, o)
                    });
                }
                Op::Legacy => {
                    // Per-pixel reference path: keep it small.
                    if w * h <= 1 << 16 {
                        check("legacy", frame_ok, &mut p, &mut out, &mut twin, |p, o| {
                            p.process_square_legacy_bilinear(&frame, o)
                        });
                    }
                }
                Op::Rect(x, y, rw, rh) => {
                    let rect = SourceRect::new(x, y, rw, rh);
                    let ok = check(
                        "process_rect",
                        frame_ok,
                        &mut p,
                        &mut out,
                        &mut twin,
                        |p, o| p.process_rect(&frame, rect, o),
                    );
                    if ok {
                        assert!(rect.validate().is_ok());
                    }
                }
                Op::Crop(x, y, rw, rh) => {
                    let rect = SourceRect::new(
                        f64::from(x) / 16.0,
                        f64::from(y) / 16.0,
                        f64::from(rw) / 16.0,
                        f64::from(rh) / 16.0,
                    );
                    check(
                        "process_rect",
                        frame_ok,
                        &mut p,
                        &mut out,
                        &mut twin,
                        |p, o| p.process_rect(&frame, rect, o),
                    );
                }
                Op::Affine([a, b, c, d, e, f]) => {
                    let t = AffineTransform { a, b, c, d, e, f };
                    if affine_work(&t, cfg.width, cfg.height) > MAX_AFFINE_WORK {
                        continue;
                    }
                    check(
                        "process_affine",
                        frame_ok,
                        &mut p,
                        &mut out,
                        &mut twin,
                        |p, o| p.process_affine(&frame, &t, o),
                    );
                }
                Op::Similarity(angle, scale, tx, ty) => {
                    let th = f64::from(angle).to_radians() / 100.0;
                    let s = f64::from(scale) / 256.0;
                    let t = AffineTransform {
                        a: s * th.cos(),
                        b: -s * th.sin(),
                        c: f64::from(tx) / 16.0,
                        d: s * th.sin(),
                        e: s * th.cos(),
                        f: f64::from(ty) / 16.0,
                    };
                    if affine_work(&t, cfg.width, cfg.height) > MAX_AFFINE_WORK {
                        continue;
                    }
                    check(
                        "process_affine",
                        frame_ok,
                        &mut p,
                        &mut out,
                        &mut twin,
                        |p, o| p.process_affine(&frame, &t, o),
                    );
                    if let Some(inv) = t.inverse() {
                        assert!([inv.a, inv.b, inv.c, inv.d, inv.e, inv.f]
                            .iter()
                            .all(|v| v.is_finite()));
                    }
                }
                Op::Resample(x, y, rw, rh, dw, dh) => {
                    let src = Twin::image(&twin, &p).to_vec();
                    let (dw, dh) = (usize::from(dw % 64), usize::from(dh % 64));
                    let mut dst = vec![0.0f32; dw * dh * 3];
                    let rect = SourceRect::new(
                        f64::from(x) / 16.0,
                        f64::from(y) / 16.0,
                        f64::from(rw) / 16.0,
                        f64::from(rh) / 16.0,
                    );
                    let r = resampler
                        .resample_rgb_f32(&src, cfg.width, cfg.height, rect, &mut dst, dw, dh);
                    if r.is_ok() {
                        assert!(dst.iter().all(|v| in_range(*v)));
                    }
                }
            }
        }
    }
});
