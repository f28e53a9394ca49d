//! What a training run tells its caller (events through an [`EventSink`]) and how it is asked to
//! stop (a [`CancelToken`]): the vocabulary shared by the loop, the CLI and the app.

use super::health::Health;
use crate::data::Skipped;
use crate::model::{Kind, Layer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which decoder an event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderId {
    pub layer: Layer,
    pub kind: Kind,
}

impl std::fmt::Display for DecoderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.layer, self.kind)
    }
}

/// Validation result of one decoder.
#[derive(Debug, Clone)]
pub struct ValResult {
    pub id: DecoderId,
    /// Mean squared error in 0–1 pixel units.
    pub loss: f64,
    /// Mean PSNR over the validation images, dB (0–255 images, after undoing preprocessing).
    pub psnr: f64,
    /// How much the output depends on the input, dead units.
    pub health: Health,
}

/// Progress of a training run.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        decoders: Vec<(DecoderId, u64)>,
        train_images: usize,
        val_images: usize,
        total_steps: u64,
    },
    /// A file the loader skipped (unreadable or not an image).
    Skipped(Skipped),
    /// One line about how the run makes its batches (the encoder cache: what it holds, a damaged
    /// entry made again, a full or unwritable folder).
    Note(String),
    /// One batch done: the step just taken (by the slowest decoder that trained on it), and the
    /// losses of the decoders that trained on it.
    Step {
        step: u64,
        total: u64,
        losses: Vec<(DecoderId, f32)>,
        images_per_s: f64,
        eta_s: f64,
    },
    Validation {
        step: u64,
        /// Wall-clock seconds of training so far (over every part of a resumed run).
        secs: f64,
        results: Vec<ValResult>,
    },
    /// A validation found this decoder collapsed (its output no longer depends on its input);
    /// `why` says how it was measured. It trains on: more steps, another objective or learning
    /// rate may bring it back.
    Collapsed {
        step: u64,
        id: DecoderId,
        why: String,
    },
    Checkpoint {
        step: u64,
        paths: Vec<PathBuf>,
    },
    /// The divergence guard found this decoder's loss not finite or far above its recent best, and
    /// put it back to its last good state with half the learning rate (`lr`, the new peak rate).
    RolledBack {
        id: DecoderId,
        rollback: super::guard::Rollback,
        lr: f64,
    },
    /// A decoder stopped (its last good checkpoint stays); the others go on.
    DecoderFailed {
        id: DecoderId,
        error: String,
    },
    Finished {
        step: u64,
        cancelled: bool,
    },
}

/// Receives events as training goes. Called on the training thread.
pub trait EventSink {
    fn event(&mut self, event: &Event);
}

impl<F: FnMut(&Event)> EventSink for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// Shared flag asking a run to stop at the next step (it then saves a checkpoint).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub cancelled: bool,
    pub saved: Vec<PathBuf>,
    pub failed: Vec<(DecoderId, String)>,
    pub last_validation: Vec<ValResult>,
}
