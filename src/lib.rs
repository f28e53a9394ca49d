//! layerinv: how much of an image survives inside each layer of a pretrained classifier.
//!
//! A frozen encoder (VGG / AlexNet) records every layer's activation and every max-pooling switch;
//! trained decoders rebuild the image from one layer, either guessing where each maximum came
//! from (SAE) or told by the switches (SWWAE).

#[cfg(feature = "gui")]
pub mod app;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod data;
pub mod decoder_sets;
pub mod device;
pub mod error;
pub mod figure;
pub mod fsutil;
pub mod model;
mod named;
pub mod ops;
pub mod recon;
pub mod train;

pub use error::{Error, Result};
