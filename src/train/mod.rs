//! Fitting decoders to the frozen encoder.

mod step;

pub use step::{reconstruction_loss, DecoderTrainer};
