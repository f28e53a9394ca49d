//! Fitting decoders to the frozen encoder, and measuring how well they reconstruct.

mod adam;
pub mod health;
pub mod objective;
pub mod metrics;
mod run;
mod step;

pub use run::{batch_mse_psnr, checkpoint_path, learning_rate, train, CancelToken, DecoderId, Event, EventSink, TrainConfig, TrainSummary, ValResult};
pub use adam::Adam;
pub use health::{check as check_health, Health, Init};
pub use objective::StepLoss;
pub use step::{reconstruction_loss, DecoderTrainer};
