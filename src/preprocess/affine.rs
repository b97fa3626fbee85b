//! Aligned face crops: [`AffineTransform`] and [`Preprocessor::process_affine`].
//!
//! The kernel is documented in the parent module ("Aligned crops").

use super::{
    convert_row, row_layout, set_len, write_tensor, Frame, PreprocessError, Preprocessor,
    RowLayout, SourceRect, YuvCoeffs,
};

/// Maps output pixel coordinates (x, y) (pixel centres at `i + 0.5`) to source coordinates:
/// `src_x = a·x + b·y + c`, `src_y = d·x + e·y + f`.
///
/// Coordinates are continuous: pixel `i` covers `[i, i + 1)` in both the output and the
/// source. (Landmark templates given in pixel-index coordinates, centre of pixel `i` at
/// `i`, need `+ 0.5` on both axes first.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineTransform {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
    pub e: f64,
    pub f: f64,
}

impl AffineTransform {
    /// `src = out`.
    pub fn identity() -> Self {
        AffineTransform {
            a: 1.0,
            b: 0.0,
            c: 0.0,
            d: 0.0,
            e: 1.0,
            f: 0.0,
        }
    }

    /// Least-squares similarity transform (rotation, uniform scale, translation; Umeyama
    /// 1991 without reflection) mapping the `from` points onto the `to` points, i.e.
    /// minimizing `Σ |T(from_i) − to_i|²`.
    ///
    /// In 2-D this is the complex least-squares fit `to ≈ z·from + t` (`z = s·e^{iθ}`):
    /// with centred points, `z = Σ conj(from_i)·to_i / Σ |from_i|²` — the same minimizer
    /// as Umeyama's SVD solution restricted to proper rotations. Computed in f64.
    ///
    /// `None` when the slices differ in length, hold fewer than 2 points or non-finite
    /// values, when the `from` points (nearly) coincide (spread ≤ 1e-12 relative to their
    /// magnitude), or when the fitted scale is 0 (all `to` points equal).
    ///
    /// For the element: `from` = the template landmarks in output (tensor) coordinates,
    /// `to` = the detected landmarks in the frame, giving the output → source transform
    /// [`Preprocessor::process_affine`] takes.
    pub fn similarity_from_points(from: &[[f64; 2]], to: &[[f64; 2]]) -> Option<Self> {
        let n = from.len();
        if n < 2 || to.len() != n {
            return None;
        }
        if !from.iter().chain(to).flatten().all(|v| v.is_finite()) {
            return None;
        }
        let nf = n as f64;
        let mean = |p: &[[f64; 2]]| {
            let s = p
                .iter()
                .fold([0.0, 0.0], |acc, q| [acc[0] + q[0], acc[1] + q[1]]);
            [s[0] / nf, s[1] / nf]
        };
        let (mf, mt) = (mean(from), mean(to));
        let (mut var, mut re, mut im, mut mag) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (p, q) in from.iter().zip(to) {
            let (x, y) = (p[0] - mf[0], p[1] - mf[1]);
            let (u, v) = (q[0] - mt[0], q[1] - mt[1]);
            var += x * x + y * y;
            // conj(x + iy)·(u + iv)
            re += x * u + y * v;
            im += x * v - y * u;
            mag += p[0] * p[0] + p[1] * p[1];
        }
        if !(var > 1e-12 * mag.max(f64::MIN_POSITIVE)) {
            return None;
        }
        let (p, q) = (re / var, im / var);
        if !(p.is_finite() && q.is_finite()) || (p == 0.0 && q == 0.0) {
            return None;
        }
        // to = [[p, −q], [q, p]]·(from − mf) + mt
        let t = AffineTransform {
            a: p,
            b: -q,
            c: mt[0] - (p * mf[0] - q * mf[1]),
            d: q,
            e: p,
            f: mt[1] - (q * mf[0] + p * mf[1]),
        };
        t.is_finite().then_some(t)
    }

    /// The inverse transform; `None` when singular (determinant 0) or not finite.
    pub fn inverse(&self) -> Option<Self> {
        let det = self.det();
        if !(det != 0.0 && det.is_finite() && self.is_finite()) {
            return None;
        }
        let (a, b, d, e) = (self.e / det, -self.b / det, -self.d / det, self.a / det);
        let t = AffineTransform {
            a,
            b,
            c: -(a * self.c + b * self.f),
            d,
            e,
            f: -(d * self.c + e * self.f),
        };
        t.is_finite().then_some(t)
    }

    /// `T(p)`, evaluated as `(a·x + b·y) + c`, `(d·x + e·y) + f`.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.a * p[0] + self.b * p[1] + self.c,
            self.d * p[0] + self.e * p[1] + self.f,
        ]
    }

    /// The transform that maps the `out_w x out_h` output rectangle onto the axis-aligned
    /// source rectangle `src` ([`Preprocessor::process_rect`]'s geometry):
    /// `a = src.width / out_w`, `e = src.height / out_h`, `c = src.x`, `f = src.y`.
    pub fn from_rect(src: SourceRect, out_w: usize, out_h: usize) -> Self {
        AffineTransform {
            a: src.width / out_w as f64,
            b: 0.0,
            c: src.x,
            d: 0.0,
            e: src.height / out_h as f64,
            f: src.y,
        }
    }

    /// `a·e − b·d`.
    fn det(&self) -> f64 {
        self.a * self.e - self.b * self.d
    }

    fn is_finite(&self) -> bool {
        [self.a, self.b, self.c, self.d, self.e, self.f]
            .iter()
            .all(|v| v.is_finite())
    }
}

/// Largest number of source pixels converted at once; bigger footprints are done in
/// output tiles (only affects memory and speed, not the result).
const MAX_SCRATCH_PIXELS: usize = 1 << 18;

/// Reusable scratch space of [`Preprocessor::process_affine`].
#[derive(Clone, Debug, Default)]
pub(super) struct AffineScratch {
    /// Converted source box, planar R, G, B.
    planes: Vec<f32>,
    /// One converted frame row ([`RowLayout`]).
    row: Vec<f32>,
    /// Colour-conversion temp space.
    conv: Vec<f32>,
}

impl AffineScratch {
    #[cfg(test)]
    pub(super) fn fingerprint(&self) -> Vec<(usize, usize)> {
        vec![
            (self.planes.as_ptr() as usize, self.planes.capacity()),
            (self.row.as_ptr() as usize, self.row.capacity()),
            (self.conv.as_ptr() as usize, self.conv.capacity()),
        ]
    }
}

/// Snaps values within 1e-9 (relative, at least absolute) of an integer onto it, so that
/// `from_rect` corners computed as `c + a·out_w` round like `process_rect`'s `x + width`.
fn snap(v: f64) -> f64 {
    let r = v.round();
    if (v - r).abs() <= 1e-9 * v.abs().max(1.0) {
        r
    } else {
        v
    }
}

/// Everything derived from the transform (see the parent module docs, "Aligned crops").
#[derive(Clone, Copy, Debug)]
struct Kernel {
    t: AffineTransform,
    /// Both output axes map to at most one source pixel: bilinear in source axes.
    bilinear: bool,
    /// `N⁻¹` (row-major) — source offset → footprint coordinates (P, Q).
    inv: [f64; 4],
    /// Half extents (source x, y) of the footprint of one output pixel.
    half: [f64; 2],
    /// Sampling domain, half-open: x `dom[0]..dom[1]`, y `dom[2]..dom[3]`.
    dom: [i64; 4],
}

impl Kernel {
    fn new(
        t: &AffineTransform,
        out_w: usize,
        out_h: usize,
        frame_w: usize,
        frame_h: usize,
    ) -> Result<Self, PreprocessError> {
        let err = |reason: &'static str| PreprocessError::InvalidTransform {
            transform: *t,
            reason,
        };
        if !t.is_finite() {
            return Err(err("coefficients must be finite"));
        }
        let det = t.det();
        if !(det != 0.0 && det.is_finite()) {
            return Err(err("the transform is singular"));
        }
        let (ow, oh) = (out_w as f64, out_h as f64);
        let corners = [[0.0, 0.0], [ow, 0.0], [0.0, oh], [ow, oh]].map(|p| t.apply(p));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in corners {
            x0 = x0.min(p[0]);
            x1 = x1.max(p[0]);
            y0 = y0.min(p[1]);
            y1 = y1.max(p[1]);
        }
        let bbox = SourceRect::new(x0, y0, x1 - x0, y1 - y0);
        if bbox.validate().is_err() {
            return Err(err(
                "the output maps onto a source region beyond MAX_SOURCE_RECT_EXTENT / \
                 MAX_SOURCE_RECT_COORD (or a degenerate one)",
            ));
        }
        let dom = [
            (snap(x0).floor() as i64).min(0),
            (snap(x1).ceil() as i64).max(frame_w as i64),
            (snap(y0).floor() as i64).min(0),
            (snap(y1).ceil() as i64).max(frame_h as i64),
        ];
        let lx = t.a.hypot(t.d);
        let ly = t.b.hypot(t.e);
        if lx <= 1.0 && ly <= 1.0 {
            return Ok(Kernel {
                t: *t,
                bilinear: true,
                inv: [0.0; 4],
                half: [1.0, 1.0],
                dom,
            });
        }
        let (kx, ky) = (lx.max(1.0) / lx, ly.max(1.0) / ly);
        let n = [t.a * kx, t.b * ky, t.d * kx, t.e * ky];
        let det_n = n[0] * n[3] - n[1] * n[2];
        let inv = [n[3] / det_n, -n[1] / det_n, -n[2] / det_n, n[0] / det_n];
        if !(det_n != 0.0 && inv.iter().all(|v| v.is_finite())) {
            return Err(err("the transform is singular"));
        }
        Ok(Kernel {
            t: *t,
            bilinear: false,
            inv,
            half: [n[0].abs() + n[1].abs(), n[2].abs() + n[3].abs()],
            dom,
        })
    }
}

/// The converted source box `x0..x0 + w`, `y0..y0 + h` (planar R, G, B, zeros outside the
/// frame).
#[derive(Clone, Copy)]
struct SrcBox<'p> {
    planes: &'p [f32],
    x0: i64,
    y0: i64,
    w: usize,
    h: usize,
}

#[inline(always)]
fn tent32(v: f32) -> f32 {
    (1.0 - v.abs()).max(0.0)
}

/// One output pixel, bilinear branch: taps `floor(c − 0.5) + {0, 1}` per axis, weights
/// `1 − t`, `t`.
#[inline(always)]
fn sample_bilinear(sb: &SrcBox, cx: f64, cy: f64) -> [f32; 3] {
    let (fx, fy) = (cx - 0.5, cy - 0.5);
    let (ix, iy) = (fx.floor(), fy.floor());
    let (tx, ty) = ((fx - ix) as f32, (fy - iy) as f32);
    let (ix, iy) = (ix as i64 - sb.x0, iy as i64 - sb.y0);
    let wx = [1.0 - tx, tx];
    let wy = [1.0 - ty, ty];
    let plane = sb.w * sb.h;
    let (mut acc, mut sum) = ([0.0f32; 3], 0.0f32);
    for (ky, &wyk) in wy.iter().enumerate() {
        let y = iy + ky as i64;
        if wyk == 0.0 || y < 0 || y >= sb.h as i64 {
            continue;
        }
        for (kx, &wxk) in wx.iter().enumerate() {
            let x = ix + kx as i64;
            if wxk == 0.0 || x < 0 || x >= sb.w as i64 {
                continue;
            }
            let w = wyk * wxk;
            let i = y as usize * sb.w + x as usize;
            sum += w;
            acc[0] += w * sb.planes[i];
            acc[1] += w * sb.planes[plane + i];
            acc[2] += w * sb.planes[2 * plane + i];
        }
    }
    if sum > 0.0 {
        acc.map(|a| a / sum)
    } else {
        [0.0; 3]
    }
}

/// One output pixel, footprint branch: `Σ w·p / Σ w` with `w = tent(P)·tent(Q)`,
/// `(P, Q) = N⁻¹·(pixel centre − c)`, over the taps of the box (= the sampling domain).
#[inline(always)]
fn sample_footprint(k: &Kernel, sb: &SrcBox, cx: f64, cy: f64) -> [f32; 3] {
    let [i00, i01, i10, i11] = k.inv;
    let plane = sb.w * sb.h;
    let (bx0, bx1) = (sb.x0, sb.x0 + sb.w as i64);
    let (by0, by1) = (sb.y0, sb.y0 + sb.h as i64);
    let ylo = ((cy - k.half[1] - 0.5).floor() as i64).max(by0);
    let yhi = ((cy + k.half[1] - 0.5).ceil() as i64).min(by1 - 1);
    let (p_step, q_step) = (i00 as f32, i10 as f32);
    let (mut acc, mut sum) = ([0.0f32; 3], 0.0f32);
    for iy in ylo..=yhi {
        let dy = iy as f64 + 0.5 - cy;
        let (pb, qb) = (i01 * dy, i11 * dy);
        // dx range where |P| < 1 and |Q| < 1 (P = i00·dx + pb, Q = i10·dx + qb).
        let (mut lo, mut hi) = (-k.half[0], k.half[0]);
        for (coef, base) in [(i00, pb), (i10, qb)] {
            if coef != 0.0 {
                let (u, v) = ((-1.0 - base) / coef, (1.0 - base) / coef);
                lo = lo.max(u.min(v));
                hi = hi.min(u.max(v));
            } else if base.abs() >= 1.0 {
                hi = lo - 1.0;
            }
        }
        if hi < lo {
            continue;
        }
        // Slightly wide integer range; the weights clamp the extra taps to 0.
        let xlo = ((cx + lo - 0.5).floor() as i64).max(bx0);
        let xhi = ((cx + hi - 0.5).ceil() as i64).min(bx1 - 1);
        if xhi < xlo {
            continue;
        }
        let dx0 = xlo as f64 + 0.5 - cx;
        let (p0, q0) = ((i00 * dx0 + pb) as f32, (i10 * dx0 + qb) as f32);
        let row = (iy - by0) as usize * sb.w + (xlo - bx0) as usize;
        let n = (xhi - xlo + 1) as usize;
        let r = &sb.planes[row..row + n];
        let g = &sb.planes[plane + row..plane + row + n];
        let b = &sb.planes[2 * plane + row..2 * plane + row + n];
        let (mut ra, mut ga, mut ba, mut sa) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for j in 0..n {
            let jf = j as f32;
            let w = tent32(p0 + p_step * jf) * tent32(q0 + q_step * jf);
            sa += w;
            ra += w * r[j];
            ga += w * g[j];
            ba += w * b[j];
        }
        sum += sa;
        acc[0] += ra;
        acc[1] += ga;
        acc[2] += ba;
    }
    if sum > 0.0 {
        acc.map(|a| a / sum)
    } else {
        [0.0; 3]
    }
}

impl Preprocessor {
    /// Writes the image `out(x, y) = frame(T(x, y))` (`T`: output → source, see
    /// [`AffineTransform`]) into `out` (`len == tensor_len()`), normalized and laid out like
    /// [`process`](Self::process), ignoring [`Aspect`](super::Aspect). The sampling kernel
    /// (bilinear when upscaling, an anti-aliasing footprint tent when downscaling, black
    /// outside the frame) is documented in the module docs, "Aligned crops".
    ///
    /// Errors on an invalid frame / output length, a transform that is not finite or is
    /// singular, or one mapping the output onto a source region larger than
    /// [`MAX_SOURCE_RECT_EXTENT`](super::MAX_SOURCE_RECT_EXTENT) or further out than
    /// [`MAX_SOURCE_RECT_COORD`](super::MAX_SOURCE_RECT_COORD).
    pub fn process_affine(
        &mut self,
        frame: &Frame,
        transform: &AffineTransform,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check(frame, out)?;
        let (w, h) = (self.config.width, self.config.height);
        let kernel = Kernel::new(transform, w, h, frame.width, frame.height)?;
        let coeffs = YuvCoeffs::new(frame.colorimetry);
        #[cfg(target_arch = "x86_64")]
        if !self.resampler.portable_only && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.affine_avx2(frame, &coeffs, &kernel) };
            write_tensor(&self.image, &self.config, out);
            return Ok(());
        }
        self.affine_impl(frame, &coeffs, &kernel);
        write_tensor(&self.image, &self.config, out);
        Ok(())
    }

    /// Same code compiled for AVX2; no FMA contraction and a fixed operation order, so the
    /// results are bit-identical to the portable build.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn affine_avx2(&mut self, frame: &Frame, coeffs: &YuvCoeffs, k: &Kernel) {
        self.affine_impl(frame, coeffs, k);
    }

    #[inline(always)]
    fn affine_impl(&mut self, frame: &Frame, coeffs: &YuvCoeffs, k: &Kernel) {
        let (w, h) = (self.config.width, self.config.height);
        let t = &k.t;
        // Source box (taps bounding box, +1 slack) of the output tile x0..x1, y0..y1,
        // clipped to the sampling domain; None if empty.
        let tile_box = |x0: usize, x1: usize, y0: usize, y1: usize| {
            let (ax, bx) = (x0 as f64 + 0.5, x1 as f64 - 0.5);
            let (ay, by) = (y0 as f64 + 0.5, y1 as f64 - 0.5);
            let (mut lx, mut hx, mut ly, mut hy) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for p in [[ax, ay], [bx, ay], [ax, by], [bx, by]] {
                let [sx, sy] = t.apply(p);
                lx = lx.min(sx);
                hx = hx.max(sx);
                ly = ly.min(sy);
                hy = hy.max(sy);
            }
            let bx0 = ((lx - k.half[0] - 0.5).floor() as i64 - 1).max(k.dom[0]);
            let bx1 = ((hx + k.half[0] - 0.5).ceil() as i64 + 2).min(k.dom[1]);
            let by0 = ((ly - k.half[1] - 0.5).floor() as i64 - 1).max(k.dom[2]);
            let by1 = ((hy + k.half[1] - 0.5).ceil() as i64 + 2).min(k.dom[3]);
            (bx0 < bx1 && by0 < by1).then_some((bx0, bx1, by0, by1))
        };
        // Tile size: halve until the box fits the scratch cap (or tiles are 8 pixels).
        let mut ts = w.max(h);
        while ts > 8 {
            let area = tile_box(0, ts.min(w), 0, ts.min(h))
                .map_or(0, |(x0, x1, y0, y1)| (x1 - x0) as u128 * (y1 - y0) as u128);
            if area <= MAX_SCRATCH_PIXELS as u128 {
                break;
            }
            ts = ts.div_ceil(2);
        }
        let layout = row_layout(frame.format);
        let fpp = layout.floats_per_pixel();
        let (fw, fh) = (frame.width as i64, frame.height as i64);
        let scratch = &mut self.affine;
        let image = &mut self.image;
        for ty in (0..h).step_by(ts) {
            let ty1 = (ty + ts).min(h);
            for tx in (0..w).step_by(ts) {
                let tx1 = (tx + ts).min(w);
                let Some((bx0, bx1, by0, by1)) = tile_box(tx, tx1, ty, ty1) else {
                    for y in ty..ty1 {
                        image[(y * w + tx) * 3..(y * w + tx1) * 3].fill(0.0);
                    }
                    continue;
                };
                // Convert the box: frame pixels where inside the frame, zeros elsewhere.
                let (bw, bh) = ((bx1 - bx0) as usize, (by1 - by0) as usize);
                let plane = bw * bh;
                set_len(&mut scratch.planes, 3 * plane);
                let (fx0, fx1) = (bx0.max(0), bx1.min(fw));
                for r in 0..bh {
                    let y = by0 + r as i64;
                    let rows = |c: usize| c * plane + r * bw..c * plane + (r + 1) * bw;
                    if y < 0 || y >= fh || fx0 >= fx1 {
                        for c in 0..3 {
                            scratch.planes[rows(c)].fill(0.0);
                        }
                        continue;
                    }
                    let n = (fx1 - fx0) as usize;
                    set_len(&mut scratch.row, n * fpp);
                    convert_row(
                        frame,
                        coeffs,
                        y as usize,
                        fx0 as usize,
                        fx1 as usize,
                        &mut scratch.row,
                        &mut scratch.conv,
                    );
                    let (left, right) = ((fx0 - bx0) as usize, (bx1 - fx1) as usize);
                    for c in 0..3 {
                        let dst = &mut scratch.planes[rows(c)];
                        dst[..left].fill(0.0);
                        dst[bw - right..].fill(0.0);
                        let dst = &mut dst[left..left + n];
                        match layout {
                            RowLayout::Planar => {
                                dst.copy_from_slice(&scratch.row[c * n..(c + 1) * n]);
                            }
                            RowLayout::Interleaved { lanes, offsets } => {
                                let o = offsets[c];
                                for (d, p) in dst.iter_mut().zip(scratch.row.chunks_exact(lanes)) {
                                    *d = p[o];
                                }
                            }
                        }
                    }
                }
                let sb = SrcBox {
                    planes: &scratch.planes,
                    x0: bx0,
                    y0: by0,
                    w: bw,
                    h: bh,
                };
                for y in ty..ty1 {
                    let py = y as f64 + 0.5;
                    for x in tx..tx1 {
                        let [cx, cy] = t.apply([x as f64 + 0.5, py]);
                        let px = if k.bilinear {
                            sample_bilinear(&sb, cx, cy)
                        } else {
                            sample_footprint(k, &sb, cx, cy)
                        };
                        image[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&px);
                    }
                }
            }
        }
    }
}
