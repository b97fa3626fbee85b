//! Drawing on video frames in their own pixel format: filled and outlined rectangles,
//! dots and bitmap text, for the `faceoverlay` element. No GStreamer types: a [`Canvas`]
//! is plane slices, strides and a [`PixelFormat`].
//!
//! Coordinates are frame pixels (x right, y down; pixel `(x, y)` covers `[x, x+1) x
//! [y, y+1)`). Everything is clipped at the frame edges: shapes partly or wholly outside
//! the frame draw their visible part or nothing.
//!
//! Colours are given as RGB and written in the frame's format:
//! * packed RGB formats: the three colour bytes; an alpha byte (`ARGB`, `RGBA`, ...) is set
//!   to 255 (opaque) and a padding byte (`xRGB`, `RGBx`, ...) too;
//! * `I420`, `NV12`: Y'CbCr per the canvas's [`YuvColorimetry`] (matrix and range); luma
//!   is written per pixel, chroma for every 2x2 block the shape touches (so a 1-pixel line
//!   colours the chroma of the blocks it crosses);
//! * `GRAY8`: full-range luma with the colorimetry's matrix coefficients (BT.601 unless
//!   stated otherwise).
//!
//! Text uses an embedded 8x8 bitmap font (printable ASCII; other characters are drawn as
//! `?`) scaled by an integer factor.

mod font;

use std::fmt;

use crate::preprocess::{PixelFormat, YuvColorimetry};

/// An 8-bit RGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Rgb { r, g, b }
    }
}

/// Why a canvas cannot be made over the given planes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrawError {
    /// A plane's stride is below the bytes one row of the frame needs.
    StrideTooSmall {
        plane: usize,
        stride: usize,
        needed: usize,
    },
    /// A plane's slice is shorter than its rows need.
    PlaneTooSmall {
        plane: usize,
        len: usize,
        needed: usize,
    },
    /// The frame size overflows.
    TooLarge,
}

impl fmt::Display for DrawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrawError::StrideTooSmall {
                plane,
                stride,
                needed,
            } => write!(
                f,
                "plane {plane}: stride {stride} is below the {needed} bytes of a row"
            ),
            DrawError::PlaneTooSmall { plane, len, needed } => {
                write!(f, "plane {plane}: {len} bytes, the frame needs {needed}")
            }
            DrawError::TooLarge => write!(f, "frame size overflows"),
        }
    }
}

impl std::error::Error for DrawError {}

/// A colour as the bytes the canvas's format stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ink {
    /// One packed pixel (`len` of the 4 bytes used).
    Packed {
        bytes: [u8; 4],
        len: usize,
    },
    Yuv {
        y: u8,
        u: u8,
        v: u8,
    },
    Gray(u8),
}

fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// `(Y', Cb, Cr)` of `c` under `colorimetry`, as stored bytes.
pub fn rgb_to_yuv(c: Rgb, colorimetry: YuvColorimetry) -> (u8, u8, u8) {
    let (kr, kb) = colorimetry.matrix.kr_kb();
    let kg = 1.0 - kr - kb;
    let (r, g, b) = (
        f64::from(c.r) / 255.0,
        f64::from(c.g) / 255.0,
        f64::from(c.b) / 255.0,
    );
    let y = kr * r + kg * g + kb * b;
    let pb = (b - y) / (2.0 * (1.0 - kb));
    let pr = (r - y) / (2.0 * (1.0 - kr));
    if colorimetry.full_range {
        (
            to_u8(255.0 * y),
            to_u8(128.0 + 255.0 * pb),
            to_u8(128.0 + 255.0 * pr),
        )
    } else {
        (
            to_u8(16.0 + 219.0 * y),
            to_u8(128.0 + 224.0 * pb),
            to_u8(128.0 + 224.0 * pr),
        )
    }
}

/// Full-range luma of `c` with the matrix of `colorimetry` (what `GRAY8` stores).
pub fn rgb_to_gray(c: Rgb, colorimetry: YuvColorimetry) -> u8 {
    let (kr, kb) = colorimetry.matrix.kr_kb();
    let kg = 1.0 - kr - kb;
    to_u8(kr * f64::from(c.r) + kg * f64::from(c.g) + kb * f64::from(c.b))
}

/// Size in pixels of `text` drawn at `scale` (no background margin).
pub fn text_size(text: &str, scale: usize) -> (usize, usize) {
    let scale = scale.max(1);
    (
        text.chars().count() * font::SIZE * scale,
        font::SIZE * scale,
    )
}

/// Size in pixels of a label: `text` at `scale` on a background with a margin of
/// `scale` pixels on every side.
pub fn label_size(text: &str, scale: usize) -> (usize, usize) {
    let scale = scale.max(1);
    let (w, h) = text_size(text, scale);
    (w + 2 * scale, h + 2 * scale)
}

/// Where a `label_w x label_h` label goes for the box at `(box_x, box_y)`: left-aligned
/// with the box and just above it, moved inside the `frame_w x frame_h` frame when it
/// would leave it (so a box at the top edge gets its label over its own top rows). A
/// label larger than the frame starts at the frame's left / top edge.
pub fn label_origin(
    box_x: i64,
    box_y: i64,
    label_w: usize,
    label_h: usize,
    frame_w: usize,
    frame_h: usize,
) -> (i64, i64) {
    let max_x = (frame_w as i64 - label_w as i64).max(0);
    let max_y = (frame_h as i64 - label_h as i64).max(0);
    (
        box_x.clamp(0, max_x),
        box_y.saturating_sub(label_h as i64).clamp(0, max_y),
    )
}

/// A mutable view of one video frame.
pub struct Canvas<'a> {
    format: PixelFormat,
    width: usize,
    height: usize,
    planes: [&'a mut [u8]; 3],
    strides: [usize; 3],
    colorimetry: YuvColorimetry,
}

impl fmt::Debug for Canvas<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canvas")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("strides", &self.strides)
            .field("colorimetry", &self.colorimetry)
            .finish_non_exhaustive()
    }
}

impl<'a> Canvas<'a> {
    /// A canvas over `planes` (those the format does not use are ignored and may be
    /// empty) with `strides` bytes between rows. `colorimetry` picks the YUV conversion
    /// (and the `GRAY8` luma weights). Fails when a plane cannot hold the frame.
    pub fn new(
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: [&'a mut [u8]; 3],
        strides: [usize; 3],
        colorimetry: YuvColorimetry,
    ) -> Result<Self, DrawError> {
        for (plane, (data, &stride)) in planes
            .iter()
            .zip(&strides)
            .enumerate()
            .take(format.n_planes())
        {
            let (row_bytes, rows) = format
                .plane_size(plane, width, height)
                .ok_or(DrawError::TooLarge)?;
            if rows == 0 || row_bytes == 0 {
                continue;
            }
            if stride < row_bytes {
                return Err(DrawError::StrideTooSmall {
                    plane,
                    stride,
                    needed: row_bytes,
                });
            }
            let needed = stride
                .checked_mul(rows - 1)
                .and_then(|n| n.checked_add(row_bytes))
                .ok_or(DrawError::TooLarge)?;
            if data.len() < needed {
                return Err(DrawError::PlaneTooSmall {
                    plane,
                    len: data.len(),
                    needed,
                });
            }
        }
        Ok(Canvas {
            format,
            width,
            height,
            planes,
            strides,
            colorimetry,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    fn ink(&self, c: Rgb) -> Ink {
        match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let (y, u, v) = rgb_to_yuv(c, self.colorimetry);
                Ink::Yuv { y, u, v }
            }
            PixelFormat::Gray8 => Ink::Gray(rgb_to_gray(c, self.colorimetry)),
            format => {
                let len = format.bytes_per_pixel().unwrap_or(4);
                // Alpha (and padding) opaque.
                let mut bytes = [255u8; 4];
                if let Some([r, g, b]) = format.rgb_offsets() {
                    bytes[r] = c.r;
                    bytes[g] = c.g;
                    bytes[b] = c.b;
                }
                Ink::Packed { bytes, len }
            }
        }
    }

    /// Clips `[x, x+w) x [y, y+h)` to the frame: `(x0, y0, x1, y1)`, or `None` when
    /// nothing is left.
    fn clip(&self, x: i64, y: i64, w: i64, h: i64) -> Option<(usize, usize, usize, usize)> {
        if w <= 0 || h <= 0 {
            return None;
        }
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = x.saturating_add(w).min(self.width as i64);
        let y1 = y.saturating_add(h).min(self.height as i64);
        (x0 < x1 && y0 < y1).then_some((x0 as usize, y0 as usize, x1 as usize, y1 as usize))
    }

    /// Fills the `w x h` rectangle at `(x, y)`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        let Some(rect) = self.clip(x, y, w, h) else {
            return;
        };
        let ink = self.ink(color);
        self.fill_clipped(rect, ink);
    }

    fn fill_clipped(&mut self, (x0, y0, x1, y1): (usize, usize, usize, usize), ink: Ink) {
        match ink {
            Ink::Packed { bytes, len } => {
                let stride = self.strides[0];
                for row in y0..y1 {
                    let start = row * stride;
                    let line = &mut self.planes[0][start + x0 * len..start + x1 * len];
                    for px in line.chunks_exact_mut(len) {
                        px.copy_from_slice(&bytes[..len]);
                    }
                }
            }
            Ink::Gray(value) => fill_plane(
                &mut *self.planes[0],
                self.strides[0],
                (x0, y0, x1, y1),
                value,
            ),
            Ink::Yuv { y, u, v } => {
                fill_plane(&mut *self.planes[0], self.strides[0], (x0, y0, x1, y1), y);
                // Every 2x2 chroma block the rectangle touches.
                let chroma = (x0 / 2, y0 / 2, (x1 - 1) / 2 + 1, (y1 - 1) / 2 + 1);
                if self.format == PixelFormat::I420 {
                    fill_plane(&mut *self.planes[1], self.strides[1], chroma, u);
                    fill_plane(&mut *self.planes[2], self.strides[2], chroma, v);
                } else {
                    let (cx0, cy0, cx1, cy1) = chroma;
                    let stride = self.strides[1];
                    for row in cy0..cy1 {
                        let start = row * stride;
                        let line = &mut self.planes[1][start + 2 * cx0..start + 2 * cx1];
                        for px in line.chunks_exact_mut(2) {
                            px[0] = u;
                            px[1] = v;
                        }
                    }
                }
            }
        }
    }

    /// Outlines the `w x h` rectangle at `(x, y)` with lines `thickness` pixels wide,
    /// drawn inside the rectangle (a rectangle thinner than two lines is filled).
    pub fn rect_outline(&mut self, x: i64, y: i64, w: i64, h: i64, thickness: u32, color: Rgb) {
        if w <= 0 || h <= 0 {
            return;
        }
        let t = i64::from(thickness.max(1));
        if 2 * t >= w || 2 * t >= h {
            self.fill_rect(x, y, w, h, color);
            return;
        }
        let (right, bottom) = (x.saturating_add(w - t), y.saturating_add(h - t));
        let inner_top = y.saturating_add(t);
        self.fill_rect(x, y, w, t, color);
        self.fill_rect(x, bottom, w, t, color);
        self.fill_rect(x, inner_top, t, h - 2 * t, color);
        self.fill_rect(right, inner_top, t, h - 2 * t, color);
    }

    /// A filled disk of `radius` pixels centred on `(cx, cy)`: the pixels whose centres
    /// lie within `radius`, and always the pixel holding the centre. Non-finite input
    /// draws nothing.
    pub fn dot(&mut self, cx: f64, cy: f64, radius: f64, color: Rgb) {
        if !(cx.is_finite() && cy.is_finite() && radius.is_finite()) {
            return;
        }
        let radius = radius.max(0.0);
        let ink = self.ink(color);
        if let Some(rect) = self.clip(cx.floor() as i64, cy.floor() as i64, 1, 1) {
            self.fill_clipped(rect, ink);
        }
        let first = ((cy - radius).floor() as i64).max(0);
        let last = ((cy + radius).floor() as i64).min(self.height as i64 - 1);
        for py in first..=last {
            let dy = py as f64 + 0.5 - cy;
            let span = radius * radius - dy * dy;
            if span.is_nan() || span < 0.0 {
                continue;
            }
            let half = span.sqrt();
            let x0 = (cx - half - 0.5).ceil() as i64;
            let x1 = (cx + half - 0.5).floor() as i64;
            if let Some(rect) = self.clip(x0, py, x1.saturating_sub(x0).saturating_add(1), 1) {
                self.fill_clipped(rect, ink);
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel a
    /// `scale x scale` square; the background is left as it is.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: usize, color: Rgb) {
        let scale = scale.max(1) as i64;
        let ink = self.ink(color);
        let cell = font::SIZE as i64 * scale;
        if y >= self.height as i64 || y.saturating_add(cell) <= 0 {
            return;
        }
        for (i, c) in text.chars().enumerate() {
            let gx = x.saturating_add((i as i64).saturating_mul(cell));
            if gx >= self.width as i64 {
                break;
            }
            if gx.saturating_add(cell) <= 0 {
                continue;
            }
            for (row, &bits) in font::glyph(c).iter().enumerate() {
                let py = y + row as i64 * scale;
                // One rectangle per run of set bits.
                let mut col = 0;
                while col < font::SIZE {
                    if bits >> col & 1 == 0 {
                        col += 1;
                        continue;
                    }
                    let start = col;
                    while col < font::SIZE && bits >> col & 1 == 1 {
                        col += 1;
                    }
                    let run = (col - start) as i64;
                    if let Some(rect) = self.clip(gx + start as i64 * scale, py, run * scale, scale)
                    {
                        self.fill_clipped(rect, ink);
                    }
                }
            }
        }
    }

    /// Draws `text` in `color` on a filled `background` box with a margin of `scale`
    /// pixels (the box is [`label_size`]), its top-left corner at `(x, y)`.
    pub fn label(&mut self, x: i64, y: i64, text: &str, scale: usize, color: Rgb, background: Rgb) {
        let scale = scale.max(1);
        let (w, h) = label_size(text, scale);
        self.fill_rect(x, y, w as i64, h as i64, background);
        self.text(x + scale as i64, y + scale as i64, text, scale, color);
    }
}

fn fill_plane(
    plane: &mut [u8],
    stride: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    value: u8,
) {
    for row in y0..y1 {
        let start = row * stride;
        plane[start + x0..start + x1].fill(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::YuvMatrix;

    const RED: Rgb = Rgb::new(255, 0, 0);
    const GREEN: Rgb = Rgb::new(0, 255, 0);
    const WHITE: Rgb = Rgb::new(255, 255, 255);
    const PAD: u8 = 0xAB;
    const BG: u8 = 7;

    /// A frame with padded strides: every byte `BG` inside the frame, `PAD` in the
    /// padding after each row.
    struct TestFrame {
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: Vec<Vec<u8>>,
        strides: [usize; 3],
        colorimetry: YuvColorimetry,
    }

    impl TestFrame {
        fn new(format: PixelFormat, width: usize, height: usize) -> Self {
            let mut planes = Vec::new();
            let mut strides = [0; 3];
            for (p, slot) in strides.iter_mut().enumerate().take(format.n_planes()) {
                let (row_bytes, rows) = format.plane_size(p, width, height).unwrap();
                let stride = row_bytes + 5;
                *slot = stride;
                let mut data = vec![PAD; stride * rows];
                for r in 0..rows {
                    data[r * stride..r * stride + row_bytes].fill(BG);
                }
                planes.push(data);
            }
            TestFrame {
                format,
                width,
                height,
                planes,
                strides,
                colorimetry: YuvColorimetry::default(),
            }
        }

        fn canvas(&mut self) -> Canvas<'_> {
            let mut it = self.planes.iter_mut();
            let planes = [
                it.next().map(|p| p.as_mut_slice()).unwrap_or(&mut []),
                it.next().map(|p| p.as_mut_slice()).unwrap_or(&mut []),
                it.next().map(|p| p.as_mut_slice()).unwrap_or(&mut []),
            ];
            Canvas::new(
                self.format,
                self.width,
                self.height,
                planes,
                self.strides,
                self.colorimetry,
            )
            .unwrap()
        }

        fn bpp(&self) -> usize {
            self.format.bytes_per_pixel().unwrap()
        }

        /// The stored bytes of pixel (x, y) of a packed / gray frame.
        fn packed(&self, x: usize, y: usize) -> &[u8] {
            let bpp = self.bpp();
            let start = y * self.strides[0] + x * bpp;
            &self.planes[0][start..start + bpp]
        }

        fn luma(&self, x: usize, y: usize) -> u8 {
            self.planes[0][y * self.strides[0] + x]
        }

        fn chroma(&self, cx: usize, cy: usize) -> (u8, u8) {
            match self.format {
                PixelFormat::I420 => (
                    self.planes[1][cy * self.strides[1] + cx],
                    self.planes[2][cy * self.strides[2] + cx],
                ),
                PixelFormat::Nv12 => {
                    let i = cy * self.strides[1] + 2 * cx;
                    (self.planes[1][i], self.planes[1][i + 1])
                }
                _ => unreachable!(),
            }
        }

        /// Whether pixel (x, y) still holds the background (all its bytes; for YUV
        /// only luma).
        fn untouched(&self, x: usize, y: usize) -> bool {
            if self.format.is_yuv() {
                self.luma(x, y) == BG
            } else {
                self.packed(x, y).iter().all(|&b| b == BG)
            }
        }

        /// Every padding byte still `PAD`.
        fn padding_intact(&self) -> bool {
            (0..self.format.n_planes()).all(|p| {
                let (row_bytes, rows) = self.format.plane_size(p, self.width, self.height).unwrap();
                (0..rows).all(|r| {
                    self.planes[p][r * self.strides[p] + row_bytes..(r + 1) * self.strides[p]]
                        .iter()
                        .all(|&b| b == PAD)
                })
            })
        }

        fn changed_pixels(&self) -> Vec<(usize, usize)> {
            let mut v = Vec::new();
            for y in 0..self.height {
                for x in 0..self.width {
                    if !self.untouched(x, y) {
                        v.push((x, y));
                    }
                }
            }
            v
        }
    }

    fn expected_packed(format: PixelFormat, c: Rgb) -> Vec<u8> {
        let mut bytes = vec![255u8; format.bytes_per_pixel().unwrap()];
        let [r, g, b] = format.rgb_offsets().unwrap();
        bytes[r] = c.r;
        bytes[g] = c.g;
        bytes[b] = c.b;
        bytes
    }

    #[test]
    fn yuv_conversion_matches_reference_values() {
        let bt601 = YuvColorimetry::default();
        assert_eq!(rgb_to_yuv(WHITE, bt601), (235, 128, 128));
        assert_eq!(rgb_to_yuv(Rgb::new(0, 0, 0), bt601), (16, 128, 128));
        // BT.601 limited-range red: (81, 90, 240).
        assert_eq!(rgb_to_yuv(RED, bt601), (81, 90, 240));
        let bt709 = YuvColorimetry {
            matrix: YuvMatrix::Bt709,
            full_range: false,
        };
        // BT.709 limited-range red: (63, 102, 240).
        assert_eq!(rgb_to_yuv(RED, bt709), (63, 102, 240));
        let full = YuvColorimetry {
            matrix: YuvMatrix::Bt601,
            full_range: true,
        };
        assert_eq!(rgb_to_yuv(WHITE, full), (255, 128, 128));
        assert_eq!(rgb_to_yuv(RED, full), (76, 85, 255));
        assert_eq!(rgb_to_gray(WHITE, bt601), 255);
        assert_eq!(rgb_to_gray(GREEN, bt601), 150);
    }

    #[test]
    fn fill_rect_every_packed_format() {
        for format in PixelFormat::ALL {
            if format.is_yuv() || format == PixelFormat::Gray8 {
                continue;
            }
            let mut f = TestFrame::new(format, 9, 7);
            f.canvas().fill_rect(2, 1, 3, 4, RED);
            let want = expected_packed(format, RED);
            for y in 0..7 {
                for x in 0..9 {
                    let inside = (2..5).contains(&x) && (1..5).contains(&y);
                    if inside {
                        assert_eq!(f.packed(x, y), want.as_slice(), "{format:?} ({x},{y})");
                    } else {
                        assert!(f.untouched(x, y), "{format:?} ({x},{y})");
                    }
                }
            }
            assert!(f.padding_intact(), "{format:?}");
        }
    }

    #[test]
    fn fill_rect_rgb_and_bgrx_bytes() {
        let mut f = TestFrame::new(PixelFormat::Rgb, 4, 3);
        f.canvas().fill_rect(1, 1, 1, 1, Rgb::new(10, 20, 30));
        assert_eq!(f.packed(1, 1), &[10, 20, 30]);
        let mut f = TestFrame::new(PixelFormat::Bgrx, 4, 3);
        f.canvas().fill_rect(3, 2, 1, 1, Rgb::new(10, 20, 30));
        assert_eq!(f.packed(3, 2), &[30, 20, 10, 255]);
        assert_eq!(f.changed_pixels(), vec![(3, 2)]);
    }

    #[test]
    fn fill_rect_gray8() {
        let mut f = TestFrame::new(PixelFormat::Gray8, 6, 5);
        f.canvas().fill_rect(1, 2, 2, 2, WHITE);
        assert_eq!(f.changed_pixels(), vec![(1, 2), (2, 2), (1, 3), (2, 3)]);
        assert_eq!(f.packed(1, 2), &[255]);
        assert!(f.padding_intact());
    }

    #[test]
    fn fill_rect_yuv_luma_per_pixel_chroma_per_block() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
                let mut f = TestFrame::new(format, 9, 7);
                f.colorimetry = YuvColorimetry {
                    matrix,
                    full_range: false,
                };
                // x 3..6, y 1..4: chroma blocks x 1..=2, y 0..=1.
                f.canvas().fill_rect(3, 1, 3, 3, RED);
                let (y, u, v) = rgb_to_yuv(RED, f.colorimetry);
                for py in 0..7 {
                    for px in 0..9 {
                        let inside = (3..6).contains(&px) && (1..4).contains(&py);
                        assert_eq!(f.luma(px, py), if inside { y } else { BG }, "{format:?}");
                    }
                }
                for cy in 0..4 {
                    for cx in 0..5 {
                        let inside = (1..=2).contains(&cx) && (0..=1).contains(&cy);
                        let want = if inside { (u, v) } else { (BG, BG) };
                        assert_eq!(f.chroma(cx, cy), want, "{format:?} {matrix:?} ({cx},{cy})");
                    }
                }
                assert!(f.padding_intact(), "{format:?}");
            }
        }
    }

    #[test]
    fn yuv_odd_sized_frame_edges() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let mut f = TestFrame::new(format, 5, 3);
            f.canvas().fill_rect(4, 2, 10, 10, GREEN);
            let (y, u, v) = rgb_to_yuv(GREEN, f.colorimetry);
            assert_eq!(f.luma(4, 2), y);
            assert_eq!(f.chroma(2, 1), (u, v));
            assert_eq!(f.chroma(1, 1), (BG, BG));
            assert!(f.padding_intact());
        }
    }

    #[test]
    fn clipping_never_panics_and_keeps_inside() {
        let rects: [(i64, i64, i64, i64); 10] = [
            (-5, -5, 8, 8),
            (5, 4, 100, 100),
            (-100, 2, 1000, 1),
            (20, 20, 5, 5),
            (-20, -20, 5, 5),
            (0, 0, 0, 5),
            (0, 0, -3, -3),
            (i64::MAX - 1, 0, i64::MAX, 2),
            (i64::MIN, i64::MIN, i64::MAX, i64::MAX),
            (3, -1, 1, 2),
        ];
        for format in PixelFormat::ALL {
            for (w, h) in [(7, 5), (1, 1), (2, 1), (1, 3), (0, 0)] {
                let mut f = TestFrame::new(format, w, h);
                {
                    let mut c = f.canvas();
                    for &(x, y, rw, rh) in &rects {
                        c.fill_rect(x, y, rw, rh, RED);
                        c.rect_outline(x, y, rw, rh, 2, GREEN);
                        c.dot(x as f64, y as f64, 3.0, WHITE);
                        c.text(x, y, "Ag", 2, WHITE);
                        c.label(x, y, "Ag 0.5", 1, WHITE, Rgb::new(0, 0, 0));
                    }
                    c.dot(f64::NAN, 1.0, 2.0, RED);
                    c.dot(1.0, f64::INFINITY, 2.0, RED);
                    c.dot(1e300, -1e300, 1e300, RED);
                }
                assert!(f.padding_intact(), "{format:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn partial_rect_draws_visible_part() {
        let mut f = TestFrame::new(PixelFormat::Rgb, 6, 4);
        f.canvas().fill_rect(-2, -3, 4, 5, RED);
        assert_eq!(f.changed_pixels(), vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
        let mut f = TestFrame::new(PixelFormat::Rgb, 1, 1);
        f.canvas().fill_rect(-1, -1, 3, 3, RED);
        assert_eq!(f.packed(0, 0), &[255, 0, 0]);
    }

    #[test]
    fn rect_outline_draws_border_only() {
        let mut f = TestFrame::new(PixelFormat::Rgbx, 12, 10);
        f.canvas().rect_outline(1, 1, 8, 7, 2, GREEN);
        let green = expected_packed(PixelFormat::Rgbx, GREEN);
        for y in 0..10 {
            for x in 0..12 {
                let in_box = (1..9).contains(&x) && (1..8).contains(&y);
                let in_hole = (3..7).contains(&x) && (3..6).contains(&y);
                if in_box && !in_hole {
                    assert_eq!(f.packed(x, y), green.as_slice(), "({x},{y})");
                } else {
                    assert!(f.untouched(x, y), "({x},{y})");
                }
            }
        }
        // A box thinner than two lines is filled.
        let mut f = TestFrame::new(PixelFormat::Gray8, 8, 8);
        f.canvas().rect_outline(2, 2, 3, 3, 2, WHITE);
        assert_eq!(f.changed_pixels().len(), 9);
    }

    #[test]
    fn outline_partly_outside_keeps_visible_edges() {
        let mut f = TestFrame::new(PixelFormat::Gray8, 10, 10);
        // Left and top edges outside the frame: only the right and bottom lines show.
        f.canvas().rect_outline(-5, -5, 10, 10, 1, WHITE);
        let changed = f.changed_pixels();
        assert!(changed.contains(&(4, 0)) && changed.contains(&(0, 4)));
        assert!(!changed.contains(&(2, 2)));
        assert_eq!(changed.len(), 9);
    }

    #[test]
    fn dot_is_a_disk() {
        let mut f = TestFrame::new(PixelFormat::Gray8, 11, 11);
        f.canvas().dot(5.5, 5.5, 2.0, WHITE);
        let changed = f.changed_pixels();
        // Pixel centres within 2 of (5.5, 5.5): a plus-shaped 13-pixel disk.
        assert_eq!(changed.len(), 13);
        assert!(changed.contains(&(5, 5)) && changed.contains(&(3, 5)));
        assert!(changed.contains(&(5, 7)) && !changed.contains(&(3, 3)));
        // A tiny radius still marks the pixel holding the centre.
        let mut f = TestFrame::new(PixelFormat::Gray8, 4, 4);
        f.canvas().dot(2.9, 1.1, 0.0, WHITE);
        assert_eq!(f.changed_pixels(), vec![(2, 1)]);
    }

    #[test]
    fn every_printable_glyph_but_space_has_pixels() {
        for c in 32u8..=126 {
            let g = font::glyph(c as char);
            assert_eq!(
                g.iter().any(|&b| b != 0),
                c != b' ',
                "glyph {:?}",
                c as char
            );
        }
        assert_eq!(font::glyph('é'), font::glyph('?'));
    }

    #[test]
    fn text_renders_inside_its_box() {
        for format in [PixelFormat::Rgb, PixelFormat::I420, PixelFormat::Gray8] {
            let mut f = TestFrame::new(format, 64, 24);
            f.canvas().text(3, 2, "alice 0.42", 1, WHITE);
            let changed = f.changed_pixels();
            assert!(changed.len() > 30, "{format:?}: {} pixels", changed.len());
            let (tw, th) = text_size("alice 0.42", 1);
            assert!(changed
                .iter()
                .all(|&(x, y)| (3..3 + tw).contains(&x) && (2..2 + th).contains(&y)));
            assert!(f.padding_intact());
        }
        // Scaled glyphs: 'I' at scale 3 is 3x as wide in each stroke.
        let mut f = TestFrame::new(PixelFormat::Gray8, 30, 30);
        f.canvas().text(0, 0, "I", 3, WHITE);
        let one = {
            let mut g = TestFrame::new(PixelFormat::Gray8, 30, 30);
            g.canvas().text(0, 0, "I", 1, WHITE);
            g.changed_pixels().len()
        };
        assert_eq!(f.changed_pixels().len(), 9 * one);
    }

    #[test]
    fn text_crossing_edges_is_clipped() {
        let mut f = TestFrame::new(PixelFormat::Bgr, 20, 6);
        {
            let mut c = f.canvas();
            c.text(-5, -3, "WWWWWW", 2, WHITE);
            c.text(15, 4, "MM", 1, WHITE);
        }
        assert!(!f.changed_pixels().is_empty());
        assert!(f.padding_intact());
    }

    #[test]
    fn label_draws_background_and_text() {
        let mut f = TestFrame::new(PixelFormat::Rgb, 160, 30);
        let black = Rgb::new(0, 0, 0);
        f.canvas().label(2, 3, "face 0.99", 2, GREEN, black);
        let (w, h) = label_size("face 0.99", 2);
        assert_eq!((w, h), (9 * 16 + 4, 20));
        let (mut fg, mut bg) = (0, 0);
        for y in 0..30 {
            for x in 0..160 {
                let inside = (2..2 + w).contains(&x) && (3..3 + h).contains(&y);
                match f.packed(x, y) {
                    [0, 0, 0] => bg += 1,
                    [0, 255, 0] => fg += 1,
                    _ => assert!(!inside && f.untouched(x, y), "({x},{y})"),
                }
                if !inside {
                    assert!(f.untouched(x, y), "({x},{y})");
                }
            }
        }
        assert!(fg > 100 && bg > fg, "fg {fg} bg {bg}");
    }

    #[test]
    fn label_origin_stays_in_frame() {
        // Room above the box.
        assert_eq!(label_origin(50, 40, 30, 20, 200, 100), (50, 20));
        // Box at the top: the label moves down onto the box.
        assert_eq!(label_origin(50, 5, 30, 20, 200, 100), (50, 0));
        // Box at the right edge: the label moves left.
        assert_eq!(label_origin(190, 40, 30, 20, 200, 100), (170, 20));
        // Box left of the frame.
        assert_eq!(label_origin(-10, 40, 30, 20, 200, 100), (0, 20));
        // Label larger than the frame.
        assert_eq!(label_origin(5, 5, 300, 200, 200, 100), (0, 0));
    }

    #[test]
    fn canvas_rejects_short_planes() {
        let mut small = vec![0u8; 10];
        let err = Canvas::new(
            PixelFormat::Rgb,
            4,
            2,
            [&mut small, &mut [], &mut []],
            [12, 0, 0],
            YuvColorimetry::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            DrawError::PlaneTooSmall {
                plane: 0,
                len: 10,
                needed: 24
            }
        );
        let mut data = vec![0u8; 100];
        let err = Canvas::new(
            PixelFormat::Rgb,
            4,
            2,
            [&mut data, &mut [], &mut []],
            [8, 0, 0],
            YuvColorimetry::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DrawError::StrideTooSmall { .. }));
        // I420 needs its chroma planes.
        let mut y = vec![0u8; 16];
        assert!(Canvas::new(
            PixelFormat::I420,
            4,
            4,
            [&mut y, &mut [], &mut []],
            [4, 2, 2],
            YuvColorimetry::default(),
        )
        .is_err());
    }
}
