//! One decoder being trained: its variables, its Adam state, one optimisation step, and its
//! checkpoint (weights and optimizer state, so a resumed run continues exactly).

use super::adam::Adam;
use super::objective::StepLoss;
use crate::data::Preprocess;
use crate::error::{Context, Error, Result};
use crate::fsutil::write_atomic;
use crate::model::decoder_file::{checked_tensor, CHECKPOINT_FORMAT};
use crate::model::weights::read_safetensors;
use crate::model::{Decoder, DecoderMeta, DecoderSpec, Earlier, Features, Objective};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::Path;

/// Mean squared error between a reconstruction and the preprocessed input, in the units
/// `preprocess` defines (0–1 pixels for Caffe inputs), in f32 whatever `y`'s dtype (as
/// torch_ref.py's `mse_loss(y.float(), x)`).
pub fn reconstruction_loss(y: &Tensor, x: &Tensor, preprocess: Preprocess) -> Result<Tensor> {
    Ok(crate::ops::mse_loss(y, x, preprocess.loss_scale())?)
}

/// A decoder's training state at one step, kept in memory ([`DecoderTrainer::snapshot`]).
pub struct Snapshot {
    pub steps: u64,
    images: u64,
    adam: super::adam::AdamSnapshot,
}

/// A decoder with its trainable variables and Adam state.
pub struct DecoderTrainer {
    pub decoder: Decoder,
    adam: Adam,
    /// Optimisation steps taken.
    pub steps: u64,
    /// Training images seen.
    pub images: u64,
    /// The training of the weights it started from ([`Self::init_from`]).
    pub earlier: Earlier,
    /// Multiplies the run's learning rate for this decoder: 1, halved by each rollback of the
    /// divergence guard ([`super::guard`]); kept in the checkpoint.
    pub lr_scale: f64,
}

impl DecoderTrainer {
    /// A freshly initialised decoder ([`crate::model::layers::fresh_init`]).
    pub fn new(spec: DecoderSpec, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let decoder = Decoder::new(spec, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        let vars =
            varmap.data().lock().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        Ok(Self { decoder, adam: Adam::new(vars)?, steps: 0, images: 0, earlier: Earlier::default(), lr_scale: 1.0 })
    }

    /// The data-dependent initialisation of [`super::health::calibrate`] on one batch (`x` and its
    /// features): input scales, then every layer's weights and bias rescaled.
    pub fn calibrate(&mut self, features: &Features, x: &Tensor, init: super::health::Init) -> Result<()> {
        for (name, value) in super::health::calibrate(&mut self.decoder, features, x, init)? {
            self.adam.set(&name, &value)?;
        }
        Ok(())
    }

    /// Minimise `which` on `x` and its `features` (computed without gradient from the frozen
    /// encoder): backpropagate, update with learning rate `lr`. Returns the loss before the
    /// update. A loss that is not finite is an error, after which the decoder must be dropped:
    /// its weights are already updated, and no save writes non-finite weights.
    /// [`Self::queue_step`] and [`Self::finish_step`] in two halves.
    pub fn step(
        &mut self,
        features: &Features,
        x: &Tensor,
        preprocess: Preprocess,
        lr: f64,
        which: StepLoss,
    ) -> Result<f32> {
        let loss = self.queue_step(features, x, preprocess, lr, which)?;
        self.finish_step(&loss, x.dim(0)?)
    }

    /// The whole step without reading its result: on a GPU this only queues work, so the trainer
    /// queues the steps of all its decoders for a batch before it waits for the first loss.
    /// Returns the loss (a scalar on the device) for [`Self::finish_step`].
    pub fn queue_step(
        &mut self,
        features: &Features,
        x: &Tensor,
        preprocess: Preprocess,
        lr: f64,
        which: StepLoss,
    ) -> Result<Tensor> {
        let loss = super::objective::loss(&self.decoder, features, x, preprocess, which)?;
        let grads = loss.backward()?;
        self.adam.step(&grads, lr)?;
        // Detached: the value only, not the graph of activations behind it.
        Ok(loss.detach())
    }

    /// Read the loss a [`Self::queue_step`] returned (waiting for the device), check it and count
    /// the step and its `images`.
    pub fn finish_step(&mut self, loss: &Tensor, images: usize) -> Result<f32> {
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::Unavailable(format!(
                "{} {} decoder: the loss became {value} at step {}; try a lower learning rate",
                self.decoder.spec.layer,
                self.decoder.spec.kind,
                self.steps + 1
            )));
        }
        self.count_step(images);
        Ok(value)
    }

    /// Count a step taken on `images` images.
    pub fn count_step(&mut self, images: usize) {
        self.steps += 1;
        self.images += images as u64;
    }

    /// A copy of the weights, Adam's state and the counts, to go back to with [`Self::restore`].
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot { steps: self.steps, images: self.images, adam: self.adam.snapshot()? })
    }

    /// Go back to a [`Self::snapshot`] of this decoder.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<()> {
        self.adam.restore_snapshot(&snap.adam)?;
        self.steps = snap.steps;
        self.images = snap.images;
        Ok(())
    }

    /// The current weights by parameter name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.adam.weights().map(|(n, w)| (n.to_string(), w.clone())).collect()
    }

    /// The decoder as the app holds one loaded from a file: a copy of the current weights as plain
    /// tensors, outside any autograd graph (further steps leave it as it is, so its CPU
    /// convolutions pack their kernels once), on `device` (the trainer's), converted to `dtype`.
    pub fn frozen(&self, device: &Device, dtype: DType) -> Result<Decoder> {
        let mut weights = HashMap::new();
        for (name, w) in self.adam.weights() {
            weights.insert(name.to_string(), w.detach().copy()?);
        }
        let mut d = Decoder::new(self.decoder.spec.clone(), VarBuilder::from_tensors(weights, dtype, device))?;
        d.scales = self.decoder.scales.clone();
        Ok(d)
    }

    /// Whether every weight is finite (a diverged update can leave NaNs behind a finite loss).
    pub fn weights_finite(&self) -> Result<bool> {
        for (_, w) in self.adam.weights() {
            if !w.sqr()?.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?.is_finite() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Write weights and optimizer state (f32) with `meta`, atomically.
    pub fn save_checkpoint(&self, path: &Path, meta: &DecoderMeta) -> Result<()> {
        let mut out = Vec::new();
        for slot in self.adam.state() {
            let (name, w, m, v) = slot?;
            for (prefix, t) in [("param", w.clone()), ("adam_m", m), ("adam_v", v)] {
                out.push((format!("{prefix}.{name}"), t.to_device(&Device::Cpu)?));
            }
        }
        let mut header = meta.to_map_as(CHECKPOINT_FORMAT);
        header.insert("adam_t".into(), self.adam.t.to_string());
        header.insert("lr_scale".into(), self.lr_scale.to_string());
        let bytes = safetensors::serialize(out, Some(header)).in_file(path)?;
        write_atomic(path, &bytes)
    }

    /// Start from the weights of a saved decoder of the same layer and width (either kind: an
    /// SAE decoder is a good start for the SWWAE one, whose unpooling only adds information).
    pub fn init_from(&mut self, path: &Path, encoder: &str) -> Result<()> {
        let (tensors, header) = read_safetensors(path, self.decoder_device())?;
        let meta = DecoderMeta::from_map_as(path, &header, crate::model::decoder_file::DECODER_FORMAT)?;
        let spec = &self.decoder.spec;
        if (meta.spec.arch, meta.spec.layer, meta.spec.width) != (spec.arch, spec.layer, spec.width) {
            return Err(Error::bad_file(
                path,
                format!(
                    "is a {} {} decoder of width {}, cannot start a {} {} decoder of width {} from it",
                    meta.spec.arch, meta.spec.layer, meta.spec.width, spec.arch, spec.layer, spec.width
                ),
            ));
        }
        meta.check_encoder(path, encoder)?;
        self.adam.set_weights(|name, shape| Ok(checked_tensor(path, &tensors, name, shape)?.to_dtype(DType::F32)?))?;
        self.decoder.scales = meta.scales;
        self.earlier = Earlier { steps: meta.earlier.steps + meta.steps, images: meta.earlier.images + meta.images };
        Ok(())
    }

    fn decoder_device(&self) -> &Device {
        self.adam.device()
    }

    /// Continue from a checkpoint written by [`Self::save_checkpoint`] for the same decoder
    /// (`spec`) of the same encoder (`encoder` fingerprint) trained with the same `objective`.
    pub fn resume(
        path: &Path,
        spec: DecoderSpec,
        encoder: &str,
        objective: Objective,
        device: &Device,
    ) -> Result<(Self, DecoderMeta)> {
        let (tensors, header) = read_safetensors(path, device)?;
        let meta = DecoderMeta::from_map_as(path, &header, CHECKPOINT_FORMAT)?;
        if meta.spec != spec {
            let s = &meta.spec;
            return Err(Error::bad_file(
                path,
                format!(
                    "checkpoint is for a {} {} {} decoder of width {}, this run trains {} {} {} of width {}; use another --out folder or drop --resume",
                    s.arch, s.layer, s.kind, s.width, spec.arch, spec.layer, spec.kind, spec.width
                ),
            ));
        }
        meta.check_encoder(path, encoder)?;
        if meta.objective != objective {
            return Err(Error::bad_file(
                path,
                format!(
                    "checkpoint was trained with --objective {}, this run asks for {objective}; use another --out folder or the same objective",
                    meta.objective
                ),
            ));
        }
        let t = header
            .get("adam_t")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::bad_file(path, "checkpoint lacks the optimizer step count"))?;
        let mut trainer = Self::new(spec, device)?;
        trainer.adam.restore(t, |key, shape| Ok(checked_tensor(path, &tensors, key, shape)?.to_dtype(DType::F32)?))?;
        trainer.decoder.scales = meta.scales.clone();
        trainer.steps = meta.steps;
        trainer.images = meta.images;
        trainer.earlier = meta.earlier;
        // Checkpoints from before the guard have none: the run's own rate.
        trainer.lr_scale =
            header.get("lr_scale").and_then(|v| v.parse().ok()).filter(|s: &f64| *s > 0.0 && *s <= 1.0).unwrap_or(1.0);
        Ok((trainer, meta))
    }
}
