//! One optimisation step of one decoder: the unit shared by the trainer and the benchmark.

use crate::data::Preprocess;
use crate::error::Result;
use crate::model::{Decoder, DecoderSpec, Features};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

/// Mean squared error between a reconstruction and the preprocessed input, in the units
/// `preprocess` defines (0–1 pixels for Caffe inputs).
pub fn reconstruction_loss(y: &Tensor, x: &Tensor, preprocess: Preprocess) -> Result<Tensor> {
    Ok(y.sub(x)?.affine(preprocess.loss_scale(), 0.)?.sqr()?.mean_all()?)
}

/// A decoder with its trainable variables and AdamW state.
pub struct DecoderTrainer {
    pub decoder: Decoder,
    pub varmap: VarMap,
    opt: AdamW,
}

impl DecoderTrainer {
    /// A freshly initialised decoder (Kaiming-normal weights).
    pub fn new(spec: DecoderSpec, device: &Device, lr: f64) -> Result<Self> {
        let varmap = VarMap::new();
        let decoder = Decoder::new(spec, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        let params = ParamsAdamW { lr, weight_decay: 0.0, ..Default::default() };
        let opt = AdamW::new(varmap.all_vars(), params)?;
        Ok(Self { decoder, varmap, opt })
    }

    /// Reconstruct `x` from `features` (computed without gradient from the frozen encoder),
    /// backpropagate, update. Returns the loss before the update.
    pub fn step(&mut self, features: &Features, x: &Tensor, preprocess: Preprocess) -> Result<f32> {
        let y = self.decoder.forward(features)?;
        let loss = reconstruction_loss(&y, x, preprocess)?;
        self.opt.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()?)
    }
}
