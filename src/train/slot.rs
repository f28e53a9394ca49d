//! One decoder of a run: its trainer, its divergence guard, and what a step of it ends in
//! (trained, rolled back, or stopped), with the saving of its files.

use super::config::TrainConfig;
use super::events::{DecoderId, Event, EventSink, ValResult};
use super::guard::{fmt_loss, Guard, Verdict};
use super::health::Init;
use super::objective::StepLoss;
use super::record::RunRecord;
use super::run::{checkpoint_path, learning_rate};
use super::step::DecoderTrainer;
use crate::data::Preprocess;
use crate::error::Result;
use crate::model::{decoder_path, save_decoder, DecoderMeta, DecoderSpec, Encoder, Features, Kind, Layer};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

pub(super) struct Slot {
    pub id: DecoderId,
    pub trainer: DecoderTrainer,
    /// Rolls the decoder back when its loss diverges.
    guard: Guard,
    /// What the decoder's last step minimised (the guard's history restarts when it changes).
    minimised: Option<StepLoss>,
    pub failed: bool,
    /// The step of the decoder's files on disk (a resumed decoder's: its checkpoint's).
    pub saved_step: Option<u64>,
    pub val: Option<ValResult>,
    /// Fresh: calibrate on the first batch before the first step.
    pub calibrate: bool,
}

/// How a decoder's step ended.
pub(super) enum StepEnd {
    /// It trained; its loss.
    Trained(f32),
    /// Its loss diverged: it went back to its last good state (and said so).
    RolledBack,
    /// It stops, for this reason (its files say what they hold).
    Stopped(String),
}

impl Slot {
    /// The `layer` `kind` decoder of the run `cfg`: resumed from its checkpoint, started from
    /// `cfg.init_from`, or fresh.
    pub fn open(enc: &Encoder, cfg: &TrainConfig, layer: Layer, kind: Kind, dev: &Device) -> Result<Self> {
        let dspec = DecoderSpec::new(enc.arch, layer, kind, cfg.width)?;
        let ckpt = checkpoint_path(&cfg.out, &dspec);
        let resumed = cfg.resume && ckpt.exists();
        let (trainer, fresh) = if resumed {
            (DecoderTrainer::resume(&ckpt, dspec, &enc.fingerprint, cfg.objective, dev)?.0, false)
        } else {
            let mut t = DecoderTrainer::new(dspec, dev)?;
            if let Some(init) = &cfg.init_from {
                t.init_from(init, &enc.fingerprint)?;
            }
            (t, cfg.init_from.is_none())
        };
        Ok(Self {
            id: DecoderId { layer, kind },
            saved_step: resumed.then_some(trainer.steps),
            trainer,
            guard: Guard::default(),
            minimised: None,
            failed: false,
            val: None,
            calibrate: fresh && cfg.init != Init::Uniform,
        })
    }

    /// The decoder's peak learning rate: the run's, times its own scale and the guard's.
    fn peak_lr(&self, cfg: &TrainConfig) -> f64 {
        cfg.lr * self.trainer.decoder.spec.learning_rate_scale() * self.trainer.lr_scale
    }

    /// Queue this decoder's step on the batch `x` and its `features` (a snapshot for the guard
    /// first, when one is due); the loss for [`Self::finish`].
    pub fn queue(
        &mut self,
        features: &Features,
        x: &Tensor,
        preprocess: Preprocess,
        cfg: &TrainConfig,
    ) -> Result<Tensor> {
        let lr = learning_rate(self.peak_lr(cfg), self.trainer.steps, cfg.steps);
        let which = StepLoss::at(cfg.objective, self.trainer.steps, cfg.steps, cfg.finetune);
        if self.minimised.replace(which) != Some(which) {
            self.guard.reset_history();
        }
        self.guard.before_step(&self.trainer)?;
        self.trainer.queue_step(features, x, preprocess, lr, which)
    }

    /// Read the loss of a queued step on `images` images and let the guard judge it: count the
    /// step, or roll back (into `record`, through `sink`), or stop at the last good state after
    /// too many rollbacks, written out unless the files on disk already hold it.
    pub fn finish(
        &mut self,
        loss: Result<Tensor>,
        images: usize,
        encoder: &str,
        cfg: &TrainConfig,
        record: &mut RunRecord,
        sink: &mut dyn EventSink,
    ) -> StepEnd {
        let before = self.trainer.steps;
        let judged = loss.and_then(|l| Ok(l.to_scalar::<f32>()?)).map(|v| (v, self.guard.judge(v, before)));
        let (v, typical) = match judged {
            Ok((v, Verdict::Healthy | Verdict::Suspect)) => {
                self.trainer.count_step(images);
                return StepEnd::Trained(v);
            }
            Ok((v, Verdict::Diverged { typical })) => (v, typical),
            Err(e) => return StepEnd::Stopped(format!("{e} (its last saved files are kept)")),
        };
        let rb = match self.guard.roll_back(&mut self.trainer, before + 1, v, typical) {
            Ok(Some(rb)) => rb,
            Ok(None) => {
                return StepEnd::Stopped(format!(
                    "the loss became {v} at step {}, before any good state to go back to; try a lower learning rate (its last saved files are kept)",
                    before + 1
                ))
            }
            Err(e) => return StepEnd::Stopped(format!("{e} (its last saved files are kept)")),
        };
        let lr = self.peak_lr(cfg);
        // The last validation measured weights it no longer has.
        self.val = None;
        record.add_rollback(&self.id, &rb, lr);
        sink.event(&Event::RolledBack { id: self.id.clone(), rollback: rb.clone(), lr });
        if !self.guard.exhausted() {
            return StepEnd::RolledBack;
        }
        let diverged =
            format!("diverged {} times (the last at step {}, loss {})", rb.count, rb.step, fmt_loss(rb.loss));
        let at = format!("stopped at its last good state, step {}", rb.back_to);
        StepEnd::Stopped(if self.saved_step == Some(rb.back_to) {
            format!("{diverged}; {at}, which its files hold")
        } else {
            match self.save(encoder, cfg) {
                Ok(Some(path)) => format!("{diverged}; {at}, saved in {}", path.display()),
                Ok(None) => format!("{diverged}; {at}, before any step: nothing to save"),
                Err(e) => format!("{diverged}; its last good state could not be saved: {e}"),
            }
        })
    }

    /// Write the decoder's files (decoder and checkpoint) into `cfg.out`; `None` when it has
    /// nothing worth saving (no step yet, or weights that are not finite).
    pub fn save(&mut self, encoder: &str, cfg: &TrainConfig) -> Result<Option<PathBuf>> {
        if self.trainer.steps == 0 || !self.trainer.weights_finite()? {
            return Ok(None);
        }
        let meta = DecoderMeta {
            spec: self.trainer.decoder.spec.clone(),
            encoder: encoder.to_string(),
            steps: self.trainer.steps,
            images: self.trainer.images,
            earlier: self.trainer.earlier,
            val_loss: self.val.as_ref().map(|v| v.loss),
            val_psnr: self.val.as_ref().map(|v| v.psnr),
            objective: cfg.objective,
            scales: self.trainer.decoder.scales.clone(),
        };
        let dspec = &self.trainer.decoder.spec;
        self.trainer.save_checkpoint(&checkpoint_path(&cfg.out, dspec), &meta)?;
        let path = decoder_path(&cfg.out, dspec.arch, dspec.layer.layer(), dspec.kind);
        save_decoder(&path, &meta, &self.trainer.tensors(), DType::F16)?;
        self.saved_step = Some(self.trainer.steps);
        Ok(Some(path))
    }
}
