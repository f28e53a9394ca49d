//! Work buffers that outlive a call: one per thread, kept at the largest size asked of it, so
//! that a convolution's large scratch (Winograd's transformed input and products, a few MB) is
//! neither zeroed nor faulted in from fresh pages on every call. At batch 1, with dozens of
//! convolutions per pass, that zeroing and page clearing took about a tenth of the time.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};

thread_local! {
    static KEPT: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// A thread's buffer, taken for the life of this value and handed back on drop. A nested take on
/// the same thread (a rayon worker that steals another convolution's job while it waits) finds
/// none kept and allocates its own; the larger one is kept when both come back.
pub(super) struct Scratch(Vec<f32>);

impl Scratch {
    /// At least `len` values of any content: the caller writes every value before it reads it
    /// (debug builds, the tests, fill them with NaN so that one read unwritten shows).
    pub(super) fn take(len: usize) -> Scratch {
        let mut v = KEPT.with(Cell::take);
        if v.len() < len {
            v = vec![0f32; len];
        }
        if cfg!(debug_assertions) {
            v.fill(f32::NAN);
        }
        Scratch(v)
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        // Only with the thread still alive (not while its thread-locals are being torn down).
        let _ = KEPT.try_with(|kept| {
            let old = kept.take();
            kept.set(if old.len() >= v.len() { old } else { v });
        });
    }
}
