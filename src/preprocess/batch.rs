//! A frame's faces prepared on helper threads that outlive the frame: [`CropThreads`] and
//! [`Preprocessor::process_affine_batch`].
//!
//! Scoped threads spawned per frame cost tens of µs and a few allocations each (the
//! thread's handle, its result slot, its stack), every frame. These threads start once and
//! wait on a condition variable; a frame hands each one a share of its faces and waits
//! until every share is done, so that the borrowed frame and tensors outlive every access,
//! as a scope guarantees (on an error or a panic too). Handing over takes a mutex and a
//! condition variable (futexes on Linux): nothing is allocated per frame.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use super::{AffineTransform, Frame, PreprocessConfig, PreprocessError, Preprocessor};

/// Helper threads for [`Preprocessor::process_affine_batch`], each with a preprocessor of
/// its own (its own scratch space, so results are bit-identical to a serial loop).
#[derive(Default)]
pub struct CropThreads {
    workers: Vec<Worker>,
}

impl std::fmt::Debug for CropThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CropThreads")
            .field("threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

struct Worker {
    /// The configuration of the worker's preprocessor (a batch checks it against its own).
    config: PreprocessConfig,
    slot: Arc<Slot>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Idle,
    Job(Job),
    Running,
    Done(thread::Result<Result<(), PreprocessError>>),
    Quit,
}

/// A share of a batch: the caller's borrows as raw pointers. Valid until the caller has
/// taken the worker's `Done`, which it always waits for (see [`Pending`]).
struct Job {
    frame: *const Frame<'static>,
    transforms: *const AffineTransform,
    count: usize,
    out: *mut f32,
    per_image: usize,
}

// SAFETY: the pointers are only dereferenced on the worker while the caller waits for it
// (see `Pending`); `Frame` and `AffineTransform` are `Sync` (checked below), the output
// share is written by this worker alone.
unsafe impl Send for Job {}

const _: () = {
    const fn sync<T: Sync>() {}
    const fn send<T: Send>() {}
    sync::<Frame<'static>>();
    sync::<AffineTransform>();
    send::<Preprocessor>();
    send::<PreprocessError>();
};

fn lock(slot: &Slot) -> MutexGuard<'_, SlotState> {
    // Nothing panics while holding the lock (jobs run outside it): never poisoned in
    // practice, and the state stays meaningful if it were.
    slot.state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve(mut pre: Preprocessor, slot: &Slot) {
    loop {
        let job = {
            let mut state = lock(slot);
            loop {
                match std::mem::take(&mut *state) {
                    SlotState::Job(job) => {
                        *state = SlotState::Running;
                        break job;
                    }
                    SlotState::Quit => return,
                    other => {
                        *state = other;
                        state = slot
                            .changed
                            .wait(state)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "fault-injection")]
            if crate::fault::fires(crate::fault::Fault::PanicInCropThread) {
                panic!("injected fault: a pre-processing thread panicked");
            }
            // SAFETY: see `Job`: the caller keeps the frame, the transforms and this
            // disjoint share of the output borrowed until it has seen `Done`.
            let (frame, transforms, out) = unsafe {
                (
                    &*job.frame,
                    std::slice::from_raw_parts(job.transforms, job.count),
                    std::slice::from_raw_parts_mut(job.out, job.count * job.per_image),
                )
            };
            for (t, o) in transforms.iter().zip(out.chunks_exact_mut(job.per_image)) {
                pre.process_affine(frame, t, o)?;
            }
            Ok(())
        }));
        *lock(slot) = SlotState::Done(result);
        slot.changed.notify_all();
    }
}

impl Worker {
    /// Waits for the job it was handed and takes its result (the slot is idle again).
    fn finish(&self) -> thread::Result<Result<(), PreprocessError>> {
        let mut state = lock(&self.slot);
        loop {
            match std::mem::take(&mut *state) {
                SlotState::Done(result) => return result,
                other => {
                    *state = other;
                    state = self
                        .slot
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        *lock(&self.slot) = SlotState::Quit;
        self.slot.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            // A worker never panics outside catch_unwind; nothing to report if it did.
            let _ = thread.join();
        }
    }
}

/// The workers handed a share of the current batch: dropped (also while unwinding from a
/// panic on the calling thread) it waits for each of them, so that no worker still reads
/// the frame or writes the output once the batch's borrows end.
struct Pending<'w> {
    workers: &'w [Worker],
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        for w in self.workers {
            let _ = w.finish();
        }
    }
}

impl CropThreads {
    /// No threads yet (see [`ensure`](Self::ensure)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the helper threads beyond `count`.
    pub fn truncate(&mut self, count: usize) {
        self.workers.truncate(count);
    }

    /// How many helper threads there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Makes it at least `count` helper threads with preprocessors configured as
    /// `template`: starts the missing ones (copies of `template`), after stopping them all
    /// if their configuration is not `template`'s. Allocates (and spawns) only then.
    pub fn ensure(&mut self, count: usize, template: &Preprocessor) -> std::io::Result<()> {
        if self.workers.iter().any(|w| w.config != template.config) {
            self.workers.clear();
        }
        while self.workers.len() < count {
            let slot = Arc::new(Slot::default());
            let pre = template.clone();
            let for_thread = Arc::clone(&slot);
            let thread = thread::Builder::new()
                .name(format!("facenet-crop-{}", self.workers.len() + 1))
                .spawn(move || serve(pre, &for_thread))?;
            self.workers.push(Worker {
                config: template.config.clone(),
                slot,
                thread: Some(thread),
            });
        }
        Ok(())
    }
}

impl Preprocessor {
    /// [`process_affine`](Self::process_affine) of each transform into consecutive
    /// tensors of `out` (`len == transforms.len() · tensor_len()`: a batch), spread over
    /// this preprocessor (on the calling thread) and the `helpers`' threads, contiguous
    /// runs of faces each (each thread has its own scratch space, so the results are
    /// bit-identical to a serial loop). The helpers must share this one's configuration
    /// (see [`CropThreads::ensure`]). A batch of one face, or no helpers, runs on the
    /// calling thread alone. Returns once every thread is done with the batch.
    ///
    /// Stops at the first error (which run's error is reported when several fail is
    /// unspecified); the tensors of the other faces are then unspecified. A panic on a
    /// helper thread is resumed on the calling thread.
    pub fn process_affine_batch(
        &mut self,
        helpers: &CropThreads,
        frame: &Frame,
        transforms: &[AffineTransform],
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        let per_image = self.config.tensor_len();
        let expected = per_image * transforms.len();
        if out.len() != expected {
            return Err(PreprocessError::BufferLength {
                what: "output batch",
                expected,
                actual: out.len(),
            });
        }
        if let Some(w) = helpers.workers.iter().find(|w| w.config != self.config) {
            return Err(PreprocessError::InvalidConfig(format!(
                "batch helpers must share the configuration {:?}, got {:?}",
                self.config, w.config
            )));
        }
        let workers = (1 + helpers.len()).min(transforms.len());
        if workers <= 1 {
            for (t, o) in transforms.iter().zip(out.chunks_exact_mut(per_image)) {
                self.process_affine(frame, t, o)?;
            }
            return Ok(());
        }
        let per_worker = transforms.len().div_ceil(workers);
        let mut runs = transforms
            .chunks(per_worker)
            .zip(out.chunks_mut(per_worker * per_image));
        let (own_ts, own_out) = runs.next().expect("at least one face");
        let mut handed = 0;
        for ((ts, o), w) in runs.zip(&helpers.workers) {
            let job = Job {
                frame: (frame as *const Frame<'_>).cast::<Frame<'static>>(),
                transforms: ts.as_ptr(),
                count: ts.len(),
                out: o.as_mut_ptr(),
                per_image,
            };
            *lock(&w.slot) = SlotState::Job(job);
            w.slot.changed.notify_all();
            handed += 1;
        }
        let mut pending = Pending {
            workers: &helpers.workers[..handed],
        };
        let mut result = Ok(());
        for (t, o) in own_ts.iter().zip(own_out.chunks_exact_mut(per_image)) {
            result = self.process_affine(frame, t, o);
            if result.is_err() {
                break;
            }
        }
        let mut panicked = None;
        for w in std::mem::take(&mut pending.workers) {
            match w.finish() {
                Ok(r) => result = result.and(r),
                Err(payload) => panicked = Some(payload),
            }
        }
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
        result
    }
}
