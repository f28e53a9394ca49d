//! `layerinv bench`: the same workload as `scripts/torch_ref.py`, with the same JSON keys.

use crate::device::Precision;
use crate::error::Result;
use crate::model::{Decoder, DecoderSpec, Encoder, Kind, Layer};
use crate::train::encoded::Layout;
use crate::train::DecoderTrainer;
use candle_core::{Device, Tensor};
use serde_json::{json, Map, Value};
use std::time::Instant;

pub struct BenchConfig {
    pub batch: usize,
    /// f32, or bf16 as PyTorch's autocast (f32 weights and optimizer, bf16 convolutions and
    /// activations, f32 loss).
    pub precision: Precision,
    pub steps: usize,
    pub layers: Vec<Layer>,
    /// The kinds to time (scripts/torch_ref.py has SAE and SWWAE).
    pub kinds: Vec<Kind>,
}

fn sync(dev: &Device) -> Result<()> {
    Ok(dev.synchronize()?)
}

/// Time encoder forward, one training step per (layer, kind), and all-decoders inference.
pub fn run(enc: &Encoder, cfg: &BenchConfig, device_name: &str) -> Result<Value> {
    let enc = &enc.to_dtype(cfg.precision.dtype())?;
    let dev = enc.device().clone();
    let n = enc.arch.input_size();
    let x = Tensor::randn(0f32, 1., (cfg.batch, 3, n, n), &dev)?;
    let time = |f: &mut dyn FnMut() -> Result<()>, reps: usize| -> Result<f64> {
        for _ in 0..2 {
            f()?;
        }
        sync(&dev)?;
        let t = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        sync(&dev)?;
        let secs = t.elapsed().as_secs_f64();
        crate::device::profiled(&dev, f)?;
        Ok(secs)
    };
    // Every tap the model has in one pass, as torch_ref.py's `enc.all` (through fc8 where the
    // weights include the classifier; the bundled trunk-only model stops at pool5).
    let enc_s = time(&mut || enc.forward(&x).map(|_| ()), cfg.steps)?;
    let mut train = Map::new();
    // The same steps as `train` takes them with its encoder cache full: features cut from each
    // image's stored encoding instead of encoded (CPU only, where the cache is used).
    let mut train_cached = Map::new();
    // Images per second of training steps of every kind at `layer`, each step's features from
    // `features`.
    let rates = |layer: Layer, features: &dyn Fn() -> Result<crate::model::Features>| -> Result<Value> {
        let mut per_kind = Map::new();
        for &kind in &cfg.kinds {
            let mut t = DecoderTrainer::new(DecoderSpec::new(enc.arch, layer, kind, 1.0)?, &dev)?;
            // As torch_ref.py, which never reads its losses: the steps are queued and their losses
            // read (and checked) after the timing.
            let mut losses = Vec::new();
            let secs = time(
                &mut || {
                    let f = features()?;
                    losses.push(t.queue_step(&f, &x, enc.preprocess, 1e-4, crate::train::StepLoss::Image)?);
                    Ok(())
                },
                cfg.steps,
            )?;
            for loss in &losses {
                t.finish_step(loss, cfg.batch)?;
            }
            per_kind.insert(kind.name().into(), json!(round((cfg.batch * cfg.steps) as f64 / secs, 2)));
        }
        Ok(Value::Object(per_kind))
    };
    for &layer in &cfg.layers {
        train.insert(layer.to_string(), rates(layer, &|| enc.forward_to(&x, layer))?);
        if let Some(places) = cached_encodings(enc, layer, &x)? {
            train_cached.insert(layer.to_string(), rates(layer, &|| places.cut(enc.dtype()))?);
        }
    }
    // Decoders as the app holds them after loading a file: plain tensors, no autograd graph.
    let decoders: Vec<Decoder> = cfg
        .layers
        .iter()
        .flat_map(|&l| cfg.kinds.iter().map(move |&k| (l, k)))
        .map(|(l, k)| {
            DecoderTrainer::new(DecoderSpec::new(enc.arch, l, k, 1.0)?, &dev)?.frozen(&dev, cfg.precision.dtype())
        })
        .collect::<Result<_>>()?;
    let x1 = x.narrow(0, 0, 1)?;
    let reps = if dev.is_cpu() { 2 } else { 10 };
    let infer_s = time(
        &mut || {
            let f = enc.forward(&x1)?;
            for d in &decoders {
                d.forward(&f)?;
            }
            Ok(())
        },
        reps,
    )?;
    Ok(json!({
        "device": device_name,
        // The threads the work ran on (`--threads`, else every core).
        "threads": rayon::current_num_threads(),
        "batch": cfg.batch,
        "dtype": cfg.precision.name(),
        "encoder_fwd_ms_per_img": round(enc_s / (cfg.steps * cfg.batch) as f64 * 1000., 3),
        "train_img_per_s": train,
        "train_cached_img_per_s": train_cached,
        "infer_all_ms": round(infer_s / reps as f64 * 1000., 1),
    }))
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// The batch `x`'s encodings at `layer` as the encoder cache stores them, for
/// [`CachedBatch::cut`]; `None` where `train` uses no cache (not on the CPU, or a layer whose
/// crops cannot be cut from stored encodings).
fn cached_encodings(enc: &Encoder, layer: Layer, x: &Tensor) -> Result<Option<CachedBatch>> {
    let (b, _, h, w) = x.dims4()?;
    let taps = enc.arch.taps_of(&[layer])?;
    let layout = match Layout::plan(enc.arch, &taps, crate::model::Objective::First, h) {
        Ok(l) if enc.device().is_cpu() && h == w => l,
        _ => return Ok(None),
    };
    let mut maps = Vec::with_capacity(b);
    for i in 0..b {
        maps.push(layout.pack(&enc.forward_to(&x.narrow(0, i, 1)?, layer)?, h, w)?);
    }
    Ok(Some(CachedBatch { layout, maps, side: h }))
}

/// A batch's stored encodings ([`cached_encodings`]).
struct CachedBatch {
    layout: Layout,
    maps: Vec<Vec<u8>>,
    side: usize,
}

impl CachedBatch {
    /// The batch's features, cut from the stored encodings as `train` cuts its crops.
    fn cut(&self, dtype: candle_core::DType) -> Result<crate::model::Features> {
        let places: Vec<(&[u8], usize, usize, usize, usize)> =
            self.maps.iter().map(|m| (m.as_slice(), self.side, self.side, 0, 0)).collect();
        self.layout.cut(&places, self.side, dtype)
    }
}
