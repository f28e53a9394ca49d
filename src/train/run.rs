//! The training loop shared by the CLI and the GUI: several decoders (layers × kinds) fitted to
//! one frozen encoder from one shared encoder pass per batch, reporting through an [`EventSink`]
//! and stoppable through a [`CancelToken`].

use super::config::TrainConfig;
use super::events::{CancelToken, DecoderId, Event, EventSink, TrainSummary, ValResult};
use super::health::check as check_health;
use super::record::{now_unix, RunRecord, RunState};
use super::slot::{Slot, StepEnd};
use crate::data::{list_images, load_centre_crops, CropSpec, Loaded, IMAGE_EXTENSIONS};
use crate::error::{Error, Result};
use crate::model::{decoder_path, DecoderSpec, Encoder, Layer, Tap};
use candle_core::Tensor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The checkpoint kept beside a decoder file (`…_sae.ckpt` for `…_sae.safetensors`).
pub fn checkpoint_path(out: &Path, spec: &DecoderSpec) -> PathBuf {
    decoder_path(out, spec.arch, spec.layer.layer(), spec.kind).with_extension("ckpt")
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up over the first 50 steps, then
/// cosine decay from `peak` to `peak / 10`.
pub fn learning_rate(peak: f64, step: u64, total: u64) -> f64 {
    let warm = ((step + 1) as f64 / 50.0).min(1.0);
    let t = (step as f64 / total.max(1) as f64).min(1.0);
    peak * warm * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// The first item of `items` that an earlier one equals.
fn first_repeated<T: PartialEq>(items: &[T]) -> Option<&T> {
    items.iter().enumerate().find(|(i, x)| items[..*i].contains(x)).map(|(_, x)| x)
}

/// Train the decoders `cfg` asks for. Returns when every decoder reached `cfg.steps`, failed, or
/// `cancel` was set; decoders and checkpoints are saved in `cfg.out` along the way and at the end.
pub fn train(enc: &Encoder, cfg: &TrainConfig, sink: &mut dyn EventSink, cancel: &CancelToken) -> Result<TrainSummary> {
    let enc = &Arc::new(enc.to_dtype(cfg.precision.dtype())?);
    let n = enc.arch.input_size();
    let crop = cfg.crop.unwrap_or(n);
    // No layers named: every layer of the conv trunk.
    let taps = if cfg.layers.is_empty() { enc.arch.stage_taps() } else { enc.arch.taps_of(&cfg.layers)? };
    let cfg = &TrainConfig { layers: taps.iter().map(Tap::layer).collect(), ..cfg.clone() };
    for t in &taps {
        if let Some(why) = enc.unavailable_reason(t.layer()) {
            return Err(Error::Unavailable(why));
        }
        if t.is_fc() && crop != n {
            return Err(Error::Unavailable(format!(
                "{t} needs the full {n}×{n} input: drop --crop or train conv layers separately"
            )));
        }
    }
    if cfg.kinds.is_empty() {
        return Err(Error::Unavailable("nothing to train: give at least one kind".into()));
    }
    // One decoder per layer and kind: a name given twice would train two into one file.
    let repeated =
        first_repeated(&taps).map(|t| t.to_string()).or_else(|| first_repeated(&cfg.kinds).map(|k| k.to_string()));
    if let Some(name) = repeated {
        return Err(Error::Unavailable(format!("{name} is asked for twice: give each layer and kind once")));
    }
    if crop < 32 || crop > 4 * n {
        return Err(Error::Unavailable(format!("crop must be between 32 and {} pixels, got {crop}", 4 * n)));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(Error::Unavailable(format!("the learning rate must be a positive number, got {}", cfg.lr)));
    }
    if cfg.batch == 0 || cfg.steps == 0 {
        return Err(Error::Unavailable("batch and steps must be at least 1".into()));
    }

    // One run per output folder; what a killed run left half-written goes.
    let _lock = crate::fsutil::lock_folder(&cfg.out)?;
    crate::fsutil::remove_stale_temps(&cfg.out);

    // Files: training list, validation list (a folder, or every 10th training image).
    let mut files = list_images(&cfg.data)?;
    let val_files = match &cfg.val {
        Some(dir) => list_images(dir)?,
        None if files.len() >= 10 => {
            let val: Vec<PathBuf> = files.iter().step_by(10).cloned().collect();
            files = files.into_iter().enumerate().filter(|(i, _)| i % 10 != 0).map(|(_, f)| f).collect();
            val
        }
        None => Vec::new(),
    };
    if files.is_empty() {
        return Err(Error::bad_file(
            &cfg.data,
            format!("no training images ({}) in this folder", IMAGE_EXTENSIONS.join(", ")),
        ));
    }
    let val_files = &val_files[..val_files.len().min(cfg.val_images)];

    // The run's record: a resumed run keeps when it first started and its validation curve; how
    // it ends is written last.
    let (started, curve, rollbacks) = match RunRecord::load(&cfg.out) {
        // Validations after the checkpoint the run resumes from are made again.
        Ok(Some(r)) if cfg.resume => (
            r.started,
            r.curve.into_iter().filter(|p| p.step <= r.step).collect(),
            r.rollbacks.into_iter().filter(|p| p.step <= r.step).collect(),
        ),
        _ => (now_unix(), Vec::new(), Vec::new()),
    };
    let mut record = RunRecord::new(cfg, started, val_files.to_vec());
    record.curve = curve;
    record.rollbacks = rollbacks;
    record.save(&cfg.out)?;
    let result = train_decoders(enc, cfg, sink, cancel, files, val_files, &mut record);
    match &result {
        Ok(summary) => {
            record.state = if summary.cancelled { RunState::Cancelled } else { RunState::Finished };
        }
        Err(e) => {
            record.state = RunState::Failed;
            record.error = Some(e.to_string());
        }
    }
    // A record that cannot be written does not hide the run's own outcome.
    let saved = record.save(&cfg.out);
    let summary = result?;
    saved?;
    Ok(summary)
}

/// The decoders of a run whose folder is locked and whose record is written: load, train,
/// validate, checkpoint.
fn train_decoders(
    enc: &Arc<Encoder>,
    cfg: &TrainConfig,
    sink: &mut dyn EventSink,
    cancel: &CancelToken,
    files: Vec<PathBuf>,
    val_files: &[PathBuf],
    record: &mut RunRecord,
) -> Result<TrainSummary> {
    let n = enc.arch.input_size();
    let crop = cfg.crop.unwrap_or(n);
    let spec = CropSpec::for_model(n, crop);
    let (val_imgs, val_skipped) = load_centre_crops(val_files, spec);
    for s in val_skipped {
        sink.event(&Event::Skipped(s));
    }

    // Decoders, fresh or from their checkpoints.
    let dev = enc.device().clone();
    let mut slots = Vec::new();
    for &layer in &cfg.layers {
        for &kind in &cfg.kinds {
            slots.push(Slot::open(enc, cfg, layer, kind, &dev)?);
        }
    }
    let deepest = enc.arch.taps_of(&cfg.layers)?.into_iter().max().map_or(Layer::POOL1, |t| t.layer());
    sink.event(&Event::Started {
        decoders: slots.iter().map(|s| (s.id.clone(), s.trainer.steps)).collect(),
        train_images: files.len(),
        val_images: val_imgs.len(),
        total_steps: cfg.steps,
    });

    // Validation inputs and their features are fixed for the run: compute them once.
    let val_x = if val_imgs.is_empty() {
        None
    } else {
        let ts = val_imgs
            .iter()
            .map(|(_, img)| enc.preprocess.to_tensor(img, crop, &dev))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Some(Tensor::stack(&ts, 0)?)
    };
    let val_features = match &val_x {
        Some(x) => Some(enc.forward_to(x, deepest)?),
        None => None,
    };
    let validate = |slots: &mut Vec<Slot>| -> Result<Vec<ValResult>> {
        let (Some(x), Some(f)) = (&val_x, &val_features) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for s in slots.iter_mut().filter(|s| !s.failed) {
            let (y, health) = check_health(&s.trainer.decoder, f, x)?;
            let (loss, psnr) = batch_mse_psnr(&y, x, enc)?;
            let r = ValResult { id: s.id.clone(), loss, psnr, health };
            s.val = Some(r.clone());
            out.push(r);
        }
        Ok(out)
    };
    let save = |slots: &mut [Slot]| -> Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for s in slots.iter_mut().filter(|s| !s.failed) {
            paths.extend(s.save(&enc.fingerprint, cfg)?);
        }
        Ok(paths)
    };

    let start_step = slots.iter().map(|s| s.trainer.steps).min().unwrap_or(0);
    let taps = enc.arch.taps_of(&cfg.layers)?;
    let seed = cfg.seed.wrapping_add(start_step);
    let (loader, note) =
        super::encoded::batch_loader(enc, cfg, &taps, files, spec, seed, cfg.steps - start_step.min(cfg.steps));
    if let Some(note) = note {
        sink.event(&Event::Note(note));
    }
    let mut failed = Vec::new();
    let started = Instant::now();
    // Training time of the parts of a resumed run before this one.
    let earlier_secs = record.trained_secs();
    let mut images_done = 0u64;
    let mut cancelled = false;
    let mut step = start_step;
    // Batches of this run: validation and checkpoints are scheduled on them.
    let mut batches = 0u64;
    loop {
        let active = |s: &Slot| !s.failed && s.trainer.steps < cfg.steps;
        if !slots.iter().any(active) {
            break;
        }
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        let (x, features) = match loader.next() {
            Some(Loaded::Batch { x, features }) => (x.to_device(&dev)?, features),
            Some(Loaded::Skipped(s)) => {
                sink.event(&Event::Skipped(s));
                continue;
            }
            Some(Loaded::Note(note)) => {
                sink.event(&Event::Note(note));
                continue;
            }
            Some(Loaded::Exhausted) | None => {
                return Err(Error::bad_file(&cfg.data, "none of the images in this folder could be read"));
            }
        };
        let features = match features {
            Some(f) => f,
            None => enc.forward_to(&x, deepest)?,
        };
        if slots.iter().any(|s| s.calibrate) {
            // Calibration reads every activation up to the decoder's layer, more than a batch cut
            // from cached encodings carries.
            let all = enc.forward_to(&x, deepest)?;
            for s in slots.iter_mut().filter(|s| s.calibrate) {
                s.trainer.calibrate(&all, &x, cfg.init)?;
                s.calibrate = false;
            }
        }
        // Every decoder's step is queued before the first loss is read, so a GPU works through
        // all of them without waiting for the host in between.
        let queued: Vec<(usize, Result<Tensor>)> = slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| active(s))
            .map(|(i, s)| (i, s.queue(&features, &x, enc.preprocess, cfg)))
            .collect();
        let mut losses = Vec::new();
        for (i, loss) in queued {
            let s = &mut slots[i];
            match s.finish(loss, x.dim(0)?, &enc.fingerprint, cfg, record, sink) {
                StepEnd::Trained(v) => losses.push((s.id.clone(), v)),
                StepEnd::RolledBack => {}
                StepEnd::Stopped(msg) => {
                    s.failed = true;
                    sink.event(&Event::DecoderFailed { id: s.id.clone(), error: msg.clone() });
                    failed.push((s.id.clone(), msg));
                }
            }
        }
        // Progress is the slowest decoder that trained on this batch: it reaches `total` last.
        step = slots
            .iter()
            .filter(|s| losses.iter().any(|(id, _)| *id == s.id))
            .map(|s| s.trainer.steps)
            .min()
            .unwrap_or(step);
        batches += 1;
        images_done += x.dim(0)? as u64;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let rate = images_done as f64 / secs;
        let left = slots.iter().filter(|s| active(s)).map(|s| cfg.steps - s.trainer.steps).max().unwrap_or(0);
        let eta_s = left as f64 * cfg.batch as f64 / rate.max(1e-9);
        sink.event(&Event::Step { step, total: cfg.steps, losses, images_per_s: rate, eta_s });
        let done = !slots.iter().any(active);
        let validating = slots.iter().any(|s| !s.failed);
        if cfg.val_every > 0 && (batches.is_multiple_of(cfg.val_every) || done) && val_x.is_some() && validating {
            let results = validate(&mut slots)?;
            let secs = earlier_secs + started.elapsed().as_secs_f64();
            record.add_validation(step, secs, &results);
            report_validation(sink, step, secs, results);
        }
        if cfg.checkpoint_every > 0 && batches.is_multiple_of(cfg.checkpoint_every) && !done {
            let paths = save(&mut slots)?;
            record.step = step;
            record.save(&cfg.out)?;
            sink.event(&Event::Checkpoint { step, paths });
        }
    }
    if slots.iter().all(|s| s.failed) {
        return Err(Error::Unavailable(format!(
            "every decoder failed: {}",
            failed.iter().map(|(id, e)| format!("{id}: {e}")).collect::<Vec<_>>().join("; ")
        )));
    }
    if slots.iter().any(|s| s.val.is_none() && !s.failed) && val_x.is_some() && !cancelled {
        let results = validate(&mut slots)?;
        let secs = earlier_secs + started.elapsed().as_secs_f64();
        record.add_validation(step, secs, &results);
        report_validation(sink, step, secs, results);
    }
    let saved = save(&mut slots)?;
    record.step = step;
    sink.event(&Event::Checkpoint { step, paths: saved.clone() });
    sink.event(&Event::Finished { step, cancelled });
    Ok(TrainSummary { cancelled, saved, failed, last_validation: slots.iter().filter_map(|s| s.val.clone()).collect() })
}

/// The validation event, then one collapse event per collapsed decoder.
fn report_validation(sink: &mut dyn EventSink, step: u64, secs: f64, results: Vec<ValResult>) {
    let collapsed: Vec<(DecoderId, String)> =
        results.iter().filter_map(|r| r.health.collapse().map(|why| (r.id.clone(), why))).collect();
    sink.event(&Event::Validation { step, secs, results });
    for (id, why) in collapsed {
        sink.event(&Event::Collapsed { step, id, why });
    }
}

/// Mean MSE (0–1 pixel units) and mean per-image PSNR (dB, 0–255 images after undoing the
/// preprocessing, reconstruction clamped to the valid range) of a batch of reconstructions.
pub fn batch_mse_psnr(y: &Tensor, x: &Tensor, enc: &Encoder) -> Result<(f64, f64)> {
    let b = x.dim(0)?;
    let mut mse_sum = 0.0;
    let mut psnr_sum = 0.0;
    for i in 0..b {
        let a = enc.preprocess.to_image(&y.get(i)?)?;
        let r = enc.preprocess.to_image(&x.get(i)?)?;
        let m = super::metrics::mse(&a, &r);
        mse_sum += m;
        psnr_sum += super::metrics::psnr(m);
    }
    Ok((mse_sum / b as f64, psnr_sum / b as f64))
}
