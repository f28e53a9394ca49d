//! What a training run is asked to do.

use super::health::Init;
use crate::model::{Kind, Objective};
use candle_core::DType;
use std::path::PathBuf;

/// What to train and how.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Folder of training images (searched recursively).
    pub data: PathBuf,
    /// Folder of validation images; `None` holds out every 10th training image instead.
    pub val: Option<PathBuf>,
    pub layers: Vec<String>,
    pub kinds: Vec<Kind>,
    /// Total optimisation steps per decoder (a resumed decoder continues up to this).
    pub steps: u64,
    pub batch: usize,
    /// Side of the square training crops; `None` = the model's input size.
    pub crop: Option<usize>,
    /// Peak learning rate (short warm-up, then cosine decay to a tenth of it).
    pub lr: f64,
    /// Decoder channel width (1.0 = full mirror of the encoder).
    pub width: f64,
    /// Where decoders and checkpoints go.
    pub out: PathBuf,
    pub resume: bool,
    pub checkpoint_every: u64,
    pub val_every: u64,
    /// At most this many validation images.
    pub val_images: usize,
    pub seed: u64,
    /// Start new (not resumed) decoders whose layer and width match this decoder file from its
    /// weights.
    pub init_from: Option<PathBuf>,
    /// What the decoders minimise (the paper's three decoding pathways).
    pub objective: Objective,
    /// `layerwise`: the share of the steps, at the end, that fine-tunes the stacked decoder on
    /// the image loss.
    pub finetune: f64,
    /// How fresh decoders start ([`super::health::calibrate`] on the first batch).
    pub init: Init,
    /// Compute dtype: f32, or bf16 for mixed precision (f32 weights, Adam and loss; encoder,
    /// activations and convolutions in bf16, as PyTorch's autocast).
    pub dtype: DType,
}

impl TrainConfig {
    /// Defaults for everything but the data, the decoders and the output folder.
    pub fn new(data: PathBuf, layers: Vec<String>, kinds: Vec<Kind>, out: PathBuf) -> Self {
        Self {
            data,
            val: None,
            layers,
            kinds,
            steps: 1000,
            batch: 8,
            crop: None,
            lr: 1e-3,
            width: 1.0,
            out,
            resume: false,
            checkpoint_every: 100,
            val_every: 200,
            val_images: 16,
            seed: 0,
            init_from: None,
            objective: Objective::First,
            finetune: 0.2,
            init: Init::default(),
            dtype: DType::F32,
        }
    }
}
