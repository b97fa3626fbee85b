//! Shared code of the gst-facenet fuzz targets (see README.md).

pub mod onnx;
pub mod proto;

use std::sync::Once;

/// Panics unless this build has debug assertions and overflow checks: the targets rely on
/// them to turn silent arithmetic bugs into crashes. Checked once per process.
pub fn check_build() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !cfg!(debug_assertions) {
            panic!("fuzz targets must be built with debug assertions (cargo fuzz build without -O, or -a)");
        }
        // libfuzzer-sys's panic hook aborts the process: silence it for this one probe.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let overflowed = std::panic::catch_unwind(|| {
            std::hint::black_box(std::hint::black_box(u8::MAX) + std::hint::black_box(1u8))
        })
        .is_err();
        std::panic::set_hook(hook);
        assert!(
            overflowed,
            "fuzz targets must be built with overflow checks (profile.release.overflow-checks)"
        );
    });
}

/// Whether every value is finite.
pub fn all_finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// A small deterministic generator (xorshift64*) for bulk data the fuzzer only seeds.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf`: random bytes, or (pattern % 4) constant 0 / constant 255 / a gradient.
    pub fn fill(&mut self, buf: &mut [u8], pattern: u8) {
        match pattern % 4 {
            0 => buf
                .iter_mut()
                .for_each(|b| *b = (self.next_u64() >> 56) as u8),
            1 => buf.fill(0),
            2 => buf.fill(255),
            _ => buf
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i % 251) as u8),
        }
    }
}

/// Rough number of taps `Preprocessor::process_affine` evaluates for `t` and an
/// `out_w x out_h` output: each output pixel's window is about `(2·scale + 2)²` source
/// pixels when downscaling. The harnesses skip transforms above [`MAX_AFFINE_WORK`]:
/// the cost of rotated transforms grows with the square of the downscale factor (a known limitation, see
/// README.md), so such inputs are slow, not wrong.
pub fn affine_work(t: &gstfacenet::preprocess::AffineTransform, out_w: usize, out_h: usize) -> f64 {
    if t.b == 0.0 && t.d == 0.0 && t.a > 0.0 && t.e > 0.0 {
        // Axis-aligned: process_rect's separable resampler, linear in the scale.
        return 0.0;
    }
    let lx = t.a.hypot(t.d).max(1.0);
    let ly = t.b.hypot(t.e).max(1.0);
    (out_w * out_h) as f64 * (2.0 * lx + 2.0) * (2.0 * ly + 2.0)
}

/// See [`affine_work`].
pub const MAX_AFFINE_WORK: f64 = 5e7;
