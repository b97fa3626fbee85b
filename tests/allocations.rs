//! The per-frame pre-processing path allocates nothing in steady state: a counting global
//! allocator (this test binary only) counts the allocations this thread makes while
//! frames go through `Preprocessor::process` (1080p NV12, I420, RGB, BGRx, GRAY8; stretch,
//! pad, crop; prewhiten and fixed normalization), `process_rect`, `process_affine` (face
//! alignment, rotated), a frame's faces spread over helper threads
//! (`process_affine_batch`), the detector's legacy resize, `ssd_detections` (NMS) and
//! `l2_normalize`, after one warm-up frame of each.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use gstfacenet::detection::{ssd_detections, Detection, NmsParams, NmsScratch};
use gstfacenet::preprocess::{
    AffineTransform, Aspect, CropThreads, Frame, Normalization, PixelFormat, PreprocessConfig,
    Preprocessor, SourceRect, YuvColorimetry, YuvMatrix,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const W: usize = 1920;
const H: usize = 1080;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u32::from(seed)) as u8
        })
        .collect()
}

fn planes(format: PixelFormat) -> (Vec<Vec<u8>>, [usize; 3]) {
    match format {
        PixelFormat::Nv12 => (vec![bytes(W * H, 1), bytes(W * H / 2, 2)], [W, W, 0]),
        PixelFormat::I420 => (
            vec![bytes(W * H, 1), bytes(W * H / 4, 2), bytes(W * H / 4, 3)],
            [W, W / 2, W / 2],
        ),
        f => {
            let bpp = f.bytes_per_pixel().unwrap();
            (vec![bytes(W * H * bpp, 1)], [W * bpp, 0, 0])
        }
    }
}

fn frame<'a>(format: PixelFormat, data: &'a [Vec<u8>], strides: [usize; 3]) -> Frame<'a> {
    let p = |i: usize| data.get(i).map(|v| v.as_slice()).unwrap_or(&[]);
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

fn config(aspect: Aspect, normalization: Normalization, size: usize) -> PreprocessConfig {
    PreprocessConfig {
        aspect,
        normalization,
        ..PreprocessConfig::new(size, size)
    }
}

#[test]
fn steady_state_preprocessing_allocates_nothing() {
    let formats = [
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Rgb,
        PixelFormat::Bgrx,
        PixelFormat::Gray8,
    ];
    let fixed = Normalization::Fixed {
        mean: [122.782, 117.001, 104.298],
        std: [255.0; 3],
    };
    let face = AffineTransform::similarity_from_points(
        &[[30.0, 50.0], [120.0, 40.0], [75.0, 140.0]],
        &[[900.0, 500.0], [1010.0, 530.0], [930.0, 640.0]],
    )
    .expect("a similarity");
    // A close-up (the face 6x the chip): the two-step grid is reduced first.
    let close_up = AffineTransform::similarity_from_points(
        &[[30.0, 50.0], [120.0, 40.0], [75.0, 140.0]],
        &[[400.0, 150.0], [940.0, 90.0], [670.0, 690.0]],
    )
    .expect("a similarity");
    for format in formats {
        let (data, strides) = planes(format);
        let frame = frame(format, &data, strides);
        for (aspect, normalization, size) in [
            (Aspect::Stretch, Normalization::Prewhiten, 160),
            (Aspect::Pad, fixed, 150),
            (Aspect::Crop, Normalization::Prewhiten, 112),
        ] {
            let mut pre = Preprocessor::new(config(aspect, normalization, size)).unwrap();
            let mut out = vec![0.0f32; pre.config().tensor_len()];
            let frame_pass = |pre: &mut Preprocessor, out: &mut [f32]| {
                pre.process(&frame, out).unwrap();
                pre.process_rect(&frame, SourceRect::new(800.5, 400.25, 210.0, 230.0), out)
                    .unwrap();
                pre.process_affine(&frame, &face, out).unwrap();
                pre.process_affine(&frame, &close_up, out).unwrap();
                pre.process_square_legacy_bilinear(&frame, out).unwrap();
            };
            frame_pass(&mut pre, &mut out);
            let n = allocations_in(|| {
                for _ in 0..3 {
                    frame_pass(&mut pre, &mut out);
                }
            });
            assert_eq!(
                n, 0,
                "{format:?} {aspect:?} {normalization:?} {size}: {n} allocations in steady state"
            );
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }
}

/// `n-threads > 1`: a frame's faces spread over helper threads that outlive the frame
/// (`CropThreads`): handing them their shares and waiting for them allocates nothing on
/// the streaming thread (scoped threads spawned per frame allocated a handle, a result
/// slot and the closure each time); the helpers run the `process_affine` shown above to
/// allocate nothing.
#[test]
fn steady_state_batches_over_helper_threads_allocate_nothing() {
    let (data, strides) = planes(PixelFormat::Nv12);
    let frame = frame(PixelFormat::Nv12, &data, strides);
    let mut pre = Preprocessor::new(config(
        Aspect::Stretch,
        Normalization::Fixed {
            mean: [122.782, 117.001, 104.298],
            std: [255.0; 3],
        },
        150,
    ))
    .unwrap();
    let faces: Vec<AffineTransform> = (0..8)
        .map(|i| {
            let (x, y) = (100.0 + 200.0 * i as f64, 300.0 + 50.0 * (i % 3) as f64);
            AffineTransform::similarity_from_points(
                &[[30.0, 50.0], [120.0, 40.0], [75.0, 140.0]],
                &[
                    [x, y],
                    [x + 110.0, y + 10.0 * i as f64],
                    [x + 30.0, y + 140.0],
                ],
            )
            .expect("a similarity")
        })
        .collect();
    let mut out = vec![0.0f32; faces.len() * pre.config().tensor_len()];
    for helpers in [1, 3] {
        let mut threads = CropThreads::new();
        threads.ensure(helpers, &pre).unwrap();
        pre.process_affine_batch(&threads, &frame, &faces, &mut out)
            .unwrap();
        let n = allocations_in(|| {
            for _ in 0..5 {
                pre.process_affine_batch(&threads, &frame, &faces, &mut out)
                    .unwrap();
            }
        });
        assert_eq!(
            n, 0,
            "{helpers} helper threads: {n} allocations in steady state"
        );
        assert!(out.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn steady_state_detection_and_normalization_allocate_nothing() {
    let count = 1917; // face-api's SSD anchors
    let boxes: Vec<f32> = (0..count * 4)
        .map(|i| ((i * 37) % 100) as f32 / 100.0)
        .collect();
    let scores: Vec<f32> = (0..count)
        .map(|i| ((i * 53) % 100) as f32 / 100.0)
        .collect();
    let params = NmsParams {
        min_confidence: 0.5,
        iou_threshold: 0.5,
        max_results: 100,
        min_size: 1.0,
    };
    let mut scratch = NmsScratch::default();
    let mut faces: Vec<Detection> = Vec::new();
    let mut embedding: Vec<f32> = (0..512).map(|i| i as f32 - 100.0).collect();
    ssd_detections(&boxes, &scores, W, H, &params, &mut scratch, &mut faces);
    let n = allocations_in(|| {
        for _ in 0..3 {
            ssd_detections(&boxes, &scores, W, H, &params, &mut scratch, &mut faces);
            gstfacenet::backend::l2_normalize(&mut embedding);
        }
    });
    assert_eq!(n, 0, "{n} allocations in steady state");
    assert!(!faces.is_empty());
}
