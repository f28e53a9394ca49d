//! `layerinv train`: the trainer with a progress bar; Ctrl-C saves a checkpoint and exits.

use crate::device::Precision;
use crate::model::{Kind, Layer, ModelSource, Objective};
use crate::train::encoded::{CacheConfig, DEFAULT_LIMIT_BYTES};
use crate::train::{train, CancelToken, Event, Init, TrainConfig};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// The defaults `layerinv train` shows and uses: [`TrainConfig::default`].
fn d() -> TrainConfig {
    TrainConfig::default()
}

/// `layerinv train` options.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Folder of training images (jpg, png, webp, bmp; searched recursively).
    #[arg(long)]
    pub data: PathBuf,
    /// Folder of validation images (default: every 10th training image is held out).
    #[arg(long)]
    val: Option<PathBuf>,
    /// Layers to train decoders for (default: every pooled layer of the model).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<Layer>,
    /// Kinds of decoder (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    kinds: Vec<Kind>,
    /// Optimisation steps per decoder (in total, counting resumed ones).
    #[arg(long, default_value_t = d().steps)]
    steps: u64,
    #[arg(long, default_value_t = d().batch)]
    batch: usize,
    /// Side of the square training crops (default: the model's input size; fc layers need it).
    #[arg(long)]
    crop: Option<usize>,
    /// Peak learning rate (Adam; warm-up, then cosine decay to a tenth); up-conv decoders below
    /// pool1 take a share of it (pool2 5/8, pool3 5/16, pool4 and pool5 5/32: their wide, dense
    /// up-convolutions make each step larger)
    #[arg(long, default_value_t = d().lr)]
    lr: f64,
    /// Decoder channel width inside each stage (1 = full mirror of the encoder).
    #[arg(long, default_value_t = d().width)]
    width: f64,
    /// Folder for the decoders and their checkpoints.
    #[arg(long, default_value_os_t = d().out)]
    out: PathBuf,
    /// Continue from the checkpoints in --out.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value_t = d().checkpoint_every)]
    checkpoint_every: u64,
    #[arg(long, default_value_t = d().val_every)]
    val_every: u64,
    #[arg(long, default_value_t = d().val_images)]
    val_images: usize,
    #[arg(long, default_value_t = d().seed)]
    seed: u64,
    /// Start the new decoders from this decoder file's weights (same layer, width and
    /// parameters; e.g. SWWAE from a trained SAE).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// What the decoders minimise: first (the image loss), all (plus every stage's distance to
    /// the encoder's activation of its depth) or layerwise (each stage alone, then a fine-tune
    /// of the stack on the image loss)
    #[arg(long, value_enum, default_value_t = d().objective)]
    objective: Objective,
    /// layerwise: the share of the steps, at the end, that fine-tunes the stack on the image
    #[arg(long, default_value_t = d().finetune)]
    finetune: f64,
    /// How fresh decoders start: uniform (±1/√fan_in, as PyTorch), scales (uniform, then input
    /// and output scales and the last layer set on the first batch) or calibrated (scales, and
    /// every hidden layer normalised on the first batch)
    #[arg(long, value_enum, default_value_t = d().init)]
    init: Init,
    #[arg(long, default_value = "bundled", value_parser = crate::model::ModelSource::check_name)]
    model: String,
    /// cpu, cuda, cuda:N or auto
    #[arg(long, default_value = "auto", value_parser = crate::device::check_device_name)]
    device: String,
    /// fp32, or bf16: mixed precision as PyTorch's autocast (bf16 convolutions and activations,
    /// f32 weights, optimizer and loss); pays off on GPUs with bf16 tensor cores
    #[arg(long, value_enum, default_value_t = d().precision)]
    dtype: Precision,
    /// Cut training crops from photos encoded whole, kept in this folder for later runs (no
    /// folder: ~/.cache/layerinv/encoded). Faster, but decoders trained so see fewer image edges
    /// and reconstruct the borders of a photo worse (docs/cpu_speed.md, "Encode once")
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    cache: Option<PathBuf>,
    /// With --cache: encode every photo whole and keep it even when this run is too short to pay
    /// for it (for later runs)
    #[arg(long, requires = "cache")]
    fill_cache: bool,
    /// The most the cache folder may hold, in GB
    #[arg(long, default_value_t = DEFAULT_LIMIT_BYTES as f64 / 1e9)]
    cache_limit: f64,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        if !(0.0..=1.0).contains(&self.finetune) {
            bail!("--finetune must be between 0 and 1, got {}", self.finetune);
        }
        if !(self.cache_limit.is_finite() && self.cache_limit >= 0.0) {
            bail!("--cache-limit must be a number of GB, got {}", self.cache_limit);
        }
        let cache = match &self.cache {
            None => None,
            Some(dir) if dir.as_os_str().is_empty() => match CacheConfig::user_default() {
                Some(c) => Some(c),
                None => bail!("--cache needs a folder here (neither XDG_CACHE_HOME nor HOME is set)"),
            },
            Some(dir) => Some(CacheConfig { dir: dir.clone(), limit: DEFAULT_LIMIT_BYTES, fill_always: false }),
        }
        .map(|c| CacheConfig { limit: (self.cache_limit * 1e9) as u64, fill_always: self.fill_cache, ..c });
        Ok(TrainConfig {
            data: self.data.clone(),
            val: self.val.clone(),
            layers: self.layers.clone(),
            kinds: if self.kinds.is_empty() { d().kinds } else { self.kinds.clone() },
            steps: self.steps,
            batch: self.batch,
            crop: self.crop,
            lr: self.lr,
            width: self.width,
            out: self.out.clone(),
            resume: self.resume,
            checkpoint_every: self.checkpoint_every,
            val_every: self.val_every,
            val_images: self.val_images,
            seed: self.seed,
            init_from: self.init_from.clone(),
            objective: self.objective,
            finetune: self.finetune,
            init: self.init,
            precision: self.dtype,
            cache,
        })
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = args.config()?;
    let dev = crate::device::parse_device(&args.device)?;
    let enc = ModelSource::parse(&args.model).load(&dev)?;
    let precision = if cfg.precision == Precision::Bf16 { ", bf16 mixed precision" } else { "" };
    let about = format!("{} on {}{precision}", enc.name, crate::device::describe(&dev));
    let cancel = CancelToken::default();
    let token = cancel.clone();
    ctrlc::set_handler(move || {
        if token.is_cancelled() {
            // Second Ctrl-C: every file on disk is complete (atomic writes), so leaving is safe.
            std::process::exit(130);
        }
        token.cancel();
    })?;
    let cfg_steps = cfg.steps;
    let objective = cfg.objective;
    let bar = ProgressBar::new(cfg.steps);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    // A hidden bar (stderr not a terminal, e.g. a log file) drops println: print lines directly.
    let say = |line: String| if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) };
    let mut sink = |e: &Event| match e {
        Event::Started { decoders, train_images, val_images, total_steps } => {
            let resumed: Vec<String> =
                decoders.iter().filter(|(_, s)| *s > 0).map(|(id, s)| format!("{id} at step {s}")).collect();
            say(format!(
                "{about}, objective {objective}: {} decoders, {train_images} training images, {val_images} validation images, {total_steps} steps{}",
                decoders.len(),
                if resumed.is_empty() { String::new() } else { format!("; resuming {}", resumed.join(", ")) }
            ));
            bar.set_position(decoders.iter().map(|(_, s)| *s).min().unwrap_or(0));
        }
        Event::Skipped(s) => say(format!("skipped {}: {}", s.path.display(), s.error)),
        Event::Note(note) => say(note.clone()),
        Event::Step { step, losses, images_per_s, eta_s, .. } => {
            let mean = losses.iter().map(|(_, l)| *l as f64).sum::<f64>() / losses.len().max(1) as f64;
            bar.set_position(*step);
            let msg = format!("loss {mean:.5}  {images_per_s:.1} img/s  ETA {}", fmt_secs(*eta_s));
            if bar.is_hidden() && step % 10 == 0 {
                eprintln!("step {step}/{}: {msg}", cfg_steps);
            }
            bar.set_message(msg);
        }
        Event::Validation { step, secs, results } => {
            let parts: Vec<String> = results.iter().map(|r| format!("{} {:.2} dB", r.id, r.psnr)).collect();
            say(format!("step {step} ({} of training) validation PSNR: {}", fmt_secs(*secs), parts.join(", ")));
        }
        Event::Collapsed { id, why, .. } => say(format!("warning: {id} decoder {why}")),
        Event::RolledBack { id, rollback, lr } => say(format!("warning: {}", rollback.describe(id, *lr))),
        Event::Checkpoint { .. } => {}
        Event::DecoderFailed { id, error } => say(format!("{id} stopped: {error}")),
        Event::Finished { step, cancelled } => {
            bar.finish_and_clear();
            if *cancelled {
                eprintln!("interrupted at step {step}: checkpoint saved, continue with --resume");
            }
        }
    };
    let summary = train(&enc, &cfg, &mut sink, &cancel)?;
    for p in &summary.saved {
        println!("saved {}", p.display());
    }
    if !summary.failed.is_empty() {
        bail!(
            "{} decoder(s) failed: {}",
            summary.failed.len(),
            summary.failed.iter().map(|(id, e)| format!("{id}: {e}")).collect::<Vec<_>>().join("; ")
        );
    }
    Ok(())
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
