//! A decoder's health: a data-dependent initialisation that makes a fresh decoder's output depend
//! on its input from step one, and the collapse check run at every validation.

use crate::error::{Error, Result};
use crate::model::{Decoder, Features, Visit, OUTPUT_SCALE};
use candle_core::{DType, Tensor};
use std::collections::BTreeMap;

/// Below this share of the inputs' variance across images, a decoder's output is taken to no
/// longer depend on its input (collapsed). A decoder drawing only each photo's mean colour keeps
/// about a fifth of it (the bundled held-out photos); a collapsed one (the same picture for every
/// photo) keeps nearly none.
pub const COLLAPSE_DEPENDENCE: f64 = 0.05;

/// How fresh decoders start (`--init`). Measured on VGG-16 pool3 (width 0.5, crop 64, batch 8,
/// 300 steps, 32 held-out crops; docs/fidelity.md), SAE / SWWAE dB: uniform 16.63 / 19.65,
/// scales 17.73 / 18.44, calibrated 17.58 / 17.40.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// As PyTorch's layers: uniform in ±1/√fan_in. A fresh pool4/pool5 decoder's output then
    /// does not depend on its input.
    Uniform,
    /// Uniform, then on the first batch: the input and output scales, and the last layer set so
    /// each output channel has the images' mean and spread.
    #[default]
    Scales,
    /// [`Init::Scales`], and every hidden layer rescaled so its pre-activation has zero mean and
    /// unit variance per channel (a data-dependent initialisation).
    Calibrated,
}

impl Init {
    pub const ALL: [Init; 3] = [Init::Uniform, Init::Scales, Init::Calibrated];

    pub fn name(&self) -> &'static str {
        match self {
            Init::Uniform => "uniform",
            Init::Scales => "scales",
            Init::Calibrated => "calibrated",
        }
    }
}

crate::named::named_enum!(Init);

/// How a decoder does on a batch of (validation) images.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// The variance of the output across the images (per pixel and channel, averaged) over the
    /// inputs' own; `None` for fewer than two images.
    pub dependence: Option<f64>,
    /// Per hidden layer with weights: its name, units never positive on the batch, units.
    pub dead: Vec<(String, usize, usize)>,
}

impl Health {
    /// Why the decoder counts as collapsed, or `None`.
    pub fn collapse(&self) -> Option<String> {
        let d = self.dependence?;
        if d >= COLLAPSE_DEPENDENCE {
            return None;
        }
        let (dead, units) = self.dead_units();
        Some(format!(
            "collapsed: its output barely depends on the input (variance across images {:.3} of the photos', below {COLLAPSE_DEPENDENCE}; {dead} of {units} hidden units dead)",
            d
        ))
    }

    /// Hidden units dead, and hidden units, over all layers.
    pub fn dead_units(&self) -> (usize, usize) {
        self.dead.iter().fold((0, 0), |(a, b), (_, d, u)| (a + d, b + u))
    }
}

/// Move the channel axis (1) first and flatten the rest: `(C, N)` in f32.
fn by_channel(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?.transpose(0, 1)?.flatten_from(1)?.contiguous()?)
}

/// Per-channel mean and standard deviation (`(C,)` each) of a batch `(B, C, …)`.
fn channel_stats(t: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = by_channel(t)?;
    let mean = c.mean(1)?;
    let var = c.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.mean(1)?;
    Ok((mean, var.sqrt()?))
}

/// `(C,)` values shaped to broadcast along axis 1 of a tensor of rank `rank`.
fn along_channels(v: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank];
    shape[1] = v.dim(0)?;
    Ok(v.reshape(shape)?)
}

/// The run the decoder, its output `(B, 3, H, W)`, and its health on `f` (the features of `x`).
pub fn check(dec: &Decoder, f: &Features, x: &Tensor) -> Result<(Tensor, Health)> {
    let mut dead = Vec::new();
    let y = dec.inspect(f, &mut |v: Visit| {
        if v.relu {
            let max = by_channel(&v.pre)?.max(1)?.to_vec1::<f32>()?;
            dead.push((v.name.to_string(), max.iter().filter(|&&m| m <= 0.0).count(), max.len()));
        }
        Ok(None)
    })?;
    let dependence = if x.dim(0)? < 2 {
        None
    } else {
        let spread = |t: &Tensor| -> Result<f64> {
            let t = t.to_dtype(DType::F32)?;
            let mean = t.mean_keepdim(0)?;
            Ok(t.broadcast_sub(&mean)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64)
        };
        let sx = spread(x)?;
        Some(if sx > 0.0 { spread(&y)? / sx } else { 1.0 })
    };
    Ok((y, Health { dependence, dead }))
}

/// A data-dependent initialisation on one batch (`x` and its features `f`): the input scales
/// ([`Decoder::scales`]) become the root mean square of the code and of every activation a mark
/// mirrors, the output scale the images' spread around their channel means; then, layer by layer from the top, each hidden layer's weights and bias are rescaled
/// so that its pre-activation has zero mean and unit variance per channel on this batch, and the
/// last layer's so that each output channel has the batch's mean and spread in that channel.
/// With [`Init::Scales`] only the scales and the last layer are set; the hidden layers keep their
/// weights. Sets the scales; returns, by parameter name, the new weights and biases (for the
/// caller to write into its variables). [`Init::Uniform`] changes nothing.
pub fn calibrate(dec: &mut Decoder, f: &Features, x: &Tensor, init: Init) -> Result<Vec<(String, Tensor)>> {
    if init == Init::Uniform {
        return Ok(Vec::new());
    }
    let mut scales = BTreeMap::new();
    let taps = std::iter::once(dec.spec.layer.layer()).chain(dec.segments().into_iter().filter_map(|s| s.target));
    for tap in taps {
        let t = f.tap(tap).ok_or_else(|| Error::Unavailable(format!("the features hold no {tap} activation")))?;
        let rms = t.to_dtype(DType::F32)?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()? as f64;
        scales.insert(tap.to_string(), if rms.is_finite() && rms > 1e-6 { rms } else { 1.0 });
    }
    let (target_mean, target_std) = channel_stats(x)?;
    // The output scale: the images' spread around their channel means.
    let spread = target_std.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()? as f64;
    let out_scale = if spread.is_finite() && spread > 1e-6 { spread } else { 1.0 };
    scales.insert(OUTPUT_SCALE.to_string(), out_scale);
    let (target_mean, target_std) =
        (target_mean.affine(1.0 / out_scale, 0.0)?, target_std.affine(1.0 / out_scale, 0.0)?);
    dec.scales = scales;
    let mut updates = Vec::new();
    let mut weights = dec.named_weights();
    dec.inspect(f, &mut |v: Visit| {
        if init == Init::Scales && v.relu {
            return Ok(None);
        }
        let rank = v.pre.rank();
        let channels = v.pre.dim(1)?;
        if v.pre.elem_count() < 2 * channels {
            // One value per channel: no spread to measure; the layer stays as it is.
            return Ok(None);
        }
        let (mean, std) = channel_stats(&v.pre)?;
        // A channel without spread on this batch keeps its gain.
        let measured = std.gt(1e-6)?;
        let ones = std.ones_like()?;
        let inv_std = measured.where_cond(&std.clamp(1e-6f32, f32::MAX)?.recip()?, &ones)?;
        // y = a·pre + shift per channel.
        let (a, shift) = if v.relu {
            (inv_std.clone(), mean.mul(&inv_std)?.neg()?)
        } else {
            let a = target_std.mul(&inv_std)?;
            (a.clone(), target_mean.sub(&mean.mul(&a)?)?)
        };
        let y = v
            .pre
            .to_dtype(DType::F32)?
            .broadcast_mul(&along_channels(&a, rank)?)?
            .broadcast_add(&along_channels(&shift, rank)?)?;
        let (w, b) = weights
            .remove(v.name)
            .ok_or_else(|| Error::Unavailable(format!("decoder layer {} has no weights", v.name)))?;
        let mut wshape = vec![1; w.rank()];
        wshape[v.out_axis] = channels;
        let w = w.to_dtype(DType::F32)?.broadcast_mul(&a.reshape(wshape)?)?;
        let b = b.to_dtype(DType::F32)?.mul(&a)?.add(&shift)?;
        updates.push((format!("{}.weight", v.name), w));
        updates.push((format!("{}.bias", v.name), b));
        let y = y.to_dtype(v.pre.dtype())?;
        Ok(Some(y))
    })?;
    Ok(updates)
}
