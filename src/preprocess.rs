//! Frame → tensor preprocessing for face-embedding models (FaceNet and friends).
//!
//! Pure Rust, `std` only, no GStreamer types. One [`Preprocessor`] turns a video
//! [`Frame`] (or a [`SourceRect`] of it) into a normalized `f32` tensor written into a
//! caller-provided slice:
//!
//! 1. **Read + colour-convert** the needed source pixels (any [`PixelFormat`], arbitrary
//!    strides) to R,G,B `f32` on a 0..255 scale.
//! 2. **Resample** to the model's input size with the anti-aliased separable tent filter
//!    described below, following the [`Aspect`] mode.
//! 3. **Normalize** ([`Normalization`]) and **write** in [`TensorLayout`] /
//!    [`ChannelOrder`].
//!
//! # Pixel formats
//!
//! Packed RGB formats name their bytes in memory order (GStreamer naming): `Rgb`/`Bgr`
//! are 3 bytes per pixel, `Rgba`, `Bgra`, `Rgbx`, `Bgrx`, `Xrgb`, `Xbgr`, `Argb`, `Abgr`
//! are 4 (the alpha / padding byte is ignored — no premultiplication or blending).
//! `Gray8` gives R = G = B = the byte. Packed values are converted exactly (`byte as f32`).
//!
//! `I420`: plane 0 is Y (`width x height`), planes 1 and 2 are U and V, each
//! `ceil(width/2) x ceil(height/2)`. `NV12`: plane 0 is Y, plane 1 is interleaved UV with
//! `ceil(width/2)` U,V pairs per row and `ceil(height/2)` rows.
//!
//! # YUV → RGB
//!
//! Matrix coefficients Kr/Kb: BT.601 0.299/0.114, BT.709 0.2126/0.0722,
//! BT.2020 0.2627/0.0593 (Kg = 1 − Kr − Kb). With
//!
//! * limited ("video") range: `Y' = (Y − 16)·255/219`, `Cb' = (U − 128)·255/224`,
//!   `Cr' = (V − 128)·255/224` (Y in [16,235], Cb/Cr in [16,240] map to the nominal range);
//! * full range: `Y' = Y`, `Cb' = U − 128`, `Cr' = V − 128`,
//!
//! the result is `R = Y' + 2(1−Kr)·Cr'`, `B = Y' + 2(1−Kb)·Cb'`,
//! `G = Y' − ((2Kb(1−Kb)/Kg)·Cb' + (2Kr(1−Kr)/Kg)·Cr')`, each clamped to [0,255] and **not
//! rounded**. The constants (offsets, scales, the four matrix coefficients) are computed in
//! f64 and rounded to f32; all per-pixel arithmetic is f32, in exactly the order written
//! above. [`Frame::pixel_rgb`] gives the converted value of one pixel.
//!
//! **Chroma siting: nearest.** Each chroma sample covers its 2x2 luma block: the chroma
//! sample used for pixel (x, y) is (x/2, y/2) (integer division). No chroma interpolation
//! is done; the resampler's low-pass filter smooths the result anyway.
//!
//! Colour conversion happens before filtering (the filter works on RGB floats), except
//! for the box averages of large downscales (below), which are taken on the stored samples.
//!
//! # Resize kernel
//!
//! Separable triangle (tent) filter whose support is widened by the downscale factor —
//! Pillow's antialiased `BILINEAR`. Per axis, for a source extent `E` (the width or height of
//! the source rectangle, in source pixels, starting at `src_origin`) and `N` destination
//! pixels:
//!
//! * scale `s = E / N`; support `r = max(1, s)`;
//! * `weight(d) = max(0, 1 − |d| / r)`, `d` = distance in source pixels between a source
//!   pixel centre and the sample point;
//! * source pixel `i` has its centre at `i + 0.5`; destination pixel `j` samples the source
//!   at `c = src_origin + (j + 0.5)·s`;
//! * taps: source pixels `i` with `|i + 0.5 − c| < r` (zero-weight taps are not stored);
//! * weights are computed in f64, normalized to sum to 1 over the taps that lie inside the
//!   *sampling domain* (below), then stored as f32 (per-axis tables, recomputed only when
//!   the source size / rectangle / output size changes); filtering is done in f32,
//!   vertical pass first (over the colour-converted source rows some tap needs, each row
//!   converted once, only the needed columns), then horizontal.
//!   Each pass evaluates `Σ w_k·p_k` in the algebraically equal "pivot" form
//!   `T·p_0 + Σ_{k≥1} w_k·(p_k − p_0)` (`T` = sum of the in-frame weights, exactly 1.0
//!   unless some taps read black), so a constant image stays exactly constant and a
//!   single-tap output is exactly its source pixel. Summation order is fixed by the code
//!   (no FMA contraction), so results do not depend on the SIMD width: on x86_64 CPUs with
//!   AVX2 the same code compiled for AVX2 is used and gives bit-identical results. (The
//!   horizontal pass runs eight outputs at a time, every span padded to the longest with
//!   taps of weight 0 that repeat its first pixel, so they add exactly 0; with AVX2 the
//!   taps of a block that fall within 16 source columns — downscales up to about 1.8x,
//!   face crops — are picked from two registers by permutes (one two-register permute a
//!   tap where the CPU also has AVX-512F and VL), other blocks' taps are gathered, each
//!   performing the same operations lane by lane. YUV rows are converted eight pixels at
//!   a time in one AVX2 pass, with the scalar formulas' operations.)
//!
//! **Edges / sampling domain.** The source is the frame extended with black (0,0,0) pixels
//! just far enough to cover the requested source rectangle, rounded outward to whole
//! pixels: on the x axis the domain is `[min(0, floor(x)), max(W, ceil(x + width)))`
//! (likewise for y). Taps outside the domain are dropped and the remaining weights are
//! renormalized to sum to 1; taps inside the domain but outside the frame `[0, W)` keep
//! their weight and read black. Consequences:
//!
//! * for [`Preprocessor::process`] (all aspect modes) the source rectangle always lies
//!   inside the frame, so the domain *is* the frame: taps outside `[0, W)` are simply
//!   dropped and the weights renormalized (Pillow's edge handling);
//! * [`Preprocessor::process_rect`] with a rectangle inside the frame behaves exactly the
//!   same (`process_rect(full frame)` is bit-identical to `process` with
//!   [`Aspect::Stretch`], `process_rect(crop_rect(..))` to [`Aspect::Crop`]);
//! * parts of a rectangle outside the frame come out black (blended with the frame near
//!   the frame border, as the tent support dictates); a rectangle entirely outside gives an
//!   all-black image.
//!
//! At scale 1 with aligned centres (`E == N` and an integer origin) every destination pixel
//! has exactly one tap of weight 1.0, so the filter is the identity, bit-for-bit in f32: a
//! frame already at the model size passes unchanged (before normalization), its rows
//! converted straight into the image without the two passes.
//!
//! # Large downscales
//!
//! With [`PreprocessConfig::reduce`] (the default), [`Preprocessor::process`],
//! [`Preprocessor::process_rect`] and the grid of a two-step
//! [`Preprocessor::process_affine`] (see "Aligned crops") first shrink the frame by whole
//! boxes when an axis shrinks 4x or more — Pillow's `Image.resize(..., reducing_gap=2.0)`,
//! the default of its `thumbnail`: per axis, `k = floor(scale / 2)` (at least 1; made even
//! for I420 / NV12 so that boxes cover whole 2x2 chroma blocks; `kx·ky <= 257` so that
//! byte sums fit u16).
//! Reduced pixel (x, y) is the mean of the source pixels `x·kx .. (x+1)·kx`,
//! `y·ky .. (y+1)·ky` inside the frame (edge boxes are partial), taken on the stored
//! samples: every byte of packed formats; for YUV the mean Y of the box and the means of
//! U and V over the chroma samples of its 2x2 blocks (the pixel's own block when `k = 1`),
//! then converted (the formulas above, with the means in place of the bytes). The resize
//! kernel then runs on the reduced image with the source rectangle divided by `(kx, ky)`,
//! still spanning 2 to 4 reduced pixels per output pixel. Since YUV → RGB is affine, this
//! equals averaging converted pixels except where the per-pixel clamp would have cut
//! (out-of-gamut colours); the kernel is a box of `k` convolved with the tent, still
//! anti-aliased. It reads each source byte once with integer adds instead of converting and
//! filtering every pixel in f32: 1080p → 160x160 about 3x faster (`BENCHMARKS.md`).
//! `reduce = false` keeps the resize kernel on every source pixel.
//!
//! # Aspect modes
//!
//! * [`Aspect::Stretch`]: the whole frame to the whole tensor.
//! * [`Aspect::Pad`]: the whole frame, scaled uniformly by
//!   `scale = min(out_w / W, out_h / H)`, occupies output columns `[x0, x0 + w)` and rows
//!   `[y0, y0 + h)` with `w = round(W·scale)`, `h = round(H·scale)` (f64, half away from
//!   zero, clamped to `[1, out]`), `x0 = (out_w − w) / 2`, `y0 = (out_h − h) / 2` (integer
//!   division). Each axis is resampled to its rounded extent. The borders are black — pixel
//!   value 0 in all channels *before* normalization — and take part in the prewhiten
//!   statistics (face-api's `padToSquare`). See [`pad_placement`].
//! * [`Aspect::Crop`]: the largest centred source rectangle with the tensor's aspect
//!   ratio, in fractional (f64) source coordinates, scaled to fill. See [`crop_rect`].
//!
//! # Aligned crops
//!
//! [`Preprocessor::process_affine`] samples the frame through an [`AffineTransform`] `T`
//! from output (tensor) coordinates to source coordinates (continuous on both sides: pixel
//! `i` covers `[i, i + 1)`, centre `i + 0.5`). Output pixel (x, y) samples the source
//! around `c = T(x + 0.5, y + 0.5)`. The output axes map to the source vectors
//! `ax = (a, d)` and `ay = (b, e)` of lengths `lx`, `ly` (source pixels per output pixel
//! along each output axis; for a similarity both equal its scale `s = sqrt|a·e − b·d|`).
//! With `tent(v) = max(0, 1 − |v|)` and `(dx, dy)` = source pixel centre − `c`:
//!
//! * **`lx <= 1` and `ly <= 1`** (upscaling / scale 1; up to 1e-9): bilinear
//!   interpolation in source axes, weight `tent(dx)·tent(dy)` — the 2x2 pixels around `c`.
//! * **axis-aligned downscales** (`b = d = 0`, `a, e > 0`, FaceNet's margin crop):
//!   [`Preprocessor::process_rect`] of the rectangle `T([0, out_w] x [0, out_h])` — the
//!   resize kernel above, bit for bit.
//! * **both output axes shrink** (`m = min(lx, ly) > 1`; every similarity with scale
//!   `s > 1`, i.e. every aligned face chip cut from a larger face): in two steps, as dlib's
//!   `extract_image_chip` samples a pyramid level before interpolating. (1) The *grid*: the
//!   source around the output's footprint resampled with the resize kernel (and
//!   `process_rect`'s edge rules and large-downscale reduction) onto square cells `m`
//!   source pixels wide — centred on the bounding box of `T([0, out_w] x [0, out_h])`, one
//!   cell of margin on each side, so that rotating the frame and the transform together
//!   rotates the grid with them. (2) The
//!   output sampled from the grid through the residual transform `T/m` (grid coordinates),
//!   whose scale is 1 along at least one axis: bilinear for a similarity (fractions rounded
//!   to f32, `top = p00 + tx·(p01 − p00)`, likewise `bottom`, then `top + ty·(bottom −
//!   top)`), the footprint tent below otherwise. The anti-aliasing is the resize kernel's
//!   tent of support `m` plus the bilinear step: a little softer than the direct footprint
//!   tent, about 20 times cheaper. When the grid would exceed 4 times the output's area
//!   (strongly anisotropic warps), the direct footprint tent is used instead. See
//!   `affine::prefilter_plan`.
//! * **otherwise** (one axis shrinks, the other does not): a tent over the output pixel's
//!   footprint. `N = [ax·max(1, lx)/lx | ay·max(1, ly)/ly]` (the output axes as columns,
//!   each stretched to at least one source pixel), `(P, Q) = N⁻¹·(dx, dy)`, weight
//!   `tent(P)·tent(Q)`. For a similarity with scale `s > 1` this would be
//!   `tent(u/s)·tent(v/s)`, `(u, v)` = the offset in source pixels along the (rotated)
//!   output axes.
//!
//! For the direct kernels, the value is `Σ w·p / Σ w` over the taps (pixels with `w > 0`)
//! inside the *sampling domain*, defined as for `process_rect` with the bounding box of
//! `T([0, out_w] x [0, out_h])` as the rectangle (corner coordinates within 1e-9, relative,
//! of an integer are snapped to it before rounding outward): taps outside the domain are
//! dropped, taps inside it but outside the frame read black (0). (A pixel without any
//! weighted tap — possible only for extremely sheared transforms — is black.) The grid of a
//! two-step warp is black where it lies outside the frame, blended at the frame's border as
//! the resize kernel's edge rules dictate.
//!
//! Consequences (tested): [`AffineTransform::from_rect`] reproduces `process_rect`
//! exactly; the identity on a frame of the output size is a bit-exact copy; rotating the
//! frame by 90° and the transform with it gives the same image (within f32 rounding); every
//! path matches a direct f64 implementation of this definition within 1e-3 (0..255 scale).
//!
//! Implementation: two-step warps resample the grid with the [`Resampler`] (only the
//! source rows and columns its taps need are converted; of a similarity's grid, only the
//! cells of each row that the bilinear step reads are filtered) into `R, G, B, 0` pixels, then
//! sample it eight output pixels at a time (with AVX2 two pixels a register, each pixel's
//! four taps two 32-byte loads, the sample points four f64 lanes at a time, or eight with
//! AVX-512F; bit-identical to the portable loop).
//! Direct footprints colour-convert the source pixels the output taps (their bounding box,
//! clipped to the domain) once into a planar RGB f32 scratch — only those pixels, never the
//! whole frame; in output tiles when the box exceeds 2^18 pixels — then compute each output
//! pixel directly (f64 geometry, f32 weights and sums, fixed order, the same AVX2 dispatch
//! as the resizer). Scratch space is reused (no allocation in steady state).
//!
//! # Normalization
//!
//! Applied to the resampled (and padded) RGB image on the 0..255 scale:
//!
//! * [`Normalization::Prewhiten`] (FaceNet's `facenet.prewhiten`): over all `3·w·h` values,
//!   mean `m` and population standard deviation `s` (ddof 0), accumulated in f64 (two
//!   passes); `s' = max(s, 1/sqrt(3·w·h))`; value = `(x − m) / s'` (m and s' rounded to f32,
//!   then computed in f32). A uniform image gives all zeros.
//! * [`Normalization::Fixed`]: value = `(x − mean[c]) / std[c]`, `mean`/`std` in R,G,B order
//!   regardless of [`ChannelOrder`].
//! * [`Normalization::None`]: value = x (0..255), bit-exact.
//!
//! # Layout
//!
//! [`TensorLayout::Nchw`]: `out[c·h·w + y·w + x]`; [`TensorLayout::Nhwc`]:
//! `out[(y·w + x)·3 + c]`, where channel `c` follows [`ChannelOrder`] (`Bgr`: c = 0 is blue).
//!
//! An NCHW tensor under a fixed normalization or none is written straight from the
//! resampler's horizontal pass (and from the bilinear step of a two-step warp): each value
//! is normalized as it is stored into its plane, the operations above on the same value,
//! so the same bits, without the interleaved f32 image in between (whose write, read and
//! de-interleave cost an axis-aligned face crop over a quarter of its time). Prewhitening
//! needs the whole image's statistics first, and NHWC tensors are interleaved anyway:
//! those, and the one-step warps, go through the image
//! ([`Preprocessor::resampled_image`]).
//!
//! # Allocation
//!
//! A [`Preprocessor`] keeps all scratch buffers (filter tables, one converted source row,
//! the horizontally filtered rows, the resampled image). They are resized only when the
//! frame size / source rectangle / configuration changes; in steady state (same frame size)
//! [`Preprocessor::process`] allocates nothing and does not recompute the filter tables.

use std::fmt;

mod affine;
mod batch;
pub use affine::AffineTransform;
pub use batch::CropThreads;

/// Largest accepted width / height (in source pixels) of a [`SourceRect`]; bounds the work
/// done per call.
pub const MAX_SOURCE_RECT_EXTENT: f64 = 65_536.0;
/// Largest accepted `|x|` / `|y|` of a [`SourceRect`].
pub const MAX_SOURCE_RECT_COORD: f64 = 16_777_216.0;

// ---------------------------------------------------------------------------------------
// Pixel formats
// ---------------------------------------------------------------------------------------

/// Supported input pixel formats (GStreamer naming: packed bytes in memory order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed R, G, B (3 bytes per pixel).
    Rgb,
    /// Packed B, G, R (3 bytes per pixel).
    Bgr,
    /// Packed R, G, B, A (alpha ignored).
    Rgba,
    /// Packed B, G, R, A (alpha ignored).
    Bgra,
    /// Packed R, G, B, padding.
    Rgbx,
    /// Packed B, G, R, padding.
    Bgrx,
    /// Packed padding, R, G, B.
    Xrgb,
    /// Packed padding, B, G, R.
    Xbgr,
    /// Packed A, R, G, B (alpha ignored).
    Argb,
    /// Packed A, B, G, R (alpha ignored).
    Abgr,
    /// Planar Y, U, V; chroma subsampled 2x2.
    I420,
    /// Planar Y, interleaved UV; chroma subsampled 2x2.
    Nv12,
    /// 8-bit gray (R = G = B).
    Gray8,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 13] = [
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Xrgb,
        PixelFormat::Xbgr,
        PixelFormat::Argb,
        PixelFormat::Abgr,
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Gray8,
    ];

    /// Number of planes the format uses.
    pub fn n_planes(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            _ => 1,
        }
    }

    /// `true` for the YUV formats (`I420`, `Nv12`).
    pub fn is_yuv(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }

    /// Bytes per pixel of a packed format (`Gray8`: 1); `None` for YUV formats.
    pub fn bytes_per_pixel(self) -> Option<usize> {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => Some(3),
            PixelFormat::Gray8 => Some(1),
            PixelFormat::I420 | PixelFormat::Nv12 => None,
            _ => Some(4),
        }
    }

    /// Byte offsets of R, G and B inside one pixel of a packed RGB format; `None` for
    /// `Gray8` and YUV formats.
    pub fn rgb_offsets(self) -> Option<[usize; 3]> {
        match self {
            PixelFormat::Rgb | PixelFormat::Rgba | PixelFormat::Rgbx => Some([0, 1, 2]),
            PixelFormat::Bgr | PixelFormat::Bgra | PixelFormat::Bgrx => Some([2, 1, 0]),
            PixelFormat::Xrgb | PixelFormat::Argb => Some([1, 2, 3]),
            PixelFormat::Xbgr | PixelFormat::Abgr => Some([3, 2, 1]),
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Gray8 => None,
        }
    }

    /// `(row_bytes, rows)` of plane `plane` for a `width x height` frame: the minimum
    /// stride and the number of rows. `None` if the format has no such plane or the size
    /// overflows `usize`.
    pub fn plane_size(self, plane: usize, width: usize, height: usize) -> Option<(usize, usize)> {
        if plane >= self.n_planes() {
            return None;
        }
        let cw = width.div_ceil(2);
        let ch = height.div_ceil(2);
        match (self, plane) {
            (PixelFormat::I420 | PixelFormat::Nv12, 0) => Some((width, height)),
            (PixelFormat::I420, _) => Some((cw, ch)),
            (PixelFormat::Nv12, _) => Some((cw.checked_mul(2)?, ch)),
            _ => Some((width.checked_mul(self.bytes_per_pixel()?)?, height)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Colorimetry
// ---------------------------------------------------------------------------------------

/// YUV matrix coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvMatrix {
    /// Kr = 0.299, Kb = 0.114.
    Bt601,
    /// Kr = 0.2126, Kb = 0.0722.
    Bt709,
    /// Kr = 0.2627, Kb = 0.0593.
    Bt2020,
}

impl YuvMatrix {
    /// `(Kr, Kb)`.
    pub fn kr_kb(self) -> (f64, f64) {
        match self {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// How YUV frames are converted to RGB (ignored for RGB / gray formats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YuvColorimetry {
    /// Matrix coefficients.
    pub matrix: YuvMatrix,
    /// `false`: limited ("video") range, Y in [16,235], Cb/Cr in [16,240];
    /// `true`: full range, Y in [0,255], chroma centred at 128.
    pub full_range: bool,
}

impl Default for YuvColorimetry {
    /// BT.601, limited range.
    fn default() -> Self {
        YuvColorimetry {
            matrix: YuvMatrix::Bt601,
            full_range: false,
        }
    }
}

/// f32 coefficients of the YUV → RGB conversion (see the module docs).
#[derive(Clone, Copy, Debug)]
struct YuvCoeffs {
    y_off: f32,
    y_scale: f32,
    c_scale: f32,
    rv: f32,
    gu: f32,
    gv: f32,
    bu: f32,
}

impl YuvCoeffs {
    fn new(c: YuvColorimetry) -> Self {
        let (kr, kb) = c.matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let (y_off, y_scale, c_scale) = if c.full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        YuvCoeffs {
            y_off: y_off as f32,
            y_scale: y_scale as f32,
            c_scale: c_scale as f32,
            rv: (2.0 * (1.0 - kr)) as f32,
            gu: (2.0 * kb * (1.0 - kb) / kg) as f32,
            gv: (2.0 * kr * (1.0 - kr) / kg) as f32,
            bu: (2.0 * (1.0 - kb)) as f32,
        }
    }

    /// `Y'`.
    #[inline(always)]
    fn luma(&self, y: u8) -> f32 {
        (y as f32 - self.y_off) * self.y_scale
    }

    /// The chroma terms `[rv·Cr', gu·Cb' + gv·Cr', bu·Cb']`.
    #[inline(always)]
    fn chroma(&self, u: u8, v: u8) -> [f32; 3] {
        let cb = (u as f32 - 128.0) * self.c_scale;
        let cr = (v as f32 - 128.0) * self.c_scale;
        [self.rv * cr, self.gu * cb + self.gv * cr, self.bu * cb]
    }

    #[inline(always)]
    fn rgb(l: f32, c: [f32; 3]) -> [f32; 3] {
        [clamp255(l + c[0]), clamp255(l - c[1]), clamp255(l + c[2])]
    }
}

#[inline(always)]
fn clamp255(v: f32) -> f32 {
    v.clamp(0.0, 255.0)
}

// ---------------------------------------------------------------------------------------
// Frame
// ---------------------------------------------------------------------------------------

/// A borrowed video frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Plane data; unused planes: `&[]`.
    pub planes: [&'a [u8]; 3],
    /// Bytes per row of each plane (>= the row's bytes; padding allowed). Unused: 0.
    pub strides: [usize; 3],
    /// Ignored for non-YUV formats.
    pub colorimetry: YuvColorimetry,
}

impl<'a> Frame<'a> {
    /// A single-plane frame (packed RGB family or `Gray8`).
    pub fn packed(
        format: PixelFormat,
        width: usize,
        height: usize,
        data: &'a [u8],
        stride: usize,
    ) -> Self {
        Frame {
            format,
            width,
            height,
            planes: [data, &[], &[]],
            strides: [stride, 0, 0],
            colorimetry: YuvColorimetry::default(),
        }
    }

    /// Checks the frame: width/height > 0, every used plane's stride >= its row bytes and
    /// every used plane at least `stride·(rows − 1) + row_bytes` bytes long (the last row
    /// may be unpadded). Never panics.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        if self.width == 0 || self.height == 0 {
            return Err(PreprocessError::EmptyFrame {
                width: self.width,
                height: self.height,
            });
        }
        for plane in 0..self.format.n_planes() {
            let (row_bytes, rows) = self
                .format
                .plane_size(plane, self.width, self.height)
                .ok_or(PreprocessError::FrameTooLarge {
                    width: self.width,
                    height: self.height,
                })?;
            let stride = self.strides[plane];
            if stride < row_bytes {
                return Err(PreprocessError::StrideTooSmall {
                    plane,
                    stride,
                    row_bytes,
                });
            }
            let required = stride
                .checked_mul(rows - 1)
                .and_then(|v| v.checked_add(row_bytes))
                .ok_or(PreprocessError::FrameTooLarge {
                    width: self.width,
                    height: self.height,
                })?;
            let len = self.planes[plane].len();
            if len < required {
                return Err(PreprocessError::PlaneTooSmall {
                    plane,
                    len,
                    required,
                    stride,
                    rows,
                    row_bytes,
                });
            }
        }
        Ok(())
    }

    /// The R,G,B value (0..255) of pixel (x, y), converted exactly as the fast path does.
    /// Slow (a reference / debugging accessor). Panics if the frame is invalid or (x, y) is
    /// outside it.
    pub fn pixel_rgb(&self, x: usize, y: usize) -> [f32; 3] {
        self.validate().expect("invalid frame");
        assert!(x < self.width && y < self.height, "pixel outside the frame");
        let mut px = [0.0f32; 4];
        let coeffs = YuvCoeffs::new(self.colorimetry);
        convert_row::<false>(self, &coeffs, y, x, x + 1, &mut px, &mut Vec::new(), false);
        match row_layout(self.format) {
            RowLayout::Planar => [px[0], px[1], px[2]],
            RowLayout::Interleaved { offsets, .. } => offsets.map(|o| px[o]),
        }
    }
}

/// How a converted source row is laid out in f32s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowLayout {
    /// `lanes` floats per pixel, R, G and B at `offsets` (packed formats: the bytes as they
    /// are, alpha / padding included; `Gray8`: one lane).
    Interleaved { lanes: usize, offsets: [usize; 3] },
    /// Three planes R, G, B of one float per pixel each (YUV formats).
    Planar,
}

impl RowLayout {
    fn floats_per_pixel(self) -> usize {
        match self {
            RowLayout::Interleaved { lanes, .. } => lanes,
            RowLayout::Planar => 3,
        }
    }
}

fn row_layout(format: PixelFormat) -> RowLayout {
    match format {
        PixelFormat::I420 | PixelFormat::Nv12 => RowLayout::Planar,
        PixelFormat::Gray8 => RowLayout::Interleaved {
            lanes: 1,
            offsets: [0, 0, 0],
        },
        f => RowLayout::Interleaved {
            lanes: f.bytes_per_pixel().unwrap_or(4),
            offsets: f.rgb_offsets().unwrap_or([0, 1, 2]),
        },
    }
}

#[inline(always)]
fn plane_row<'a>(frame: &Frame<'a>, plane: usize, y: usize) -> &'a [u8] {
    &frame.planes[plane][frame.strides[plane] * y..]
}

/// Copies `src[k]` to `dst[2k − odd]` and `dst[2k + 1 − odd]` (chroma upsampling, nearest).
#[inline(always)]
fn dup2(dst: &mut [f32], src: &[f32], odd: bool) {
    let (dst, src) = if odd {
        dst[0] = src[0];
        (&mut dst[1..], &src[1..])
    } else {
        (dst, src)
    };
    // Blocks of 8 outputs, then the tail. A pure copy, so the AVX2 permute (the
    // compiler's own vectorization of this loop stores lane by lane) cannot change a bit.
    let mut blocks = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        blocks = unsafe { dup2_avx2(dst, src) };
    }
    for (d, v) in dst[blocks * 8..]
        .chunks_exact_mut(8)
        .zip(src[blocks * 4..].chunks_exact(4))
    {
        for k in 0..8 {
            d[k] = v[k / 2];
        }
    }
    let done = dst.len() / 8 * 8;
    for (i, d) in dst.iter_mut().enumerate().skip(done) {
        *d = src[i / 2];
    }
}

/// [`dup2`]'s blocks of eight outputs (one permute each); returns how many it wrote.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dup2_avx2(dst: &mut [f32], src: &[f32]) -> usize {
    use std::arch::x86_64::*;
    let blocks = (dst.len() / 8).min(src.len() / 4);
    let idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for b in 0..blocks {
        let v = _mm256_castps128_ps256(_mm_loadu_ps(src.as_ptr().add(4 * b)));
        _mm256_storeu_ps(
            dst.as_mut_ptr().add(8 * b),
            _mm256_permutevar8x32_ps(v, idx),
        );
    }
    blocks
}

/// YUV pixels `x0..x1` of one row to planar R, G, B (`out[..3n]`, `n = x1 - x0`).
/// `u`, `v` iterate the chroma bytes of columns `x0/2 ..= (x1-1)/2`.
/// Written as element-wise passes so that they vectorize.
#[inline(always)]
fn yuv_row_planar<'u>(
    c: &YuvCoeffs,
    luma: &[u8],
    x0: usize,
    x1: usize,
    chroma: impl Iterator<Item = (&'u u8, &'u u8)>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let n = x1 - x0;
    let nk = (x1 - 1) / 2 - x0 / 2 + 1;
    set_len(scratch, n + 3 * nk);
    let (l, rest) = scratch.split_at_mut(n);
    let (cr, rest) = rest.split_at_mut(nk);
    let (cg, cb) = rest.split_at_mut(nk);
    for (l, &y) in l.iter_mut().zip(&luma[x0..x1]) {
        *l = c.luma(y);
    }
    for (((cr, cg), cb), (&u, &v)) in cr
        .iter_mut()
        .zip(cg.iter_mut())
        .zip(cb.iter_mut())
        .zip(chroma)
    {
        [*cr, *cg, *cb] = c.chroma(u, v);
    }
    let (rp, rest) = out[..3 * n].split_at_mut(n);
    let (gp, bp) = rest.split_at_mut(n);
    let odd = x0 % 2 == 1;
    dup2(rp, cr, odd);
    dup2(gp, cg, odd);
    dup2(bp, cb, odd);
    for (((r, g), b), &l) in rp.iter_mut().zip(gp.iter_mut()).zip(bp.iter_mut()).zip(&*l) {
        [*r, *g, *b] = YuvCoeffs::rgb(l, [*r, *g, *b]);
    }
}

/// YUV pixels `x0..x1` of row `y` of a validated I420 / NV12 frame to planar R, G, B
/// (`out[..3n]`), eight pixels at a time with AVX2: the luma, chroma and RGB steps of
/// [`yuv_row_planar`] in one pass, each lane doing that function's f32 operations on the
/// same inputs (a chroma sample's terms computed once per pixel of its pair instead of
/// once and copied: the same values), so the same bits. Odd first and last pixels go
/// through the scalar functions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn yuv_row_planar_avx2(
    frame: &Frame<'_>,
    c: &YuvCoeffs,
    y: usize,
    x0: usize,
    x1: usize,
    out: &mut [f32],
) {
    let n = x1 - x0;
    let (rp, rest) = out[..3 * n].split_at_mut(n);
    let (gp, bp) = rest.split_at_mut(n);
    yuv_planes_avx2(frame, c, y, x0, x1, [rp, gp, bp]);
}

/// [`yuv_row_planar_avx2`] into three given planes (`n = x1 - x0` floats each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn yuv_planes_avx2(
    frame: &Frame<'_>,
    c: &YuvCoeffs,
    y: usize,
    x0: usize,
    x1: usize,
    [rp, gp, bp]: [&mut [f32]; 3],
) {
    use std::arch::x86_64::*;
    let luma = plane_row(frame, 0, y);
    let nv12 = frame.format == PixelFormat::Nv12;
    let (chroma_a, chroma_b) = (plane_row(frame, 1, y / 2), plane_row(frame, 2, y / 2));
    let mut x = x0;
    if x % 2 == 1 {
        [rp[0], gp[0], bp[0]] = yuv_pixel(frame, c, y, x);
        x += 1;
    }
    // (No closures below: a closure would not inherit the AVX2 target feature.)
    let (y_off, y_scale) = (_mm256_set1_ps(c.y_off), _mm256_set1_ps(c.y_scale));
    let (half, c_scale) = (_mm256_set1_ps(128.0), _mm256_set1_ps(c.c_scale));
    let (rv, gu, gv, bu) = (
        _mm256_set1_ps(c.rv),
        _mm256_set1_ps(c.gu),
        _mm256_set1_ps(c.gv),
        _mm256_set1_ps(c.bu),
    );
    let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
    // Each chroma byte twice (the pair of pixels it covers), U and V apart.
    let dup_u = _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, -1, -1, -1, -1, -1, -1, -1, -1);
    let dup_v = _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    let dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    while x + 8 <= x1 {
        let k = x / 2;
        let yv = _mm_loadl_epi64(luma.as_ptr().add(x) as *const __m128i);
        let (u, v) = if nv12 {
            let pairs = _mm_loadl_epi64(chroma_a.as_ptr().add(2 * k) as *const __m128i);
            (
                _mm_shuffle_epi8(pairs, dup_u),
                _mm_shuffle_epi8(pairs, dup_v),
            )
        } else {
            let u = _mm_cvtsi32_si128((chroma_a.as_ptr().add(k) as *const i32).read_unaligned());
            let v = _mm_cvtsi32_si128((chroma_b.as_ptr().add(k) as *const i32).read_unaligned());
            (_mm_shuffle_epi8(u, dup), _mm_shuffle_epi8(v, dup))
        };
        let yf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(yv));
        let uf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(u));
        let vf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        let l = _mm256_mul_ps(_mm256_sub_ps(yf, y_off), y_scale);
        let cb = _mm256_mul_ps(_mm256_sub_ps(uf, half), c_scale);
        let cr = _mm256_mul_ps(_mm256_sub_ps(vf, half), c_scale);
        let tr = _mm256_mul_ps(rv, cr);
        let tg = _mm256_add_ps(_mm256_mul_ps(gu, cb), _mm256_mul_ps(gv, cr));
        let tb = _mm256_mul_ps(bu, cb);
        let (r, g, b) = (
            _mm256_add_ps(l, tr),
            _mm256_sub_ps(l, tg),
            _mm256_add_ps(l, tb),
        );
        let at = x - x0;
        _mm256_storeu_ps(
            rp.as_mut_ptr().add(at),
            _mm256_min_ps(_mm256_max_ps(r, zero), top),
        );
        _mm256_storeu_ps(
            gp.as_mut_ptr().add(at),
            _mm256_min_ps(_mm256_max_ps(g, zero), top),
        );
        _mm256_storeu_ps(
            bp.as_mut_ptr().add(at),
            _mm256_min_ps(_mm256_max_ps(b, zero), top),
        );
        x += 8;
    }
    for x in x..x1 {
        [rp[x - x0], gp[x - x0], bp[x - x0]] = yuv_pixel(frame, c, y, x);
    }
}

/// [`yuv_row_planar_avx2`] sixteen pixels at a time, where the CPU has AVX-512F: each lane
/// does the same f32 operations on the same inputs (so the same bits) in half the
/// instructions (the conversion was over a quarter of an NV12 face crop's time). An odd
/// first pixel goes through [`yuv_pixel`], the last (under 16) through the AVX2 function.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f")]
#[inline]
unsafe fn yuv_row_planar_avx512(
    frame: &Frame<'_>,
    c: &YuvCoeffs,
    y: usize,
    x0: usize,
    x1: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let n = x1 - x0;
    let (rp, rest) = out[..3 * n].split_at_mut(n);
    let (gp, bp) = rest.split_at_mut(n);
    // Blocks of 16 from an even column on (whole chroma pairs); what they leave at the
    // end is one more block ending there (its start rounded down to even), converting some
    // pixels twice, to the same values, and an odd last pixel. Rows under 16 pixels go
    // through the AVX2 function.
    let lead = x0 % 2;
    let body = (n - lead) / 16 * 16;
    if lead == 1 {
        [rp[0], gp[0], bp[0]] = yuv_pixel(frame, c, y, x0);
    }
    let end = x0 + lead + body;
    if body == 0 {
        if end < x1 {
            let planes = [&mut rp[lead..], &mut gp[lead..], &mut bp[lead..]];
            yuv_planes_avx2(frame, c, y, end, x1, planes);
        }
        return;
    }
    let last_block = (end < x1).then_some((x1 - 16) & !1);
    if let Some(s) = last_block {
        if s + 16 < x1 {
            [rp[n - 1], gp[n - 1], bp[n - 1]] = yuv_pixel(frame, c, y, x1 - 1);
        }
    }
    let luma = plane_row(frame, 0, y);
    let nv12 = frame.format == PixelFormat::Nv12;
    let (chroma_a, chroma_b) = (plane_row(frame, 1, y / 2), plane_row(frame, 2, y / 2));
    let (y_off, y_scale) = (_mm512_set1_ps(c.y_off), _mm512_set1_ps(c.y_scale));
    let (half, c_scale) = (_mm512_set1_ps(128.0), _mm512_set1_ps(c.c_scale));
    let (rv, gu, gv, bu) = (
        _mm512_set1_ps(c.rv),
        _mm512_set1_ps(c.gu),
        _mm512_set1_ps(c.gv),
        _mm512_set1_ps(c.bu),
    );
    let (zero, top) = (_mm512_setzero_ps(), _mm512_set1_ps(255.0));
    // Each chroma byte twice (the pair of pixels it covers), U and V apart.
    let dup_u = _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14);
    let dup_v = _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15);
    let dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for x in (x0 + lead..end).step_by(16).chain(last_block) {
        let k = x / 2;
        let yv = _mm_loadu_si128(luma.as_ptr().add(x) as *const __m128i);
        let (u, v) = if nv12 {
            let pairs = _mm_loadu_si128(chroma_a.as_ptr().add(2 * k) as *const __m128i);
            (
                _mm_shuffle_epi8(pairs, dup_u),
                _mm_shuffle_epi8(pairs, dup_v),
            )
        } else {
            let u = _mm_loadl_epi64(chroma_a.as_ptr().add(k) as *const __m128i);
            let v = _mm_loadl_epi64(chroma_b.as_ptr().add(k) as *const __m128i);
            (_mm_shuffle_epi8(u, dup), _mm_shuffle_epi8(v, dup))
        };
        let yf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(yv));
        let uf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(u));
        let vf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));
        let l = _mm512_mul_ps(_mm512_sub_ps(yf, y_off), y_scale);
        let cb = _mm512_mul_ps(_mm512_sub_ps(uf, half), c_scale);
        let cr = _mm512_mul_ps(_mm512_sub_ps(vf, half), c_scale);
        let tr = _mm512_mul_ps(rv, cr);
        let tg = _mm512_add_ps(_mm512_mul_ps(gu, cb), _mm512_mul_ps(gv, cr));
        let tb = _mm512_mul_ps(bu, cb);
        let (r, g, b) = (
            _mm512_add_ps(l, tr),
            _mm512_sub_ps(l, tg),
            _mm512_add_ps(l, tb),
        );
        let at = x - x0;
        _mm512_storeu_ps(
            rp.as_mut_ptr().add(at),
            _mm512_min_ps(_mm512_max_ps(r, zero), top),
        );
        _mm512_storeu_ps(
            gp.as_mut_ptr().add(at),
            _mm512_min_ps(_mm512_max_ps(g, zero), top),
        );
        _mm512_storeu_ps(
            bp.as_mut_ptr().add(at),
            _mm512_min_ps(_mm512_max_ps(b, zero), top),
        );
    }
}

/// Pixel (x, y) of a validated I420 / NV12 frame as R, G, B: the operations of
/// [`yuv_row_planar`] for one pixel.
#[inline(always)]
fn yuv_pixel(frame: &Frame<'_>, c: &YuvCoeffs, y: usize, x: usize) -> [f32; 3] {
    let k = x / 2;
    let (u, v) = if frame.format == PixelFormat::Nv12 {
        let uv = plane_row(frame, 1, y / 2);
        (uv[2 * k], uv[2 * k + 1])
    } else {
        (plane_row(frame, 1, y / 2)[k], plane_row(frame, 2, y / 2)[k])
    };
    YuvCoeffs::rgb(c.luma(plane_row(frame, 0, y)[x]), c.chroma(u, v))
}

/// Converts pixels `x0..x1` of row `y` of a validated frame into `out` in the format's
/// [`RowLayout`] (`(x1 - x0) * floats_per_pixel` floats). `AVX2`: called from AVX2 code
/// (the CPU has it): YUV rows go through [`yuv_row_planar_avx2`], or
/// [`yuv_row_planar_avx512`] where `avx512` (the CPU has AVX-512F; same bits).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn convert_row<const AVX2: bool>(
    frame: &Frame<'_>,
    coeffs: &YuvCoeffs,
    y: usize,
    x0: usize,
    x1: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    avx512: bool,
) {
    debug_assert!(x0 < x1 && x1 <= frame.width && y < frame.height);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx512;
    #[cfg(target_arch = "x86_64")]
    if AVX2 && frame.format.is_yuv() {
        // SAFETY: AVX2 == true only where the CPU supports AVX2, avx512 only where it also
        // has AVX-512F (Resampler::avx512); a validated frame holds row y's pixels x0..x1
        // and their chroma.
        unsafe {
            if avx512 {
                yuv_row_planar_avx512(frame, coeffs, y, x0, x1, out)
            } else {
                yuv_row_planar_avx2(frame, coeffs, y, x0, x1, out)
            }
        };
        return;
    }
    let (k0, k1) = (x0 / 2, (x1 - 1) / 2 + 1);
    match frame.format {
        PixelFormat::I420 => {
            let ur = &plane_row(frame, 1, y / 2)[k0..k1];
            let vr = &plane_row(frame, 2, y / 2)[k0..k1];
            let luma = plane_row(frame, 0, y);
            yuv_row_planar(coeffs, luma, x0, x1, ur.iter().zip(vr), out, scratch);
        }
        PixelFormat::Nv12 => {
            let uv = &plane_row(frame, 1, y / 2)[2 * k0..2 * k1];
            let chroma = uv.chunks_exact(2).map(|p| (&p[0], &p[1]));
            let luma = plane_row(frame, 0, y);
            yuv_row_planar(coeffs, luma, x0, x1, chroma, out, scratch);
        }
        format => {
            // Packed RGB family / Gray8: every byte as f32 (channels picked later).
            let bpp = format.bytes_per_pixel().unwrap_or(1);
            let src = &plane_row(frame, 0, y)[x0 * bpp..x1 * bpp];
            for (o, &b) in out[..src.len()].iter_mut().zip(src) {
                *o = b as f32;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// How the frame's aspect ratio is reconciled with the tensor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Aspect {
    /// Whole frame to whole tensor (aspect ratio not preserved).
    #[default]
    Stretch,
    /// Whole frame scaled uniformly to fit, centred, black borders (see [`pad_placement`]).
    Pad,
    /// Largest centred source rectangle with the tensor's aspect ratio (see [`crop_rect`]).
    Crop,
}

/// Memory layout of the output tensor (batch size 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TensorLayout {
    /// `[1, 3, h, w]`.
    #[default]
    Nchw,
    /// `[1, h, w, 3]`.
    Nhwc,
}

/// Order of the 3 channels in the tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChannelOrder {
    /// Channel 0 is red.
    #[default]
    Rgb,
    /// Channel 0 is blue.
    Bgr,
}

/// Value normalization (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Normalization {
    /// FaceNet's per-image prewhitening.
    #[default]
    Prewhiten,
    /// `(x − mean[c]) / std[c]`, in R,G,B order regardless of [`ChannelOrder`], 0..255 scale.
    Fixed {
        /// Per-channel mean (R, G, B).
        mean: [f32; 3],
        /// Per-channel standard deviation (R, G, B), finite and > 0.
        std: [f32; 3],
    },
    /// Raw 0..255 values.
    None,
}

/// What the [`Preprocessor`] produces.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// Tensor width (model input width).
    pub width: usize,
    /// Tensor height (model input height).
    pub height: usize,
    /// Aspect mode of [`Preprocessor::process`].
    pub aspect: Aspect,
    /// Tensor memory layout.
    pub layout: TensorLayout,
    /// Tensor channel order.
    pub channel_order: ChannelOrder,
    /// Value normalization.
    pub normalization: Normalization,
    /// Large downscales in [`Preprocessor::process`] / [`Preprocessor::process_rect`] / the
    /// grid of a two-step [`Preprocessor::process_affine`] first average `k x k` boxes of
    /// stored samples (see the module docs, "Large downscales";
    /// Pillow's `reducing_gap`). `false`: the resize kernel on every source pixel.
    pub reduce: bool,
}

impl Default for PreprocessConfig {
    /// 160x160, stretch, NCHW, RGB, prewhiten (FaceNet).
    fn default() -> Self {
        PreprocessConfig::new(160, 160)
    }
}

impl PreprocessConfig {
    /// `width x height` with the default aspect, layout, channel order and normalization.
    pub fn new(width: usize, height: usize) -> Self {
        PreprocessConfig {
            width,
            height,
            aspect: Aspect::default(),
            layout: TensorLayout::default(),
            channel_order: ChannelOrder::default(),
            normalization: Normalization::default(),
            reduce: true,
        }
    }

    /// Number of `f32` values of the tensor: `3·width·height`.
    pub fn tensor_len(&self) -> usize {
        3 * self.width * self.height
    }

    /// Checks the configuration (what [`Preprocessor::new`] checks).
    pub fn validate(&self) -> Result<(), PreprocessError> {
        if self.width == 0 || self.height == 0 {
            return Err(PreprocessError::InvalidConfig(format!(
                "tensor size must be non-zero, got {}x{}",
                self.width, self.height
            )));
        }
        let fits = self
            .width
            .checked_mul(self.height)
            .and_then(|v| v.checked_mul(3 * std::mem::size_of::<f32>()))
            .is_some_and(|v| v <= isize::MAX as usize);
        if !fits {
            return Err(PreprocessError::InvalidConfig(format!(
                "tensor size {}x{} is too large",
                self.width, self.height
            )));
        }
        if let Normalization::Fixed { mean, std } = self.normalization {
            for c in 0..3 {
                let name = ["R", "G", "B"][c];
                if !mean[c].is_finite() {
                    return Err(PreprocessError::InvalidConfig(format!(
                        "normalization mean for {name} must be finite, got {}",
                        mean[c]
                    )));
                }
                if !(std[c].is_finite() && std[c] > 0.0) {
                    return Err(PreprocessError::InvalidConfig(format!(
                        "normalization std for {name} must be finite and > 0, got {}",
                        std[c]
                    )));
                }
                // Bounds |(x − mean) / std| for x in 0..=255 (f32 rounding is monotonic):
                // a tiny std or a huge mean would otherwise give ±inf tensor values.
                if !((256.0 + mean[c].abs()) / std[c]).is_finite() {
                    return Err(PreprocessError::InvalidConfig(format!(
                        "normalization mean {} / std {} for {name} overflow f32",
                        mean[c], std[c]
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A rectangle in source pixel coordinates (f64; pixel `i` covers `[i, i + 1)`). May extend
/// outside the frame (see the module docs for what is sampled there).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceRect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width (> 0).
    pub width: f64,
    /// Height (> 0).
    pub height: f64,
}

impl SourceRect {
    /// A rectangle from its left/top edges and size.
    pub fn new(x: f64, y: f64, width: f64, height: f64) -> Self {
        SourceRect {
            x,
            y,
            width,
            height,
        }
    }

    /// The whole `width x height` frame.
    pub fn full(width: usize, height: usize) -> Self {
        SourceRect::new(0.0, 0.0, width as f64, height as f64)
    }

    /// Checks that the rectangle is usable: finite, positive size of at most
    /// [`MAX_SOURCE_RECT_EXTENT`], `|x|, |y| <= MAX_SOURCE_RECT_COORD`.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let err = |reason: &'static str| {
            Err(PreprocessError::InvalidSourceRect {
                rect: *self,
                reason,
            })
        };
        if ![self.x, self.y, self.width, self.height]
            .iter()
            .all(|v| v.is_finite())
        {
            return err("coordinates must be finite");
        }
        if self.width <= 0.0 || self.height <= 0.0 {
            return err("width and height must be > 0");
        }
        if self.width > MAX_SOURCE_RECT_EXTENT || self.height > MAX_SOURCE_RECT_EXTENT {
            return err("width/height exceed MAX_SOURCE_RECT_EXTENT");
        }
        if self.x.abs() > MAX_SOURCE_RECT_COORD || self.y.abs() > MAX_SOURCE_RECT_COORD {
            return err("|x|/|y| exceed MAX_SOURCE_RECT_COORD");
        }
        Ok(())
    }
}

/// Where [`Aspect::Pad`] places the scaled frame inside the tensor (whole output pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadPlacement {
    /// First output column of the content.
    pub x: usize,
    /// First output row of the content.
    pub y: usize,
    /// Content width in output pixels.
    pub width: usize,
    /// Content height in output pixels.
    pub height: usize,
}

/// [`Aspect::Pad`] geometry: `scale = min(out_w / frame_w, out_h / frame_h)`,
/// `width = round(frame_w·scale)`, `height = round(frame_h·scale)` (half away from zero,
/// clamped to `[1, out]`), `x = (out_w − width) / 2`, `y = (out_h − height) / 2` (integer
/// division). All sizes must be non-zero.
pub fn pad_placement(frame_w: usize, frame_h: usize, out_w: usize, out_h: usize) -> PadPlacement {
    let scale = (out_w as f64 / frame_w as f64).min(out_h as f64 / frame_h as f64);
    let width = ((frame_w as f64 * scale).round() as usize).clamp(1, out_w);
    let height = ((frame_h as f64 * scale).round() as usize).clamp(1, out_h);
    PadPlacement {
        x: (out_w - width) / 2,
        y: (out_h - height) / 2,
        width,
        height,
    }
}

/// [`Aspect::Crop`] geometry: the largest centred rectangle of the frame with aspect ratio
/// `out_w : out_h`, in f64 source coordinates. Exactly the whole frame when the aspect
/// ratios are equal (compared exactly in integers); otherwise the full height with
/// `width = frame_h·out_w/out_h`, `x = (frame_w − width)/2` (frame wider than the tensor)
/// or the full width with `height = frame_w·out_h/out_w`, `y = (frame_h − height)/2`.
pub fn crop_rect(frame_w: usize, frame_h: usize, out_w: usize, out_h: usize) -> SourceRect {
    let wide = frame_w as u128 * out_h as u128;
    let tall = frame_h as u128 * out_w as u128;
    let (fw, fh) = (frame_w as f64, frame_h as f64);
    if wide == tall {
        SourceRect::full(frame_w, frame_h)
    } else if wide > tall {
        let w = fh * out_w as f64 / out_h as f64;
        SourceRect::new((fw - w) / 2.0, 0.0, w, fh)
    } else {
        let h = fw * out_h as f64 / out_w as f64;
        SourceRect::new(0.0, (fh - h) / 2.0, fw, h)
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why preprocessing could not be done.
#[derive(Debug, Clone, PartialEq)]
pub enum PreprocessError {
    /// Frame width or height is 0.
    EmptyFrame { width: usize, height: usize },
    /// The frame's plane sizes overflow `usize`.
    FrameTooLarge { width: usize, height: usize },
    /// A plane's stride is smaller than its row.
    StrideTooSmall {
        plane: usize,
        stride: usize,
        row_bytes: usize,
    },
    /// A plane's buffer is too short for its stride and rows.
    PlaneTooSmall {
        plane: usize,
        len: usize,
        required: usize,
        stride: usize,
        rows: usize,
        row_bytes: usize,
    },
    /// An input or output buffer has the wrong length.
    BufferLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The source rectangle is unusable.
    InvalidSourceRect {
        rect: SourceRect,
        reason: &'static str,
    },
    /// The configuration is invalid (message says why).
    InvalidConfig(String),
    /// The transform given to [`Preprocessor::process_affine`] is unusable.
    InvalidTransform {
        transform: AffineTransform,
        reason: &'static str,
    },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreprocessError::EmptyFrame { width, height } => {
                write!(f, "frame size must be non-zero, got {width}x{height}")
            }
            PreprocessError::FrameTooLarge { width, height } => {
                write!(f, "frame size {width}x{height} overflows the address space")
            }
            PreprocessError::StrideTooSmall {
                plane,
                stride,
                row_bytes,
            } => write!(
                f,
                "plane {plane}: stride {stride} is smaller than the row size of {row_bytes} bytes"
            ),
            PreprocessError::PlaneTooSmall {
                plane,
                len,
                required,
                stride,
                rows,
                row_bytes,
            } => write!(
                f,
                "plane {plane}: buffer has {len} bytes, needs {required} \
                 ({rows} rows, stride {stride}, last row {row_bytes} bytes)"
            ),
            PreprocessError::BufferLength {
                what,
                expected,
                actual,
            } => write!(f, "{what} has length {actual}, expected {expected} values"),
            PreprocessError::InvalidSourceRect { rect, reason } => write!(
                f,
                "invalid source rectangle (x {}, y {}, {} x {}): {reason}",
                rect.x, rect.y, rect.width, rect.height
            ),
            PreprocessError::InvalidConfig(msg) => write!(f, "invalid preprocess config: {msg}"),
            PreprocessError::InvalidTransform {
                transform: t,
                reason,
            } => write!(
                f,
                "invalid affine transform (a {}, b {}, c {}, d {}, e {}, f {}): {reason}",
                t.a, t.b, t.c, t.d, t.e, t.f
            ),
        }
    }
}

impl std::error::Error for PreprocessError {}

// ---------------------------------------------------------------------------------------
// Resampler
// ---------------------------------------------------------------------------------------

/// Taps of one destination pixel: source indices `start..start + len`, weights at
/// `weights[offset..offset + len]`; `total` is their sum (exactly 1.0 unless taps were
/// dropped as black, outside the frame but inside the sampling domain).
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: usize,
    len: usize,
    offset: usize,
    total: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct AxisKey {
    src_len: usize,
    origin: f64,
    extent: f64,
    out_len: usize,
}

/// Precomputed weights for one axis (see the module docs for the kernel).
#[derive(Clone, Debug, Default)]
struct AxisTable {
    key: Option<AxisKey>,
    spans: Vec<Span>,
    weights: Vec<f32>,
    /// Union of the source indices used: `lo..hi` (empty if no tap is inside the frame).
    lo: usize,
    hi: usize,
    /// Largest `Span::len`.
    max_len: usize,
    /// The spans in blocks of [`BLOCK`] outputs for [`filter_h`] (the last block padded
    /// with empty spans), every span padded to `max_len` taps, transposed per block (block
    /// `b`, tap `k`, lane `l` at `(b·max_len + k)·BLOCK + l`): source index − `lo` (a
    /// padding tap repeats the span's first tap, so it adds exactly `0·0` even next to
    /// non-finite pixels), ...
    block_index: Vec<i32>,
    /// ... weight (0 for padding taps), ...
    block_weights: Vec<f32>,
    /// ... and `total` per output.
    block_totals: Vec<f32>,
    /// Per block, where all its taps lie within [`WINDOW`] consecutive source columns:
    /// the first of them (− `lo`), else −1 (the AVX2 pass then gathers) ...
    block_base: Vec<i32>,
    /// ... and each tap's column relative to that first one (`block_index` layout).
    block_rel: Vec<i32>,
    /// Temp space of `update`: one output's tent values.
    tents: Vec<f64>,
}

/// Source columns two AVX2 registers hold: a block of eight outputs whose taps all fall
/// inside them (downscales up to about 1.8x) picks its taps with in-register permutes
/// instead of gathers.
const WINDOW: usize = 16;

impl AxisTable {
    /// Recomputes the table unless it is already for these parameters. Reuses capacity.
    fn update(&mut self, src_len: usize, origin: f64, extent: f64, out_len: usize) {
        let key = AxisKey {
            src_len,
            origin,
            extent,
            out_len,
        };
        if self.key == Some(key) {
            return;
        }
        self.key = Some(key);
        // A table is built for every face region: compiled for AVX2 where the CPU has it
        // (`floor` / `ceil` as instructions instead of libm calls, wider loops; the same
        // f64 operations, so the same table).
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            #[target_feature(enable = "avx2")]
            fn build_avx2(table: &mut AxisTable, key: AxisKey) {
                table.build(key);
            }
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { build_avx2(self, key) };
            return;
        }
        self.build(key);
    }

    #[inline(always)]
    fn build(&mut self, key: AxisKey) {
        let AxisKey {
            src_len,
            origin,
            extent,
            out_len,
        } = key;
        self.spans.clear();
        self.weights.clear();
        self.lo = usize::MAX;
        self.hi = 0;
        self.max_len = 0;

        let scale = extent / out_len as f64;
        let support = scale.max(1.0);
        let n = src_len as i64;
        // Sampling domain: the frame extended to cover the rectangle (outward-rounded).
        let dom_lo = (origin.floor() as i64).min(0);
        let dom_hi = ((origin + extent).ceil() as i64).max(n);

        for j in 0..out_len {
            let c = origin + (j as f64 + 0.5) * scale;
            let first = ((c - support - 0.5).floor() as i64).max(dom_lo);
            let last = ((c + support - 0.5).ceil() as i64).min(dom_hi - 1);
            let offset = self.weights.len();
            // The tent over first..=last, each value computed once (the divisions are
            // independent, so they overlap; a table is rebuilt for every face region).
            self.tents.clear();
            self.tents
                .extend((first..=last).map(|i| 1.0 - (i as f64 + 0.5 - c).abs() / support));
            // Normalization over the whole domain (black taps included), positive taps
            // only: adding +0.0 for the others changes no bit and needs no branch.
            let sum = self.tents.iter().fold(0.0f64, |s, &w| s + w.max(0.0));
            // ... but only taps inside the frame are stored (the others read black).
            // In-frame positive-weight taps are contiguous (the kernel is unimodal).
            let mut start = 0usize;
            let mut len = 0usize;
            let mut in_frame = 0.0f64;
            if sum > 0.0 {
                for i in first.max(0)..=last.min(n - 1) {
                    let w = self.tents[(i - first) as usize];
                    if w > 0.0 {
                        if len == 0 {
                            start = i as usize;
                        }
                        self.weights.push((w / sum) as f32);
                        in_frame += w;
                        len += 1;
                    }
                }
            }
            // Exactly 1.0 when no tap reads black (keeps constants and identity exact).
            let total = if in_frame == sum {
                1.0
            } else {
                (in_frame / sum) as f32
            };
            if len > 0 {
                self.lo = self.lo.min(start);
                self.hi = self.hi.max(start + len);
                self.max_len = self.max_len.max(len);
            }
            self.spans.push(Span {
                start,
                len,
                offset,
                total,
            });
        }
        if self.lo >= self.hi {
            self.lo = 0;
            self.hi = 0;
        }
        let padded = out_len.div_ceil(BLOCK) * BLOCK;
        let taps = self.max_len;
        self.block_index.clear();
        self.block_index.resize(padded * taps, 0);
        self.block_weights.clear();
        self.block_weights.resize(padded * taps, 0.0);
        self.block_totals.clear();
        self.block_totals.resize(padded, 0.0);
        for (j, span) in self.spans.iter().enumerate() {
            if span.len == 0 {
                continue; // index 0, weight 0, total 0: exactly 0 (black)
            }
            let (blk, lane) = (j / BLOCK, j % BLOCK);
            // i32 suffices: sources are at most MAX_SOURCE_RECT_EXTENT wide.
            let first = (span.start - self.lo) as i32;
            for k in 0..taps {
                let at = (blk * taps + k) * BLOCK + lane;
                if k < span.len {
                    self.block_index[at] = first + k as i32;
                    self.block_weights[at] = self.weights[span.offset + k];
                } else {
                    self.block_index[at] = first;
                }
            }
            self.block_totals[j] = span.total;
        }
        self.block_base.clear();
        self.block_rel.clear();
        self.block_rel.resize(padded * taps, 0);
        // No taps at all (every output black): filter_h never runs, no blocks.
        let blocks = if taps == 0 { 0 } else { padded / BLOCK };
        for blk in 0..blocks {
            let index = &self.block_index[blk * taps * BLOCK..(blk + 1) * taps * BLOCK];
            let (lo, hi) = (index.iter().min(), index.iter().max());
            let base = match (lo, hi) {
                (Some(&lo), Some(&hi)) if ((hi - lo) as usize) < WINDOW => lo,
                _ => -1,
            };
            self.block_base.push(base);
            if base >= 0 {
                let rel = &mut self.block_rel[blk * taps * BLOCK..(blk + 1) * taps * BLOCK];
                for (r, &i) in rel.iter_mut().zip(index) {
                    *r = i - base;
                }
            }
        }
    }
}

/// Block `blk` of an [`AxisTable`] as [`filter_h`] reads it.
struct BlockTaps<'t> {
    /// First output of the block, and how many of its [`BLOCK`] lanes are outputs.
    first: usize,
    outputs: usize,
    /// Tap-major indices (− `lo`), weights and, where `base >= 0`, indices − `base`.
    index: &'t [i32],
    weights: &'t [f32],
    rel: &'t [i32],
    base: i32,
    totals: &'t [f32; BLOCK],
}

impl AxisTable {
    #[inline(always)]
    fn block(&self, blk: usize) -> BlockTaps<'_> {
        let at = blk * self.max_len * BLOCK..(blk + 1) * self.max_len * BLOCK;
        let first = blk * BLOCK;
        BlockTaps {
            first,
            outputs: BLOCK.min(self.spans.len() - first),
            index: &self.block_index[at.clone()],
            weights: &self.block_weights[at.clone()],
            rel: &self.block_rel[at],
            base: self.block_base[blk],
            totals: self.block_totals[first..first + BLOCK].try_into().unwrap(),
        }
    }

    /// The source columns (− `lo`, half-open) that the taps of `outputs` read; empty
    /// where they have none. A span's first and last taps never decrease from one output
    /// to the next (the tent slides right), so the first and last non-empty spans bound
    /// them all.
    fn source_columns(&self, outputs: std::ops::Range<usize>) -> (usize, usize) {
        let spans = &self.spans[outputs];
        let first = spans.iter().find(|s| s.len > 0);
        let last = spans.iter().rev().find(|s| s.len > 0);
        match (first, last) {
            (Some(a), Some(b)) => {
                debug_assert!(spans
                    .iter()
                    .filter(|s| s.len > 0)
                    .all(|s| { s.start >= a.start && s.start + s.len <= b.start + b.len }));
                (a.start - self.lo, b.start + b.len - self.lo)
            }
            _ => (0, 0),
        }
    }
}

/// Something the resampler can read converted rows from.
trait RowSource {
    fn width(&self) -> usize;
    fn height(&self) -> usize;
    fn layout(&self) -> RowLayout;
    /// Pixels `x0..x1` of row `y`, in [`RowLayout`], into
    /// `out[..(x1 - x0) * layout().floats_per_pixel()]`; `scratch` is reusable temp space.
    /// `AVX2`: called from the AVX2 build (the CPU has it).
    fn read_row<const AVX2: bool>(
        &self,
        y: usize,
        x0: usize,
        x1: usize,
        out: &mut [f32],
        scratch: &mut RowScratch,
    );
}

/// Temp space of [`RowSource::read_row`] (reused: no allocation in steady state).
#[derive(Clone, Debug, Default)]
struct RowScratch {
    /// Colour conversion.
    conv: Vec<f32>,
    /// The AVX2 build may run AVX-512 kernels ([`Resampler::avx512`], set per run).
    avx512: bool,
    /// Column sums of a box row (bytes of the frame's row layout, or luma).
    sums: Vec<u16>,
    /// Column sums of the chroma rows (I420: U then V; NV12: U,V pairs).
    chroma: Vec<u16>,
    /// Temp space of [`box_windows`].
    boxes: BoxScratch,
}

/// Sliding-window sums of [`box_windows`] and its two power-of-two window buffers.
#[derive(Clone, Debug, Default)]
struct BoxScratch {
    win: Vec<u16>,
    pow: [Vec<u16>; 2],
}

struct FrameRows<'f, 'a> {
    frame: &'f Frame<'a>,
    coeffs: YuvCoeffs,
}

impl RowSource for FrameRows<'_, '_> {
    fn width(&self) -> usize {
        self.frame.width
    }
    fn height(&self) -> usize {
        self.frame.height
    }
    fn layout(&self) -> RowLayout {
        row_layout(self.frame.format)
    }
    #[inline(always)]
    fn read_row<const AVX2: bool>(
        &self,
        y: usize,
        x0: usize,
        x1: usize,
        out: &mut [f32],
        scratch: &mut RowScratch,
    ) {
        convert_row::<AVX2>(
            self.frame,
            &self.coeffs,
            y,
            x0,
            x1,
            out,
            &mut scratch.conv,
            scratch.avx512,
        );
    }
}

struct RgbF32Rows<'a> {
    data: &'a [f32],
    width: usize,
    height: usize,
}

impl RowSource for RgbF32Rows<'_> {
    fn width(&self) -> usize {
        self.width
    }
    fn height(&self) -> usize {
        self.height
    }
    fn layout(&self) -> RowLayout {
        RowLayout::Interleaved {
            lanes: 3,
            offsets: [0, 1, 2],
        }
    }
    #[inline(always)]
    fn read_row<const AVX2: bool>(
        &self,
        y: usize,
        x0: usize,
        x1: usize,
        out: &mut [f32],
        _: &mut RowScratch,
    ) {
        let base = y * self.width;
        out[..(x1 - x0) * 3].copy_from_slice(&self.data[(base + x0) * 3..(base + x1) * 3]);
    }
}

/// Pillow's default `reducing_gap` (`Image.thumbnail`): boxes of `floor(scale / 2)`
/// source pixels, so the resize kernel still spans 2 to 4 reduced pixels per output pixel.
const REDUCING_GAP: f64 = 2.0;

/// Upper bound of `kx·ky` (box sums of bytes stay within u16: 257 · 255 = 65535).
const MAX_BOX_PIXELS: usize = 257;

/// The frame reduced by `kx x ky` boxes (see the module docs, "Large downscales"): pixel
/// (x, y) is the mean of source pixels `x·kx .. (x+1)·kx`, `y·ky .. (y+1)·ky` that lie in
/// the frame, taken on the stored samples — bytes of packed formats, Y and the chroma
/// samples of the box's 2x2 blocks of YUV formats (then converted).
struct ReducedRows<'f, 'a> {
    frame: &'f Frame<'a>,
    coeffs: YuvCoeffs,
    kx: usize,
    ky: usize,
}

impl ReducedRows<'_, '_> {
    /// Reduction factors for resampling `extent` source pixels onto `out_len` ones:
    /// `floor(scale / REDUCING_GAP)` (at least 1), even for subsampled chroma (so that
    /// boxes cover whole 2x2 chroma blocks).
    fn factor(extent: f64, out_len: usize, yuv: bool) -> usize {
        let k = (extent / out_len as f64 / REDUCING_GAP).floor();
        let k = if k >= 2.0 {
            k.min(MAX_BOX_PIXELS as f64) as usize
        } else {
            1
        };
        if yuv && k > 1 {
            k & !1
        } else {
            k
        }
    }
}

/// The box factors `(kx, ky)` of `rect` resampled to `out_w x out_h` (1: that axis is not
/// reduced): [`ReducedRows::factor`] per axis, `ky` lowered until a box holds at most
/// [`MAX_BOX_PIXELS`] pixels (the u16 sums' limit).
pub(super) fn reduce_factors(
    rect: SourceRect,
    out_w: usize,
    out_h: usize,
    yuv: bool,
) -> (usize, usize) {
    let kx = ReducedRows::factor(rect.width, out_w, yuv);
    let mut ky = ReducedRows::factor(rect.height, out_h, yuv);
    while kx * ky > MAX_BOX_PIXELS {
        ky = if yuv { (ky - 2).max(1) } else { ky - 1 };
    }
    (kx, ky)
}

/// Column sums `sums[i] += row[i]` (widening; vectorizes).
#[inline(always)]
fn add_row(sums: &mut [u16], row: &[u8]) {
    for (s, &b) in sums.iter_mut().zip(row) {
        *s += b as u16;
    }
}

/// Column sums of two rows at once: `sums[i] += a[i] + b[i]` (widening; vectorizes).
#[inline(always)]
fn add_rows2(sums: &mut [u16], a: &[u8], b: &[u8]) {
    for ((s, &x), &y) in sums.iter_mut().zip(a).zip(b) {
        *s += u16::from(x) + u16::from(y);
    }
}

/// Column sums `sums[i] = Σ_r plane_row(r)[bytes.0 + i]` over rows `rows.0..rows.1` (at
/// least one) of a frame plane. A function, not a closure, and always inlined: a closure
/// would be compiled without the caller's AVX2 (SSE2 only, as profiling showed).
#[inline(always)]
fn plane_column_sums(
    f: &Frame,
    plane: usize,
    rows: (usize, usize),
    bytes: (usize, usize),
    sums: &mut Vec<u16>,
) {
    // Rows two at a time (half the loads and stores of the sums), the first pair written
    // rather than added (no zero fill first).
    let row = |r: usize| &plane_row(f, plane, r)[bytes.0..bytes.1];
    sums.clear();
    let mut r = rows.0;
    if rows.1 - r >= 2 {
        let pairs = row(r).iter().zip(row(r + 1));
        sums.extend(pairs.map(|(&a, &b)| u16::from(a) + u16::from(b)));
        r += 2;
    } else {
        sums.extend(row(r).iter().map(|&b| u16::from(b)));
        r += 1;
    }
    while r + 2 <= rows.1 {
        add_rows2(sums, row(r), row(r + 1));
        r += 2;
    }
    if r < rows.1 {
        add_row(sums, row(r));
    }
}

/// Sliding-window sums for the `full` whole boxes of a row of column sums (`lanes` values
/// per pixel, `k` pixels a box): `boxes.win[i] = Σ_{j<k} sums[i + j·lanes]`, valid at every
/// box start `x·k·lanes + lane`, readable one element past the last box.
///
/// Built from power-of-two windows (`log2 k` doubling passes plus one pass per set bit of
/// `k`, each a plain element-wise add that vectorizes). No overflow: a window holds at most
/// `k · rows · 255 <= MAX_BOX_PIXELS · 255 = 65535`.
#[inline(always)]
fn box_windows(sums: &[u16], lanes: usize, k: usize, full: usize, boxes: &mut BoxScratch) {
    let BoxScratch { win, pow } = boxes;
    if full == 0 {
        // Only a partial box: box_lane sums it from `sums`, no window is read.
        return;
    }
    let len = full * k * lanes;
    // Only `win[..len − (k − 1)·lanes]` is ever read as a window (the entry after the last
    // box is read only to be masked off), so stale values elsewhere are harmless: no
    // zero fill, the first window is copied in.
    if win.len() < len + 1 {
        win.resize(len + 1, 0);
    }
    let [p, q] = pow;
    // win[i] = Σ_{j < width} sums[i + j·lanes], valid for i < len − (width − 1)·lanes;
    // level[i] = Σ_{j < w} sums[i + j·lanes], valid for i < len − (w − 1)·lanes, where
    // level is `sums` itself for w = 1, then `q`, `p`, `q`, … (each built from the last).
    let (mut width, mut w, mut bits) = (0, 1, k);
    let mut level = 0;
    loop {
        let cur: &[u16] = match level {
            0 => &sums[..len],
            l if l % 2 == 1 => q,
            _ => p,
        };
        if bits & 1 == 1 {
            let (m, at) = (len - (width + w - 1) * lanes, width * lanes);
            if width == 0 {
                win[..m].copy_from_slice(&cur[..m]);
            } else {
                for (r, &v) in win[..m].iter_mut().zip(&cur[at..at + m]) {
                    *r += v;
                }
            }
            width += w;
        }
        bits >>= 1;
        if bits == 0 {
            break;
        }
        let (m, at) = (len - (2 * w - 1) * lanes, w * lanes);
        let (cur, next): (&[u16], &mut Vec<u16>) = match level {
            0 => (&sums[..len], q),
            l if l % 2 == 1 => (q, p),
            _ => (p, q),
        };
        next.clear();
        next.extend(cur[..m].iter().zip(&cur[at..at + m]).map(|(&a, &b)| a + b));
        w *= 2;
        level += 1;
    }
}

/// Means of one lane of `n` boxes of `k` pixels (the last of `last` pixels) over `rows`
/// summed rows: `out[x] = sum · (1 / count)` (the mean within an f32 ulp), whole boxes
/// from [`box_windows`]' `win`, the last partial one summed from `sums`. The AVX2 build
/// reads eight boxes' sums at once (a 32-bit gather, masked) and does the same conversion
/// and product: bit-identical.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn box_lane<const AVX2: bool>(
    sums: &[u16],
    win: &[u16],
    lanes: usize,
    lane: usize,
    k: usize,
    (n, last): (usize, usize),
    rows: usize,
    out: &mut [f32],
) {
    let full = if last == k { n } else { n - 1 };
    let stride = k * lanes;
    let inv = 1.0 / (k * rows) as f32;
    let out = &mut out[..n];
    let mut done = 0;
    if full > 0 {
        assert!((full - 1) * stride + lane + 1 < win.len());
        #[cfg(target_arch = "x86_64")]
        if AVX2 && stride * full < i32::MAX as usize {
            // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked); every
            // index x·stride + lane (x < full) reads 4 bytes inside win (asserted above);
            // the stores stay within out[..full].
            unsafe {
                use std::arch::x86_64::*;
                let lanes8 = _mm256_mullo_epi32(
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    _mm256_set1_epi32(stride as i32),
                );
                let (mask, scale) = (_mm256_set1_epi32(0xffff), _mm256_set1_ps(inv));
                while done + 8 <= full {
                    let base = (done * stride + lane) as i32;
                    let idx = _mm256_add_epi32(lanes8, _mm256_set1_epi32(base));
                    let v = _mm256_i32gather_epi32::<2>(win.as_ptr() as *const i32, idx);
                    let m = _mm256_cvtepi32_ps(_mm256_and_si256(v, mask));
                    _mm256_storeu_ps(out.as_mut_ptr().add(done), _mm256_mul_ps(m, scale));
                    done += 8;
                }
            }
        }
        for x in done..full {
            out[x] = win[x * stride + lane] as f32 * inv;
        }
    }
    if full < n {
        let start = full * stride + lane;
        let total: u32 = (0..last).map(|j| sums[start + j * lanes] as u32).sum();
        out[full] = total as f32 * (1.0 / (last * rows) as f32);
    }
}

/// Box means of 3- or 4-byte pixels (`bpp`; `k` pixels a box, the last of `last`) into R,
/// G, B planes of `n` (`out`), channels at byte `offsets`. A pixel's column sums are read
/// as one u64 of four 16-bit lanes (for 3-byte pixels the fourth lane is the next
/// pixel's first channel, never used: `sums` holds one element of slack after its last
/// pixel for it): a box's lane sums never exceed 65535 (`MAX_BOX_PIXELS`), so they never
/// carry into each other, and a box costs one add per pixel. (This beats [`box_windows`],
/// whose passes run over every lane of the row.)
#[inline(always)]
fn box_planes_packed<const AVX2: bool>(
    sums: &[u16],
    bpp: usize,
    k: usize,
    (n, last): (usize, usize),
    rows: usize,
    offsets: [usize; 3],
    out: &mut [f32],
) {
    debug_assert!(bpp == 3 || bpp == 4);
    let (r, rest) = out.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    let pack = |i: usize| {
        let px = &sums[i * bpp..i * bpp + 4];
        u64::from(px[0]) | u64::from(px[1]) << 16 | u64::from(px[2]) << 32 | u64::from(px[3]) << 48
    };
    let lane = |acc: u64, o: usize| ((acc >> (16 * o)) & 0xffff) as f32;
    let full = if last == k { n } else { n - 1 };
    let inv = 1.0 / (k * rows) as f32;
    let box_sum = |x: usize| -> u64 { (x * k..(x + 1) * k).map(pack).sum() };
    // Eight boxes at a time, then each channel's eight means in one go (a uniform shift
    // and an i32 conversion, exact below 2^16: vectorizes).
    let mut x = 0;
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        assert!(full * k * bpp + 4 <= sums.len() + bpp);
        // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked); the boxes
        // below `full` are whole, their pixels' 8-byte reads inside `sums` (asserted
        // above, with the slack element for 3-byte pixels), and `full <= n` for the
        // planes.
        let planes = [&mut *r, &mut *g, &mut *b];
        x = unsafe { box_means_avx2(sums, bpp, k, full, offsets, inv, planes) };
    }
    while x + 8 <= full {
        let acc: [u64; 8] = std::array::from_fn(|l| box_sum(x + l));
        for (plane, &o) in [&mut *r, &mut *g, &mut *b].into_iter().zip(&offsets) {
            let shift = 16 * o as u32;
            for (p, &a) in plane[x..x + 8].iter_mut().zip(&acc) {
                *p = ((a >> shift) as u32 & 0xffff) as i32 as f32 * inv;
            }
        }
        x += 8;
    }
    for x in x..full {
        let acc = box_sum(x);
        r[x] = lane(acc, offsets[0]) * inv;
        g[x] = lane(acc, offsets[1]) * inv;
        b[x] = lane(acc, offsets[2]) * inv;
    }
    if full < n {
        let acc: u64 = (full * k..full * k + last).map(pack).sum();
        let inv = 1.0 / (last * rows) as f32;
        r[full] = lane(acc, offsets[0]) * inv;
        g[full] = lane(acc, offsets[1]) * inv;
        b[full] = lane(acc, offsets[2]) * inv;
    }
}

/// [`box_planes_packed`]'s whole boxes below `full`, eight at a time (returns how many it
/// did): each box's packed sum as u64 adds of its pixels' 8-byte reads (four-lane
/// gathers, one lane per box), then per channel the eight 16-bit lanes shifted down,
/// masked, packed to i32 and converted: the same values, the same f32 products as the
/// portable loop. The loop over the blocks is in here, so that one call does a row (a
/// per-block helper that the compiler left out of line took half of a 1080p frame's time
/// in one build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn box_means_avx2(
    sums: &[u16],
    bpp: usize,
    k: usize,
    full: usize,
    offsets: [usize; 3],
    inv: f32,
    planes: [&mut [f32]; 3],
) -> usize {
    use std::arch::x86_64::*;
    debug_assert!(full * k * bpp + 4 <= sums.len() + bpp);
    debug_assert!(planes.iter().all(|p| p.len() >= full));
    let mask = _mm256_set1_epi64x(0xffff);
    let scale = _mm256_set1_ps(inv);
    // [a0 b0 a1 b1 a2 b2 a3 b3] (a: boxes 0..4, b: boxes 4..8) back to box order.
    let order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    let mut shifts = [_mm_setzero_si128(); 3];
    for (s, &o) in shifts.iter_mut().zip(&offsets) {
        *s = _mm_cvtsi32_si128(16 * o as i32);
    }
    let outs = [
        planes[0].as_mut_ptr(),
        planes[1].as_mut_ptr(),
        planes[2].as_mut_ptr(),
    ];
    // Boxes l = 0..4 of a group of four start `l·k` pixels (`l·k·bpp` u16) apart: one
    // four-lane 64-bit gather per pixel of the box (the lanes are the boxes; the adds do
    // not carry between 16-bit lanes, see box_planes_packed).
    let step = (k * bpp) as i32;
    let starts = _mm_setr_epi32(0, step, 2 * step, 3 * step);
    let mut x = 0;
    while x + 8 <= full {
        let pixels = sums.as_ptr().add(x * k * bpp) as *const i64;
        let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for j in 0..k {
            let first = (pixels as *const u16).add(j * bpp) as *const i64;
            let second = (pixels as *const u16).add((4 * k + j) * bpp) as *const i64;
            lo = _mm256_add_epi64(lo, _mm256_i32gather_epi64::<2>(first, starts));
            hi = _mm256_add_epi64(hi, _mm256_i32gather_epi64::<2>(second, starts));
        }
        for c in 0..3 {
            let a = _mm256_and_si256(_mm256_srl_epi64(lo, shifts[c]), mask);
            let b = _mm256_and_si256(_mm256_srl_epi64(hi, shifts[c]), mask);
            let ab = _mm256_or_si256(a, _mm256_slli_epi64::<32>(b));
            let v = _mm256_cvtepi32_ps(_mm256_permutevar8x32_epi32(ab, order));
            _mm256_storeu_ps(outs[c].add(x), _mm256_mul_ps(v, scale));
        }
        x += 8;
    }
    x
}

/// Means of the boxes of one or two lanes (`lanes`: 1 for luma and I420 chroma, 2 for
/// NV12's interleaved U, V: `a` and `b`) where a box spans an even number of u16 (`k·lanes`),
/// so whole boxes are whole u32 pairs of `sums`: the same values as [`box_windows`] and
/// [`box_lane`] (exact integer sums, then `sum as f32 · (1 / count)`), without the window
/// passes. With AVX2 eight boxes at a time by 32-bit gathers ([`box_pairs_avx2`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn box_pairs<const AVX2: bool>(
    sums: &[u16],
    lanes: usize,
    k: usize,
    (n, last): (usize, usize),
    rows: usize,
    a: &mut [f32],
    mut b: Option<&mut [f32]>,
) {
    debug_assert!((k * lanes).is_multiple_of(2) && (lanes == 1) == b.is_none());
    let full = if last == k { n } else { n - 1 };
    let stride = k * lanes;
    let inv = 1.0 / (k * rows) as f32;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if AVX2 && stride * full < i32::MAX as usize {
        assert!(full * stride <= sums.len() && a.len() >= full);
        // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked); the whole
        // boxes' pairs lie inside `sums` and the outputs inside `a` / `b` (asserted).
        done = unsafe { box_pairs_avx2(sums, stride, full, inv, a, b.as_deref_mut()) };
    }
    let lane_sum = |start: usize, count: usize| -> u32 {
        (0..count).map(|j| u32::from(sums[start + j * lanes])).sum()
    };
    for x in done..full {
        a[x] = lane_sum(x * stride, k) as f32 * inv;
        if let Some(b) = b.as_deref_mut() {
            b[x] = lane_sum(x * stride + 1, k) as f32 * inv;
        }
    }
    if full < n {
        let inv = 1.0 / (last * rows) as f32;
        a[full] = lane_sum(full * stride, last) as f32 * inv;
        if let Some(b) = b {
            b[full] = lane_sum(full * stride + 1, last) as f32 * inv;
        }
    }
}

/// [`box_pairs`]' whole boxes below `full`, eight at a time (returns how many it did):
/// the box sums of its u32 pairs as 32-bit adds (each half's sum stays below 2^16, so
/// the low half never carries into the high one), then the halves added (one lane) or
/// apart (two lanes), converted and scaled: the same integers, the same f32 products.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn box_pairs_avx2(
    sums: &[u16],
    stride: usize,
    full: usize,
    inv: f32,
    a: &mut [f32],
    b: Option<&mut [f32]>,
) -> usize {
    use std::arch::x86_64::*;
    let starts = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(stride as i32),
    );
    let (mask, scale) = (_mm256_set1_epi32(0xffff), _mm256_set1_ps(inv));
    let b = b.map(|b| b.as_mut_ptr());
    let mut x = 0;
    while x + 8 <= full {
        let first = sums.as_ptr().add(x * stride);
        let mut acc = _mm256_setzero_si256();
        for j in (0..stride).step_by(2) {
            let pairs = _mm256_i32gather_epi32::<2>(first.add(j) as *const i32, starts);
            acc = _mm256_add_epi32(acc, pairs);
        }
        // (No closure for the conversion: it would not inherit the AVX2 target feature.)
        let (lo, hi) = (_mm256_and_si256(acc, mask), _mm256_srli_epi32::<16>(acc));
        match b {
            Some(b) => {
                let (u, v) = (_mm256_cvtepi32_ps(lo), _mm256_cvtepi32_ps(hi));
                _mm256_storeu_ps(a.as_mut_ptr().add(x), _mm256_mul_ps(u, scale));
                _mm256_storeu_ps(b.add(x), _mm256_mul_ps(v, scale));
            }
            None => {
                let sum = _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi));
                _mm256_storeu_ps(a.as_mut_ptr().add(x), _mm256_mul_ps(sum, scale));
            }
        }
        x += 8;
    }
    x
}

impl RowSource for ReducedRows<'_, '_> {
    fn width(&self) -> usize {
        self.frame.width.div_ceil(self.kx)
    }
    fn height(&self) -> usize {
        self.frame.height.div_ceil(self.ky)
    }
    fn layout(&self) -> RowLayout {
        RowLayout::Planar
    }
    #[inline(always)]
    fn read_row<const AVX2: bool>(
        &self,
        y: usize,
        x0: usize,
        x1: usize,
        out: &mut [f32],
        scratch: &mut RowScratch,
    ) {
        let f = self.frame;
        let (kx, ky) = (self.kx, self.ky);
        let n = x1 - x0;
        let (r0, r1) = (y * ky, ((y + 1) * ky).min(f.height));
        let (c0, c1) = (x0 * kx, (x1 * kx).min(f.width));
        match f.format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let c = &self.coeffs;
                // Luma means into the R plane's place, chroma means after it.
                set_len(&mut scratch.conv, 3 * n);
                plane_column_sums(f, 0, (r0, r1), (c0, c1), &mut scratch.sums);
                let last = c1 - (x1 - 1) * kx;
                let luma = &mut scratch.conv[..n];
                if kx.is_multiple_of(2) {
                    box_pairs::<AVX2>(&scratch.sums, 1, kx, (n, last), r1 - r0, luma, None);
                } else {
                    let full = if last == kx { n } else { n - 1 };
                    box_windows(&scratch.sums, 1, kx, full, &mut scratch.boxes);
                    let (sums, win) = (&scratch.sums, &scratch.boxes.win);
                    box_lane::<AVX2>(sums, win, 1, 0, kx, (n, last), r1 - r0, luma);
                }
                // Chroma samples of the boxes' 2x2 blocks (k even: k/2 chroma columns a box,
                // the last one maybe fewer), or of the pixel's own block (k = 1).
                let (cr0, cr1) = (r0 / 2, (r1 - 1) / 2 + 1);
                let crows = cr1 - cr0;
                let (k0, k1) = if kx == 1 {
                    (x0 / 2, (x1 - 1) / 2 + 1)
                } else {
                    (c0 / 2, c1.div_ceil(2))
                };
                let (means, rest) = scratch.conv.split_at_mut(n);
                let (um, vm) = rest.split_at_mut(n);
                let chroma_last = k1 - (k0 + (n - 1) * (kx / 2));
                let planes: &[(usize, usize)] = if f.format == PixelFormat::I420 {
                    &[(1, 0), (2, 0)]
                } else {
                    &[(1, 0)]
                };
                for &(plane, _) in planes {
                    let lanes = if f.format == PixelFormat::I420 { 1 } else { 2 };
                    plane_column_sums(
                        f,
                        plane,
                        (cr0, cr1),
                        (k0 * lanes, k1 * lanes),
                        &mut scratch.chroma,
                    );
                    let sums = &scratch.chroma;
                    if kx == 1 {
                        let inv = 1.0 / crows as f32;
                        for i in 0..n {
                            let at = ((x0 + i) / 2 - k0) * lanes;
                            if lanes == 1 {
                                let dst = if plane == 1 { &mut um[i] } else { &mut vm[i] };
                                *dst = sums[at] as f32 * inv;
                            } else {
                                um[i] = sums[at] as f32 * inv;
                                vm[i] = sums[at + 1] as f32 * inv;
                            }
                        }
                    } else if (kx / 2 * lanes).is_multiple_of(2) {
                        let dims = (n, chroma_last);
                        if lanes == 1 {
                            let dst = if plane == 1 { &mut *um } else { &mut *vm };
                            box_pairs::<AVX2>(sums, 1, kx / 2, dims, crows, dst, None);
                        } else {
                            box_pairs::<AVX2>(sums, 2, kx / 2, dims, crows, um, Some(&mut *vm));
                        }
                    } else {
                        let (ck, full) = (kx / 2, if chroma_last == kx / 2 { n } else { n - 1 });
                        box_windows(sums, lanes, ck, full, &mut scratch.boxes);
                        let win = &scratch.boxes.win;
                        let dims = (n, chroma_last);
                        if lanes == 1 {
                            let dst = if plane == 1 { &mut *um } else { &mut *vm };
                            box_lane::<AVX2>(sums, win, 1, 0, ck, dims, crows, dst);
                        } else {
                            box_lane::<AVX2>(sums, win, 2, 0, ck, dims, crows, um);
                            box_lane::<AVX2>(sums, win, 2, 1, ck, dims, crows, vm);
                        }
                    }
                }
                let (rp, rest) = out[..3 * n].split_at_mut(n);
                let (gp, bp) = rest.split_at_mut(n);
                for i in 0..n {
                    let l = (means[i] - c.y_off) * c.y_scale;
                    let cb = (um[i] - 128.0) * c.c_scale;
                    let cr = (vm[i] - 128.0) * c.c_scale;
                    let terms = [c.rv * cr, c.gu * cb + c.gv * cr, c.bu * cb];
                    [rp[i], gp[i], bp[i]] = YuvCoeffs::rgb(l, terms);
                }
            }
            format => {
                // Every channel's means into its own plane (the alpha / padding byte skipped).
                let bpp = format.bytes_per_pixel().unwrap_or(1);
                plane_column_sums(f, 0, (r0, r1), (c0 * bpp, c1 * bpp), &mut scratch.sums);
                let last = c1 - (x1 - 1) * kx;
                let offsets = format.rgb_offsets().unwrap_or([0; 3]);
                if bpp == 3 || bpp == 4 {
                    // The slack element box_planes_packed reads after the last pixel.
                    scratch.sums.push(0);
                    let rows = r1 - r0;
                    box_planes_packed::<AVX2>(
                        &scratch.sums,
                        bpp,
                        kx,
                        (n, last),
                        rows,
                        offsets,
                        &mut out[..3 * n],
                    );
                    return;
                }
                let full = if last == kx { n } else { n - 1 };
                box_windows(&scratch.sums, bpp, kx, full, &mut scratch.boxes);
                let (sums, win) = (&scratch.sums, &scratch.boxes.win);
                for (c, plane) in out[..3 * n].chunks_exact_mut(n).enumerate() {
                    box_lane::<AVX2>(sums, win, bpp, offsets[c], kx, (n, last), r1 - r0, plane);
                }
            }
        }
    }
}

/// Destination region: `width x height` pixels at (`x`, `y`) of an interleaved RGB f32
/// image `stride` pixels wide, `pixel` floats a pixel (3: R, G, B; 4: R, G, B, 0); or, with
/// `planes`, of a planar tensor `stride` floats a row (`pixel` unused).
#[derive(Clone, Copy, Debug)]
struct Region {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
    stride: usize,
    pixel: usize,
    planes: Option<PlaneNorm>,
}

/// A destination that is the model's NCHW tensor itself, normalized as each value is
/// written: `(v − sub[c]) / div[c]`, the operations of [`write_tensor`] on the value it
/// would read from the image (the same bits; see the module docs, "Layout").
#[derive(Clone, Copy, Debug, PartialEq)]
struct PlaneNorm {
    /// Per image channel (R, G, B): the tensor plane it goes to, ...
    plane_of: [usize; 3],
    /// ... and its subtrahend and divisor.
    sub: [f32; 3],
    div: [f32; 3],
    /// Floats per plane.
    plane_len: usize,
}

impl PlaneNorm {
    /// Image channel `c`'s value `v` as the tensor holds it.
    #[inline(always)]
    fn normalize(&self, c: usize, v: f32) -> f32 {
        (v - self.sub[c]) / self.div[c]
    }
}

/// One destination row of a [`Region`].
enum RowOut<'d> {
    /// Interleaved pixels, `pixel` floats each.
    Pixels(&'d mut [f32], usize),
    /// The row in each tensor plane, by image channel (R, G, B), normalized.
    Planes([&'d mut [f32]; 3], PlaneNorm),
}

impl Region {
    /// The whole of a `width x height` interleaved RGB image.
    fn full(width: usize, height: usize) -> Self {
        Region {
            x: 0,
            y: 0,
            width,
            height,
            stride: width,
            pixel: 3,
            planes: None,
        }
    }

    /// Row `j` of the region in `dst`.
    fn row_out<'d>(&self, dst: &'d mut [f32], j: usize) -> RowOut<'d> {
        match self.planes {
            None => {
                let start = ((self.y + j) * self.stride + self.x) * self.pixel;
                RowOut::Pixels(&mut dst[start..start + self.width * self.pixel], self.pixel)
            }
            Some(p) => {
                let start = (self.y + j) * self.stride + self.x;
                let mut planes = dst.chunks_exact_mut(p.plane_len);
                let mut rows: [Option<&'d mut [f32]>; 3] = std::array::from_fn(|_| {
                    planes.next().map(|pl| &mut pl[start..start + self.width])
                });
                let rows = p
                    .plane_of
                    .map(|t| rows[t].take().expect("three distinct planes"));
                RowOut::Planes(rows, p)
            }
        }
    }
}

impl RowOut<'_> {
    /// Black (0 in every channel).
    fn fill_black(&mut self) {
        match self {
            RowOut::Pixels(row, _) => row.fill(0.0),
            RowOut::Planes(rows, p) => {
                for (c, row) in rows.iter_mut().enumerate() {
                    row.fill(p.normalize(c, 0.0));
                }
            }
        }
    }
}

fn set_len(v: &mut Vec<f32>, len: usize) {
    if v.len() != len {
        // Shrinking keeps the capacity; growing reallocates only beyond the capacity.
        v.resize(len, 0.0);
    }
}

/// Vertical pass for one destination row: `acc = T·r_0 + Σ_{k≥1} w_k·(r_k − r_0)` over
/// whole converted rows (element-wise, so it vectorizes and is layout-agnostic).
/// `row(k)` is tap row `k`.
#[inline(always)]
fn filter_v<'r>(ws: &[f32], total: f32, row: impl Fn(usize) -> &'r [f32], acc: &mut [f32]) {
    let n = acc.len();
    let r0 = &row(0)[..n];
    // Up to four taps (every downscale under 1.5x, as face crops are): one pass over the
    // row instead of one per tap, with the same operations in the same order per value
    // (`T·r0`, then `+ w_k·(r_k − r0)` for k = 1, 2, 3).
    if ws.len() <= 4 {
        let tap = |k: usize| {
            if k < ws.len() {
                (ws[k], &row(k)[..n])
            } else {
                (0.0, r0)
            }
        };
        let ((w1, r1), (w2, r2), (w3, r3)) = (tap(1), tap(2), tap(3));
        match ws.len() {
            4 => {
                for i in 0..n {
                    let p = r0[i];
                    acc[i] = total * p + w1 * (r1[i] - p) + w2 * (r2[i] - p) + w3 * (r3[i] - p);
                }
            }
            3 => {
                for i in 0..n {
                    let p = r0[i];
                    acc[i] = total * p + w1 * (r1[i] - p) + w2 * (r2[i] - p);
                }
            }
            2 => {
                for i in 0..n {
                    let p = r0[i];
                    acc[i] = total * p + w1 * (r1[i] - p);
                }
            }
            _ => {
                for (a, &p) in acc.iter_mut().zip(r0) {
                    *a = total * p;
                }
            }
        }
        return;
    }
    for (a, &x) in acc.iter_mut().zip(r0) {
        *a = total * x;
    }
    let mut k = 1;
    while k + 4 <= ws.len() {
        let (w1, w2, w3, w4) = (ws[k], ws[k + 1], ws[k + 2], ws[k + 3]);
        let (r1, r2, r3, r4) = (
            &row(k)[..n],
            &row(k + 1)[..n],
            &row(k + 2)[..n],
            &row(k + 3)[..n],
        );
        for i in 0..n {
            let p = r0[i];
            acc[i] += (w1 * (r1[i] - p) + w2 * (r2[i] - p)) + (w3 * (r3[i] - p) + w4 * (r4[i] - p));
        }
        k += 4;
    }
    while k < ws.len() {
        let w = ws[k];
        let r = &row(k)[..n];
        for i in 0..n {
            acc[i] += w * (r[i] - r0[i]);
        }
        k += 1;
    }
}

/// Output pixels per block of the horizontal pass (one AVX2 register of f32).
const BLOCK: usize = 8;

/// Horizontal pass for one destination row, [`BLOCK`] output pixels at a time: per
/// output and channel `T·p_0 + Σ_{k=1}^{max_len-1} w_k·(p_k − p_0)` over the span padded
/// to `max_len` taps (see [`AxisTable::block_index`]; a padding tap adds exactly 0),
/// summed in tap order. `planes`: R, G, B rows of source columns `table.lo..table.hi`,
/// `stride` floats apart (readable [`WINDOW`] floats past the last plane's `hi − lo`).
/// The AVX2 build takes the taps of eight outputs at once (in-register permutes where the
/// block's taps fit [`WINDOW`] columns, else gathers), performs the portable loop's f32
/// operations lane by lane (bit-identical results) and interleaves the eight pixels with
/// a transpose. `out`: `pixel` floats an output pixel (R, G, B, then 0 where `pixel` is 4).
#[inline(always)]
fn filter_h<const AVX2: bool>(
    planes: &[f32],
    stride: usize,
    table: &AxisTable,
    out: &mut RowOut,
    avx512: bool,
    blocks: std::ops::Range<usize>,
) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx512;
    let taps = table.max_len;
    debug_assert!(blocks.end <= table.spans.len().div_ceil(BLOCK));
    debug_assert!(planes.len() >= 2 * stride + table.hi - table.lo);
    debug_assert!(table.block_index.len() == table.spans.len().div_ceil(BLOCK) * taps * BLOCK);
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked), avx512
        // only where the CPU has AVX-512F and VL (Resampler::avx512); `planes` has
        // WINDOW floats of slack after its last plane (run_impl sizes it so; checked in
        // debug builds).
        unsafe {
            if avx512 {
                filter_h_avx512(planes, stride, table, out, blocks)
            } else {
                filter_h_avx2(planes, stride, table, out, blocks)
            }
        };
        return;
    }
    let mut px = [[0.0f32; BLOCK]; 3];
    for blk in blocks {
        let BlockTaps {
            first: j0,
            outputs: n,
            index,
            weights: ws,
            totals,
            ..
        } = table.block(blk);
        for (c, pc) in px.iter_mut().enumerate() {
            let plane = &planes[c * stride..(c + 1) * stride];
            for l in 0..BLOCK {
                let p0 = plane[index[l] as usize];
                let mut acc = 0.0f32;
                for k in 1..taps {
                    let i = k * BLOCK + l;
                    acc += ws[i] * (plane[index[i] as usize] - p0);
                }
                pc[l] = totals[l] * p0 + acc;
            }
        }
        match out {
            RowOut::Pixels(out, 4) => {
                for (l, o) in out[j0 * 4..(j0 + n) * 4].chunks_exact_mut(4).enumerate() {
                    o.copy_from_slice(&[px[0][l], px[1][l], px[2][l], 0.0]);
                }
            }
            RowOut::Pixels(out, _) => {
                for (l, o) in out[j0 * 3..(j0 + n) * 3].chunks_exact_mut(3).enumerate() {
                    o.copy_from_slice(&[px[0][l], px[1][l], px[2][l]]);
                }
            }
            RowOut::Planes(rows, p) => {
                for (c, row) in rows.iter_mut().enumerate() {
                    for (o, &v) in row[j0..j0 + n].iter_mut().zip(&px[c]) {
                        *o = p.normalize(c, v);
                    }
                }
            }
        }
    }
}

/// [`filter_h`]'s AVX2 build: the whole row's blocks in one call (each block's taps by
/// permutes or gathers, then a transpose into `out`), so that no per-block call remains
/// whatever the compiler decides to inline.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn filter_h_avx2(
    planes: &[f32],
    stride: usize,
    table: &AxisTable,
    out: &mut RowOut,
    blocks: std::ops::Range<usize>,
) {
    filter_h_simd::<false>(planes, stride, table, out, blocks);
}

/// [`filter_h_avx2`] where the CPU also has AVX-512F and VL: a window tap is one
/// two-register permute (`vpermt2ps`) instead of two permutes and a blend, the pass's
/// bottleneck on the shuffle port. The same values picked: the same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
#[inline]
unsafe fn filter_h_avx512(
    planes: &[f32],
    stride: usize,
    table: &AxisTable,
    out: &mut RowOut,
    blocks: std::ops::Range<usize>,
) {
    filter_h_simd::<true>(planes, stride, table, out, blocks);
}

/// The body of [`filter_h_avx2`] / [`filter_h_avx512`] (inlined into each).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn filter_h_simd<const AVX512: bool>(
    planes: &[f32],
    stride: usize,
    table: &AxisTable,
    out: &mut RowOut,
    blocks: std::ops::Range<usize>,
) {
    // The tap count as a constant for the common downscales of face crops (1.2x..2x:
    // 3 or 4 taps), so that the tap loop unrolls and its values stay in registers.
    match table.max_len {
        3 => filter_h_blocks::<AVX512, 3>(planes, stride, table, out, blocks),
        4 => filter_h_blocks::<AVX512, 4>(planes, stride, table, out, blocks),
        _ => filter_h_blocks::<AVX512, 0>(planes, stride, table, out, blocks),
    }
}

/// The body of [`filter_h_simd`]: `TAPS` taps a span, or `table.max_len` where 0.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn filter_h_blocks<const AVX512: bool, const TAPS: usize>(
    planes: &[f32],
    stride: usize,
    table: &AxisTable,
    out: &mut RowOut,
    blocks: std::ops::Range<usize>,
) {
    let taps = if TAPS > 0 { TAPS } else { table.max_len };
    debug_assert_eq!(taps, table.max_len);
    for blk in blocks {
        let b = table.block(blk);
        let (j0, n, ws, totals) = (b.first, b.outputs, b.weights, b.totals);
        // Every index is < hi − lo <= stride, inside its plane (checked in debug builds).
        debug_assert!(b.index.iter().all(|&i| (i as usize) < table.hi - table.lo));
        let rgb = if b.base >= 0 {
            // base + WINDOW <= hi − lo + WINDOW − 1 columns: inside `planes`' slack
            // after its last plane (checked in debug builds).
            debug_assert!(planes.len() >= 2 * stride + b.base as usize + WINDOW);
            block_h_window::<AVX512>(planes, stride, b.base as usize, b.rel, ws, totals, taps)
        } else {
            block_h_avx2(planes, stride, b.index, ws, totals, taps)
        };
        match out {
            RowOut::Pixels(out, pixel) => {
                let (out, pixel) = (&mut out[j0 * *pixel..], *pixel);
                if n == BLOCK && 7 * pixel + 4 <= out.len() {
                    store8_avx2(rgb, out.as_mut_ptr(), pixel);
                } else {
                    store_tail_avx2(rgb, out, n, pixel);
                }
            }
            RowOut::Planes(rows, p) => store_planes_avx2(rgb, rows, j0, n, p),
        }
    }
}

/// One block of [`filter_h`] with AVX2 gathers (same operations, same order): the R, G
/// and B values of its eight outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_h_avx2(
    planes: &[f32],
    stride: usize,
    index: &[i32],
    ws: &[f32],
    totals: &[f32; BLOCK],
    taps: usize,
) -> [std::arch::x86_64::__m256; 3] {
    use std::arch::x86_64::*;
    // Plain loops, no closures: a closure would not inherit the AVX2 target feature.
    let total = _mm256_loadu_ps(totals.as_ptr());
    let mut rgb = [_mm256_setzero_ps(); 3];
    for (c, v) in rgb.iter_mut().enumerate() {
        let base = planes.as_ptr().add(c * stride);
        let p0 = _mm256_i32gather_ps::<4>(base, _mm256_loadu_si256(index.as_ptr() as *const _));
        let mut acc = _mm256_setzero_ps();
        for k in 1..taps {
            let at = index.as_ptr().add(k * BLOCK) as *const __m256i;
            let x = _mm256_i32gather_ps::<4>(base, _mm256_loadu_si256(at));
            let w = _mm256_loadu_ps(ws.as_ptr().add(k * BLOCK));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(w, _mm256_sub_ps(x, p0)));
        }
        *v = _mm256_add_ps(_mm256_mul_ps(total, p0), acc);
    }
    rgb
}

/// [`block_h_avx2`] for a block whose taps lie within [`WINDOW`] columns from `base`:
/// the columns are two registers, a tap `rel` (0..16) picked from them by
/// [`window_pick`]. Picks the same values as the gathers: the same results. Inlined into
/// [`filter_h_avx2`] / [`filter_h_avx512`], whose target features it runs with.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_h_window<const AVX512: bool>(
    planes: &[f32],
    stride: usize,
    base: usize,
    rel: &[i32],
    ws: &[f32],
    totals: &[f32; BLOCK],
    taps: usize,
) -> [std::arch::x86_64::__m256; 3] {
    use std::arch::x86_64::*;
    let total = _mm256_loadu_ps(totals.as_ptr());
    let mut cols = [[_mm256_setzero_ps(); 2]; 3];
    for (c, v) in cols.iter_mut().enumerate() {
        let p = planes.as_ptr().add(c * stride + base);
        *v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))];
    }
    let i0 = _mm256_loadu_si256(rel.as_ptr() as *const __m256i);
    let mut p0 = [_mm256_setzero_ps(); 3];
    for c in 0..3 {
        p0[c] = window_pick::<AVX512>(cols[c], i0);
    }
    let mut acc = [_mm256_setzero_ps(); 3];
    for k in 1..taps {
        let ik = _mm256_loadu_si256(rel.as_ptr().add(k * BLOCK) as *const __m256i);
        let w = _mm256_loadu_ps(ws.as_ptr().add(k * BLOCK));
        for c in 0..3 {
            let x = window_pick::<AVX512>(cols[c], ik);
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(w, _mm256_sub_ps(x, p0[c])));
        }
    }
    let mut rgb = [_mm256_setzero_ps(); 3];
    for c in 0..3 {
        rgb[c] = _mm256_add_ps(_mm256_mul_ps(total, p0[c]), acc[c]);
    }
    rgb
}

/// The window's values at `idx` (0..16, see [`AxisTable::block_rel`]): with AVX-512VL one
/// two-register permute (`vpermt2ps`); with AVX2 a permute of each register and a blend on
/// bit 3 of each index (moved to the sign bit).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn window_pick<const AVX512: bool>(
    cols: [std::arch::x86_64::__m256; 2],
    idx: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    if AVX512 {
        return _mm256_permutex2var_ps(cols[0], idx, cols[1]);
    }
    _mm256_blendv_ps(
        _mm256_permutevar8x32_ps(cols[0], idx),
        _mm256_permutevar8x32_ps(cols[1], idx),
        _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)),
    )
}

/// Eight pixels given as R, G and B registers, interleaved into `out` (`pixel` floats a
/// pixel: R, G, B, or R, G, B, 0; room for `7·pixel + 4` floats): a 4x4 transpose per
/// 128-bit half (with a zero fourth channel) gives each pixel as one `R, G, B, 0` quad,
/// stored whole. With 3 floats a pixel a quad's fourth float lands on the next pixel's R,
/// which that pixel's store overwrites next.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store8_avx2([r, g, b]: [std::arch::x86_64::__m256; 3], out: *mut f32, pixel: usize) {
    use std::arch::x86_64::*;
    let z = _mm256_setzero_ps();
    let (rg_lo, rg_hi) = (_mm256_unpacklo_ps(r, g), _mm256_unpackhi_ps(r, g));
    let (bz_lo, bz_hi) = (_mm256_unpacklo_ps(b, z), _mm256_unpackhi_ps(b, z));
    // Pixels (0 | 4), (1 | 5), (2 | 6), (3 | 7) as [R G B 0 | R G B 0].
    let quads = [
        _mm256_shuffle_ps::<0x44>(rg_lo, bz_lo),
        _mm256_shuffle_ps::<0xEE>(rg_lo, bz_lo),
        _mm256_shuffle_ps::<0x44>(rg_hi, bz_hi),
        _mm256_shuffle_ps::<0xEE>(rg_hi, bz_hi),
    ];
    for (p, q) in quads.into_iter().enumerate() {
        _mm_storeu_ps(out.add(p * pixel), _mm256_castps256_ps128(q));
    }
    for (p, q) in quads.into_iter().enumerate() {
        _mm_storeu_ps(out.add((p + 4) * pixel), _mm256_extractf128_ps::<1>(q));
    }
}

/// Eight pixels as `R, G, B, 0` quads, pixels `k` and `k + 4` in register `k`, as R, G
/// and B registers (pixels 0..8 in lane order): [`store8_avx2`]'s transpose undone.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn transpose_quads_avx2(
    [q0, q1, q2, q3]: [std::arch::x86_64::__m256; 4],
) -> [std::arch::x86_64::__m256; 3] {
    use std::arch::x86_64::*;
    // [R0 R1 G0 G1 | R4 R5 G4 G5], [B0 B1 0 0 | B4 B5 0 0], and pixels 2, 3 | 6, 7 alike.
    let (rg01, b01) = (_mm256_unpacklo_ps(q0, q1), _mm256_unpackhi_ps(q0, q1));
    let (rg23, b23) = (_mm256_unpacklo_ps(q2, q3), _mm256_unpackhi_ps(q2, q3));
    [
        _mm256_shuffle_ps::<0x44>(rg01, rg23),
        _mm256_shuffle_ps::<0xEE>(rg01, rg23),
        _mm256_shuffle_ps::<0x44>(b01, b23),
    ]
}

/// Eight outputs (R, G and B registers) into `rows` (by image channel) from `j0` on, the
/// first `n` of them, normalized by `p`: a subtraction and a division per value, as
/// [`PlaneNorm::normalize`] (the same bits), and no transpose.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_planes_avx2(
    rgb: [std::arch::x86_64::__m256; 3],
    rows: &mut [&mut [f32]; 3],
    j0: usize,
    n: usize,
    p: &PlaneNorm,
) {
    use std::arch::x86_64::*;
    for (c, row) in rows.iter_mut().enumerate() {
        let v = _mm256_div_ps(
            _mm256_sub_ps(rgb[c], _mm256_set1_ps(p.sub[c])),
            _mm256_set1_ps(p.div[c]),
        );
        let row = &mut row[j0..j0 + n];
        if n == BLOCK {
            _mm256_storeu_ps(row.as_mut_ptr(), v);
        } else {
            // A row's last block: its first n lanes (a masked store writes nothing else).
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
            _mm256_maskstore_ps(row.as_mut_ptr(), mask, v);
        }
    }
}

/// The first `n` of eight pixels (R, G and B registers) into `out`, which ends after
/// them (a row's last block): [`store8_avx2`] into a buffer, then copied.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn store_tail_avx2(
    rgb: [std::arch::x86_64::__m256; 3],
    out: &mut [f32],
    n: usize,
    pixel: usize,
) {
    let mut buf = [0.0f32; 8 * 4];
    store8_avx2(rgb, buf.as_mut_ptr(), pixel);
    out[..n * pixel].copy_from_slice(&buf[..n * pixel]);
}

/// A vertically filtered row in [`RowLayout`] (`n` pixels) into three planes `stride`
/// floats apart.
#[inline(always)]
fn to_planes(src: &[f32], layout: RowLayout, n: usize, stride: usize, dst: &mut [f32]) {
    #[inline(always)]
    fn run<const L: usize>(src: &[f32], o: [usize; 3], n: usize, stride: usize, dst: &mut [f32]) {
        let (r, rest) = dst.split_at_mut(stride);
        let (g, b) = rest.split_at_mut(stride);
        for (((p, r), g), b) in src
            .chunks_exact(L)
            .zip(&mut r[..n])
            .zip(&mut g[..n])
            .zip(&mut b[..n])
        {
            *r = p[o[0]];
            *g = p[o[1]];
            *b = p[o[2]];
        }
    }
    match layout {
        RowLayout::Planar => {
            for c in 0..3 {
                dst[c * stride..c * stride + n].copy_from_slice(&src[c * n..(c + 1) * n]);
            }
        }
        RowLayout::Interleaved { lanes, offsets } => match lanes {
            1 => {
                for c in 0..3 {
                    dst[c * stride..c * stride + n].copy_from_slice(&src[..n]);
                }
            }
            3 => run::<3>(src, offsets, n, stride, dst),
            4 => run::<4>(src, offsets, n, stride, dst),
            _ => unreachable!("unsupported lane count {lanes}"),
        },
    }
}

/// Anti-aliased tent-filter resampler (see the module docs) with reusable scratch space.
///
/// Pipeline per destination row: convert the source rows its vertical taps need (each
/// source row once, into a ring buffer of `max taps` rows, only the needed columns), the
/// vertical pass over whole rows, then the horizontal pass.
#[derive(Clone, Default)]
pub struct Resampler {
    h: AxisTable,
    v: AxisTable,
    /// Ring of converted source rows (row `y` in slot `y % v.max_len`).
    ring: Vec<f32>,
    /// Vertically filtered row (same layout as a converted row).
    acc: Vec<f32>,
    /// `acc` as padded R, G, B planes (the horizontal pass's input).
    planes: Vec<f32>,
    /// Row-reading temp space.
    scratch: RowScratch,
    /// Tests: skip the AVX2 build of the pipeline.
    portable_only: bool,
    /// Tests: skip the AVX-512 kernels (the AVX2 ones run instead).
    no_avx512: bool,
    /// Output columns `(start, end)` each output row of the next run needs (the others
    /// may be left as they were; a row with `start >= end` is skipped); empty: all.
    /// Taken (and so reset) by every run.
    row_columns: Vec<(usize, usize)>,
}

impl fmt::Debug for Resampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resampler")
            .field("h", &self.h.key)
            .field("v", &self.v.key)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// An empty resampler (scratch buffers grow on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Resamples `rect` of an interleaved RGB f32 image (`src_width x src_height`, tightly
    /// packed, 3 values per pixel) into `dst` (interleaved RGB, `dst_width x dst_height`,
    /// tightly packed), with the kernel and edge rules of the module docs.
    #[allow(clippy::too_many_arguments)]
    pub fn resample_rgb_f32(
        &mut self,
        src: &[f32],
        src_width: usize,
        src_height: usize,
        rect: SourceRect,
        dst: &mut [f32],
        dst_width: usize,
        dst_height: usize,
    ) -> Result<(), PreprocessError> {
        if src_width == 0 || src_height == 0 {
            return Err(PreprocessError::EmptyFrame {
                width: src_width,
                height: src_height,
            });
        }
        if dst_width == 0 || dst_height == 0 {
            return Err(PreprocessError::InvalidConfig(format!(
                "destination size must be non-zero, got {dst_width}x{dst_height}"
            )));
        }
        let src_len = src_width
            .checked_mul(src_height)
            .and_then(|v| v.checked_mul(3))
            .ok_or(PreprocessError::FrameTooLarge {
                width: src_width,
                height: src_height,
            })?;
        if src.len() != src_len {
            return Err(PreprocessError::BufferLength {
                what: "source image",
                expected: src_len,
                actual: src.len(),
            });
        }
        let dst_len = dst_width.saturating_mul(dst_height).saturating_mul(3);
        if dst.len() != dst_len {
            return Err(PreprocessError::BufferLength {
                what: "destination image",
                expected: dst_len,
                actual: dst.len(),
            });
        }
        rect.validate()?;
        let source = RgbF32Rows {
            data: src,
            width: src_width,
            height: src_height,
        };
        self.run(&source, rect, dst, Region::full(dst_width, dst_height));
        Ok(())
    }

    /// `rect` of a frame into `region` of `dst`, its large downscales reduced first when
    /// `reduce` (see [`reduce_factors`] and the module docs, "Large downscales").
    fn run_frame(
        &mut self,
        frame: &Frame,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
        reduce: bool,
    ) {
        let coeffs = YuvCoeffs::new(frame.colorimetry);
        let yuv = frame.format.is_yuv();
        let (kx, ky) = if reduce {
            reduce_factors(rect, region.width, region.height, yuv)
        } else {
            (1, 1)
        };
        if kx * ky > 1 {
            let source = ReducedRows {
                frame,
                coeffs,
                kx,
                ky,
            };
            let (fx, fy) = (kx as f64, ky as f64);
            let rect = SourceRect::new(rect.x / fx, rect.y / fy, rect.width / fx, rect.height / fy);
            self.run(&source, rect, dst, region);
            return;
        }
        let source = FrameRows { frame, coeffs };
        self.run(&source, rect, dst, region);
    }

    /// The core: `rect` of `src` into `region` of `dst`. `rect` must be validated.
    ///
    /// On x86_64 CPUs with AVX2 the same code is run compiled for AVX2 (wider auto-
    /// vectorization). Both builds do the same f32 operations in the same order (no FMA
    /// contraction, fixed summation order), so their results are bit-identical.
    fn run<S: RowSource>(&mut self, src: &S, rect: SourceRect, dst: &mut [f32], region: Region) {
        // Taken for this run only (the Vec goes back, cleared, to keep its capacity).
        let mut columns = std::mem::take(&mut self.row_columns);
        self.scratch.avx512 = self.avx512();
        debug_assert!(columns.is_empty() || columns.len() == region.height);
        #[cfg(target_arch = "x86_64")]
        if !self.portable_only && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above, and AVX-512F and VL where
            // avx512() says so.
            unsafe {
                if self.scratch.avx512 {
                    self.run_avx512(src, rect, dst, region, &columns)
                } else {
                    self.run_avx2(src, rect, dst, region, &columns)
                }
            };
        } else {
            self.run_impl::<false, S>(src, rect, dst, region, &columns);
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.run_impl::<false, S>(src, rect, dst, region, &columns);
        columns.clear();
        self.row_columns = columns;
    }

    /// Whether the AVX-512 kernels may run (AVX-512F and VL; not turned off by a test).
    pub(super) fn avx512(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            !self.no_avx512
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// [`run_avx2`](Self::run_avx2) compiled for AVX-512 as well: the element-wise loops
    /// (the vertical pass) sixteen lanes wide; the same operations (no FMA contraction), so
    /// the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    fn run_avx512<S: RowSource>(
        &mut self,
        src: &S,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
        columns: &[(usize, usize)],
    ) {
        self.run_impl::<true, S>(src, rect, dst, region, columns);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2<S: RowSource>(
        &mut self,
        src: &S,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
        columns: &[(usize, usize)],
    ) {
        self.run_impl::<true, S>(src, rect, dst, region, columns);
    }

    #[inline(always)]
    fn run_impl<const AVX2: bool, S: RowSource>(
        &mut self,
        src: &S,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
        columns: &[(usize, usize)],
    ) {
        if is_identity(src, rect, region) {
            self.copy_identity::<AVX2, S>(src, rect, dst, region);
            return;
        }
        self.h.update(src.width(), rect.x, rect.width, region.width);
        self.v
            .update(src.height(), rect.y, rect.height, region.height);
        let (hlo, hhi) = (self.h.lo, self.h.hi);
        if hlo >= hhi || self.v.lo >= self.v.hi {
            // No tap inside the frame: all black.
            for j in 0..region.height {
                region.row_out(dst, j).fill_black();
            }
            return;
        }

        let layout = src.layout();
        let n = hhi - hlo;
        let row_len = n * layout.floats_per_pixel();
        let cap = self.v.max_len;
        set_len(&mut self.ring, cap * row_len);
        // WINDOW floats of slack after the rows that filter_h reads: its permute path
        // loads WINDOW columns from a block's first tap, even in the last plane.
        set_len(&mut self.acc, row_len + WINDOW);
        let pstride = n;
        set_len(&mut self.planes, 3 * pstride + WINDOW);

        let avx512 = AVX2 && self.avx512();
        let fpp = layout.floats_per_pixel();
        let all_blocks = region.width.div_ceil(BLOCK);
        let ring = &mut self.ring;
        let mut next = 0usize; // first source row not converted yet
        for (j, span) in self.v.spans.iter().enumerate() {
            let mut d = region.row_out(dst, j);
            if span.len == 0 {
                d.fill_black();
                continue;
            }
            // The blocks of outputs this row needs, and the source columns (− lo) their
            // taps read: only those are filtered vertically.
            let (blocks, s0, s1) = match columns.get(j) {
                None => (0..all_blocks, 0, n),
                Some(&(c0, c1)) => {
                    let c1 = c1.min(region.width);
                    if c0 >= c1 {
                        continue;
                    }
                    let (b0, b1) = (c0 / BLOCK, c1.div_ceil(BLOCK));
                    let (s0, s1) = self
                        .h
                        .source_columns(b0 * BLOCK..(b1 * BLOCK).min(region.width));
                    (b0..b1, s0, s1)
                }
            };
            // Spans are monotonic: rows below span.start are never needed again.
            next = next.max(span.start);
            while next < span.start + span.len {
                let slot = next % cap;
                let out = &mut ring[slot * row_len..(slot + 1) * row_len];
                src.read_row::<AVX2>(next, hlo, hhi, out, &mut self.scratch);
                next += 1;
            }
            let ws = &self.v.weights[span.offset..span.offset + span.len];
            let ring: &[f32] = ring;
            let row = |k: usize| {
                let slot = (span.start + k) % cap;
                &ring[slot * row_len..(slot + 1) * row_len]
            };
            // filter_v is element-wise: a column range gives those columns' bits.
            if s0 == 0 && s1 == n {
                filter_v(ws, span.total, row, &mut self.acc[..row_len]);
            } else if layout == RowLayout::Planar {
                for p in 0..3 {
                    let cols = p * n + s0..p * n + s1;
                    let part = |k: usize| &row(k)[cols.clone()];
                    filter_v(ws, span.total, part, &mut self.acc[cols.clone()]);
                }
            } else {
                let cols = s0 * fpp..s1 * fpp;
                let part = |k: usize| &row(k)[cols.clone()];
                filter_v(ws, span.total, part, &mut self.acc[cols.clone()]);
            }
            if layout == RowLayout::Planar {
                // Already three planes n floats apart.
                filter_h::<AVX2>(&self.acc, n, &self.h, &mut d, avx512, blocks);
            } else {
                let (src_cols, planes) = (&self.acc[s0 * fpp..s1 * fpp], &mut self.planes[s0..]);
                to_planes(src_cols, layout, s1 - s0, pstride, planes);
                filter_h::<AVX2>(&self.planes, pstride, &self.h, &mut d, avx512, blocks);
            }
        }
    }

    /// The identity case of [`run_impl`](Self::run_impl) (see [`is_identity`]): every
    /// output pixel is its source pixel, converted (what the kernel's single tap of weight
    /// 1.0 and total 1.0 gives, bit for bit), so the rows are converted straight into the
    /// region, without the two passes. Never inlined: inlining a second copy of
    /// `read_row` into `run_impl` made the compiler give up inlining in the main path
    /// (whole frames measured 30 % slower); the AVX2 build goes through
    /// [`copy_identity_avx2`](Self::copy_identity_avx2), since a function that is not
    /// inlined does not inherit its caller's target features.
    #[inline(never)]
    fn copy_identity<const AVX2: bool, S: RowSource>(
        &mut self,
        src: &S,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
    ) {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: AVX2 == true only in the AVX2 build (CPU support checked).
            unsafe { self.copy_identity_avx2(src, rect, dst, region) };
            return;
        }
        self.copy_identity_impl::<false, S>(src, rect, dst, region);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn copy_identity_avx2<S: RowSource>(
        &mut self,
        src: &S,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
    ) {
        self.copy_identity_impl::<true, S>(src, rect, dst, region);
    }

    #[inline(always)]
    fn copy_identity_impl<const AVX2: bool, S: RowSource>(
        &mut self,
        src: &S,
        rect: SourceRect,
        dst: &mut [f32],
        region: Region,
    ) {
        let (x0, y0, w) = (rect.x as usize, rect.y as usize, region.width);
        let layout = src.layout();
        let row_len = w * layout.floats_per_pixel();
        set_len(&mut self.acc, row_len);
        let dst_stride = region.stride * region.pixel;
        for j in 0..region.height {
            if region.planes.is_some() {
                src.read_row::<AVX2>(y0 + j, x0, x0 + w, &mut self.acc, &mut self.scratch);
                let row = &self.acc[..row_len];
                let RowOut::Planes(mut rows, p) = region.row_out(dst, j) else {
                    unreachable!("a region with planes has planar rows")
                };
                // Loops with constant strides, so that they vectorize.
                #[inline(always)]
                fn put<const LANES: usize>(
                    out: &mut [f32],
                    row: &[f32],
                    offset: usize,
                    p: &PlaneNorm,
                    c: usize,
                ) {
                    for (o, px) in out.iter_mut().zip(row.chunks_exact(LANES)) {
                        *o = p.normalize(c, px[offset]);
                    }
                }
                for (c, out) in rows.iter_mut().enumerate() {
                    match layout {
                        RowLayout::Planar => put::<1>(out, &row[c * w..(c + 1) * w], 0, &p, c),
                        RowLayout::Interleaved { lanes: 1, .. } => put::<1>(out, row, 0, &p, c),
                        RowLayout::Interleaved { lanes: 3, offsets } => {
                            put::<3>(out, row, offsets[c], &p, c)
                        }
                        RowLayout::Interleaved { lanes: 4, offsets } => {
                            put::<4>(out, row, offsets[c], &p, c)
                        }
                        RowLayout::Interleaved { lanes, offsets } => {
                            for (o, px) in out.iter_mut().zip(row.chunks_exact(lanes)) {
                                *o = p.normalize(c, px[offsets[c]]);
                            }
                        }
                    }
                }
                continue;
            }
            let start = (region.y + j) * dst_stride + region.x * region.pixel;
            let out = &mut dst[start..start + w * region.pixel];
            let rgb = RowLayout::Interleaved {
                lanes: 3,
                offsets: [0, 1, 2],
            };
            if layout == rgb && region.pixel == 3 {
                // Converted rows already are R, G, B pixels: straight into the region.
                src.read_row::<AVX2>(y0 + j, x0, x0 + w, out, &mut self.scratch);
                continue;
            }
            src.read_row::<AVX2>(y0 + j, x0, x0 + w, &mut self.acc, &mut self.scratch);
            let row = &self.acc[..row_len];
            match (layout, region.pixel) {
                (RowLayout::Planar, pixel) => {
                    let (r, rest) = row.split_at(w);
                    let (g, b) = rest.split_at(w);
                    for (((o, &r), &g), &b) in out.chunks_exact_mut(pixel).zip(r).zip(g).zip(b) {
                        o[..3].copy_from_slice(&[r, g, b]);
                    }
                }
                (RowLayout::Interleaved { lanes, offsets }, pixel) => {
                    for (o, p) in out.chunks_exact_mut(pixel).zip(row.chunks_exact(lanes)) {
                        o[..3].copy_from_slice(&offsets.map(|c| p[c]));
                    }
                }
            }
            if region.pixel == 4 {
                for o in out.chunks_exact_mut(4) {
                    o[3] = 0.0;
                }
            }
        }
    }

    #[cfg(test)]
    fn fingerprint(&self) -> Vec<(usize, usize)> {
        vec![
            (self.h.spans.as_ptr() as usize, self.h.spans.capacity()),
            (self.h.weights.as_ptr() as usize, self.h.weights.capacity()),
            (self.v.spans.as_ptr() as usize, self.v.spans.capacity()),
            (self.v.weights.as_ptr() as usize, self.v.weights.capacity()),
            (self.ring.as_ptr() as usize, self.ring.capacity()),
            (self.acc.as_ptr() as usize, self.acc.capacity()),
            (self.planes.as_ptr() as usize, self.planes.capacity()),
            (
                self.scratch.conv.as_ptr() as usize,
                self.scratch.conv.capacity(),
            ),
            (
                self.scratch.sums.as_ptr() as usize,
                self.scratch.sums.capacity(),
            ),
            (
                self.scratch.chroma.as_ptr() as usize,
                self.scratch.chroma.capacity(),
            ),
            (
                self.scratch.boxes.win.as_ptr() as usize,
                self.scratch.boxes.win.capacity(),
            ),
            (
                self.scratch.boxes.pow[0].as_ptr() as usize,
                self.scratch.boxes.pow[0].capacity(),
            ),
            (
                self.scratch.boxes.pow[1].as_ptr() as usize,
                self.scratch.boxes.pow[1].capacity(),
            ),
        ]
    }
}

/// Whether `rect` of `src` into `region` is the identity: whole-pixel origin, the
/// region's size, inside the source. Every output pixel then has exactly one tap, its
/// source pixel, of weight 1.0 (see the module docs): a frame already at the model's size.
fn is_identity<S: RowSource>(src: &S, rect: SourceRect, region: Region) -> bool {
    let whole = |v: f64| v >= 0.0 && v.fract() == 0.0;
    whole(rect.x)
        && whole(rect.y)
        && rect.width == region.width as f64
        && rect.height == region.height as f64
        && rect.x + rect.width <= src.width() as f64
        && rect.y + rect.height <= src.height() as f64
}

/// One-shot whole-image resize of an interleaved RGB f32 image (allocates its scratch; use a
/// [`Resampler`] on hot paths). Same kernel as [`Preprocessor`].
pub fn resize_rgb_f32(
    src: &[f32],
    src_width: usize,
    src_height: usize,
    dst: &mut [f32],
    dst_width: usize,
    dst_height: usize,
) -> Result<(), PreprocessError> {
    Resampler::new().resample_rgb_f32(
        src,
        src_width,
        src_height,
        SourceRect::full(src_width.max(1), src_height.max(1)),
        dst,
        dst_width,
        dst_height,
    )
}

// ---------------------------------------------------------------------------------------
// Normalization / layout
// ---------------------------------------------------------------------------------------

/// FaceNet prewhiten statistics of `values`: `(mean, max(std, 1/sqrt(n)))`, population
/// std, accumulated in f64 (two passes). `values` must be non-empty.
pub fn prewhiten_stats(values: &[f32]) -> (f64, f64) {
    prewhiten_stats_impl(values)
}

/// [`prewhiten_stats`]: its sums by [`sum16_avx2`] where the CPU has AVX2, else by
/// [`prewhiten_sum16`] (the same sums in the same order).
#[inline(always)]
fn prewhiten_stats_impl(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        let mean = unsafe { sum16_avx2::<false>(values, 0.0) } / n;
        let var = unsafe { sum16_avx2::<true>(values, mean) } / n;
        return (mean, var.sqrt().max(1.0 / n.sqrt()));
    }
    let mean = prewhiten_sum16(values, |v| v as f64) / n;
    let var = prewhiten_sum16(values, |v| {
        let d = v as f64 - mean;
        d * d
    }) / n;
    (mean, var.sqrt().max(1.0 / n.sqrt()))
}

/// `Σ f(v)` over `values` as sixteen partial sums in a fixed order (a generic, not a
/// `dyn`, so the per-value function inlines), combined pairwise, then the tail: four
/// independent chains of additions in registers, where four sums were one register's
/// chain, each addition waiting on the previous one's latency.
#[inline(always)]
fn prewhiten_sum16(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; 16];
    let mut chunks = values.chunks_exact(16);
    for c in &mut chunks {
        for k in 0..16 {
            acc[k] += f(c[k]);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    combine16(acc, tail)
}

/// The sixteen partial sums of [`prewhiten_sum16`] and [`sum16_avx2`] combined pairwise
/// (eight, four, two, one), then the tail: one order for both, so one result.
#[inline(always)]
fn combine16(mut acc: [f64; 16], tail: f64) -> f64 {
    let mut width = 8;
    while width > 0 {
        for k in 0..width {
            acc[k] += acc[k + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// [`prewhiten_sum16`] with AVX2, for `v` (`SQUARES == false`) or
/// `(v − mean)²`: partial sum `k` in lane `k % 4` of register `k / 4`, each value's f64
/// operations as the portable loop's, the same combining order, so the same result. (The
/// compiler kept the portable loop in 128-bit registers.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn sum16_avx2<const SQUARES: bool>(values: &[f32], mean: f64) -> f64 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_pd(mean);
    let mut acc = [_mm256_setzero_pd(); 4];
    let mut chunks = values.chunks_exact(16);
    for c in &mut chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            let v = _mm256_cvtps_pd(_mm_loadu_ps(c.as_ptr().add(4 * j)));
            let term = if SQUARES {
                let d = _mm256_sub_pd(v, m);
                _mm256_mul_pd(d, d)
            } else {
                v
            };
            *a = _mm256_add_pd(*a, term);
        }
    }
    let mut lanes = [0.0f64; 16];
    for (j, a) in acc.iter().enumerate() {
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * j), *a);
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| {
            if SQUARES {
                let d = v as f64 - mean;
                d * d
            } else {
                v as f64
            }
        })
        .sum();
    combine16(lanes, tail)
}

/// Normalizes an interleaved RGB image (0..255) and writes it in the configured layout.
/// On x86_64 CPUs with AVX2 the same code runs compiled for AVX2 (twice the lanes for
/// the divisions; the same operations, so the same bits).
fn write_tensor(image: &[f32], cfg: &PreprocessConfig, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn write_tensor_avx2(image: &[f32], cfg: &PreprocessConfig, out: &mut [f32]) {
            write_tensor_impl(image, cfg, out);
        }
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { write_tensor_avx2(image, cfg, out) };
        return;
    }
    write_tensor_impl(image, cfg, out);
}

/// A frame already at the model's size, in a packed 8-bit RGB format, under fixed (or no)
/// normalization: the identity resample would make each byte its pixel's f32 value exactly,
/// so the tensor is written from the bytes a row chunk at a time, through a small f32
/// buffer that stays in the L1 cache instead of the whole f32 image: the same f32
/// operations as [`write_tensor`] (so the same bits) on half the memory, which matters in
/// a pipeline, where this runs right after the model has evicted it from the caches.
/// Returns `false` (nothing written) for other formats and for prewhitening, whose
/// statistics need the whole image.
fn write_tensor_from_bytes(frame: &Frame, cfg: &PreprocessConfig, out: &mut [f32]) -> bool {
    if frame.format.rgb_offsets().is_none() {
        return false;
    }
    let (sub, div) = match cfg.normalization {
        Normalization::None => ([0.0; 3], [1.0; 3]),
        Normalization::Fixed { mean, std } => (mean, std),
        Normalization::Prewhiten => return false,
    };
    let (sub, div) = tensor_order(cfg.channel_order, sub, div);
    let args = BytesToTensor {
        frame,
        order: cfg.channel_order,
        sub,
        div,
        layout: cfg.layout,
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn write_avx2(args: &BytesToTensor, out: &mut [f32]) {
            args.write(out);
        }
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { write_avx2(&args, out) };
        return true;
    }
    args.write(out);
    true
}

struct BytesToTensor<'a> {
    frame: &'a Frame<'a>,
    order: ChannelOrder,
    /// In tensor order.
    sub: [f32; 3],
    div: [f32; 3],
    layout: TensorLayout,
}

impl BytesToTensor<'_> {
    #[inline(always)]
    fn write(&self, out: &mut [f32]) {
        // The byte layout as constants, so that the widening loop vectorizes.
        match self.frame.format {
            PixelFormat::Rgb => self.write_as::<3, 0, 1, 2>(out),
            PixelFormat::Bgr => self.write_as::<3, 2, 1, 0>(out),
            PixelFormat::Rgba | PixelFormat::Rgbx => self.write_as::<4, 0, 1, 2>(out),
            PixelFormat::Bgra | PixelFormat::Bgrx => self.write_as::<4, 2, 1, 0>(out),
            PixelFormat::Xrgb | PixelFormat::Argb => self.write_as::<4, 1, 2, 3>(out),
            PixelFormat::Xbgr | PixelFormat::Abgr => self.write_as::<4, 3, 2, 1>(out),
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Gray8 => {
                unreachable!("write_tensor_from_bytes takes packed RGB formats only")
            }
        }
    }

    #[inline(always)]
    fn write_as<const BPP: usize, const R: usize, const G: usize, const B: usize>(
        &self,
        out: &mut [f32],
    ) {
        const CHUNK: usize = 256;
        let (w, h) = (self.frame.width, self.frame.height);
        let n = w * h;
        let mut rgb = [0.0f32; 3 * CHUNK];
        for y in 0..h {
            let start = y * self.frame.strides[0];
            let row = &self.frame.planes[0][start..start + w * BPP];
            for x0 in (0..w).step_by(CHUNK) {
                let x1 = (x0 + CHUNK).min(w);
                let bytes = &row[x0 * BPP..x1 * BPP];
                let rgb = &mut rgb[..3 * (x1 - x0)];
                if (BPP, R, G, B) == (3, 0, 1, 2) {
                    for (v, &byte) in rgb.iter_mut().zip(bytes) {
                        *v = f32::from(byte);
                    }
                } else {
                    for (v, p) in rgb.chunks_exact_mut(3).zip(bytes.chunks_exact(BPP)) {
                        v[0] = f32::from(p[R]);
                        v[1] = f32::from(p[G]);
                        v[2] = f32::from(p[B]);
                    }
                }
                let (a, b) = (y * w + x0, y * w + x1);
                match self.layout {
                    TensorLayout::Nchw => {
                        let (c0, rest) = out.split_at_mut(n);
                        let (c1, c2) = rest.split_at_mut(n);
                        normalize_planar(
                            rgb,
                            self.order,
                            self.sub,
                            self.div,
                            [&mut c0[a..b], &mut c1[a..b], &mut c2[a..b]],
                        );
                    }
                    TensorLayout::Nhwc => normalize_interleaved(
                        rgb,
                        self.order,
                        self.sub,
                        self.div,
                        &mut out[3 * a..3 * b],
                    ),
                }
            }
        }
    }
}

#[inline(always)]
fn write_tensor_impl(image: &[f32], cfg: &PreprocessConfig, out: &mut [f32]) {
    let (sub, div): ([f32; 3], [f32; 3]) = match cfg.normalization {
        Normalization::None => ([0.0; 3], [1.0; 3]),
        Normalization::Fixed { mean, std } => (mean, std),
        Normalization::Prewhiten => {
            let (m, s) = prewhiten_stats_impl(image);
            ([m as f32; 3], [s as f32; 3])
        }
    };
    let (sub, div) = tensor_order(cfg.channel_order, sub, div);
    match cfg.layout {
        TensorLayout::Nhwc => normalize_interleaved(image, cfg.channel_order, sub, div, out),
        TensorLayout::Nchw => {
            let n = image.len() / 3;
            let (c0, rest) = out.split_at_mut(n);
            let (c1, c2) = rest.split_at_mut(n);
            normalize_planar(image, cfg.channel_order, sub, div, [c0, c1, c2]);
        }
    }
}

/// Tensor channel t takes image (RGB) channel `channel_map(order)[t]`.
#[inline(always)]
fn channel_map(order: ChannelOrder) -> [usize; 3] {
    match order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    }
}

/// The subtrahends and divisors of the image channels in tensor order.
#[inline(always)]
fn tensor_order(order: ChannelOrder, sub: [f32; 3], div: [f32; 3]) -> ([f32; 3], [f32; 3]) {
    let map = channel_map(order);
    (map.map(|c| sub[c]), map.map(|c| div[c]))
}

/// Interleaved RGB pixels (0..255) into interleaved tensor pixels; `sub` and `div` in
/// tensor order.
#[inline(always)]
fn normalize_interleaved(
    image: &[f32],
    order: ChannelOrder,
    sub: [f32; 3],
    div: [f32; 3],
    out: &mut [f32],
) {
    let map = channel_map(order);
    for (o, p) in out.chunks_exact_mut(3).zip(image.chunks_exact(3)) {
        o[0] = (p[map[0]] - sub[0]) / div[0];
        o[1] = (p[map[1]] - sub[1]) / div[1];
        o[2] = (p[map[2]] - sub[2]) / div[2];
    }
}

/// Interleaved RGB pixels (0..255) into the three planes of the tensor; `sub` and `div` in
/// tensor order.
#[inline(always)]
fn normalize_planar(
    image: &[f32],
    order: ChannelOrder,
    sub: [f32; 3],
    div: [f32; 3],
    planes: [&mut [f32]; 3],
) {
    // The channel map as constants (not indices) so that the loop vectorizes.
    #[inline(always)]
    fn with_map<const BGR: bool>(
        image: &[f32],
        sub: [f32; 3],
        div: [f32; 3],
        [c0, c1, c2]: [&mut [f32]; 3],
    ) {
        let m = if BGR { [2, 1, 0] } else { [0, 1, 2] };
        for (((p, a), b), c) in image.chunks_exact(3).zip(c0).zip(c1).zip(c2) {
            *a = (p[m[0]] - sub[0]) / div[0];
            *b = (p[m[1]] - sub[1]) / div[1];
            *c = (p[m[2]] - sub[2]) / div[2];
        }
    }
    match order {
        ChannelOrder::Rgb => with_map::<false>(image, sub, div, planes),
        ChannelOrder::Bgr => with_map::<true>(image, sub, div, planes),
    }
}

// ---------------------------------------------------------------------------------------
// Preprocessor
// ---------------------------------------------------------------------------------------

/// Frame → tensor preprocessor with reusable scratch buffers (see the module docs).
#[derive(Clone)]
pub struct Preprocessor {
    config: PreprocessConfig,
    resampler: Resampler,
    /// Resampled (and padded) image, interleaved RGB, 0..255, tensor size.
    image: Vec<f32>,
    /// Whether `image` is the last tensor's (see [`Preprocessor::resampled_image`]).
    image_current: bool,
    /// Scratch space of [`Preprocessor::process_affine`].
    affine: affine::AffineScratch,
    /// Scratch space of [`Preprocessor::process_square_legacy_bilinear`].
    legacy: LegacyScratch,
}

/// Reusable tap tables and converted rows of the legacy bilinear resize.
#[derive(Clone, Debug, Default)]
struct LegacyScratch {
    xs: Vec<(usize, usize, f32)>,
    ys: Vec<(usize, usize, f32)>,
    rows: Vec<f32>,
    row_ids: [Option<usize>; 2],
    conv: Vec<f32>,
}

impl fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preprocessor")
            .field("config", &self.config)
            .field("resampler", &self.resampler)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    /// Validates `config` (non-zero size, finite means, finite positive stds) and allocates
    /// the tensor-sized scratch image.
    pub fn new(config: PreprocessConfig) -> Result<Self, PreprocessError> {
        config.validate()?;
        let image = vec![0.0; config.tensor_len()];
        Ok(Preprocessor {
            config,
            resampler: Resampler::new(),
            image,
            image_current: false,
            affine: affine::AffineScratch::default(),
            legacy: LegacyScratch::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// The resampled image behind the last tensor, before normalization: interleaved
    /// R,G,B (always RGB order), 0..255, `width x height` of the config (padding
    /// included). Empty where the last tensor was written without it: an NCHW tensor
    /// under a fixed normalization or none, whose values go straight from the resampler
    /// into the tensor (`process_affine`'s up-scaling and strongly anisotropic warps
    /// excepted), and a frame already at the model's size in a packed RGB format (from its
    /// bytes).
    pub fn resampled_image(&self) -> &[f32] {
        if self.image_current {
            &self.image
        } else {
            &[]
        }
    }

    /// The whole frame, per the configured [`Aspect`], into `out` (`len == tensor_len()`).
    pub fn process(&mut self, frame: &Frame, out: &mut [f32]) -> Result<(), PreprocessError> {
        self.check(frame, out)?;
        let (w, h) = (self.config.width, self.config.height);
        if (frame.width, frame.height) == (w, h)
            && write_tensor_from_bytes(frame, &self.config, out)
        {
            self.image_current = false;
            return Ok(());
        }
        let full = Region::full(w, h);
        let whole = SourceRect::full(frame.width, frame.height);
        match self.config.aspect {
            Aspect::Stretch => self.resample(frame, whole, full, out),
            Aspect::Crop => {
                let rect = crop_rect(frame.width, frame.height, w, h);
                self.resample(frame, rect, full, out)
            }
            Aspect::Pad => {
                let p = pad_placement(frame.width, frame.height, w, h);
                let region = Region {
                    x: p.x,
                    y: p.y,
                    width: p.width,
                    height: p.height,
                    ..full
                };
                if p.width != w || p.height != h {
                    // The bars: black, as the image or as the tensor holds it.
                    match self.direct_planes() {
                        Some(planes) => {
                            for c in 0..3 {
                                let t = planes.plane_of[c];
                                out[t * w * h..(t + 1) * w * h].fill(planes.normalize(c, 0.0));
                            }
                        }
                        None => self.image.fill(0.0),
                    }
                }
                self.resample(frame, whole, region, out)
            }
        }
        Ok(())
    }

    /// `src` (source pixel coordinates, may extend outside the frame: see the module docs)
    /// resampled to fill the whole tensor, ignoring [`Aspect`]; same normalization and
    /// layout as [`process`](Self::process).
    pub fn process_rect(
        &mut self,
        frame: &Frame,
        src: SourceRect,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check(frame, out)?;
        src.validate()?;
        let (w, h) = (self.config.width, self.config.height);
        self.resample(frame, src, Region::full(w, h), out);
        Ok(())
    }

    /// TensorFlow's legacy `resize_bilinear` (`align_corners = false`, `half_pixel_centers
    /// = false`) of the square of side `max(width, height)` whose top-left corner is the
    /// frame's, zero (black) where the square extends past the frame (bottom/right
    /// padding). Output index `i` samples the source at `i * side / size` (no half-pixel
    /// offset): `lo = floor`, `hi = min(side - 1, ceil)`, linear between them; no
    /// anti-aliasing. This is how face-api feeds its detector (`toBatchTensor(size,
    /// false)`), reproduced so detector scores match the network's training.
    pub fn process_square_legacy_bilinear(
        &mut self,
        frame: &Frame,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        self.check(frame, out)?;
        let (w, h) = (self.config.width, self.config.height);
        let side = frame.width.max(frame.height);
        let taps = |n: usize, taps: &mut Vec<(usize, usize, f32)>| {
            taps.clear();
            taps.extend((0..n).map(|i| {
                let src = i as f64 * side as f64 / n as f64;
                let lo = src.floor() as usize;
                let hi = (src.ceil() as usize).min(side - 1);
                (lo, hi, (src - lo as f64) as f32)
            }));
        };
        let legacy = &mut self.legacy;
        taps(w, &mut legacy.xs);
        taps(h, &mut legacy.ys);
        set_len(&mut self.image, w * h * 3);
        // Two converted source rows (each row once per frame: output rows only move down),
        // only the columns the taps reach; taps past the frame read black.
        let layout = row_layout(frame.format);
        let lanes = layout.floats_per_pixel();
        let cols = legacy
            .xs
            .last()
            .map_or(0, |&(_, hi, _)| (hi + 1).min(frame.width));
        set_len(&mut legacy.rows, 2 * cols * lanes);
        legacy.row_ids = [None; 2];
        let coeffs = YuvCoeffs::new(frame.colorimetry);
        let value = |row: &[f32], x: usize, c: usize| -> f32 {
            if x >= cols {
                return 0.0;
            }
            match layout {
                RowLayout::Planar => row[c * cols + x],
                RowLayout::Interleaved { lanes, offsets } => row[x * lanes + offsets[c]],
            }
        };
        for (oy, &(y0, y1, fy)) in legacy.ys.iter().enumerate() {
            for y in [y0, y1] {
                if y < frame.height && !legacy.row_ids.contains(&Some(y)) {
                    // Replace a row this output row does not need.
                    let slot = (0..2)
                        .find(|&k| !matches!(legacy.row_ids[k], Some(id) if id == y0 || id == y1))
                        .expect("two slots hold the two rows an output row needs");
                    let row = &mut legacy.rows[slot * cols * lanes..(slot + 1) * cols * lanes];
                    convert_row::<false>(frame, &coeffs, y, 0, cols, row, &mut legacy.conv, false);
                    legacy.row_ids[slot] = Some(y);
                }
            }
            let row_of = |y: usize| -> Option<&[f32]> {
                let slot = legacy.row_ids.iter().position(|id| *id == Some(y))?;
                Some(&legacy.rows[slot * cols * lanes..(slot + 1) * cols * lanes])
            };
            let (top_row, bottom_row) = (row_of(y0), row_of(y1));
            for (ox, &(x0, x1, fx)) in legacy.xs.iter().enumerate() {
                let o = (oy * w + ox) * 3;
                for c in 0..3 {
                    let px = |row: Option<&[f32]>, x: usize| row.map_or(0.0, |r| value(r, x, c));
                    let (tl, tr) = (px(top_row, x0), px(top_row, x1));
                    let (bl, br) = (px(bottom_row, x0), px(bottom_row, x1));
                    // TF's order: top and bottom rows across x, then between them down y.
                    let top = tl + (tr - tl) * fx;
                    let bottom = bl + (br - bl) * fx;
                    self.image[o + c] = top + (bottom - top) * fy;
                }
            }
        }
        self.finish_tensor(false, out);
        Ok(())
    }

    fn check(&self, frame: &Frame, out: &[f32]) -> Result<(), PreprocessError> {
        frame.validate()?;
        let expected = self.config.tensor_len();
        if out.len() != expected {
            return Err(PreprocessError::BufferLength {
                what: "output tensor",
                expected,
                actual: out.len(),
            });
        }
        Ok(())
    }

    /// `rect` of `frame` into `region` (of the image's size) of the tensor `out`: straight
    /// into it where [`direct_planes`](Self::direct_planes) allows, else through the image
    /// and [`write_tensor`] (the same bits either way).
    fn resample(&mut self, frame: &Frame, rect: SourceRect, region: Region, out: &mut [f32]) {
        let reduce = self.config.reduce;
        if let Some(planes) = self.direct_planes() {
            let region = Region {
                planes: Some(planes),
                ..region
            };
            self.resampler.run_frame(frame, rect, out, region, reduce);
            self.finish_tensor(true, out);
            return;
        }
        self.resampler
            .run_frame(frame, rect, &mut self.image, region, reduce);
        self.finish_tensor(false, out);
    }

    /// After a resample straight into the tensor `out` (`direct`) or into the image: the
    /// tensor from the image where it was not written yet, and whether the image is the
    /// tensor's ([`resampled_image`](Self::resampled_image)).
    fn finish_tensor(&mut self, direct: bool, out: &mut [f32]) {
        self.image_current = !direct;
        if !direct {
            write_tensor(&self.image, &self.config, out);
        }
    }

    /// The tensor as a [`Region`]'s planar destination ([`PlaneNorm`]): NCHW under a fixed
    /// normalization or none; prewhitening needs the whole image's statistics first.
    fn direct_planes(&self) -> Option<PlaneNorm> {
        let cfg = &self.config;
        if cfg.layout != TensorLayout::Nchw {
            return None;
        }
        let (sub, div) = match cfg.normalization {
            Normalization::None => ([0.0; 3], [1.0; 3]),
            Normalization::Fixed { mean, std } => (mean, std),
            Normalization::Prewhiten => return None,
        };
        // Tensor plane t holds image channel channel_map[t]; the map is a permutation.
        let map = channel_map(cfg.channel_order);
        let mut plane_of = [0; 3];
        for (t, &c) in map.iter().enumerate() {
            plane_of[c] = t;
        }
        Some(PlaneNorm {
            plane_of,
            sub,
            div,
            plane_len: cfg.width * cfg.height,
        })
    }

    #[cfg(test)]
    fn fingerprint(&self) -> Vec<(usize, usize)> {
        let mut v = self.resampler.fingerprint();
        v.push((self.image.as_ptr() as usize, self.image.capacity()));
        v.extend(self.affine.fingerprint());
        v
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Max abs error allowed against the f64 references, on the 0..255 scale.
    const TOL: f64 = 1e-3;

    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(super) fn byte(&mut self) -> u8 {
            (self.next() >> 56) as u8
        }
        pub(super) fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn random_rgb_f32(w: usize, h: usize, rng: &mut Rng) -> Vec<f32> {
        (0..w * h * 3)
            .map(|_| (rng.unit() * 255.0) as f32)
            .collect()
    }

    /// Direct, non-separable f64 implementation of the documented kernel: for each output
    /// pixel, 2-D tent weights over the sampling domain (frame extended with black to
    /// cover the rectangle), normalized by their total.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn naive_pixel(
        src: &[f32],
        sw: usize,
        sh: usize,
        rect: SourceRect,
        dw: usize,
        dh: usize,
        jx: usize,
        jy: usize,
    ) -> [f64; 3] {
        let sx = rect.width / dw as f64;
        let sy = rect.height / dh as f64;
        let rx = sx.max(1.0);
        let ry = sy.max(1.0);
        let cx = rect.x + (jx as f64 + 0.5) * sx;
        let cy = rect.y + (jy as f64 + 0.5) * sy;
        let dom_x = (
            rect.x.floor().min(0.0) as i64,
            (rect.x + rect.width).ceil().max(sw as f64) as i64,
        );
        let dom_y = (
            rect.y.floor().min(0.0) as i64,
            (rect.y + rect.height).ceil().max(sh as f64) as i64,
        );
        // Candidate range generously wider than the support, then filtered by |d| < r.
        let x_lo = ((cx - rx).floor() as i64 - 2).max(dom_x.0);
        let x_hi = ((cx + rx).ceil() as i64 + 2).min(dom_x.1 - 1);
        let y_lo = ((cy - ry).floor() as i64 - 2).max(dom_y.0);
        let y_hi = ((cy + ry).ceil() as i64 + 2).min(dom_y.1 - 1);
        let mut sum = 0.0;
        let mut acc = [0.0f64; 3];
        for iy in y_lo..=y_hi {
            let dy = (iy as f64 + 0.5 - cy).abs();
            if dy >= ry {
                continue;
            }
            for ix in x_lo..=x_hi {
                let dx = (ix as f64 + 0.5 - cx).abs();
                if dx >= rx {
                    continue;
                }
                let w = (1.0 - dx / rx) * (1.0 - dy / ry);
                sum += w;
                if ix >= 0 && iy >= 0 && (ix as usize) < sw && (iy as usize) < sh {
                    let p = (iy as usize * sw + ix as usize) * 3;
                    for c in 0..3 {
                        acc[c] += w * src[p + c] as f64;
                    }
                }
            }
        }
        assert!(sum > 0.0);
        acc.map(|a| a / sum)
    }

    /// Compares `resample_rgb_f32` with the naive reference on every output pixel
    /// (or `samples` random ones); returns the max abs error.
    fn check_against_naive(
        sw: usize,
        sh: usize,
        rect: SourceRect,
        dw: usize,
        dh: usize,
        samples: Option<usize>,
        rng: &mut Rng,
    ) -> f64 {
        let src = random_rgb_f32(sw, sh, rng);
        let mut dst = vec![f32::NAN; dw * dh * 3];
        Resampler::new()
            .resample_rgb_f32(&src, sw, sh, rect, &mut dst, dw, dh)
            .unwrap();
        let pixels: Vec<(usize, usize)> = match samples {
            None => (0..dh).flat_map(|y| (0..dw).map(move |x| (x, y))).collect(),
            Some(n) => {
                let mut v: Vec<_> = (0..n)
                    .map(|_| {
                        (
                            (rng.next() % dw as u64) as usize,
                            (rng.next() % dh as u64) as usize,
                        )
                    })
                    .collect();
                // Always include the corners (edge handling).
                v.extend([(0, 0), (dw - 1, 0), (0, dh - 1), (dw - 1, dh - 1)]);
                v
            }
        };
        let mut max_err = 0.0f64;
        for (x, y) in pixels {
            let want = naive_pixel(&src, sw, sh, rect, dw, dh, x, y);
            for c in 0..3 {
                let got = dst[(y * dw + x) * 3 + c] as f64;
                let err = (got - want[c]).abs();
                assert!(
                    err <= TOL,
                    "{sw}x{sh} {rect:?} -> {dw}x{dh}: pixel ({x},{y}) ch {c}: got {got}, want {}",
                    want[c]
                );
                max_err = max_err.max(err);
            }
        }
        max_err
    }

    /// The legacy bilinear resize against a per-pixel version of its definition (through
    /// `Frame::pixel_rgb`): bit-identical, for frames wider and taller than high, packed,
    /// planar and gray, sizes up and down.
    #[test]
    fn legacy_bilinear_matches_its_definition() {
        let mut rng = Rng(77);
        for (format, fw, fh, size) in [
            (PixelFormat::Nv12, 64usize, 38usize, 20usize),
            (PixelFormat::I420, 30, 52, 48),
            (PixelFormat::Rgb, 41, 17, 16),
            (PixelFormat::Bgrx, 9, 13, 32),
            (PixelFormat::Gray8, 25, 25, 7),
        ] {
            let planes: Vec<Vec<u8>> = (0..format.n_planes())
                .map(|p| {
                    let (row, rows) = format.plane_size(p, fw, fh).unwrap();
                    (0..row * rows).map(|_| rng.byte()).collect()
                })
                .collect();
            let mut frame = Frame::packed(format, fw, fh, &planes[0], 0);
            for (p, plane) in planes.iter().enumerate() {
                frame.planes[p] = plane;
                frame.strides[p] = format.plane_size(p, fw, fh).unwrap().0;
            }
            let config = PreprocessConfig {
                normalization: Normalization::None,
                ..PreprocessConfig::new(size, size)
            };
            let mut pre = Preprocessor::new(config).unwrap();
            let mut out = vec![0.0; pre.config().tensor_len()];
            pre.process_square_legacy_bilinear(&frame, &mut out)
                .unwrap();
            let side = fw.max(fh);
            let tap = |i: usize| {
                let src = i as f64 * side as f64 / size as f64;
                let lo = src.floor() as usize;
                (
                    lo,
                    (src.ceil() as usize).min(side - 1),
                    (src - lo as f64) as f32,
                )
            };
            let pixel = |x: usize, y: usize| {
                if x < fw && y < fh {
                    frame.pixel_rgb(x, y)
                } else {
                    [0.0; 3]
                }
            };
            for oy in 0..size {
                let (y0, y1, fy) = tap(oy);
                for ox in 0..size {
                    let (x0, x1, fx) = tap(ox);
                    for c in 0..3 {
                        let (tl, tr) = (pixel(x0, y0)[c], pixel(x1, y0)[c]);
                        let (bl, br) = (pixel(x0, y1)[c], pixel(x1, y1)[c]);
                        let top = tl + (tr - tl) * fx;
                        let bottom = bl + (br - bl) * fx;
                        let expect = top + (bottom - top) * fy;
                        let got = pre.resampled_image()[(oy * size + ox) * 3 + c];
                        assert_eq!(got, expect, "{format:?} {fw}x{fh}->{size} ({ox},{oy}) c{c}");
                    }
                }
            }
        }
    }

    #[test]
    fn resize_matches_naive_reference() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let cases: &[(usize, usize, usize, usize)] = &[
            (1, 1, 1, 1),
            (1, 1, 160, 160),
            (3, 5, 160, 160),
            (5, 3, 160, 160),
            (3, 5, 2, 2),
            (5, 3, 7, 4),
            (7, 160, 160, 160),
            (7, 160, 3, 11),
            (160, 7, 160, 160),
            (64, 48, 160, 160),
            (640, 480, 160, 160),
            (100, 80, 37, 53),
            (300, 200, 160, 96),
            (161, 97, 160, 160),
            (160, 160, 160, 160),
            (159, 161, 160, 160),
            (1000, 3, 17, 5),
        ];
        let mut worst = 0.0f64;
        for &(sw, sh, dw, dh) in cases {
            let e = check_against_naive(sw, sh, SourceRect::full(sw, sh), dw, dh, None, &mut rng);
            worst = worst.max(e);
        }
        // Large frame: sample output pixels.
        let e = check_against_naive(
            4096,
            2160,
            SourceRect::full(4096, 2160),
            160,
            160,
            Some(300),
            &mut rng,
        );
        worst = worst.max(e);
        eprintln!("resize vs naive: max abs error {worst:e}");
    }

    #[test]
    fn resample_rects_match_naive_reference() {
        let mut rng = Rng(42);
        let cases: &[(usize, usize, SourceRect, usize, usize)] = &[
            // Inside the frame, fractional.
            (40, 30, SourceRect::new(3.25, 2.5, 20.5, 17.75), 16, 16),
            (40, 30, SourceRect::new(3.25, 2.5, 5.5, 4.0), 16, 12),
            // Crossing the frame borders (black outside).
            (40, 30, SourceRect::new(-10.5, -3.25, 50.0, 40.0), 16, 16),
            (40, 30, SourceRect::new(30.0, 20.0, 25.0, 25.0), 9, 13),
            (40, 30, SourceRect::new(-5.0, 10.0, 60.0, 5.0), 32, 8),
            (7, 5, SourceRect::new(-2.0, -2.0, 11.0, 9.0), 40, 30),
            // Entirely outside.
            (40, 30, SourceRect::new(100.0, 100.0, 10.0, 10.0), 8, 8),
            (40, 30, SourceRect::new(-30.0, 0.0, 10.0, 10.0), 8, 8),
        ];
        for &(sw, sh, rect, dw, dh) in cases {
            check_against_naive(sw, sh, rect, dw, dh, None, &mut rng);
        }
        // Entirely outside gives exact zeros.
        let src = random_rgb_f32(40, 30, &mut rng);
        let mut dst = vec![1.0; 8 * 8 * 3];
        Resampler::new()
            .resample_rgb_f32(
                &src,
                40,
                30,
                SourceRect::new(100.0, 100.0, 10.0, 10.0),
                &mut dst,
                8,
                8,
            )
            .unwrap();
        assert!(dst.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn resize_identity_and_constant() {
        let mut rng = Rng(7);
        for &(w, h) in &[(1, 1), (3, 5), (160, 160), (161, 97)] {
            let src = random_rgb_f32(w, h, &mut rng);
            let mut dst = vec![0.0; w * h * 3];
            resize_rgb_f32(&src, w, h, &mut dst, w, h).unwrap();
            assert_eq!(src, dst, "identity {w}x{h}");
        }
        // Constant image stays constant (weights sum to 1) for up- and downscales.
        for &(sw, sh, dw, dh) in &[(1, 1, 160, 160), (3, 5, 160, 160), (4000, 30, 160, 7)] {
            let src = vec![200.0f32; sw * sh * 3];
            let mut dst = vec![0.0; dw * dh * 3];
            resize_rgb_f32(&src, sw, sh, &mut dst, dw, dh).unwrap();
            assert!(dst.iter().all(|&v| (v - 200.0).abs() < 1e-3));
        }
        // Integer-offset rect at scale 1 is an exact copy of the sub-image.
        let (w, h) = (20, 10);
        let src = random_rgb_f32(w, h, &mut rng);
        let mut dst = vec![0.0; 8 * 4 * 3];
        Resampler::new()
            .resample_rgb_f32(
                &src,
                w,
                h,
                SourceRect::new(5.0, 3.0, 8.0, 4.0),
                &mut dst,
                8,
                4,
            )
            .unwrap();
        for y in 0..4 {
            for x in 0..8 {
                for c in 0..3 {
                    assert_eq!(dst[(y * 8 + x) * 3 + c], src[((y + 3) * w + x + 5) * 3 + c]);
                }
            }
        }
    }

    #[test]
    fn resampler_rejects_bad_input() {
        let mut r = Resampler::new();
        let src = vec![0.0; 12];
        let mut dst = vec![0.0; 12];
        let full = SourceRect::full(2, 2);
        assert!(matches!(
            r.resample_rgb_f32(&src, 2, 3, full, &mut dst, 2, 2),
            Err(PreprocessError::BufferLength { .. })
        ));
        assert!(matches!(
            r.resample_rgb_f32(&src, 2, 2, full, &mut dst, 3, 2),
            Err(PreprocessError::BufferLength { .. })
        ));
        assert!(r
            .resample_rgb_f32(&src, 0, 2, full, &mut dst, 2, 2)
            .is_err());
        assert!(r.resample_rgb_f32(&src, 2, 2, full, &mut [], 0, 2).is_err());
        for bad in [
            SourceRect::new(0.0, 0.0, 0.0, 1.0),
            SourceRect::new(0.0, 0.0, 1.0, -1.0),
            SourceRect::new(f64::NAN, 0.0, 1.0, 1.0),
            SourceRect::new(0.0, 0.0, f64::INFINITY, 1.0),
            SourceRect::new(0.0, 0.0, 1e9, 1.0),
            SourceRect::new(-1e12, 0.0, 1.0, 1.0),
        ] {
            assert!(matches!(
                r.resample_rgb_f32(&src, 2, 2, bad, &mut dst, 2, 2),
                Err(PreprocessError::InvalidSourceRect { .. })
            ));
        }
    }

    // ---------------------------------------------------------------- frames / formats

    /// Lays `rows` rows of `row_bytes` out with `stride`, padding filled with garbage and
    /// the last row unpadded (minimal valid length).
    fn lay_out(data: &[u8], row_bytes: usize, rows: usize, stride: usize) -> Vec<u8> {
        let mut v = vec![0xA5u8; stride * (rows - 1) + row_bytes];
        for r in 0..rows {
            v[r * stride..r * stride + row_bytes]
                .copy_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
        }
        v
    }

    /// Planes, strides and the expected RGB (f64) of a random frame of `format`.
    pub(super) struct TestFrame {
        pub(super) format: PixelFormat,
        pub(super) width: usize,
        pub(super) height: usize,
        pub(super) planes: Vec<Vec<u8>>,
        pub(super) strides: [usize; 3],
        pub(super) colorimetry: YuvColorimetry,
        pub(super) expected: Vec<[f64; 3]>,
    }

    impl TestFrame {
        pub(super) fn frame(&self) -> Frame<'_> {
            let mut planes: [&[u8]; 3] = [&[], &[], &[]];
            for (p, data) in self.planes.iter().enumerate() {
                planes[p] = data;
            }
            Frame {
                format: self.format,
                width: self.width,
                height: self.height,
                planes,
                strides: self.strides,
                colorimetry: self.colorimetry,
            }
        }
    }

    fn invert3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        let mut inv = [[0.0; 3]; 3];
        for (i, row) in inv.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                // Cofactor of m[j][i] (transpose = adjugate).
                let (r0, r1) = ([1, 0, 0][j], [2, 2, 1][j]);
                let (c0, c1) = ([1, 0, 0][i], [2, 2, 1][i]);
                let minor = m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
                let sign = if (i + j) % 2 == 0 { 1.0 } else { -1.0 };
                *v = sign * minor / det;
            }
        }
        inv
    }

    /// Independent YUV reference: invert the forward RGB → (Y, Pb, Pr) matrix numerically.
    fn yuv_reference(y: f64, u: f64, v: f64, c: YuvColorimetry) -> [f64; 3] {
        let (kr, kb) = match c.matrix {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        };
        let kg = 1.0 - kr - kb;
        let fwd = [
            [kr, kg, kb],
            [-0.5 * kr / (1.0 - kb), -0.5 * kg / (1.0 - kb), 0.5],
            [0.5, -0.5 * kg / (1.0 - kr), -0.5 * kb / (1.0 - kr)],
        ];
        let inv = invert3(fwd);
        let ypp = if c.full_range {
            [y / 255.0, (u - 128.0) / 255.0, (v - 128.0) / 255.0]
        } else {
            [(y - 16.0) / 219.0, (u - 128.0) / 224.0, (v - 128.0) / 224.0]
        };
        let mut rgb = [0.0; 3];
        for (i, out) in rgb.iter_mut().enumerate() {
            let lin: f64 = (0..3).map(|k| inv[i][k] * ypp[k]).sum();
            *out = (lin * 255.0).clamp(0.0, 255.0);
        }
        rgb
    }

    pub(super) fn make_frame(
        format: PixelFormat,
        width: usize,
        height: usize,
        pad: usize,
        colorimetry: YuvColorimetry,
        rng: &mut Rng,
    ) -> TestFrame {
        let mut planes = Vec::new();
        let mut strides = [0usize; 3];
        let mut expected = vec![[0.0f64; 3]; width * height];
        match format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                let ys: Vec<u8> = (0..width * height).map(|_| rng.byte()).collect();
                let us: Vec<u8> = (0..cw * ch).map(|_| rng.byte()).collect();
                let vs: Vec<u8> = (0..cw * ch).map(|_| rng.byte()).collect();
                for y in 0..height {
                    for x in 0..width {
                        let ci = (y / 2) * cw + x / 2;
                        expected[y * width + x] = yuv_reference(
                            ys[y * width + x] as f64,
                            us[ci] as f64,
                            vs[ci] as f64,
                            colorimetry,
                        );
                    }
                }
                strides[0] = width + pad;
                planes.push(lay_out(&ys, width, height, strides[0]));
                if format == PixelFormat::I420 {
                    strides[1] = cw + pad + 1;
                    strides[2] = cw + pad + 3;
                    planes.push(lay_out(&us, cw, ch, strides[1]));
                    planes.push(lay_out(&vs, cw, ch, strides[2]));
                } else {
                    let uv: Vec<u8> = us.iter().zip(&vs).flat_map(|(&u, &v)| [u, v]).collect();
                    strides[1] = 2 * cw + pad + 1;
                    planes.push(lay_out(&uv, 2 * cw, ch, strides[1]));
                }
            }
            PixelFormat::Gray8 => {
                let g: Vec<u8> = (0..width * height).map(|_| rng.byte()).collect();
                for (e, &v) in expected.iter_mut().zip(&g) {
                    *e = [v as f64; 3];
                }
                strides[0] = width + pad;
                planes.push(lay_out(&g, width, height, strides[0]));
            }
            _ => {
                let bpp = format.bytes_per_pixel().unwrap();
                // Independent table of the byte order, by name.
                let order: &[u8] = match format {
                    PixelFormat::Rgb => b"RGB",
                    PixelFormat::Bgr => b"BGR",
                    PixelFormat::Rgba => b"RGBA",
                    PixelFormat::Bgra => b"BGRA",
                    PixelFormat::Rgbx => b"RGBx",
                    PixelFormat::Bgrx => b"BGRx",
                    PixelFormat::Xrgb => b"xRGB",
                    PixelFormat::Xbgr => b"xBGR",
                    PixelFormat::Argb => b"ARGB",
                    PixelFormat::Abgr => b"ABGR",
                    _ => unreachable!(),
                };
                assert_eq!(order.len(), bpp);
                let mut bytes = vec![0u8; width * height * bpp];
                for (i, e) in expected.iter_mut().enumerate() {
                    let rgb = [rng.byte(), rng.byte(), rng.byte()];
                    *e = rgb.map(|v| v as f64);
                    for (k, &ch) in order.iter().enumerate() {
                        bytes[i * bpp + k] = match ch {
                            b'R' => rgb[0],
                            b'G' => rgb[1],
                            b'B' => rgb[2],
                            _ => rng.byte(), // alpha / padding: must be ignored
                        };
                    }
                }
                strides[0] = width * bpp + pad;
                planes.push(lay_out(&bytes, width * bpp, height, strides[0]));
            }
        }
        TestFrame {
            format,
            width,
            height,
            planes,
            strides,
            colorimetry,
            expected,
        }
    }

    pub(super) fn none_config(w: usize, h: usize) -> PreprocessConfig {
        PreprocessConfig {
            normalization: Normalization::None,
            layout: TensorLayout::Nhwc,
            ..PreprocessConfig::new(w, h)
        }
    }

    #[test]
    fn every_format_matches_reference_with_padded_strides() {
        let mut rng = Rng(99);
        let colorimetries = [
            YuvColorimetry::default(),
            YuvColorimetry {
                matrix: YuvMatrix::Bt709,
                full_range: false,
            },
            YuvColorimetry {
                matrix: YuvMatrix::Bt709,
                full_range: true,
            },
            YuvColorimetry {
                matrix: YuvMatrix::Bt2020,
                full_range: false,
            },
            YuvColorimetry {
                matrix: YuvMatrix::Bt601,
                full_range: true,
            },
        ];
        let mut worst = 0.0f64;
        for format in PixelFormat::ALL {
            for &(w, h) in &[(1, 1), (2, 2), (5, 3), (3, 5), (161, 97)] {
                for (ci, &col) in colorimetries.iter().enumerate() {
                    if ci > 0 && !format.is_yuv() {
                        break;
                    }
                    for pad in [0, 7] {
                        let tf = make_frame(format, w, h, pad, col, &mut rng);
                        let frame = tf.frame();
                        frame.validate().unwrap();
                        let mut pp = Preprocessor::new(none_config(w, h)).unwrap();
                        let mut out = vec![f32::NAN; w * h * 3];
                        pp.process(&frame, &mut out).unwrap();
                        for (i, want) in tf.expected.iter().enumerate() {
                            let px = frame.pixel_rgb(i % w, i / w);
                            for c in 0..3 {
                                let got = out[i * 3 + c];
                                // Pipeline at identity size == per-pixel conversion, exactly.
                                assert_eq!(got.to_bits(), px[c].to_bits());
                                let err = (got as f64 - want[c]).abs();
                                worst = worst.max(err);
                                if format.is_yuv() {
                                    assert!(
                                        err <= TOL,
                                        "{format:?} {col:?} {w}x{h} px {i} ch {c}: {got} vs {}",
                                        want[c]
                                    );
                                } else {
                                    assert_eq!(got as f64, want[c], "{format:?} px {i} ch {c}");
                                }
                            }
                        }
                    }
                }
            }
        }
        eprintln!("formats: max abs error vs reference {worst:e}");
    }

    #[test]
    fn identity_at_equal_size_is_bit_exact_for_every_format_and_aspect() {
        let mut rng = Rng(5);
        for format in PixelFormat::ALL {
            for &(w, h) in &[(17, 9), (160, 160)] {
                let tf = make_frame(format, w, h, 3, YuvColorimetry::default(), &mut rng);
                let frame = tf.frame();
                let want: Vec<f32> = (0..w * h)
                    .flat_map(|i| frame.pixel_rgb(i % w, i / w))
                    .collect();
                for aspect in [Aspect::Stretch, Aspect::Pad, Aspect::Crop] {
                    let cfg = PreprocessConfig {
                        aspect,
                        ..none_config(w, h)
                    };
                    let mut pp = Preprocessor::new(cfg).unwrap();
                    let mut out = vec![f32::NAN; w * h * 3];
                    pp.process(&frame, &mut out).unwrap();
                    assert!(
                        out.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{format:?} {w}x{h} {aspect:?} not bit-exact"
                    );
                    let mut out2 = vec![f32::NAN; w * h * 3];
                    pp.process_rect(&frame, SourceRect::full(w, h), &mut out2)
                        .unwrap();
                    assert_eq!(out, out2);
                }
            }
        }
    }

    /// Frames at the model's size in packed RGB formats go straight from their bytes to the
    /// tensor (`write_tensor_from_bytes`); `process_rect` over the whole frame still takes
    /// the two passes (identity resample, then `write_tensor`): the same bits for every
    /// layout, channel order and non-statistical normalization, rows wider than the
    /// widening chunk included.
    #[test]
    fn frames_at_the_models_size_go_from_bytes_to_the_tensor_bit_for_bit() {
        let mut rng = Rng(23);
        let fixed = Normalization::Fixed {
            mean: [122.782, 117.001, 104.298],
            std: [255.0, 58.4, 1.7],
        };
        for format in PixelFormat::ALL {
            if format.rgb_offsets().is_none() {
                continue;
            }
            for &(w, h) in &[(17, 9), (150, 150), (300, 2)] {
                let tf = make_frame(format, w, h, 5, YuvColorimetry::default(), &mut rng);
                let frame = tf.frame();
                for layout in [TensorLayout::Nchw, TensorLayout::Nhwc] {
                    for channel_order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                        for normalization in [Normalization::None, fixed] {
                            let cfg = PreprocessConfig {
                                layout,
                                channel_order,
                                normalization,
                                ..none_config(w, h)
                            };
                            let mut pp = Preprocessor::new(cfg.clone()).unwrap();
                            let mut direct = vec![f32::NAN; w * h * 3];
                            assert!(write_tensor_from_bytes(&frame, &cfg, &mut direct));
                            let mut fused = vec![f32::NAN; w * h * 3];
                            pp.process(&frame, &mut fused).unwrap();
                            let mut two_pass = vec![f32::NAN; w * h * 3];
                            pp.process_rect(&frame, SourceRect::full(w, h), &mut two_pass)
                                .unwrap();
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&direct),
                                bits(&two_pass),
                                "{format:?} {w}x{h} {layout:?} {channel_order:?} {normalization:?}"
                            );
                            assert_eq!(bits(&fused), bits(&two_pass));
                        }
                    }
                }
            }
        }
    }

    /// The module docs' "Large downscales", straight in f64: box means of the stored
    /// samples (bytes; Y, and the chroma samples of the boxes' 2x2 blocks), converted, then
    /// the resize kernel's naive reference on the reduced image.
    pub(super) fn reduced_reference(
        tf: &TestFrame,
        kx: usize,
        ky: usize,
    ) -> (Vec<f32>, usize, usize) {
        let (w, h) = (tf.width, tf.height);
        let (rw, rh) = (w.div_ceil(kx), h.div_ceil(ky));
        let byte = |p: usize, x: usize, y: usize| tf.planes[p][y * tf.strides[p] + x] as f64;
        let mean = |xs: (usize, usize), ys: (usize, usize), at: &dyn Fn(usize, usize) -> f64| {
            let mut sum = 0.0;
            for y in ys.0..ys.1 {
                for x in xs.0..xs.1 {
                    sum += at(x, y);
                }
            }
            sum / ((xs.1 - xs.0) * (ys.1 - ys.0)) as f64
        };
        let mut img = Vec::with_capacity(rw * rh * 3);
        for ry in 0..rh {
            for rx in 0..rw {
                let xs = (rx * kx, ((rx + 1) * kx).min(w));
                let ys = (ry * ky, ((ry + 1) * ky).min(h));
                let px = match tf.format {
                    PixelFormat::I420 | PixelFormat::Nv12 => {
                        let blocks = |r: (usize, usize)| (r.0 / 2, (r.1 - 1) / 2 + 1);
                        let (cx, cy) = (blocks(xs), blocks(ys));
                        let y = mean(xs, ys, &|x, y| byte(0, x, y));
                        let (u, v) = if tf.format == PixelFormat::I420 {
                            (
                                mean(cx, cy, &|x, y| byte(1, x, y)),
                                mean(cx, cy, &|x, y| byte(2, x, y)),
                            )
                        } else {
                            (
                                mean(cx, cy, &|x, y| byte(1, 2 * x, y)),
                                mean(cx, cy, &|x, y| byte(1, 2 * x + 1, y)),
                            )
                        };
                        yuv_reference(y, u, v, tf.colorimetry)
                    }
                    f => {
                        let bpp = f.bytes_per_pixel().unwrap();
                        let offsets = f.rgb_offsets().unwrap_or([0, 0, 0]);
                        offsets.map(|o| mean(xs, ys, &|x, y| byte(0, x * bpp + o, y)))
                    }
                };
                img.extend(px.map(|v| v as f32));
            }
        }
        (img, rw, rh)
    }

    #[test]
    fn large_downscales_reduce_boxes_first() {
        let mut rng = Rng(2026);
        let colorimetry = YuvColorimetry {
            matrix: YuvMatrix::Bt709,
            full_range: false,
        };
        // (frame, output, expected factors): partial boxes at the right and bottom edges,
        // odd sizes, factors forced even for YUV, one axis unreduced.
        let cases = [
            (163usize, 101usize, 20usize, 12usize),
            (250, 61, 30, 29),
            (97, 211, 10, 25),
        ];
        for format in PixelFormat::ALL {
            for &(w, h, ow, oh) in &cases {
                let tf = make_frame(format, w, h, 3, colorimetry, &mut rng);
                let yuv = format.is_yuv();
                let kx = ReducedRows::factor(w as f64, ow, yuv);
                let ky = ReducedRows::factor(h as f64, oh, yuv);
                assert!(kx * ky > 1, "{w}x{h} -> {ow}x{oh} is reduced");
                let (img, rw, rh) = reduced_reference(&tf, kx, ky);
                let rect = SourceRect::new(0.0, 0.0, w as f64 / kx as f64, h as f64 / ky as f64);
                let compare = |out: &[f32], img: &[f32], rw, rh, rect, what: &str| {
                    for y in 0..oh {
                        for x in 0..ow {
                            let want = naive_pixel(img, rw, rh, rect, ow, oh, x, y);
                            for c in 0..3 {
                                let got = out[(y * ow + x) * 3 + c] as f64;
                                assert!(
                                    (got - want[c]).abs() <= TOL,
                                    "{format:?} {w}x{h} -> {ow}x{oh} {what} ({x},{y}) ch {c}: \
                                     got {got}, want {}",
                                    want[c]
                                );
                            }
                        }
                    }
                };
                let mut pp = Preprocessor::new(none_config(ow, oh)).unwrap();
                let mut out = vec![f32::NAN; ow * oh * 3];
                pp.process(&tf.frame(), &mut out).unwrap();
                compare(&out, &img, rw, rh, rect, &format!("(k {kx}x{ky})"));
                // A crop rectangle (fractional, partly outside) is reduced the same way.
                let rect = SourceRect::new(-3.5, 7.25, w as f64 * 0.8, h as f64 * 0.9);
                let (kx, ky) = (
                    ReducedRows::factor(rect.width, ow, yuv),
                    ReducedRows::factor(rect.height, oh, yuv),
                );
                let (fx, fy) = (kx as f64, ky as f64);
                let scaled =
                    SourceRect::new(rect.x / fx, rect.y / fy, rect.width / fx, rect.height / fy);
                let (img, rw, rh) = reduced_reference(&tf, kx, ky);
                pp.process_rect(&tf.frame(), rect, &mut out).unwrap();
                compare(
                    &out,
                    &img,
                    rw,
                    rh,
                    scaled,
                    &format!("rect {rect:?} (k {kx}x{ky})"),
                );
            }
            // A frame smaller than one box (a rectangle far larger than the frame): each
            // axis is a single partial box, no whole one (found by fuzzing the aligner).
            let tf = make_frame(format, 7, 5, 1, colorimetry, &mut rng);
            let rect = SourceRect::new(-1.0, -2.0, 44.0, 36.0);
            let (kx, ky) = reduce_factors(rect, 2, 2, format.is_yuv());
            assert!(kx > 7 && ky > 5, "{format:?}: {kx}x{ky}");
            let (img, rw, rh) = reduced_reference(&tf, kx, ky);
            let (fx, fy) = (kx as f64, ky as f64);
            let scaled =
                SourceRect::new(rect.x / fx, rect.y / fy, rect.width / fx, rect.height / fy);
            let mut pp = Preprocessor::new(none_config(2, 2)).unwrap();
            let mut out = vec![f32::NAN; 2 * 2 * 3];
            pp.process_rect(&tf.frame(), rect, &mut out).unwrap();
            for y in 0..2 {
                for x in 0..2 {
                    let want = naive_pixel(&img, rw, rh, scaled, 2, 2, x, y);
                    for c in 0..3 {
                        let got = out[(y * 2 + x) * 3 + c] as f64;
                        assert!(
                            (got - want[c]).abs() <= TOL,
                            "{format:?} one partial box ({x},{y}) ch {c}: got {got}, want {}",
                            want[c]
                        );
                    }
                }
            }
        }
        // Factors: floor(scale / 2), even for YUV, 1 below 4x.
        assert_eq!(ReducedRows::factor(1920.0, 160, false), 6);
        assert_eq!(ReducedRows::factor(1080.0, 160, false), 3);
        assert_eq!(ReducedRows::factor(1080.0, 160, true), 2);
        assert_eq!(ReducedRows::factor(639.0, 160, false), 1);
        // Off: the resize kernel on every pixel (exactly what the reference above is not).
        let tf = make_frame(PixelFormat::Rgb, 163, 101, 0, colorimetry, &mut rng);
        let exact = |reduce: bool| {
            let cfg = PreprocessConfig {
                reduce,
                ..none_config(20, 12)
            };
            let mut out = vec![0.0; 20 * 12 * 3];
            Preprocessor::new(cfg)
                .unwrap()
                .process(&tf.frame(), &mut out)
                .unwrap();
            out
        };
        let rgb: Vec<f32> = tf
            .expected
            .iter()
            .flat_map(|p| p.map(|v| v as f32))
            .collect();
        let off = exact(false);
        let want = naive_pixel(&rgb, 163, 101, SourceRect::full(163, 101), 20, 12, 7, 5);
        assert!((off[(5 * 20 + 7) * 3] as f64 - want[0]).abs() <= TOL);
        assert_ne!(off, exact(true));
    }

    #[test]
    fn yuv_downscale_matches_reference_pipeline() {
        // Colour conversion before filtering: compare with naive filter on reference RGB.
        let mut rng = Rng(11);
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let (w, h) = (161, 97);
            let tf = make_frame(format, w, h, 5, YuvColorimetry::default(), &mut rng);
            let rgb: Vec<f32> = tf
                .expected
                .iter()
                .flat_map(|p| p.map(|v| v as f32))
                .collect();
            let cfg = PreprocessConfig {
                reduce: false,
                ..none_config(40, 30)
            };
            let mut pp = Preprocessor::new(cfg).unwrap();
            let mut out = vec![0.0; 40 * 30 * 3];
            pp.process(&tf.frame(), &mut out).unwrap();
            for y in 0..30 {
                for x in 0..40 {
                    let want = naive_pixel(&rgb, w, h, SourceRect::full(w, h), 40, 30, x, y);
                    for c in 0..3 {
                        assert!((out[(y * 40 + x) * 3 + c] as f64 - want[c]).abs() < 2e-3);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- normalization

    fn rgb_frame(w: usize, h: usize, data: &[u8]) -> Frame<'_> {
        Frame::packed(PixelFormat::Rgb, w, h, data, w * 3)
    }

    #[test]
    fn prewhiten_matches_direct_computation() {
        let mut rng = Rng(3);
        let (w, h) = (200, 150);
        let data: Vec<u8> = (0..w * h * 3).map(|_| rng.byte()).collect();
        let frame = rgb_frame(w, h, &data);
        let mut raw = vec![0.0; 160 * 160 * 3];
        Preprocessor::new(none_config(160, 160))
            .unwrap()
            .process(&frame, &mut raw)
            .unwrap();
        let cfg = PreprocessConfig {
            normalization: Normalization::Prewhiten,
            ..none_config(160, 160)
        };
        let mut pw = vec![0.0; 160 * 160 * 3];
        Preprocessor::new(cfg)
            .unwrap()
            .process(&frame, &mut pw)
            .unwrap();
        let n = raw.len() as f64;
        let mean = raw.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (raw.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let adj = std.max(1.0 / n.sqrt());
        for (&r, &p) in raw.iter().zip(&pw) {
            let want = (r as f64 - mean) / adj;
            assert!((p as f64 - want).abs() < 1e-4, "{p} vs {want}");
        }
        let (m2, s2) = prewhiten_stats(&raw);
        assert!((m2 - mean).abs() < 1e-9 && (s2 - adj).abs() < 1e-9);
        // Output is standardized.
        let om = pw.iter().map(|&v| v as f64).sum::<f64>() / n;
        let os = (pw.iter().map(|&v| (v as f64 - om).powi(2)).sum::<f64>() / n).sqrt();
        assert!(om.abs() < 1e-4 && (os - 1.0).abs() < 1e-4);
    }

    /// The AVX2 prewhiten sums against the portable ones, bit for bit, at lengths around
    /// the sixteen partial sums and a model's image.
    #[test]
    fn prewhiten_sums_simd_and_portable_are_bit_identical() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut rng = Rng(77);
            for len in [
                1usize,
                15,
                16,
                17,
                31,
                33,
                1000,
                3 * 160 * 160,
                3 * 160 * 160 + 7,
            ] {
                // Magnitudes and fractions wide apart, so that no sum is exact and a
                // different order would show in the last bits.
                let v: Vec<f32> = (0..len)
                    .map(|_| rng.byte() as f32 * 1000.0 + rng.byte() as f32 / 7.0)
                    .collect();
                let mean = prewhiten_sum16(&v, |x| x as f64) / len as f64;
                // SAFETY: the CPU supports AVX2, checked above.
                let simd = unsafe { sum16_avx2::<false>(&v, 0.0) };
                let sum = prewhiten_sum16(&v, |x| x as f64);
                assert_eq!(simd.to_bits(), sum.to_bits(), "sum, {len}");
                let squares = prewhiten_sum16(&v, |x| {
                    let d = x as f64 - mean;
                    d * d
                });
                // SAFETY: as above.
                let simd = unsafe { sum16_avx2::<true>(&v, mean) };
                assert_eq!(simd.to_bits(), squares.to_bits(), "squares, {len}");
            }
        }
    }

    #[test]
    fn prewhiten_uniform_frame_gives_finite_zeros() {
        for value in [0u8, 77, 255] {
            let data = vec![value; 50 * 40 * 3];
            let frame = rgb_frame(50, 40, &data);
            for aspect in [Aspect::Stretch, Aspect::Crop] {
                let cfg = PreprocessConfig {
                    aspect,
                    ..PreprocessConfig::new(160, 160)
                };
                let mut out = vec![f32::NAN; cfg.tensor_len()];
                Preprocessor::new(cfg)
                    .unwrap()
                    .process(&frame, &mut out)
                    .unwrap();
                assert!(out.iter().all(|&v| v == 0.0), "value {value} {aspect:?}");
            }
        }
        // Uniform YUV (grey) frame too.
        let (w, h) = (33, 21);
        let y = vec![120u8; w * h];
        let c = vec![128u8; w.div_ceil(2) * h.div_ceil(2)];
        let frame = Frame {
            format: PixelFormat::I420,
            width: w,
            height: h,
            planes: [&y, &c, &c],
            strides: [w, w.div_ceil(2), w.div_ceil(2)],
            colorimetry: YuvColorimetry::default(),
        };
        let mut out = vec![f32::NAN; 160 * 160 * 3];
        Preprocessor::new(PreprocessConfig::new(160, 160))
            .unwrap()
            .process(&frame, &mut out)
            .unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn fixed_none_channel_order_and_layouts() {
        let mut rng = Rng(8);
        let (w, h) = (64, 48);
        let data: Vec<u8> = (0..w * h * 3).map(|_| rng.byte()).collect();
        let frame = rgb_frame(w, h, &data);
        let (ow, oh) = (24, 16);
        let run = |layout, order, norm| {
            let cfg = PreprocessConfig {
                width: ow,
                height: oh,
                aspect: Aspect::Stretch,
                layout,
                channel_order: order,
                normalization: norm,
                reduce: false,
            };
            let mut out = vec![f32::NAN; cfg.tensor_len()];
            Preprocessor::new(cfg)
                .unwrap()
                .process(&frame, &mut out)
                .unwrap();
            out
        };
        let n = ow * oh;
        let raw = run(TensorLayout::Nhwc, ChannelOrder::Rgb, Normalization::None);
        // None: raw values, on the 0..255 scale.
        assert!(raw.iter().all(|&v| (0.0..=255.0).contains(&v)));

        // NCHW is the transpose of NHWC.
        let nchw = run(TensorLayout::Nchw, ChannelOrder::Rgb, Normalization::None);
        for i in 0..n {
            for c in 0..3 {
                assert_eq!(nchw[c * n + i], raw[i * 3 + c]);
            }
        }
        // BGR swaps channels 0 and 2.
        let bgr = run(TensorLayout::Nhwc, ChannelOrder::Bgr, Normalization::None);
        let bgr_nchw = run(TensorLayout::Nchw, ChannelOrder::Bgr, Normalization::None);
        for i in 0..n {
            for c in 0..3 {
                assert_eq!(bgr[i * 3 + c], raw[i * 3 + 2 - c]);
                assert_eq!(bgr_nchw[c * n + i], raw[i * 3 + 2 - c]);
            }
        }
        // Fixed: mean/std given in R,G,B order whatever the channel order.
        let mean = [123.675f32, 116.28, 103.53];
        let std = [58.395f32, 57.12, 57.375];
        let fixed = Normalization::Fixed { mean, std };
        let f_rgb = run(TensorLayout::Nhwc, ChannelOrder::Rgb, fixed);
        let f_bgr = run(TensorLayout::Nchw, ChannelOrder::Bgr, fixed);
        for i in 0..n {
            for c in 0..3 {
                let want = (raw[i * 3 + c] - mean[c]) / std[c];
                assert_eq!(f_rgb[i * 3 + c], want);
                // Tensor channel 2 - c of the BGR tensor is image channel c.
                assert_eq!(f_bgr[(2 - c) * n + i], want);
            }
        }
        // Prewhiten: NHWC/NCHW transposes, BGR swap.
        let p = run(
            TensorLayout::Nhwc,
            ChannelOrder::Rgb,
            Normalization::Prewhiten,
        );
        let p2 = run(
            TensorLayout::Nchw,
            ChannelOrder::Bgr,
            Normalization::Prewhiten,
        );
        for i in 0..n {
            for c in 0..3 {
                assert_eq!(p2[(2 - c) * n + i], p[i * 3 + c]);
            }
        }
    }

    // ---------------------------------------------------------------- aspect modes

    #[test]
    fn pad_leaves_black_borders_at_documented_place() {
        // 320x160 white frame into 160x160: content rows 40..120.
        let data = vec![255u8; 320 * 160 * 3];
        let frame = rgb_frame(320, 160, &data);
        let cfg = PreprocessConfig {
            aspect: Aspect::Pad,
            ..none_config(160, 160)
        };
        let mut pp = Preprocessor::new(cfg).unwrap();
        let mut out = vec![f32::NAN; 160 * 160 * 3];
        pp.process(&frame, &mut out).unwrap();
        assert_eq!(
            pad_placement(320, 160, 160, 160),
            PadPlacement {
                x: 0,
                y: 40,
                width: 160,
                height: 80
            }
        );
        for y in 0..160 {
            for x in 0..160 {
                for c in 0..3 {
                    let v = out[(y * 160 + x) * 3 + c];
                    if (40..120).contains(&y) {
                        assert!((v - 255.0).abs() < 1e-3, "({x},{y}) {v}");
                    } else {
                        assert_eq!(v, 0.0, "({x},{y})");
                    }
                }
            }
        }
        // Portrait: content columns 40..120; odd leftovers go right/bottom.
        let data = vec![255u8; 100 * 200 * 3];
        let frame = rgb_frame(100, 200, &data);
        pp.process(&frame, &mut out).unwrap();
        for y in 0..160 {
            for x in 0..160 {
                let v = out[(y * 160 + x) * 3];
                assert_eq!((40..120).contains(&x), v > 254.0, "({x},{y}) {v}");
            }
        }
        assert_eq!(
            pad_placement(333, 200, 160, 160),
            PadPlacement {
                x: 0,
                y: 32,
                width: 160,
                height: 96
            }
        );
        assert_eq!(pad_placement(1000, 1, 160, 160).height, 1);

        // Borders take part in the prewhiten statistics.
        let data = vec![200u8; 320 * 160 * 3];
        let frame = rgb_frame(320, 160, &data);
        let cfg = PreprocessConfig {
            aspect: Aspect::Pad,
            ..PreprocessConfig::new(160, 160)
        };
        let mut out = vec![f32::NAN; 160 * 160 * 3];
        Preprocessor::new(cfg)
            .unwrap()
            .process(&frame, &mut out)
            .unwrap();
        // Half the values are 200, half 0: mean 100, std 100.
        let border = out[0];
        let content = out[80 * 160 + 80]; // NCHW: R plane, pixel (80, 80)
        assert!((border + 1.0).abs() < 1e-4, "{border}");
        assert!((content - 1.0).abs() < 1e-4, "{content}");
    }

    #[test]
    fn crop_takes_the_centre() {
        let mut rng = Rng(21);
        let (w, h) = (320, 160);
        let data: Vec<u8> = (0..w * h * 3).map(|_| rng.byte()).collect();
        let frame = rgb_frame(w, h, &data);
        assert_eq!(
            crop_rect(w, h, 160, 160),
            SourceRect::new(80.0, 0.0, 160.0, 160.0)
        );
        let cfg = PreprocessConfig {
            aspect: Aspect::Crop,
            ..none_config(160, 160)
        };
        let mut pp = Preprocessor::new(cfg).unwrap();
        let mut out = vec![f32::NAN; 160 * 160 * 3];
        pp.process(&frame, &mut out).unwrap();
        // Scale 1 with integer origin: exact copy of columns 80..240.
        for y in 0..160 {
            for x in 0..160 {
                for c in 0..3 {
                    assert_eq!(
                        out[(y * 160 + x) * 3 + c],
                        data[(y * w + x + 80) * 3 + c] as f32
                    );
                }
            }
        }
        // Fractional crop == process_rect with the same rectangle; matches naive filter.
        let rect = crop_rect(333, 200, 160, 160);
        assert_eq!(rect, SourceRect::new(66.5, 0.0, 200.0, 200.0));
        assert_eq!(
            crop_rect(200, 333, 160, 80),
            SourceRect::new(0.0, 116.5, 200.0, 100.0)
        );
        let data: Vec<u8> = (0..333 * 200 * 3).map(|_| rng.byte()).collect();
        let frame = rgb_frame(333, 200, &data);
        let mut a = vec![0.0; 160 * 160 * 3];
        let mut b = vec![0.0; 160 * 160 * 3];
        pp.process(&frame, &mut a).unwrap();
        let mut pr = Preprocessor::new(none_config(160, 160)).unwrap();
        pr.process_rect(&frame, rect, &mut b).unwrap();
        assert_eq!(a, b);
        let rgb: Vec<f32> = data.iter().map(|&v| v as f32).collect();
        for &(x, y) in &[(0, 0), (159, 159), (80, 3), (5, 150)] {
            let want = naive_pixel(&rgb, 333, 200, rect, 160, 160, x, y);
            for c in 0..3 {
                assert!((a[(y * 160 + x) * 3 + c] as f64 - want[c]).abs() < TOL);
            }
        }
    }

    #[test]
    fn process_rect_matches_process_and_samples_black_outside() {
        let mut rng = Rng(31);
        let (w, h) = (120, 90);
        let data: Vec<u8> = (0..w * h * 4).map(|_| rng.byte()).collect();
        let frame = Frame::packed(PixelFormat::Bgrx, w, h, &data, w * 4);
        let cfg = PreprocessConfig::new(40, 40);
        let mut pp = Preprocessor::new(cfg.clone()).unwrap();
        let mut a = vec![0.0; cfg.tensor_len()];
        let mut b = vec![0.0; cfg.tensor_len()];
        pp.process(&frame, &mut a).unwrap();
        pp.process_rect(&frame, SourceRect::full(w, h), &mut b)
            .unwrap();
        assert_eq!(a, b);

        // Partially outside: compare with the naive reference on the converted image.
        let rgb: Vec<f32> = data
            .chunks_exact(4)
            .flat_map(|p| [p[2] as f32, p[1] as f32, p[0] as f32])
            .collect();
        let rect = SourceRect::new(-20.5, 50.25, 60.0, 70.0);
        let mut pr = Preprocessor::new(none_config(40, 40)).unwrap();
        let mut out = vec![0.0; 40 * 40 * 3];
        pr.process_rect(&frame, rect, &mut out).unwrap();
        for y in 0..40 {
            for x in 0..40 {
                let want = naive_pixel(&rgb, w, h, rect, 40, 40, x, y);
                for c in 0..3 {
                    assert!((out[(y * 40 + x) * 3 + c] as f64 - want[c]).abs() < TOL);
                }
            }
        }
        // Left columns far outside are black.
        assert_eq!(&out[..3], &[0.0, 0.0, 0.0]);
        // Invalid rect is an error.
        assert!(matches!(
            pr.process_rect(&frame, SourceRect::new(0.0, 0.0, -1.0, 5.0), &mut out),
            Err(PreprocessError::InvalidSourceRect { .. })
        ));
    }

    /// YUV rows through the AVX-512 converter (16-pixel blocks, an overlapping last block,
    /// odd first and last pixels, rows under 16 pixels) give the AVX2 and portable bits,
    /// for every start column and length up to 40 pixels.
    #[test]
    fn yuv_rows_convert_alike_at_every_simd_level() {
        let simd = |avx512: bool| {
            #[cfg(target_arch = "x86_64")]
            {
                std::arch::is_x86_feature_detected!("avx2")
                    && (!avx512 || std::arch::is_x86_feature_detected!("avx512f"))
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = avx512;
                false
            }
        };
        let mut rng = Rng(1601);
        for format in [PixelFormat::Nv12, PixelFormat::I420] {
            let tf = make_frame(format, 45, 4, 3, YuvColorimetry::default(), &mut rng);
            let frame = tf.frame();
            let coeffs = YuvCoeffs::new(frame.colorimetry);
            for y in 0..4 {
                for x0 in 0..4 {
                    for x1 in x0 + 1..=(x0 + 40).min(45) {
                        let n = x1 - x0;
                        let mut conv = Vec::new();
                        let mut want = vec![0.0f32; 3 * n];
                        convert_row::<false>(
                            &frame, &coeffs, y, x0, x1, &mut want, &mut conv, false,
                        );
                        for avx512 in [false, true] {
                            if !simd(avx512) {
                                continue;
                            }
                            let mut got = vec![f32::NAN; 3 * n];
                            #[cfg(target_arch = "x86_64")]
                            convert_row::<true>(
                                &frame, &coeffs, y, x0, x1, &mut got, &mut conv, avx512,
                            );
                            let bits =
                                |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&got),
                                bits(&want),
                                "{format:?} row {y} {x0}..{x1} {avx512}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn yuv_rects_with_odd_offsets_match_reference() {
        // Conversion of column ranges starting/ending at odd x (crop / face rects).
        let mut rng = Rng(123);
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let (w, h) = (37, 29);
            let col = YuvColorimetry {
                matrix: YuvMatrix::Bt709,
                full_range: false,
            };
            let tf = make_frame(format, w, h, 2, col, &mut rng);
            let rgb: Vec<f32> = tf
                .expected
                .iter()
                .flat_map(|p| p.map(|v| v as f32))
                .collect();
            let frame = tf.frame();
            let mut pp = Preprocessor::new(none_config(9, 7)).unwrap();
            let mut out = vec![0.0; 9 * 7 * 3];
            for rect in [
                SourceRect::new(3.0, 5.0, 9.0, 7.0),
                SourceRect::new(4.0, 2.0, 9.0, 7.0),
                SourceRect::new(5.5, 1.25, 20.0, 13.0),
                SourceRect::new(28.0, 22.0, 9.0, 7.0),
                SourceRect::new(-3.0, -1.0, 13.0, 9.0),
            ] {
                pp.process_rect(&frame, rect, &mut out).unwrap();
                for y in 0..7 {
                    for x in 0..9 {
                        let want = naive_pixel(&rgb, w, h, rect, 9, 7, x, y);
                        for c in 0..3 {
                            let got = out[(y * 9 + x) * 3 + c] as f64;
                            assert!((got - want[c]).abs() < 2e-3, "{format:?} {rect:?}");
                        }
                    }
                }
            }
        }
    }

    /// `(portable_only, no_avx512)` of the builds a SIMD test compares: portable first
    /// (the reference), then AVX2 alone, then everything the CPU has (AVX-512 kernels).
    pub(super) const SIMD_LEVELS: [(bool, bool); 3] =
        [(true, false), (false, true), (false, false)];

    #[test]
    fn simd_and_portable_builds_are_bit_identical() {
        let mut rng = Rng(4242);
        for format in PixelFormat::ALL {
            let tf = make_frame(format, 333, 201, 5, YuvColorimetry::default(), &mut rng);
            let frame = tf.frame();
            for (aspect, rect) in [
                (Aspect::Stretch, None),
                (Aspect::Pad, None),
                (Aspect::Crop, None),
                (
                    Aspect::Stretch,
                    Some(SourceRect::new(-20.5, 30.25, 150.0, 170.0)),
                ),
            ] {
                // Box reduction by 2 (64x48) and by 10 x 8 (16x12; 8-box blocks and tails);
                // mild downscales and an upscale (horizontal taps within filter_h's
                // permute window, and blocks that straddle it).
                for (w, h) in [(64, 48), (16, 12), (250, 160), (190, 120), (400, 300)] {
                    let cfg = PreprocessConfig {
                        aspect,
                        ..none_config(w, h)
                    };
                    let mut outs = Vec::new();
                    for (portable, no_avx512) in SIMD_LEVELS {
                        let mut pp = Preprocessor::new(cfg.clone()).unwrap();
                        pp.resampler.portable_only = portable;
                        pp.resampler.no_avx512 = no_avx512;
                        let mut out = vec![0.0f32; cfg.tensor_len()];
                        match rect {
                            None => pp.process(&frame, &mut out).unwrap(),
                            Some(r) => pp.process_rect(&frame, r, &mut out).unwrap(),
                        }
                        outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                    }
                    for o in &outs[1..] {
                        assert_eq!(&outs[0], o, "{format:?} {aspect:?} {rect:?} {w}x{h}");
                    }
                }
            }
        }
    }

    /// NCHW tensors under fixed (or no) normalization are written straight from the
    /// horizontal pass ([`PlaneNorm`]); NHWC ones still go through the image and
    /// `write_tensor`. The same bits, for every path into the tensor (the two passes, box
    /// reduction first, the identity copy, black outside the frame, pad bars), channel
    /// order and SIMD level.
    #[test]
    fn direct_planar_tensors_match_the_image_path() {
        let mut rng = Rng(777);
        let fixed = Normalization::Fixed {
            mean: [122.782, 117.001, 104.298],
            std: [58.395, 57.12, 255.0],
        };
        for format in [
            PixelFormat::Nv12,
            PixelFormat::I420,
            PixelFormat::Rgb,
            PixelFormat::Bgrx,
            PixelFormat::Gray8,
        ] {
            let tf = make_frame(format, 161, 97, 3, YuvColorimetry::default(), &mut rng);
            let frame = tf.frame();
            // (output size, aspect, rect): stretch, pad, crop, a rect partly outside the
            // frame, the identity (a rect of the output's size), an all-black rect, and
            // a large downscale (box-reduced first).
            let cases = [
                ((40, 30), Aspect::Stretch, None),
                ((40, 40), Aspect::Pad, None),
                ((40, 40), Aspect::Crop, None),
                (
                    (33, 21),
                    Aspect::Stretch,
                    Some(SourceRect::new(-20.5, 30.25, 70.0, 80.0)),
                ),
                (
                    (50, 40),
                    Aspect::Stretch,
                    Some(SourceRect::new(7.0, 3.0, 50.0, 40.0)),
                ),
                (
                    (16, 16),
                    Aspect::Stretch,
                    Some(SourceRect::new(500.0, 500.0, 20.0, 20.0)),
                ),
                ((12, 8), Aspect::Stretch, None),
            ];
            for ((w, h), aspect, rect) in cases {
                for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                    for normalization in [Normalization::None, fixed] {
                        let run = |layout, (portable, no_avx512): (bool, bool)| {
                            let cfg = PreprocessConfig {
                                aspect,
                                layout,
                                channel_order: order,
                                normalization,
                                ..PreprocessConfig::new(w, h)
                            };
                            let mut pp = Preprocessor::new(cfg.clone()).unwrap();
                            pp.resampler.portable_only = portable;
                            pp.resampler.no_avx512 = no_avx512;
                            // NaN: a value the direct path failed to write shows.
                            let mut out = vec![f32::NAN; cfg.tensor_len()];
                            match rect {
                                None => pp.process(&frame, &mut out).unwrap(),
                                Some(r) => pp.process_rect(&frame, r, &mut out).unwrap(),
                            }
                            out
                        };
                        let nhwc = run(TensorLayout::Nhwc, SIMD_LEVELS[0]);
                        let n = w * h;
                        let want: Vec<u32> = (0..3 * n)
                            .map(|i| nhwc[(i % n) * 3 + i / n].to_bits())
                            .collect();
                        for level in SIMD_LEVELS {
                            let nchw = run(TensorLayout::Nchw, level);
                            let got: Vec<u32> = nchw.iter().map(|v| v.to_bits()).collect();
                            assert!(
                                got == want,
                                "{format:?} {w}x{h} {aspect:?} {rect:?} {order:?} \
                                 {normalization:?} {level:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- validation

    #[test]
    fn validate_reports_errors_without_panicking() {
        let data = vec![0u8; 100];
        // Zero size.
        let f = Frame::packed(PixelFormat::Rgb, 0, 4, &data, 0);
        assert!(matches!(
            f.validate(),
            Err(PreprocessError::EmptyFrame { .. })
        ));
        let f = Frame::packed(PixelFormat::Rgb, 4, 0, &data, 12);
        assert!(matches!(
            f.validate(),
            Err(PreprocessError::EmptyFrame { .. })
        ));
        // Small stride.
        let f = Frame::packed(PixelFormat::Rgb, 4, 2, &data, 11);
        let e = f.validate().unwrap_err();
        assert_eq!(
            e,
            PreprocessError::StrideTooSmall {
                plane: 0,
                stride: 11,
                row_bytes: 12
            }
        );
        assert!(e.to_string().contains("plane 0"), "{e}");
        // Exact minimal length is fine, one byte less is not.
        let f = Frame::packed(PixelFormat::Rgbx, 4, 3, &data[..20 * 2 + 16], 20);
        f.validate().unwrap();
        let f = Frame::packed(PixelFormat::Rgbx, 4, 3, &data[..20 * 2 + 15], 20);
        let e = f.validate().unwrap_err();
        assert!(matches!(
            e,
            PreprocessError::PlaneTooSmall {
                plane: 0,
                len: 55,
                required: 56,
                ..
            }
        ));
        assert!(
            e.to_string().contains("55") && e.to_string().contains("56"),
            "{e}"
        );
        // Short chroma plane of I420 (5x3: chroma 3x2).
        let y = vec![0u8; 15];
        let u = vec![0u8; 6];
        let short = vec![0u8; 5];
        let mut f = Frame {
            format: PixelFormat::I420,
            width: 5,
            height: 3,
            planes: [&y, &u, &short],
            strides: [5, 3, 3],
            colorimetry: YuvColorimetry::default(),
        };
        let e = f.validate().unwrap_err();
        assert!(
            matches!(e, PreprocessError::PlaneTooSmall { plane: 2, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("plane 2"), "{e}");
        f.planes[2] = &u;
        f.validate().unwrap();
        f.strides[1] = 2;
        assert!(matches!(
            f.validate(),
            Err(PreprocessError::StrideTooSmall { plane: 1, .. })
        ));
        // Missing plane.
        f.strides[1] = 3;
        f.planes[1] = &[];
        assert!(matches!(
            f.validate(),
            Err(PreprocessError::PlaneTooSmall { plane: 1, .. })
        ));
        // NV12 UV plane is 2*ceil(w/2) wide.
        let uv = vec![0u8; 12];
        let f = Frame {
            format: PixelFormat::Nv12,
            width: 5,
            height: 3,
            planes: [&y, &uv, &[]],
            strides: [5, 5, 0],
            colorimetry: YuvColorimetry::default(),
        };
        assert!(matches!(
            f.validate(),
            Err(PreprocessError::StrideTooSmall {
                plane: 1,
                row_bytes: 6,
                ..
            })
        ));
        // Overflowing sizes.
        let f = Frame::packed(PixelFormat::Rgbx, usize::MAX / 2, 2, &data, usize::MAX);
        assert!(f.validate().is_err());
        let f = Frame::packed(PixelFormat::Gray8, 4, usize::MAX, &data, 1 << 40);
        assert!(f.validate().is_err());

        // process() reports frame and output errors.
        let mut pp = Preprocessor::new(PreprocessConfig::new(8, 8)).unwrap();
        let mut out = vec![0.0; 8 * 8 * 3];
        let bad = Frame::packed(PixelFormat::Rgb, 4, 4, &data[..10], 12);
        assert!(pp.process(&bad, &mut out).is_err());
        assert!(pp
            .process_rect(&bad, SourceRect::full(4, 4), &mut out)
            .is_err());
        let good = Frame::packed(PixelFormat::Rgb, 4, 4, &data[..48], 12);
        let e = pp.process(&good, &mut out[1..]).unwrap_err();
        assert!(matches!(
            e,
            PreprocessError::BufferLength {
                expected: 192,
                actual: 191,
                ..
            }
        ));
        pp.process(&good, &mut out).unwrap();
    }

    #[test]
    fn config_validation() {
        assert!(Preprocessor::new(PreprocessConfig::new(0, 160)).is_err());
        assert!(Preprocessor::new(PreprocessConfig::new(160, 0)).is_err());
        assert!(Preprocessor::new(PreprocessConfig::new(usize::MAX, 2)).is_err());
        for std in [
            [1.0, 0.0, 1.0],
            [1.0, -1.0, 1.0],
            [f32::NAN, 1.0, 1.0],
            [1.0, 1.0, f32::INFINITY],
        ] {
            let cfg = PreprocessConfig {
                normalization: Normalization::Fixed {
                    mean: [0.0; 3],
                    std,
                },
                ..PreprocessConfig::new(4, 4)
            };
            let e = Preprocessor::new(cfg).unwrap_err();
            assert!(e.to_string().contains("std"), "{e}");
        }
        let cfg = PreprocessConfig {
            normalization: Normalization::Fixed {
                mean: [0.0, f32::NAN, 0.0],
                std: [1.0; 3],
            },
            ..PreprocessConfig::new(4, 4)
        };
        assert!(Preprocessor::new(cfg).is_err());
        let cfg = PreprocessConfig::default();
        assert_eq!(cfg.tensor_len(), 3 * 160 * 160);
        assert_eq!(Preprocessor::new(cfg.clone()).unwrap().config(), &cfg);
    }

    #[test]
    fn format_metadata() {
        for f in PixelFormat::ALL {
            assert_eq!(
                f.is_yuv(),
                matches!(f, PixelFormat::I420 | PixelFormat::Nv12)
            );
            assert_eq!(
                f.n_planes(),
                match f {
                    PixelFormat::I420 => 3,
                    PixelFormat::Nv12 => 2,
                    _ => 1,
                }
            );
        }
        assert_eq!(PixelFormat::I420.plane_size(2, 5, 3), Some((3, 2)));
        assert_eq!(PixelFormat::Nv12.plane_size(1, 5, 3), Some((6, 2)));
        assert_eq!(PixelFormat::Bgrx.plane_size(0, 5, 3), Some((20, 3)));
        assert_eq!(PixelFormat::Bgrx.plane_size(1, 5, 3), None);
    }

    // ---------------------------------------------------------------- allocation

    #[test]
    fn steady_state_does_not_reallocate() {
        let mut rng = Rng(77);
        let tf = make_frame(
            PixelFormat::Nv12,
            321,
            241,
            3,
            YuvColorimetry::default(),
            &mut rng,
        );
        let tf2 = make_frame(
            PixelFormat::Nv12,
            321,
            241,
            3,
            YuvColorimetry::default(),
            &mut rng,
        );
        for aspect in [Aspect::Stretch, Aspect::Pad, Aspect::Crop] {
            let cfg = PreprocessConfig {
                aspect,
                ..PreprocessConfig::new(160, 160)
            };
            let mut pp = Preprocessor::new(cfg).unwrap();
            let mut out = vec![0.0; 160 * 160 * 3];
            pp.process(&tf.frame(), &mut out).unwrap();
            let fp = pp.fingerprint();
            let keys = (pp.resampler.h.key, pp.resampler.v.key);
            for i in 0..3 {
                let f = if i % 2 == 0 { tf2.frame() } else { tf.frame() };
                pp.process(&f, &mut out).unwrap();
                assert_eq!(pp.fingerprint(), fp, "{aspect:?}");
                assert_eq!((pp.resampler.h.key, pp.resampler.v.key), keys);
            }
        }
        // process_rect: same-size rects reuse the buffers too (after the first call).
        let mut pp = Preprocessor::new(PreprocessConfig::new(160, 160)).unwrap();
        let mut out = vec![0.0; 160 * 160 * 3];
        let frame = tf.frame();
        pp.process_rect(&frame, SourceRect::new(10.0, 10.0, 100.0, 120.0), &mut out)
            .unwrap();
        let fp = pp.fingerprint();
        pp.process_rect(&frame, SourceRect::new(30.5, 20.25, 100.0, 120.0), &mut out)
            .unwrap();
        assert_eq!(pp.fingerprint(), fp);
    }
}
