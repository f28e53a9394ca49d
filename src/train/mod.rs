//! Fitting decoders to the frozen encoder, and measuring how well they reconstruct.

mod adam;
mod config;
pub mod encoded;
mod events;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod objective;
pub mod record;
mod run;
mod slot;
mod step;

pub use adam::Adam;
pub use config::TrainConfig;
pub use events::{CancelToken, DecoderId, Event, EventSink, TrainSummary, ValResult};
pub use health::{check as check_health, Health, Init};
pub use objective::StepLoss;
pub use run::{batch_mse_psnr, checkpoint_path, learning_rate, train};
pub use step::{reconstruction_loss, DecoderTrainer};
