//! What a training run is asked to do, and the one place its defaults are written (the command
//! line's defaults and the app's Train dialog read them from here).

use super::encoded::CacheConfig;
use super::health::Init;
use crate::device::Precision;
use crate::model::{Kind, Layer, Objective};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to train and how. A run's record (`run.json`) holds it as is, less the output folder
/// (the record's own) and `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Folder of training images (searched recursively).
    pub data: PathBuf,
    /// Folder of validation images; `None` holds out every 10th training image instead.
    pub val: Option<PathBuf>,
    /// The layers to train decoders for; empty: every pooled layer of the model
    /// ([`crate::model::Arch::stage_taps`]).
    pub layers: Vec<Layer>,
    pub kinds: Vec<Kind>,
    /// Total optimisation steps per decoder (a resumed decoder continues up to this).
    pub steps: u64,
    pub batch: usize,
    /// Side of the square training crops; `None` = the model's input size.
    pub crop: Option<usize>,
    /// Peak learning rate (short warm-up, then cosine decay to a tenth of it), times each kind's
    /// decoder's [`crate::model::DecoderSpec::learning_rate_scale`].
    pub lr: f64,
    /// Decoder channel width (1.0 = full mirror of the encoder).
    pub width: f64,
    /// Where decoders and checkpoints go.
    #[serde(skip)]
    pub out: PathBuf,
    #[serde(skip)]
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
    /// f32, or bf16 mixed precision (f32 weights, Adam and loss; encoder, activations and
    /// convolutions in bf16, as PyTorch's autocast).
    #[serde(rename = "dtype")]
    pub precision: Precision,
    /// Cut crops from photos encoded whole, kept in this cache between runs
    /// ([`super::encoded`]); `None` (the default): every crop is encoded, as the decoders then
    /// learn the image edges the app's whole photos have. A machine's setting, not the run's.
    #[serde(skip)]
    pub cache: Option<CacheConfig>,
}

impl Default for TrainConfig {
    /// `layerinv train`'s defaults: every kind of every pooled layer, 1000 steps of batch 8 at
    /// the model's input size, full width, into `decoders/`.
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            val: None,
            layers: Vec::new(),
            kinds: Kind::ALL.to_vec(),
            steps: 1000,
            batch: 8,
            crop: None,
            lr: 1e-3,
            width: 1.0,
            out: PathBuf::from("decoders"),
            resume: false,
            checkpoint_every: 100,
            val_every: 200,
            val_images: 16,
            seed: 0,
            init_from: None,
            objective: Objective::First,
            finetune: 0.2,
            init: Init::default(),
            precision: Precision::Fp32,
            cache: None,
        }
    }
}

impl TrainConfig {
    /// Defaults for everything but the data, the decoders and the output folder.
    pub fn new(data: PathBuf, layers: Vec<Layer>, kinds: Vec<Kind>, out: PathBuf) -> Self {
        Self { data, layers, kinds, out, ..Self::default() }
    }

    /// Where the app's Train dialog starts: a short run to watch on a CPU (500 steps of 96-pixel
    /// crops, half-width decoders), checkpointed and validated often so the preview moves.
    pub fn trial() -> Self {
        Self { steps: 500, crop: Some(96), width: 0.5, checkpoint_every: 20, val_every: 50, ..Self::default() }
    }
}
