//! Faults that tests inject (cargo feature `fault-injection`, never in a release build):
//! an execution provider failing mid-stream, a panic in element code or on a
//! pre-processing thread, a disk filling up under the results file. Each fault is armed with the number of occasions to let pass
//! before it fires; once fired it keeps firing until [`disarm_all`].

use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A model run on an execution provider other than the CPU one fails.
    ProviderRun,
    /// `facenet` panics while handling a frame.
    PanicInTransform,
    /// A hot model reload panics on its loader thread.
    PanicInReload,
    /// A write to faceidentify's results file fails with "no space left on device".
    DiskFull,
    /// A `facenet` pre-processing thread (`n-threads > 1`) panics while preparing its
    /// share of a frame's faces.
    PanicInCropThread,
}

const FAULTS: usize = 5;
const DISARMED: i64 = -1;
static COUNTDOWNS: [AtomicI64; FAULTS] = [const { AtomicI64::new(DISARMED) }; FAULTS];

fn slot(fault: Fault) -> &'static AtomicI64 {
    &COUNTDOWNS[fault as usize]
}

/// Fires `fault` after `after` occasions have passed.
pub fn arm(fault: Fault, after: u32) {
    slot(fault).store(i64::from(after), Ordering::SeqCst);
}

pub fn disarm_all() {
    for c in &COUNTDOWNS {
        c.store(DISARMED, Ordering::SeqCst);
    }
}

/// One occasion for `fault`: whether it fires now.
pub fn fires(fault: Fault) -> bool {
    let countdown = slot(fault);
    let mut current = countdown.load(Ordering::SeqCst);
    loop {
        if current == DISARMED {
            return false;
        }
        if current == 0 {
            return true;
        }
        match countdown.compare_exchange(current, current - 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return false,
            Err(seen) => current = seen,
        }
    }
}

/// A writer that fails like a full disk when [`Fault::DiskFull`] fires (each write call
/// is one occasion).
pub struct FaultyWriter<W>(pub W);

impl<W: Write> Write for FaultyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if fires(Fault::DiskFull) {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_then_fires_until_disarmed() {
        arm(Fault::PanicInReload, 2);
        assert!(!fires(Fault::PanicInReload));
        assert!(!fires(Fault::PanicInReload));
        assert!(fires(Fault::PanicInReload));
        assert!(fires(Fault::PanicInReload));
        disarm_all();
        assert!(!fires(Fault::PanicInReload));
    }
}
