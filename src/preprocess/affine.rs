//! Aligned face crops: [`AffineTransform`] and [`Preprocessor::process_affine`].
//!
//! The kernel is documented in the parent module ("Aligned crops").

use super::{
    convert_row, row_layout, set_len, Frame, PreprocessError, Preprocessor, Region, RowLayout,
    RowOut, SourceRect, YuvCoeffs,
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
        // All values are finite here.
        if var <= 1e-12 * mag.max(f64::MIN_POSITIVE) {
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
    /// Converted source box, planar R, G, B; or a two-step warp's grid, as `R, G, B, 0`
    /// pixels (bilinear step) or padded planes (footprint step).
    planes: Vec<f32>,
    /// One converted frame row ([`RowLayout`]).
    row: Vec<f32>,
    /// Colour-conversion temp space.
    conv: Vec<f32>,
    /// The pre-filtered grid of a two-step warp with a footprint step (interleaved RGB,
    /// before it is split into `planes`).
    grid: Vec<f32>,
    /// Tests: compute a bilinear warp's whole grid (see [`grid_columns`]).
    whole_grid: bool,
}

impl AffineScratch {
    #[cfg(test)]
    pub(super) fn fingerprint(&self) -> Vec<(usize, usize)> {
        vec![
            (self.planes.as_ptr() as usize, self.planes.capacity()),
            (self.row.as_ptr() as usize, self.row.capacity()),
            (self.conv.as_ptr() as usize, self.conv.capacity()),
            (self.grid.as_ptr() as usize, self.grid.capacity()),
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

/// Bounding box `[x0, x1, y0, y1]` of `T([0, out_w] x [0, out_h])` in source coordinates.
fn footprint_box(t: &AffineTransform, out_w: usize, out_h: usize) -> [f64; 4] {
    let (ow, oh) = (out_w as f64, out_h as f64);
    let corners = [[0.0, 0.0], [ow, 0.0], [0.0, oh], [ow, oh]].map(|p| t.apply(p));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in corners {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    [x0, x1, y0, y1]
}

/// Scales up to this count as 1 (bilinear): the residual of a two-step warp has scale 1
/// up to f64 rounding.
const UNIT_SCALE: f64 = 1.0 + 1e-9;

/// The two steps of a downscaling warp (see the parent module docs, "Aligned crops").
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Prefilter {
    /// Source rectangle resampled onto the grid.
    pub(super) rect: SourceRect,
    /// Grid size in cells (`rect` is `width·m x height·m` source pixels).
    pub(super) width: usize,
    pub(super) height: usize,
    /// Output → grid coordinates.
    pub(super) residual: AffineTransform,
}

/// The two-step plan of `t` for an `out_w x out_h` output, or `None` when the warp is done
/// directly: when it does not downscale both output axes (`m = min(lx, ly) <= 1`), or when
/// the grid would be more than 4 times the output's area (strongly anisotropic warps).
pub(super) fn prefilter_plan(t: &AffineTransform, out_w: usize, out_h: usize) -> Option<Prefilter> {
    let m = t.a.hypot(t.d).min(t.b.hypot(t.e));
    if !(m > UNIT_SCALE && m.is_finite()) {
        return None;
    }
    let (ow, oh) = (out_w as f64, out_h as f64);
    let [x0, x1, y0, y1] = footprint_box(t, out_w, out_h);
    // One cell of margin on each side: the residual warp's taps reach up to one cell past
    // the output's footprint. The grid is centred on the footprint, so that rotating the
    // frame and the transform together rotates the grid with them.
    let cells = |extent: f64| (extent / m).ceil() + 2.0;
    let (gw, gh) = (cells(x1 - x0), cells(y1 - y0));
    let cells_total = gw * gh;
    if !cells_total.is_finite() || cells_total > 4.0 * (ow + 2.0) * (oh + 2.0) {
        return None;
    }
    let rect = SourceRect::new(
        (x0 + x1) / 2.0 - gw * m / 2.0,
        (y0 + y1) / 2.0 - gh * m / 2.0,
        gw * m,
        gh * m,
    );
    rect.validate().ok()?;
    let residual = AffineTransform {
        a: t.a / m,
        b: t.b / m,
        c: (t.c - rect.x) / m,
        d: t.d / m,
        e: t.e / m,
        f: (t.f - rect.y) / m,
    };
    Some(Prefilter {
        rect,
        width: gw as usize,
        height: gh as usize,
        residual,
    })
}

/// For each row of a two-step warp's grid, the columns `(start, end)` that the bilinear
/// step reads (the others need not be computed: a tilted face's grid is its bounding box,
/// and about a third of it lies outside the face's footprint). Row `r` is read by the
/// sample points (output pixel centres through `residual`) with `y` in `[r − 0.5,
/// r + 1.5)`, at columns `floor(x − 0.5) + {0, 1}`; their `x` lies within the sample
/// parallelogram clipped to that strip, widened by a cell each way for rounding. Rows
/// near the grid's edges (where the taps are clamped) are taken whole.
fn grid_columns(
    residual: &AffineTransform,
    [out_w, out_h]: [usize; 2],
    [gw, gh]: [usize; 2],
    columns: &mut Vec<(usize, usize)>,
) {
    columns.clear();
    let (x0, x1) = (0.5, out_w as f64 - 0.5);
    let (y0, y1) = (0.5, out_h as f64 - 0.5);
    let corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(|p| residual.apply(p));
    // Each edge as (from, to, dx/dy); a horizontal edge is never crossed strictly.
    let edges: [([f64; 2], [f64; 2], f64); 4] = std::array::from_fn(|i| {
        let (p, q) = (corners[i], corners[(i + 1) % 4]);
        (p, q, (q[0] - p[0]) / (q[1] - p[1]))
    });
    for r in 0..gh {
        if r < 2 || r + 2 >= gh {
            columns.push((0, gw));
            continue;
        }
        let (ya, yb) = (r as f64 - 0.5 - 1e-6, r as f64 + 1.5 + 1e-6);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(p, q, slope) in &edges {
            if p[1] >= ya && p[1] <= yb {
                lo = lo.min(p[0]);
                hi = hi.max(p[0]);
            }
            for y in [ya, yb] {
                if (p[1] - y) * (q[1] - y) < 0.0 {
                    let x = p[0] + slope * (y - p[1]);
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
        }
        if lo > hi {
            columns.push((0, 0));
            continue;
        }
        let start = ((lo - 0.5).floor() - 1.0).max(0.0);
        let end = ((hi - 0.5).floor() + 3.0).min(gw as f64);
        if start < end {
            columns.push((start as usize, end as usize));
        } else {
            columns.push((0, 0));
        }
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
    /// Candidate tap window (x, y) of the footprint branch.
    win: [usize; 2],
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
        let [x0, x1, y0, y1] = footprint_box(t, out_w, out_h);
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
        if lx <= UNIT_SCALE && ly <= UNIT_SCALE {
            return Ok(Kernel {
                t: *t,
                bilinear: true,
                inv: [0.0; 4],
                half: [1.0, 1.0],
                dom,
                win: [2, 2],
            });
        }
        let (kx, ky) = (lx.max(1.0) / lx, ly.max(1.0) / ly);
        let n = [t.a * kx, t.b * ky, t.d * kx, t.e * ky];
        let det_n = n[0] * n[3] - n[1] * n[2];
        let inv = [n[3] / det_n, -n[1] / det_n, -n[2] / det_n, n[0] / det_n];
        if !(det_n != 0.0 && inv.iter().all(|v| v.is_finite())) {
            return Err(err("the transform is singular"));
        }
        let half = [n[0].abs() + n[1].abs(), n[2].abs() + n[3].abs()];
        // ceil(2·half) + 1 pixel centres fit strictly inside a span of 2·half; +1 slack.
        let win = half.map(|h| (2.0 * h).ceil() as usize + 2);
        Ok(Kernel {
            t: *t,
            bilinear: false,
            inv,
            half,
            dom,
            win,
        })
    }
}

/// Zero floats after each row of the converted box.
const ROW_PAD: usize = 8;

/// The converted source box `x0..x0 + w`, `y0..y0 + h` (planar R, G, B, rows `stride =
/// w + ROW_PAD` apart, zeros outside the frame and in the padding).
#[derive(Clone, Copy)]
struct SrcBox<'p> {
    planes: &'p [f32],
    x0: i64,
    y0: i64,
    w: usize,
    h: usize,
    stride: usize,
}

#[inline(always)]
fn tent32(v: f32) -> f32 {
    // A compare + select (vectorizes to a plain max, unlike f32::max's NaN handling).
    let t = 1.0 - v.abs();
    if t > 0.0 {
        t
    } else {
        0.0
    }
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
    let plane = sb.stride * sb.h;
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
            let i = y as usize * sb.stride + x as usize;
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

/// Lane mask source: `MASK[8 − n..][..8]` has `n` leading ones.
const MASK: [f32; 16] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
];
const LANES: [f32; 8] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];

/// The 8-lane block of [`sample_footprint`] with AVX intrinsics: exactly the same f32
/// operations in the same order as the portable loop (`max(t, 0)` = the compare + select
/// of [`tent32`] for non-NaN `t`), hence bit-identical results.
/// `v = [pr, qr, f00, f10, cf]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block8_avx2(v: [f32; 5], m: &[f32; 8], px: [&[f32; 8]; 3], acc: [&mut [f32; 8]; 4]) {
    use std::arch::x86_64::*;
    let l = _mm256_add_ps(_mm256_loadu_ps(LANES.as_ptr()), _mm256_set1_ps(v[4]));
    let one = _mm256_set1_ps(1.0);
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let tent = |base: f32, step: f32| {
        let x = _mm256_add_ps(_mm256_set1_ps(base), _mm256_mul_ps(_mm256_set1_ps(step), l));
        _mm256_max_ps(_mm256_sub_ps(one, _mm256_andnot_ps(sign, x)), zero)
    };
    let w = _mm256_mul_ps(
        _mm256_mul_ps(tent(v[0], v[2]), tent(v[1], v[3])),
        _mm256_loadu_ps(m.as_ptr()),
    );
    let [a0, a1, a2, a3] = acc;
    _mm256_storeu_ps(
        a0.as_mut_ptr(),
        _mm256_add_ps(_mm256_loadu_ps(a0.as_ptr()), w),
    );
    for (a, p) in [a1, a2, a3].into_iter().zip(px) {
        let prod = _mm256_mul_ps(w, _mm256_loadu_ps(p.as_ptr()));
        _mm256_storeu_ps(
            a.as_mut_ptr(),
            _mm256_add_ps(_mm256_loadu_ps(a.as_ptr()), prod),
        );
    }
}

/// One output pixel, footprint branch: `Σ w·p / Σ w` with `w = tent(P)·tent(Q)`,
/// `(P, Q) = N⁻¹·(pixel centre − c)`, over the taps of the box (= the sampling domain).
///
/// Candidate taps: the `win[0] x win[1]` window of pixels whose centres can lie in the
/// footprint's bounding box (taps outside the footprint get weight 0), clipped to the box.
/// Each row is done in blocks of 8 lanes (rows of the box are padded by 8 zeros so that a
/// block never reads past the plane); per-lane partial sums are reduced in a fixed order.
#[inline(always)]
fn sample_footprint<const AVX2: bool>(k: &Kernel, sb: &SrcBox, cx: f64, cy: f64) -> [f32; 3] {
    let [i00, i01, i10, i11] = k.inv;
    let (f00, f10) = (i00 as f32, i10 as f32);
    let plane = sb.stride * sb.h;
    let ix0 = (cx - k.half[0] - 0.5).floor() as i64;
    let iy0 = (cy - k.half[1] - 0.5).floor() as i64;
    let (dx0, dy0) = (ix0 as f64 + 0.5 - cx, iy0 as f64 + 0.5 - cy);
    let (p0, q0) = (i00 * dx0 + i01 * dy0, i10 * dx0 + i11 * dy0);
    let xs = ix0.max(sb.x0);
    let xe = (ix0 + k.win[0] as i64).min(sb.x0 + sb.w as i64);
    let ys = iy0.max(sb.y0);
    let ye = (iy0 + k.win[1] as i64).min(sb.y0 + sb.h as i64);
    // Per-lane partial sums (kept in registers: separate fixed-size arrays).
    let (mut sw, mut sr, mut sg, mut sbl) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    if xs < xe {
        let n = (xe - xs) as usize;
        let jx = (xs - ix0) as f64;
        for iy in ys..ye {
            let jy = (iy - iy0) as f64;
            let pr = (p0 + i00 * jx + i01 * jy) as f32;
            let qr = (q0 + i10 * jx + i11 * jy) as f32;
            let base = (iy - sb.y0) as usize * sb.stride + (xs - sb.x0) as usize;
            let mut c0 = 0;
            while c0 < n {
                let i = base + c0;
                let r: [f32; 8] = sb.planes[i..i + 8].try_into().unwrap();
                let g: [f32; 8] = sb.planes[plane + i..plane + i + 8].try_into().unwrap();
                let b: [f32; 8] = sb.planes[2 * plane + i..2 * plane + i + 8]
                    .try_into()
                    .unwrap();
                let m: [f32; 8] = MASK[8 - (n - c0).min(8)..][..8].try_into().unwrap();
                let cf = c0 as f32;
                #[cfg(target_arch = "x86_64")]
                if AVX2 {
                    let acc = [&mut sw, &mut sr, &mut sg, &mut sbl];
                    // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked).
                    unsafe { block8_avx2([pr, qr, f00, f10, cf], &m, [&r, &g, &b], acc) };
                    c0 += 8;
                    continue;
                }
                let mut w = [0.0f32; 8];
                for j in 0..8 {
                    let l = LANES[j] + cf;
                    w[j] = tent32(pr + f00 * l) * tent32(qr + f10 * l) * m[j];
                }
                for j in 0..8 {
                    sw[j] += w[j];
                    sr[j] += w[j] * r[j];
                    sg[j] += w[j] * g[j];
                    sbl[j] += w[j] * b[j];
                }
                c0 += 8;
            }
        }
    }
    let [sum, r, g, b] = [sw, sr, sg, sbl]
        .map(|a| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])));
    if sum > 0.0 {
        [r / sum, g / sum, b / sum]
    } else {
        [0.0; 3]
    }
}

/// Bilinear samples of output pixels `x0..x0 + 8` of one row from the pre-filtered grid
/// (two-step warps; `grid`: `R, G, B, 0` per pixel, `stride` pixels a row, so that one
/// pixel's two horizontal taps are 32 contiguous bytes; the grid's margin keeps every tap
/// inside it, indices are clamped only to stay in memory whatever the rounding): sample
/// point `c = (origin + a·(x + 0.5), …)` in f64, taps `floor(c − 0.5) + {0, 1}` per axis,
/// fractions `t` rounded to f32, then per channel `top = p00 + tx·(p01 − p00)`, `bottom =
/// p10 + tx·(p11 − p10)`, `top + ty·(bottom − top)`. The AVX2 build performs the same
/// operations two pixels at a time (no gathers: on current Intel cores a gather costs
/// more than the loads it replaces): bit-identical. Writes the first `n` of the eight
/// pixels to `row` (interleaved R, G, B pixels, or normalized tensor planes) from pixel
/// `x0` on.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bilinear_block<const AVX2: bool, const AVX512: bool>(
    grid: &[f32],
    stride: usize,
    [gw, gh]: [usize; 2],
    t: &AffineTransform,
    origin: [f64; 2],
    x0: usize,
    n: usize,
    row: &mut RowOut,
) {
    let mut index = [0i32; 8];
    let (mut tx, mut ty) = ([0.0f32; 8], [0.0f32; 8]);
    let (max_x, max_y) = (gw.saturating_sub(2) as f64, gh.saturating_sub(2) as f64);
    debug_assert!(gw >= 2 && gh >= 2 && grid.len() >= stride * gh * 4);
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked); the indices
        // are clamped so that (index + stride + 1) * 4 + 4 <= grid.len().
        unsafe {
            if AVX512 {
                bilinear_coords_avx512(
                    [t.a, t.d],
                    origin,
                    x0,
                    [max_x, max_y],
                    stride as i32,
                    &mut index,
                    &mut tx,
                    &mut ty,
                );
            } else {
                bilinear_coords_avx2(
                    [t.a, t.d],
                    origin,
                    x0,
                    [max_x, max_y],
                    stride as i32,
                    &mut index,
                    &mut tx,
                    &mut ty,
                );
            }
            let quads = bilinear_pairs_avx2(grid, stride, &index, &tx, &ty);
            match row {
                RowOut::Pixels(row, _) => store_quads_avx2(quads, &mut row[x0 * 3..], n),
                RowOut::Planes(rows, p) => {
                    super::store_planes_avx2(super::transpose_quads_avx2(quads), rows, x0, n, p)
                }
            }
        };
        return;
    }
    for l in 0..8 {
        let xc = (x0 + l) as f64 + 0.5;
        let fx = origin[0] + t.a * xc - 0.5;
        let fy = origin[1] + t.d * xc - 0.5;
        let (ix, iy) = (fx.floor(), fy.floor());
        tx[l] = (fx - ix) as f32;
        ty[l] = (fy - iy) as f32;
        // SAFETY: finite (a validated transform) and clamped into 0..=grid size, far
        // below i32::MAX (grids are at most 4x the output's area).
        let (ix, iy): (i32, i32) = unsafe {
            (
                ix.clamp(0.0, max_x).to_int_unchecked(),
                iy.clamp(0.0, max_y).to_int_unchecked(),
            )
        };
        index[l] = iy * stride as i32 + ix;
    }
    let mut px = [[0.0f32; 4]; 8];
    for (l, pl) in px.iter_mut().enumerate() {
        let i = index[l] as usize * 4;
        let (top_row, bottom_row) = (&grid[i..i + 8], &grid[i + stride * 4..i + stride * 4 + 8]);
        for c in 0..4 {
            let (p00, p01) = (top_row[c], top_row[4 + c]);
            let (p10, p11) = (bottom_row[c], bottom_row[4 + c]);
            let top = p00 + tx[l] * (p01 - p00);
            let bottom = p10 + tx[l] * (p11 - p10);
            pl[c] = top + ty[l] * (bottom - top);
        }
    }
    match row {
        RowOut::Pixels(row, _) => {
            for (o, p) in row[x0 * 3..(x0 + n) * 3].chunks_exact_mut(3).zip(&px) {
                o.copy_from_slice(&p[..3]);
            }
        }
        RowOut::Planes(rows, norm) => {
            for (c, plane_row) in rows.iter_mut().enumerate() {
                for (o, p) in plane_row[x0..x0 + n].iter_mut().zip(&px) {
                    *o = norm.normalize(c, p[c]);
                }
            }
        }
    }
}

/// [`bilinear_block`]'s sample points, four lanes of f64 at a time: the same f64
/// operations in the same order (no FMA; `floor`, the clamp, truncation and the rounding
/// to f32 are exact or correctly rounded), so the same taps and fractions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn bilinear_coords_avx2(
    [a, d]: [f64; 2],
    origin: [f64; 2],
    x0: usize,
    [max_x, max_y]: [f64; 2],
    stride: i32,
    index: &mut [i32; 8],
    tx: &mut [f32; 8],
    ty: &mut [f32; 8],
) {
    use std::arch::x86_64::*;
    let half = _mm256_set1_pd(0.5);
    let zero = _mm256_setzero_pd();
    for h in 0..2 {
        let x = (x0 + 4 * h) as f64;
        // (x0 + l) as f64 + 0.5, exact for any frame size.
        let xc = _mm256_add_pd(_mm256_set_pd(x + 3.0, x + 2.0, x + 1.0, x), half);
        let fx = _mm256_sub_pd(
            _mm256_add_pd(
                _mm256_set1_pd(origin[0]),
                _mm256_mul_pd(_mm256_set1_pd(a), xc),
            ),
            half,
        );
        let fy = _mm256_sub_pd(
            _mm256_add_pd(
                _mm256_set1_pd(origin[1]),
                _mm256_mul_pd(_mm256_set1_pd(d), xc),
            ),
            half,
        );
        let (ix, iy) = (_mm256_floor_pd(fx), _mm256_floor_pd(fy));
        _mm_storeu_ps(
            tx.as_mut_ptr().add(4 * h),
            _mm256_cvtpd_ps(_mm256_sub_pd(fx, ix)),
        );
        _mm_storeu_ps(
            ty.as_mut_ptr().add(4 * h),
            _mm256_cvtpd_ps(_mm256_sub_pd(fy, iy)),
        );
        let ix = _mm256_cvttpd_epi32(_mm256_min_pd(
            _mm256_max_pd(ix, zero),
            _mm256_set1_pd(max_x),
        ));
        let iy = _mm256_cvttpd_epi32(_mm256_min_pd(
            _mm256_max_pd(iy, zero),
            _mm256_set1_pd(max_y),
        ));
        let i = _mm_add_epi32(_mm_mullo_epi32(iy, _mm_set1_epi32(stride)), ix);
        _mm_storeu_si128(index.as_mut_ptr().add(4 * h) as *mut __m128i, i);
    }
}

/// [`bilinear_coords_avx2`] with AVX-512F: the eight lanes in one register of f64, the
/// same operations (so the same taps and fractions) in half the instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn bilinear_coords_avx512(
    [a, d]: [f64; 2],
    origin: [f64; 2],
    x0: usize,
    [max_x, max_y]: [f64; 2],
    stride: i32,
    index: &mut [i32; 8],
    tx: &mut [f32; 8],
    ty: &mut [f32; 8],
) {
    use std::arch::x86_64::*;
    let half = _mm512_set1_pd(0.5);
    let zero = _mm512_setzero_pd();
    // (x0 + l) as f64 + 0.5, exact for any frame size.
    let lanes = _mm512_setr_pd(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let xc = _mm512_add_pd(_mm512_add_pd(_mm512_set1_pd(x0 as f64), lanes), half);
    let fx = _mm512_sub_pd(
        _mm512_add_pd(
            _mm512_set1_pd(origin[0]),
            _mm512_mul_pd(_mm512_set1_pd(a), xc),
        ),
        half,
    );
    let fy = _mm512_sub_pd(
        _mm512_add_pd(
            _mm512_set1_pd(origin[1]),
            _mm512_mul_pd(_mm512_set1_pd(d), xc),
        ),
        half,
    );
    // Round toward negative infinity, exceptions suppressed: floor.
    const FLOOR: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
    let (ix, iy) = (
        _mm512_roundscale_pd::<FLOOR>(fx),
        _mm512_roundscale_pd::<FLOOR>(fy),
    );
    _mm256_storeu_ps(tx.as_mut_ptr(), _mm512_cvtpd_ps(_mm512_sub_pd(fx, ix)));
    _mm256_storeu_ps(ty.as_mut_ptr(), _mm512_cvtpd_ps(_mm512_sub_pd(fy, iy)));
    let ix = _mm512_cvttpd_epi32(_mm512_min_pd(
        _mm512_max_pd(ix, zero),
        _mm512_set1_pd(max_x),
    ));
    let iy = _mm512_cvttpd_epi32(_mm512_min_pd(
        _mm512_max_pd(iy, zero),
        _mm512_set1_pd(max_y),
    ));
    let i = _mm256_add_epi32(_mm256_mullo_epi32(iy, _mm256_set1_epi32(stride)), ix);
    _mm256_storeu_si256(index.as_mut_ptr() as *mut __m256i, i);
}

/// [`bilinear_block`]'s interpolation, two pixels per register: each pixel's `p00 p01`
/// and `p10 p11` are one unaligned 32-byte load each, split into halves across the pair.
/// Register `k` holds pixels `k` and `k + 4` as `R, G, B, 0` quads (the layout
/// [`transpose_quads_avx2`](super::transpose_quads_avx2) takes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn bilinear_pairs_avx2(
    grid: &[f32],
    stride: usize,
    index: &[i32; 8],
    tx: &[f32; 8],
    ty: &[f32; 8],
) -> [std::arch::x86_64::__m256; 4] {
    use std::arch::x86_64::*;
    let base = grid.as_ptr();
    let below = stride * 4;
    let mut quads = [_mm256_setzero_ps(); 4];
    for (l, q) in quads.iter_mut().enumerate() {
        let (i0, i1) = (index[l] as usize * 4, index[l + 4] as usize * 4);
        let (a0, a1) = (_mm256_loadu_ps(base.add(i0)), _mm256_loadu_ps(base.add(i1)));
        let (b0, b1) = (
            _mm256_loadu_ps(base.add(i0 + below)),
            _mm256_loadu_ps(base.add(i1 + below)),
        );
        // [p00 of pixel l | p00 of pixel l + 4], and so on.
        let p00 = _mm256_permute2f128_ps::<0x20>(a0, a1);
        let p01 = _mm256_permute2f128_ps::<0x31>(a0, a1);
        let p10 = _mm256_permute2f128_ps::<0x20>(b0, b1);
        let p11 = _mm256_permute2f128_ps::<0x31>(b0, b1);
        let tx = _mm256_set_m128(_mm_set1_ps(tx[l + 4]), _mm_set1_ps(tx[l]));
        let ty = _mm256_set_m128(_mm_set1_ps(ty[l + 4]), _mm_set1_ps(ty[l]));
        let top = _mm256_add_ps(p00, _mm256_mul_ps(tx, _mm256_sub_ps(p01, p00)));
        let bottom = _mm256_add_ps(p10, _mm256_mul_ps(tx, _mm256_sub_ps(p11, p10)));
        *q = _mm256_add_ps(top, _mm256_mul_ps(ty, _mm256_sub_ps(bottom, top)));
    }
    quads
}

/// The first `n` pixels of [`bilinear_pairs_avx2`]'s quads into `out` (interleaved R, G,
/// B), in pixel order, each as one 16-byte store (its fourth float lands on the next
/// pixel's R, which that pixel's store overwrites next) where `out` has room, else as
/// three floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_quads_avx2(quads: [std::arch::x86_64::__m256; 4], out: &mut [f32], n: usize) {
    use std::arch::x86_64::*;
    // (No closure: it would not inherit the AVX2 target feature.)
    let pixels = [
        _mm256_castps256_ps128(quads[0]),
        _mm256_castps256_ps128(quads[1]),
        _mm256_castps256_ps128(quads[2]),
        _mm256_castps256_ps128(quads[3]),
        _mm256_extractf128_ps::<1>(quads[0]),
        _mm256_extractf128_ps::<1>(quads[1]),
        _mm256_extractf128_ps::<1>(quads[2]),
        _mm256_extractf128_ps::<1>(quads[3]),
    ];
    if n == 8 && out.len() >= 3 * 7 + 4 {
        // A whole block with room for its last quad (every block but a row's last).
        for (p, &v) in pixels.iter().enumerate() {
            _mm_storeu_ps(out.as_mut_ptr().add(3 * p), v);
        }
        return;
    }
    for (p, &v) in pixels.iter().enumerate().take(n) {
        if 3 * p + 4 <= out.len() {
            _mm_storeu_ps(out.as_mut_ptr().add(3 * p), v);
        } else {
            let mut q = [0.0f32; 4];
            _mm_storeu_ps(q.as_mut_ptr(), v);
            out[3 * p..3 * p + 3].copy_from_slice(&q[..3]);
        }
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
        // An axis-aligned scale and shift (FaceNet's margin crop) is process_rect's geometry
        // with the same kernel: take its separable resampler, several times faster than the
        // per-pixel warp.
        let t = transform;
        if t.b == 0.0 && t.d == 0.0 && t.a > 0.0 && t.e > 0.0 {
            let rect = SourceRect::new(t.c, t.f, t.a * w as f64, t.e * h as f64);
            if rect.validate().is_ok() {
                return self.process_rect(frame, rect, out);
            }
        }
        let kernel = Kernel::new(transform, w, h, frame.width, frame.height)?;
        let coeffs = YuvCoeffs::new(frame.colorimetry);
        if let Some(plan) = prefilter_plan(transform, w, h) {
            let grid = Kernel::new(&plan.residual, w, h, plan.width, plan.height)?;
            self.prefilter(frame, &plan, grid.bilinear);
            #[cfg(target_arch = "x86_64")]
            if !self.resampler.portable_only && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above, and AVX-512F and VL
                // where Resampler::avx512 says so.
                let direct = unsafe {
                    if self.resampler.avx512() {
                        self.warp_grid_avx512(&plan, &grid, out)
                    } else {
                        self.warp_grid_avx2(&plan, &grid, out)
                    }
                };
                self.finish_tensor(direct, out);
                return Ok(());
            }
            let direct = self.warp_grid::<false, false>(&plan, &grid, out);
            self.finish_tensor(direct, out);
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if !self.resampler.portable_only && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.affine_avx2(frame, &coeffs, &kernel) };
            self.finish_tensor(false, out);
            return Ok(());
        }
        self.affine_impl::<false>(frame, &coeffs, &kernel);
        self.finish_tensor(false, out);
        Ok(())
    }

    /// Step 1 of a two-step warp: the plan's rectangle resampled onto its grid (the resize
    /// kernel, `process_rect`'s edge rules, a grid 4x or more smaller than the rectangle
    /// reduced first, see "Large downscales" in the module docs), then as `R, G, B, 0`
    /// pixels for [`bilinear_block`] (`packed`), or padded planar R, G, B as [`SrcBox`]
    /// reads.
    fn prefilter(&mut self, frame: &Frame, plan: &Prefilter, packed: bool) {
        let (gw, gh) = (plan.width, plan.height);
        let scratch = &mut self.affine;
        let mut region = Region::full(gw, gh);
        // Faces shrunk 4x or more are reduced first, as in process_rect.
        let reduce = self.config.reduce;
        if packed {
            // Straight into R, G, B, 0 pixels (see bilinear_block), only the cells the
            // bilinear step reads (the others keep earlier, finite values: read, if ever,
            // with weight 0).
            region.pixel = 4;
            set_len(&mut scratch.planes, gw * gh * 4);
            if !scratch.whole_grid {
                let (w, h) = (self.config.width, self.config.height);
                let columns = &mut self.resampler.row_columns;
                grid_columns(&plan.residual, [w, h], [gw, gh], columns);
            }
            self.resampler
                .run_frame(frame, plan.rect, &mut scratch.planes, region, reduce);
            return;
        }
        set_len(&mut scratch.grid, gw * gh * 3);
        self.resampler
            .run_frame(frame, plan.rect, &mut scratch.grid, region, reduce);
        let stride = gw + ROW_PAD;
        let plane = stride * gh;
        set_len(&mut scratch.planes, 3 * plane);
        for (y, row) in scratch.grid.chunks_exact(gw * 3).enumerate() {
            for c in 0..3 {
                let dst = &mut scratch.planes[c * plane + y * stride..c * plane + (y + 1) * stride];
                for (d, p) in dst.iter_mut().zip(row.chunks_exact(3)) {
                    *d = p[c];
                }
                dst[gw..].fill(0.0);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn warp_grid_avx2(&mut self, plan: &Prefilter, k: &Kernel, out: &mut [f32]) -> bool {
        self.warp_grid::<true, false>(plan, k, out)
    }

    /// [`warp_grid_avx2`](Self::warp_grid_avx2) where the CPU also has AVX-512F and VL
    /// (the sample points eight lanes at a time, see [`bilinear_coords_avx512`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    fn warp_grid_avx512(&mut self, plan: &Prefilter, k: &Kernel, out: &mut [f32]) -> bool {
        self.warp_grid::<true, true>(plan, k, out)
    }

    /// Step 2 of a two-step warp: the output sampled from the grid through the residual
    /// transform: bilinear for a similarity (eight output pixels at a time, see
    /// [`bilinear_block`]), the footprint kernel otherwise.
    #[inline(always)]
    fn warp_grid<const AVX2: bool, const AVX512: bool>(
        &mut self,
        plan: &Prefilter,
        k: &Kernel,
        out: &mut [f32],
    ) -> bool {
        let (w, h) = (self.config.width, self.config.height);
        let t = &plan.residual;
        if k.bilinear {
            // Straight into the tensor where it allows (see PlaneNorm), else the image.
            let planes = self.direct_planes();
            let region = Region {
                planes,
                ..Region::full(w, h)
            };
            // The grid as `prefilter` left it: `R, G, B, 0` pixels.
            let grid = &self.affine.planes;
            let dst = if planes.is_some() {
                out
            } else {
                &mut self.image[..]
            };
            let size = [plan.width, plan.height];
            for y in 0..h {
                let mut row = region.row_out(dst, y);
                let py = y as f64 + 0.5;
                let origin = [t.b * py + t.c, t.e * py + t.f];
                for x0 in (0..w).step_by(8) {
                    let n = 8.min(w - x0);
                    bilinear_block::<AVX2, AVX512>(
                        grid, plan.width, size, t, origin, x0, n, &mut row,
                    );
                }
            }
            return planes.is_some();
        }
        // The grid as `prefilter` left it: padded planes.
        let grid = &self.affine.planes;
        let sb = SrcBox {
            planes: grid,
            x0: 0,
            y0: 0,
            w: plan.width,
            h: plan.height,
            stride: plan.width + ROW_PAD,
        };
        for y in 0..h {
            let py = y as f64 + 0.5;
            let row = &mut self.image[y * w * 3..(y + 1) * w * 3];
            for x in 0..w {
                let [cx, cy] = t.apply([x as f64 + 0.5, py]);
                let v = sample_footprint::<AVX2>(k, &sb, cx, cy);
                row[x * 3..x * 3 + 3].copy_from_slice(&v);
            }
        }
        false
    }

    /// Same code compiled for AVX2; no FMA contraction and a fixed operation order, so the
    /// results are bit-identical to the portable build.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn affine_avx2(&mut self, frame: &Frame, coeffs: &YuvCoeffs, k: &Kernel) {
        self.affine_impl::<true>(frame, coeffs, k);
    }

    #[inline(always)]
    fn affine_impl<const AVX2: bool>(&mut self, frame: &Frame, coeffs: &YuvCoeffs, k: &Kernel) {
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
        let avx512 = AVX2 && self.resampler.avx512();
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
                let stride = bw + ROW_PAD;
                let plane = stride * bh;
                set_len(&mut scratch.planes, 3 * plane);
                let (fx0, fx1) = (bx0.max(0), bx1.min(fw));
                for r in 0..bh {
                    let y = by0 + r as i64;
                    let rows = |c: usize| c * plane + r * stride..c * plane + (r + 1) * stride;
                    if y < 0 || y >= fh || fx0 >= fx1 {
                        for c in 0..3 {
                            scratch.planes[rows(c)].fill(0.0);
                        }
                        continue;
                    }
                    let n = (fx1 - fx0) as usize;
                    set_len(&mut scratch.row, n * fpp);
                    convert_row::<AVX2>(
                        frame,
                        coeffs,
                        y as usize,
                        fx0 as usize,
                        fx1 as usize,
                        &mut scratch.row,
                        &mut scratch.conv,
                        avx512,
                    );
                    let (left, right) = ((fx0 - bx0) as usize, (bx1 - fx1) as usize);
                    for c in 0..3 {
                        let dst = &mut scratch.planes[rows(c)];
                        dst[..left].fill(0.0);
                        dst[bw - right..].fill(0.0); // and the row padding
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
                    stride,
                };
                for y in ty..ty1 {
                    let py = y as f64 + 0.5;
                    for x in tx..tx1 {
                        let [cx, cy] = t.apply([x as f64 + 0.5, py]);
                        let px = if k.bilinear {
                            sample_bilinear(&sb, cx, cy)
                        } else {
                            sample_footprint::<AVX2>(k, &sb, cx, cy)
                        };
                        image[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&px);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reduce_factors;
    use super::super::tests::{
        make_frame, naive_pixel, none_config, reduced_reference, Rng, TestFrame, SIMD_LEVELS,
    };
    use super::super::{
        write_tensor, ChannelOrder, CropThreads, Normalization, PixelFormat, PreprocessConfig,
        SourceRect, TensorLayout, YuvColorimetry,
    };
    use super::*;

    const TOL: f64 = 1e-3;

    fn tent(v: f64) -> f64 {
        (1.0 - v.abs()).max(0.0)
    }

    /// Straight f64 implementation of the documented kernel ("Aligned crops") for output
    /// pixel (x, y); `rgb` is the converted frame (`pixel_rgb`), `fw x fh`.
    #[allow(clippy::too_many_arguments)]
    fn naive_affine(
        rgb: &[[f64; 3]],
        fw: usize,
        fh: usize,
        t: &AffineTransform,
        ow: usize,
        oh: usize,
        x: usize,
        y: usize,
    ) -> [f64; 3] {
        let lx = (t.a * t.a + t.d * t.d).sqrt();
        let ly = (t.b * t.b + t.e * t.e).sqrt();
        let bilinear = lx <= UNIT_SCALE && ly <= UNIT_SCALE;
        let (rx, ry) = (lx.max(1.0), ly.max(1.0));
        let n = [
            [t.a / lx * rx, t.b / ly * ry],
            [t.d / lx * rx, t.e / ly * ry],
        ];
        let det = n[0][0] * n[1][1] - n[0][1] * n[1][0];
        let inv = [
            [n[1][1] / det, -n[0][1] / det],
            [-n[1][0] / det, n[0][0] / det],
        ];
        let corners: Vec<[f64; 2]> = [[0.0, 0.0], [ow as f64, 0.0], [0.0, oh as f64]]
            .into_iter()
            .chain([[ow as f64, oh as f64]])
            .map(|p| t.apply(p))
            .collect();
        let snapped = |v: f64| {
            if (v - v.round()).abs() <= 1e-9 * v.abs().max(1.0) {
                v.round()
            } else {
                v
            }
        };
        let min = |k: usize| corners.iter().map(|p| p[k]).fold(f64::MAX, f64::min);
        let max = |k: usize| corners.iter().map(|p| p[k]).fold(f64::MIN, f64::max);
        let dx0 = snapped(min(0)).floor().min(0.0) as i64;
        let dx1 = snapped(max(0)).ceil().max(fw as f64) as i64;
        let dy0 = snapped(min(1)).floor().min(0.0) as i64;
        let dy1 = snapped(max(1)).ceil().max(fh as f64) as i64;
        let [cx, cy] = t.apply([x as f64 + 0.5, y as f64 + 0.5]);
        let r = (rx + ry).ceil() as i64 + 2;
        let (mut acc, mut sum) = ([0.0f64; 3], 0.0f64);
        for iy in (cy.floor() as i64 - r)..=(cy.floor() as i64 + r) {
            for ix in (cx.floor() as i64 - r)..=(cx.floor() as i64 + r) {
                if ix < dx0 || ix >= dx1 || iy < dy0 || iy >= dy1 {
                    continue;
                }
                let (dx, dy) = (ix as f64 + 0.5 - cx, iy as f64 + 0.5 - cy);
                let w = if bilinear {
                    tent(dx) * tent(dy)
                } else {
                    tent(inv[0][0] * dx + inv[0][1] * dy) * tent(inv[1][0] * dx + inv[1][1] * dy)
                };
                if w <= 0.0 {
                    continue;
                }
                sum += w;
                if ix >= 0 && iy >= 0 && (ix as usize) < fw && (iy as usize) < fh {
                    let p = rgb[iy as usize * fw + ix as usize];
                    for c in 0..3 {
                        acc[c] += w * p[c];
                    }
                }
            }
        }
        if sum > 0.0 {
            acc.map(|a| a / sum)
        } else {
            [0.0; 3]
        }
    }

    fn converted(tf: &TestFrame) -> Vec<[f64; 3]> {
        let f = tf.frame();
        (0..tf.width * tf.height)
            .map(|i| f.pixel_rgb(i % tf.width, i / tf.width).map(|v| v as f64))
            .collect()
    }

    /// `s·R(θ)` around the output centre, onto source point `centre`.
    fn rot_scale(deg: f64, s: f64, ow: usize, oh: usize, centre: [f64; 2]) -> AffineTransform {
        let (sn, cs) = deg.to_radians().sin_cos();
        let (a, b, d, e) = (s * cs, -s * sn, s * sn, s * cs);
        let (ox, oy) = (ow as f64 / 2.0, oh as f64 / 2.0);
        AffineTransform {
            a,
            b,
            c: centre[0] - (a * ox + b * oy),
            d,
            e,
            f: centre[1] - (d * ox + e * oy),
        }
    }

    fn run(pp: &mut Preprocessor, frame: &Frame, t: &AffineTransform) -> Vec<f32> {
        let mut out = vec![f32::NAN; pp.config().tensor_len()];
        pp.process_affine(frame, t, &mut out).unwrap();
        out
    }

    /// The documented result in f64 ("Aligned crops"), pixel by pixel: directly with the
    /// footprint kernel, or for a two-step warp (`prefilter_plan`, the geometry shared with
    /// the implementation) the grid from the resize kernel's own naive reference (of the
    /// reduced frame where the grid shrinks the rectangle 4x or more: `reduce_factors`,
    /// the geometry shared with the implementation), then the residual warp on it.
    fn reference<'r>(
        tf: &TestFrame,
        rgb: &'r [[f64; 3]],
        t: &AffineTransform,
        ow: usize,
        oh: usize,
    ) -> impl Fn(usize, usize) -> [f64; 3] + 'r {
        let (fw, fh) = (tf.width, tf.height);
        // An axis-aligned scale and shift is the resize kernel on its rectangle: a plan
        // whose grid is the output itself.
        let plan = if t.b == 0.0 && t.d == 0.0 && t.a > 0.0 && t.e > 0.0 {
            Some(Prefilter {
                rect: SourceRect::new(t.c, t.f, t.a * ow as f64, t.e * oh as f64),
                width: ow,
                height: oh,
                residual: AffineTransform::identity(),
            })
        } else {
            prefilter_plan(t, ow, oh)
        };
        let grid: Vec<[f64; 3]> = plan.map_or_else(Vec::new, |p| {
            let (kx, ky) = reduce_factors(p.rect, p.width, p.height, tf.format.is_yuv());
            let (src, sw, sh, rect) = if kx * ky > 1 {
                let (img, rw, rh) = reduced_reference(tf, kx, ky);
                let (fx, fy) = (kx as f64, ky as f64);
                let r = p.rect;
                let rect = SourceRect::new(r.x / fx, r.y / fy, r.width / fx, r.height / fy);
                (img, rw, rh, rect)
            } else {
                let src = rgb.iter().flatten().map(|&v| v as f32).collect();
                (src, fw, fh, p.rect)
            };
            (0..p.width * p.height)
                .map(|i| {
                    let (x, y) = (i % p.width, i / p.width);
                    naive_pixel(&src, sw, sh, rect, p.width, p.height, x, y)
                })
                .collect()
        });
        let t = *t;
        move |x, y| match &plan {
            Some(p) => naive_affine(&grid, p.width, p.height, &p.residual, ow, oh, x, y),
            None => naive_affine(rgb, fw, fh, &t, ow, oh, x, y),
        }
    }

    fn max_err_vs_naive(tf: &TestFrame, t: &AffineTransform, ow: usize, oh: usize) -> f64 {
        let rgb = converted(tf);
        let mut pp = Preprocessor::new(none_config(ow, oh)).unwrap();
        let out = run(&mut pp, &tf.frame(), t);
        let want_at = reference(tf, &rgb, t, ow, oh);
        let mut worst = 0.0f64;
        for y in 0..oh {
            for x in 0..ow {
                let want = want_at(x, y);
                for c in 0..3 {
                    let got = out[(y * ow + x) * 3 + c] as f64;
                    let err = (got - want[c]).abs();
                    assert!(
                        err <= TOL,
                        "{:?} {t:?} -> {ow}x{oh}: ({x},{y}) ch {c}: got {got}, want {}",
                        tf.format,
                        want[c]
                    );
                    worst = worst.max(err);
                }
            }
        }
        worst
    }

    // ------------------------------------------------------------------ geometry

    const TEMPLATE: [[f64; 2]; 5] = [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ];

    #[test]
    fn similarity_recovers_known_transform() {
        let truth = rot_scale(23.0, 1.7, 112, 112, [640.5, 360.25]);
        let to: Vec<[f64; 2]> = TEMPLATE.iter().map(|&p| truth.apply(p)).collect();
        let fit = AffineTransform::similarity_from_points(&TEMPLATE, &to).unwrap();
        for (g, w) in [
            (fit.a, truth.a),
            (fit.b, truth.b),
            (fit.c, truth.c),
            (fit.d, truth.d),
            (fit.e, truth.e),
            (fit.f, truth.f),
        ] {
            assert!((g - w).abs() < 1e-9, "{fit:?} vs {truth:?}");
        }
        // Small noise: close to the truth, and a least-squares minimum (perturbing any
        // parameter of the similarity does not reduce the residual).
        let mut rng = Rng(31);
        let noisy: Vec<[f64; 2]> = to
            .iter()
            .map(|p| [p[0] + rng.unit() - 0.5, p[1] + rng.unit() - 0.5])
            .collect();
        let fit = AffineTransform::similarity_from_points(&TEMPLATE, &noisy).unwrap();
        let scale = fit.a.hypot(fit.d);
        let angle = fit.d.atan2(fit.a).to_degrees();
        assert!((scale - 1.7).abs() < 0.02, "scale {scale}");
        assert!((angle - 23.0).abs() < 1.0, "angle {angle}");
        assert_eq!((fit.a, fit.b), (fit.e, -fit.d), "not a similarity");
        let centre = fit.apply([56.0, 72.0]);
        let true_centre = truth.apply([56.0, 72.0]);
        assert!((centre[0] - true_centre[0]).hypot(centre[1] - true_centre[1]) < 0.5);
        let resid = |t: &AffineTransform| -> f64 {
            TEMPLATE
                .iter()
                .zip(&noisy)
                .map(|(&p, q)| {
                    let m = t.apply(p);
                    (m[0] - q[0]).powi(2) + (m[1] - q[1]).powi(2)
                })
                .sum()
        };
        let r0 = resid(&fit);
        for k in 0..4 {
            for eps in [1e-4, -1e-4] {
                let mut t = fit;
                match k {
                    0 => {
                        t.a += eps;
                        t.e += eps;
                    }
                    1 => {
                        t.d += eps;
                        t.b -= eps;
                    }
                    2 => t.c += eps,
                    _ => t.f += eps,
                }
                assert!(resid(&t) >= r0, "not a minimum along {k}");
            }
        }
        // Mirrored targets: still a proper rotation (no reflection).
        let mirrored: Vec<[f64; 2]> = to.iter().map(|p| [-p[0], p[1]]).collect();
        let fit = AffineTransform::similarity_from_points(&TEMPLATE, &mirrored).unwrap();
        assert!(fit.a * fit.e - fit.b * fit.d > 0.0);
        // Two points suffice.
        assert!(AffineTransform::similarity_from_points(&TEMPLATE[..2], &to[..2]).is_some());
    }

    #[test]
    fn similarity_rejects_degenerate_input() {
        let p = [[1.0, 2.0], [3.0, 5.0], [7.0, -1.0]];
        let f = AffineTransform::similarity_from_points;
        assert!(f(&[], &[]).is_none());
        assert!(f(&p[..1], &p[..1]).is_none());
        assert!(f(&p, &p[..2]).is_none());
        assert!(f(&[[4.0, 4.0]; 3], &p).is_none(), "coincident sources");
        assert!(f(&p, &[[4.0, 4.0]; 3]).is_none(), "coincident targets");
        assert!(f(&[[1.0, 2.0], [f64::NAN, 0.0]], &p[..2]).is_none());
        assert!(f(&p, &[[1.0, 2.0], [3.0, f64::INFINITY], [0.0, 0.0]]).is_none());
        let id = f(&p, &p).unwrap();
        for (g, w) in [
            (id.a, 1.0),
            (id.b, 0.0),
            (id.c, 0.0),
            (id.e, 1.0),
            (id.f, 0.0),
        ] {
            assert!((g - w).abs() < 1e-12);
        }
    }

    #[test]
    fn inverse_round_trip() {
        let mut rng = Rng(8);
        for _ in 0..100 {
            let mut v = || rng.unit() * 20.0 - 10.0;
            let t = AffineTransform {
                a: v(),
                b: v(),
                c: v() * 50.0,
                d: v(),
                e: v(),
                f: v() * 50.0,
            };
            let inv = t.inverse().unwrap();
            for p in [[0.0, 0.0], [13.5, -7.25], [1000.0, 3.0]] {
                let q = inv.apply(t.apply(p));
                let r = t.apply(inv.apply(p));
                let tol = 1e-9 * (1.0 + p[0].abs() + p[1].abs()) / (t.a * t.e - t.b * t.d).abs();
                for k in 0..2 {
                    assert!((q[k] - p[k]).abs() < tol.max(1e-9), "{t:?} {p:?} {q:?}");
                    assert!((r[k] - p[k]).abs() < tol.max(1e-9), "{t:?} {p:?} {r:?}");
                }
            }
            let back = inv.inverse().unwrap();
            assert!((back.c - t.c).abs() < 1e-6 * (1.0 + t.c.abs()));
        }
        assert_eq!(
            AffineTransform::identity().inverse(),
            Some(AffineTransform::identity())
        );
        let singular = AffineTransform {
            a: 1.0,
            b: 2.0,
            c: 3.0,
            d: 2.0,
            e: 4.0,
            f: 0.0,
        };
        assert!(singular.inverse().is_none());
        let nan = AffineTransform {
            c: f64::NAN,
            ..AffineTransform::identity()
        };
        assert!(nan.inverse().is_none());
        // from_rect maps the output rectangle onto the source rectangle.
        let r = SourceRect::new(10.5, -3.0, 200.0, 150.0);
        let t = AffineTransform::from_rect(r, 160, 120);
        assert_eq!(t.apply([0.0, 0.0]), [10.5, -3.0]);
        assert_eq!(t.apply([160.0, 120.0]), [210.5, 147.0]);
    }

    // ------------------------------------------------------------------ sampling

    const AFFINE_FORMATS: [PixelFormat; 5] = [
        PixelFormat::Rgb,
        PixelFormat::Bgrx,
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Gray8,
    ];

    #[test]
    fn process_affine_matches_naive_reference() {
        let mut rng = Rng(2024);
        let mut worst = 0.0f64;
        for (fi, format) in AFFINE_FORMATS.into_iter().enumerate() {
            let (fw, fh) = [(61, 47), (64, 37), (33, 51)][fi % 3];
            let tf = make_frame(format, fw, fh, 5, YuvColorimetry::default(), &mut rng);
            for deg in [0.0, 17.0, 90.0, -33.0] {
                // 4.6 and 9.1: grids reduced first (box factors 2 and 4).
                for s in [0.5, 1.0, 1.7, 3.2, 4.6, 9.1] {
                    let (ow, oh) = (23, 19);
                    let centre = [fw as f64 / 2.0 + 0.3, fh as f64 / 2.0 - 0.7];
                    let t = rot_scale(deg, s, ow, oh, centre);
                    worst = worst.max(max_err_vs_naive(&tf, &t, ow, oh));
                }
            }
            // General affine (shear, unequal axes, mixed up/downscale) and a reflection.
            for t in [
                AffineTransform {
                    a: 2.1,
                    b: 0.4,
                    c: 3.0,
                    d: -0.3,
                    e: 0.8,
                    f: 5.5,
                },
                AffineTransform {
                    a: 0.7,
                    b: 0.2,
                    c: 40.0,
                    d: 0.1,
                    e: -0.6,
                    f: 30.0,
                },
                AffineTransform {
                    a: -1.3,
                    b: 0.0,
                    c: 50.0,
                    d: 0.0,
                    e: 1.9,
                    f: -4.0,
                },
            ] {
                worst = worst.max(max_err_vs_naive(&tf, &t, 23, 19));
            }
        }
        eprintln!("process_affine vs naive: max abs error {worst:e}");
    }

    #[test]
    fn identity_is_bit_exact() {
        let mut rng = Rng(6);
        for format in PixelFormat::ALL {
            for &(w, h) in &[(17, 9), (160, 160), (1, 1)] {
                let tf = make_frame(format, w, h, 3, YuvColorimetry::default(), &mut rng);
                let frame = tf.frame();
                let want: Vec<f32> = (0..w * h)
                    .flat_map(|i| frame.pixel_rgb(i % w, i / w))
                    .collect();
                let mut pp = Preprocessor::new(none_config(w, h)).unwrap();
                let got = run(&mut pp, &frame, &AffineTransform::identity());
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{format:?} {w}x{h}"
                );
                // Integer translation at scale 1: a bit-exact sub-image copy.
                if w > 4 && h > 4 {
                    let mut pp = Preprocessor::new(none_config(w - 3, h - 4)).unwrap();
                    let t = AffineTransform {
                        c: 2.0,
                        f: 3.0,
                        ..AffineTransform::identity()
                    };
                    let got = run(&mut pp, &frame, &t);
                    for y in 0..h - 4 {
                        for x in 0..w - 3 {
                            let px = frame.pixel_rgb(x + 2, y + 3);
                            assert_eq!(&got[(y * (w - 3) + x) * 3..][..3], &px[..]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn axis_aligned_equals_process_rect() {
        let mut rng = Rng(77);
        let mut worst = 0.0f64;
        for format in [PixelFormat::Rgb, PixelFormat::Nv12, PixelFormat::I420] {
            let tf = make_frame(format, 201, 157, 3, YuvColorimetry::default(), &mut rng);
            let frame = tf.frame();
            for &(ow, oh) in &[(160, 160), (112, 112), (37, 23)] {
                let (owf, ohf) = (ow as f64, oh as f64);
                for s in [0.5, 1.0, 1.7, 3.2] {
                    for rect in [
                        SourceRect::new(20.0, 10.0, owf * s, ohf * s),
                        SourceRect::new(13.37, 7.25, owf * s, ohf * s * 1.3),
                        SourceRect::new(-30.5, 100.25, owf * s * 0.8, ohf * s),
                        SourceRect::new(150.0, -20.0, owf * s, ohf * s),
                    ] {
                        let t = AffineTransform::from_rect(rect, ow, oh);
                        let mut pp = Preprocessor::new(none_config(ow, oh)).unwrap();
                        let got = run(&mut pp, &frame, &t);
                        let mut want = vec![0.0f32; got.len()];
                        pp.process_rect(&frame, rect, &mut want).unwrap();
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            let err = (g - w).abs() as f64;
                            assert!(
                                err <= TOL,
                                "{format:?} {rect:?} -> {ow}x{oh} value {i}: {g} vs {w}"
                            );
                            worst = worst.max(err);
                        }
                    }
                }
            }
        }
        eprintln!("process_affine(from_rect) vs process_rect: max abs error {worst:e}");
    }

    #[test]
    fn outside_the_frame_reads_black() {
        let mut rng = Rng(12);
        let tf = make_frame(
            PixelFormat::Nv12,
            64,
            48,
            2,
            YuvColorimetry::default(),
            &mut rng,
        );
        let frame = tf.frame();
        let mut pp = Preprocessor::new(none_config(32, 32)).unwrap();
        // Entirely outside: all exact zeros.
        for t in [
            rot_scale(30.0, 1.5, 32, 32, [-100.0, 20.0]),
            rot_scale(0.0, 0.5, 32, 32, [300.0, 300.0]),
        ] {
            assert!(run(&mut pp, &frame, &t).iter().all(|&v| v == 0.0));
        }
        // Left half outside (scale 2, 20° rotation): pixels whose footprint lies left of
        // the frame are exactly 0, pixels inside have content; matches the reference.
        let t = rot_scale(20.0, 2.0, 32, 32, [0.0, 24.0]);
        let out = run(&mut pp, &frame, &t);
        let r = 2.0 * (2f64).sqrt() + 1.0;
        let (mut black, mut inside) = (0, 0);
        for y in 0..32 {
            for x in 0..32 {
                let [cx, cy] = t.apply([x as f64 + 0.5, y as f64 + 0.5]);
                let px = &out[(y * 32 + x) * 3..][..3];
                if cx < -r {
                    assert_eq!(px, &[0.0; 3]);
                    black += 1;
                } else if cx > r && cy > r && cy < 48.0 - r {
                    assert!(px.iter().any(|&v| v > 0.0));
                    inside += 1;
                }
            }
        }
        assert!(black > 50 && inside > 50, "{black} {inside}");
        max_err_vs_naive(&tf, &t, 32, 32);
    }

    /// The frame rotated 90° clockwise (`new(x', y') = old(y', H − 1 − x')`); even sizes
    /// so that YUV chroma blocks rotate onto chroma blocks.
    fn rotate90(tf: &TestFrame) -> TestFrame {
        let (w, h) = (tf.width, tf.height);
        assert!(w % 2 == 0 && h % 2 == 0);
        let rot_plane = |data: &[u8], stride: usize, pw: usize, ph: usize, bpp: usize| {
            // Rotated plane: ph wide, pw tall, tightly packed.
            let mut out = vec![0u8; pw * ph * bpp];
            for yn in 0..pw {
                for xn in 0..ph {
                    let (xo, yo) = (yn, ph - 1 - xn);
                    let src = &data[yo * stride + xo * bpp..][..bpp];
                    out[(yn * ph + xn) * bpp..][..bpp].copy_from_slice(src);
                }
            }
            out
        };
        let mut planes = Vec::new();
        let mut strides = [0usize; 3];
        match tf.format {
            PixelFormat::I420 => {
                planes.push(rot_plane(&tf.planes[0], tf.strides[0], w, h, 1));
                planes.push(rot_plane(&tf.planes[1], tf.strides[1], w / 2, h / 2, 1));
                planes.push(rot_plane(&tf.planes[2], tf.strides[2], w / 2, h / 2, 1));
                strides = [h, h / 2, h / 2];
            }
            PixelFormat::Nv12 => {
                planes.push(rot_plane(&tf.planes[0], tf.strides[0], w, h, 1));
                planes.push(rot_plane(&tf.planes[1], tf.strides[1], w / 2, h / 2, 2));
                strides = [h, h, 0];
            }
            f => {
                let bpp = f.bytes_per_pixel().unwrap();
                planes.push(rot_plane(&tf.planes[0], tf.strides[0], w, h, bpp));
                strides[0] = h * bpp;
            }
        }
        TestFrame {
            format: tf.format,
            width: h,
            height: w,
            planes,
            strides,
            colorimetry: tf.colorimetry,
            expected: Vec::new(),
        }
    }

    #[test]
    fn rotated_frame_with_rotated_transform_gives_same_output() {
        let mut rng = Rng(90);
        for format in [PixelFormat::Rgb, PixelFormat::I420, PixelFormat::Nv12] {
            let tf = make_frame(format, 72, 54, 3, YuvColorimetry::default(), &mut rng);
            let rt = rotate90(&tf);
            // Sanity: the rotated frame really is the rotated image.
            for (xn, yn) in [(0, 0), (53, 0), (10, 71), (27, 33)] {
                assert_eq!(
                    rt.frame().pixel_rgb(xn, yn),
                    tf.frame().pixel_rgb(yn, 54 - 1 - xn)
                );
            }
            let h = tf.height as f64;
            for deg in [0.0, 17.0, -33.0, 90.0] {
                for s in [0.5, 1.0, 1.7, 3.2] {
                    let t = rot_scale(deg, s, 40, 30, [35.3, 27.9]);
                    // old (u, v) -> new (H − v, u).
                    let tr = AffineTransform {
                        a: -t.d,
                        b: -t.e,
                        c: h - t.f,
                        d: t.a,
                        e: t.b,
                        f: t.c,
                    };
                    let mut pp = Preprocessor::new(none_config(40, 30)).unwrap();
                    let a = run(&mut pp, &tf.frame(), &t);
                    let b = run(&mut pp, &rt.frame(), &tr);
                    let err = a
                        .iter()
                        .zip(&b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0f32, f32::max);
                    assert!(err as f64 <= TOL, "{format:?} {deg}° x{s}: {err}");
                }
            }
        }
    }

    /// A tilted face's grid is computed only where the bilinear step reads it
    /// (`grid_columns`): the same bits as the whole grid, whatever an earlier warp left in
    /// the cells it skips, for tilts all round, mild and strong downscales, every format.
    #[test]
    fn grid_rows_cut_to_the_footprint_match_the_whole_grid() {
        let mut rng = Rng(9090);
        for format in PixelFormat::ALL {
            let tf = make_frame(format, 241, 187, 7, YuvColorimetry::default(), &mut rng);
            let frame = tf.frame();
            let mut cut = Preprocessor::new(none_config(48, 40)).unwrap();
            let mut whole = Preprocessor::new(none_config(48, 40)).unwrap();
            whole.affine.whole_grid = true;
            for (deg, scale, centre) in [
                (15.0, 1.33, [120.0, 90.0]),
                (-15.0, 1.33, [100.0, 80.0]),
                (40.0, 1.6, [120.0, 95.0]),
                (-75.0, 2.4, [110.0, 100.0]),
                (135.0, 1.2, [130.0, 90.0]),
                (200.0, 3.1, [120.0, 95.0]),
                (8.0, 1.05, [20.0, 15.0]),
                (-30.0, 1.7, [230.0, 180.0]),
            ] {
                let t = rot_scale(deg, scale, 48, 40, centre);
                assert!(
                    prefilter_plan(&t, 48, 40).is_some(),
                    "{deg} {scale}: a two-step warp"
                );
                let a = run(&mut cut, &frame, &t);
                let b = run(&mut whole, &frame, &t);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "{format:?} {deg}° x{scale}");
                // The cut really skipped cells (the test would prove nothing otherwise).
                if deg == 40.0 {
                    let plan = prefilter_plan(&t, 48, 40).unwrap();
                    let mut columns = Vec::new();
                    grid_columns(
                        &plan.residual,
                        [48, 40],
                        [plan.width, plan.height],
                        &mut columns,
                    );
                    let kept: usize = columns.iter().map(|&(s, e)| e.saturating_sub(s)).sum();
                    assert!(
                        kept * 10 < plan.width * plan.height * 9,
                        "{kept} of {}",
                        plan.width * plan.height
                    );
                }
            }
        }
    }

    #[test]
    fn tiled_large_footprints_match_reference() {
        // A direct (single-step) footprint above the scratch cap, so done in tiles: shear
        // with one output axis upscaled (no two-step plan) and the other shrunk 7x.
        let mut rng = Rng(5);
        let tf = make_frame(
            PixelFormat::Gray8,
            700,
            800,
            0,
            YuvColorimetry::default(),
            &mut rng,
        );
        let t = AffineTransform {
            a: 0.8,
            b: 4.0,
            c: 10.0,
            d: 0.2,
            e: 6.0,
            f: 20.0,
        };
        assert!(prefilter_plan(&t, 112, 112).is_none());
        let rgb = converted(&tf);
        let mut pp = Preprocessor::new(none_config(112, 112)).unwrap();
        let out = run(&mut pp, &tf.frame(), &t);
        for k in 0..300 {
            let (x, y) = ((k * 37) % 112, (k * 53 + k / 7) % 112);
            let want = naive_affine(&rgb, 700, 800, &t, 112, 112, x, y);
            for c in 0..3 {
                let got = out[(y * 112 + x) * 3 + c] as f64;
                assert!((got - want[c]).abs() <= TOL, "({x},{y}) {got} {}", want[c]);
            }
        }
        // And a large rotated downscale (two steps) against its reference.
        let t = rot_scale(40.0, 5.3, 112, 112, [350.0, 330.0]);
        let want_at = reference(&tf, &rgb, &t, 112, 112);
        let out = run(&mut pp, &tf.frame(), &t);
        for k in 0..300 {
            let (x, y) = ((k * 37) % 112, (k * 53 + k / 7) % 112);
            let want = want_at(x, y);
            for c in 0..3 {
                let got = out[(y * 112 + x) * 3 + c] as f64;
                assert!((got - want[c]).abs() <= TOL, "({x},{y}) {got} {}", want[c]);
            }
        }
    }

    #[test]
    fn normalization_and_layout_follow_the_config() {
        let mut rng = Rng(3);
        let tf = make_frame(
            PixelFormat::Bgrx,
            90,
            70,
            4,
            YuvColorimetry::default(),
            &mut rng,
        );
        let frame = tf.frame();
        let t = rot_scale(12.0, 1.3, 40, 30, [45.0, 35.0]);
        let mut pp = Preprocessor::new(none_config(40, 30)).unwrap();
        let base = run(&mut pp, &frame, &t);
        let cfg = PreprocessConfig::new(40, 30); // prewhiten, NCHW
        let mut pp = Preprocessor::new(cfg.clone()).unwrap();
        let got = run(&mut pp, &frame, &t);
        assert_eq!(pp.resampled_image(), &base[..]);
        let mut want = vec![0.0f32; got.len()];
        write_tensor(&base, &cfg, &mut want);
        assert_eq!(got, want);
    }

    /// Two-step warps into an NCHW tensor under a fixed normalization (or none) write the
    /// tensor straight from the bilinear step (see `PlaneNorm`); NHWC still goes through
    /// the image. The same bits for every kind of warp (two-step, footprint, up-scaling),
    /// channel order and SIMD level; `resampled_image` is empty after a direct write.
    #[test]
    fn direct_planar_warps_match_the_image_path() {
        let mut rng = Rng(4244);
        let fixed = Normalization::Fixed {
            mean: [122.782, 117.001, 104.298],
            std: [58.395, 57.12, 255.0],
        };
        let anisotropic = AffineTransform {
            a: 3.1,
            b: 0.4,
            c: 10.0,
            d: -0.2,
            e: 0.8,
            f: 20.0,
        };
        for format in [PixelFormat::Nv12, PixelFormat::Rgb, PixelFormat::Bgrx] {
            let tf = make_frame(format, 133, 101, 5, YuvColorimetry::default(), &mut rng);
            for (t, direct) in [
                (rot_scale(17.0, 1.7, 37, 29, [60.0, 50.0]), true),
                (rot_scale(-33.0, 2.2, 37, 29, [120.0, 90.0]), true),
                (anisotropic, false),
                (rot_scale(10.0, 0.7, 37, 29, [60.0, 50.0]), false),
            ] {
                for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                    for normalization in [Normalization::None, fixed] {
                        let cfg = |layout| PreprocessConfig {
                            layout,
                            channel_order: order,
                            normalization,
                            ..PreprocessConfig::new(37, 29)
                        };
                        let mut pp = Preprocessor::new(cfg(TensorLayout::Nhwc)).unwrap();
                        pp.resampler.portable_only = true;
                        let nhwc = run(&mut pp, &tf.frame(), &t);
                        let n = 37 * 29;
                        let want: Vec<u32> = (0..3 * n)
                            .map(|i| nhwc[(i % n) * 3 + i / n].to_bits())
                            .collect();
                        for (portable, no_avx512) in SIMD_LEVELS {
                            let mut pp = Preprocessor::new(cfg(TensorLayout::Nchw)).unwrap();
                            pp.resampler.portable_only = portable;
                            pp.resampler.no_avx512 = no_avx512;
                            let got = run(&mut pp, &tf.frame(), &t);
                            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                            let what = format!("{format:?} {t:?} {order:?} {normalization:?}");
                            assert!(got == want, "{what} {portable} {no_avx512}");
                            assert_eq!(pp.resampled_image().is_empty(), direct, "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn simd_and_portable_builds_are_bit_identical() {
        let mut rng = Rng(4243);
        for format in PixelFormat::ALL {
            let tf = make_frame(format, 133, 101, 5, YuvColorimetry::default(), &mut rng);
            for t in [
                rot_scale(17.0, 0.7, 48, 40, [60.0, 50.0]),
                rot_scale(-33.0, 2.2, 48, 40, [20.0, 50.0]),
            ] {
                let mut outs = Vec::new();
                for portable in [false, true] {
                    let mut pp = Preprocessor::new(none_config(48, 40)).unwrap();
                    pp.resampler.portable_only = portable;
                    let out = run(&mut pp, &tf.frame(), &t);
                    outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                }
                assert_eq!(outs[0], outs[1], "{format:?} {t:?}");
            }
        }
    }

    #[test]
    fn batches_over_helper_threads_match_serial_runs() {
        let mut rng = Rng(808);
        let tf = make_frame(
            PixelFormat::Nv12,
            320,
            240,
            6,
            YuvColorimetry::default(),
            &mut rng,
        );
        let frame = tf.frame();
        let cfg = PreprocessConfig::new(48, 40);
        // Two-step, direct (upscale), axis-aligned and mostly-outside transforms.
        let transforms: Vec<AffineTransform> = (0..7)
            .map(|i| match i % 4 {
                0 => rot_scale(
                    15.0 * i as f64,
                    1.9,
                    48,
                    40,
                    [100.0 + 20.0 * i as f64, 120.0],
                ),
                1 => rot_scale(-10.0, 0.6, 48, 40, [50.0 * i as f64, 80.0]),
                2 => AffineTransform::from_rect(SourceRect::new(30.0, 20.0, 90.0, 75.0), 48, 40),
                _ => rot_scale(30.0, 1.2, 48, 40, [-10.0, 230.0]),
            })
            .collect();
        let per = cfg.tensor_len();
        let mut serial = vec![0.0f32; per * transforms.len()];
        let mut pp = Preprocessor::new(cfg.clone()).unwrap();
        for (t, o) in transforms.iter().zip(serial.chunks_exact_mut(per)) {
            pp.process_affine(&frame, t, o).unwrap();
        }
        let mut threads = CropThreads::new();
        // Grown, shrunk and grown again: each count's threads give the serial bits.
        for helpers in [0, 1, 2, 3, 9, 1, 2] {
            threads.truncate(helpers);
            threads.ensure(helpers, &pp).unwrap();
            assert_eq!(threads.len(), helpers);
            for _ in 0..2 {
                let mut batch = vec![f32::NAN; serial.len()];
                pp.process_affine_batch(&threads, &frame, &transforms, &mut batch)
                    .unwrap();
                assert_eq!(
                    batch.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{helpers} helpers"
                );
            }
        }
        // Errors: a wrong batch length, helpers with another configuration, a singular
        // transform handled on a helper thread (the batch still returns, every thread
        // done with it, and the threads serve the next batch).
        threads.ensure(1, &pp).unwrap();
        let mut short = vec![0.0f32; per * 6];
        assert!(matches!(
            pp.process_affine_batch(&threads, &frame, &transforms, &mut short),
            Err(PreprocessError::BufferLength { .. })
        ));
        let mut other = CropThreads::new();
        other
            .ensure(
                1,
                &Preprocessor::new(PreprocessConfig::new(40, 48)).unwrap(),
            )
            .unwrap();
        let mut batch = vec![0.0f32; serial.len()];
        assert!(matches!(
            pp.process_affine_batch(&other, &frame, &transforms, &mut batch),
            Err(PreprocessError::InvalidConfig(_))
        ));
        // Re-configured by ensure: the same threads count, this configuration.
        other.ensure(1, &pp).unwrap();
        pp.process_affine_batch(&other, &frame, &transforms, &mut batch)
            .unwrap();
        assert_eq!(
            batch.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let mut bad = transforms.clone();
        bad[6] = AffineTransform {
            a: 0.0,
            b: 0.0,
            ..transforms[6]
        };
        assert!(pp
            .process_affine_batch(&threads, &frame, &bad, &mut batch)
            .is_err());
        pp.process_affine_batch(&threads, &frame, &transforms, &mut batch)
            .unwrap();
        assert_eq!(
            batch.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn steady_state_does_not_reallocate() {
        let mut rng = Rng(55);
        let tf = make_frame(
            PixelFormat::Nv12,
            640,
            360,
            0,
            YuvColorimetry::default(),
            &mut rng,
        );
        let frame = tf.frame();
        let mut pp = Preprocessor::new(PreprocessConfig::new(112, 112)).unwrap();
        let mut out = vec![0.0f32; 112 * 112 * 3];
        // Warm-up with the largest footprints (45°, the biggest scale used below) of both
        // paths: two steps (downscale) and direct (upscale).
        for s in [1.8, 1.0] {
            pp.process_affine(
                &frame,
                &rot_scale(45.0, s, 112, 112, [320.0, 180.0]),
                &mut out,
            )
            .unwrap();
        }
        let fp = pp.fingerprint();
        for i in 0..50 {
            let deg = rng.unit() * 360.0 - 180.0;
            let s = 0.4 + rng.unit() * 1.4;
            let c = [rng.unit() * 640.0, rng.unit() * 360.0];
            pp.process_affine(&frame, &rot_scale(deg, s, 112, 112, c), &mut out)
                .unwrap();
            assert_eq!(pp.fingerprint(), fp, "call {i}");
        }
    }

    #[test]
    fn rejects_bad_transforms_and_buffers() {
        let data = vec![7u8; 30 * 20 * 3];
        let frame = Frame::packed(PixelFormat::Rgb, 30, 20, &data, 90);
        let mut pp = Preprocessor::new(none_config(8, 8)).unwrap();
        let mut out = vec![0.0f32; 8 * 8 * 3];
        let id = AffineTransform::identity();
        for t in [
            AffineTransform { a: 0.0, ..id },
            AffineTransform {
                a: 1.0,
                b: 2.0,
                d: 2.0,
                e: 4.0,
                ..id
            },
            AffineTransform { c: f64::NAN, ..id },
            AffineTransform {
                e: f64::INFINITY,
                ..id
            },
            AffineTransform { a: 1e6, ..id },
            AffineTransform { c: 1e9, ..id },
        ] {
            assert!(
                matches!(
                    pp.process_affine(&frame, &t, &mut out),
                    Err(PreprocessError::InvalidTransform { .. })
                ),
                "{t:?}"
            );
        }
        assert!(matches!(
            pp.process_affine(&frame, &id, &mut out[1..]),
            Err(PreprocessError::BufferLength { .. })
        ));
        let bad = Frame::packed(PixelFormat::Rgb, 30, 20, &data[..100], 90);
        assert!(pp.process_affine(&bad, &id, &mut out).is_err());
        // Uniform frame stays uniform (weights normalized) while inside the frame.
        pp.process_affine(&frame, &rot_scale(33.0, 1.5, 8, 8, [15.0, 10.0]), &mut out)
            .unwrap();
        assert!(out.iter().all(|&v| (v - 7.0).abs() < 1e-4), "{out:?}");
    }
}
