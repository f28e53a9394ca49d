//! The what/where experiments on one photo's code: decode it with another photo's pooling
//! switches, keep only some of its channels, and map where a reconstruction differs.

use crate::error::{Error, Result};
use crate::model::{Features, Kind, Layer};
use candle_core::{DType, Tensor};
use image::{Rgb, RgbImage};
use std::path::PathBuf;

/// How a layer's code is changed before the decoders see it: the same request from the CLI
/// (`--switches-from`, `--keep-channels`) and the app (the Switches menu, the Channels view).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CodeEdit {
    /// Decode with the pooling switches of this other photo (only kinds that read switches
    /// change).
    pub switches_of: Option<PathBuf>,
    /// Keep only these channels of the layer's code (one flag per channel); `None` keeps all.
    pub keep: Option<Vec<bool>>,
}

impl CodeEdit {
    pub fn is_plain(&self) -> bool {
        self.switches_of.is_none() && self.keep.is_none()
    }

    /// `features` with this edit at `layer`: the switches of `theirs` (the features of
    /// [`Self::switches_of`]'s photo, required when it is set), then the channel mask.
    pub fn apply(&self, features: &Features, layer: Layer, theirs: Option<&Features>) -> Result<Features> {
        let mut f = match (&self.switches_of, theirs) {
            (None, _) => features.clone(),
            (Some(_), Some(theirs)) => with_switches_of(features, theirs)?,
            (Some(p), None) => {
                return Err(Error::Unavailable(format!("{}: its features were not computed", p.display())))
            }
        };
        if let Some(keep) = &self.keep {
            f = keep_channels(&f, layer, keep)?;
        }
        Ok(f)
    }

    /// How titles say it.
    pub fn change(&self) -> crate::figure::CodeChange {
        crate::figure::CodeChange {
            kept: self.keep.as_ref().map(|keep| (keep.iter().filter(|&&k| k).count(), keep.len())),
            switches_of: self
                .switches_of
                .as_ref()
                .map(|p| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())),
        }
    }
}

/// `f` with the pooling switches of `other` (the same model and input size): the SWWAE decoder
/// then puts this photo's pooled values ("what") where the other photo's maxima were ("where").
/// The SAE decoder does not read switches. `other` must reach at least as deep as `f`.
pub fn with_switches_of(f: &Features, other: &Features) -> Result<Features> {
    let mut switches = Vec::with_capacity(f.switches.len());
    for (stage, own) in f.switches.iter().enumerate() {
        switches.push(match own {
            None => None,
            Some(own) => {
                let theirs = other.switches.get(stage).and_then(|s| s.as_ref()).ok_or_else(|| {
                    Error::Unavailable(format!("the other photo's features hold no switches for stage {}", stage + 1))
                })?;
                if theirs.indices.dims() != own.indices.dims() || theirs.in_hw != own.in_hw {
                    return Err(Error::Unavailable(format!(
                        "the other photo's switches of stage {} have shape {:?}, this photo's {:?}",
                        stage + 1,
                        theirs.indices.dims(),
                        own.indices.dims()
                    )));
                }
                Some(theirs.clone())
            }
        });
    }
    Ok(Features { taps: f.taps.clone(), switches })
}

/// Which channels (conv layers) or units (fc layers) of a layer's code to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSpec {
    /// Indices and inclusive ranges: `0-31,64,100`.
    List(Vec<(usize, usize)>),
    /// The `k` channels with the most energy (mean square) in this photo's code: `top:16`.
    Top(usize),
}

impl ChannelSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: String| Error::Unavailable(format!("--keep-channels {spec:?}: {why}"));
        let spec_t = spec.trim();
        if let Some(k) = spec_t.strip_prefix("top:") {
            let k: usize = k.trim().parse().map_err(|_| bad("top:K needs a whole number K".into()))?;
            return Ok(ChannelSpec::Top(k));
        }
        let mut ranges = Vec::new();
        for part in spec_t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad(format!("{s:?} is not a channel index")));
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if a > b {
                return Err(bad(format!("the range {part} runs backwards")));
            }
            ranges.push((a, b));
        }
        if ranges.is_empty() {
            return Err(bad("give channel indices and ranges (0-31,64) or top:K".into()));
        }
        Ok(ChannelSpec::List(ranges))
    }

    /// The mask over the `code`'s channels (dimension 1 of a batch-1 `(1, C, H, W)` or `(1, D)`).
    pub fn mask(&self, code: &Tensor) -> Result<Vec<bool>> {
        let energy = match self {
            ChannelSpec::List(_) => Vec::new(),
            ChannelSpec::Top(_) => channel_energy(code)?,
        };
        self.mask_for(code.dim(1)?, &energy)
    }

    /// The mask over `n` channels whose energies (for `top:K`) are `energy`.
    pub fn mask_for(&self, n: usize, energy: &[f32]) -> Result<Vec<bool>> {
        match self {
            ChannelSpec::List(ranges) => {
                let mut keep = vec![false; n];
                for &(a, b) in ranges {
                    if b >= n {
                        return Err(Error::Unavailable(format!(
                            "--keep-channels: channel {b} does not exist, this layer has {n} (0–{})",
                            n.saturating_sub(1)
                        )));
                    }
                    keep[a..=b].iter_mut().for_each(|k| *k = true);
                }
                Ok(keep)
            }
            ChannelSpec::Top(k) => {
                if energy.len() != n {
                    return Err(Error::Unavailable(format!("{} channel energies for {n} channels", energy.len())));
                }
                let mut keep = vec![false; n];
                for &i in by_energy(energy).iter().take(*k) {
                    keep[i] = true;
                }
                Ok(keep)
            }
        }
    }
}

/// Mean square of each channel of a batch-1 code `(1, C, H, W)` or `(1, D)`.
pub fn channel_energy(code: &Tensor) -> Result<Vec<f32>> {
    let x = code.to_dtype(DType::F32)?;
    let c = x.dim(1)?;
    Ok(x.sqr()?.reshape((c, ()))?.mean(1)?.to_vec1::<f32>()?)
}

/// Channel indices from the most energy to the least (ties by index).
pub fn by_energy(energy: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..energy.len()).collect();
    order.sort_by(|&a, &b| energy[b].total_cmp(&energy[a]).then(a.cmp(&b)));
    order
}

/// A layer's code seen channel by channel: each channel's energy (mean square) and maximum, and
/// its activation map as a grey tile (black 0, white the channel's own maximum) in an atlas.
pub struct ChannelMaps {
    pub energy: Vec<f32>,
    pub max: Vec<f32>,
    /// Channel indices by energy, most first; tile `i` of the atlas shows channel `order[i]`.
    pub order: Vec<usize>,
    /// `cols` tiles of `tile` pixels per row (fc layers: 1×1 tiles).
    pub atlas: RgbImage,
    pub tile: (u32, u32),
    pub cols: u32,
}

impl ChannelMaps {
    /// From a batch-1 code `(1, C, H, W)` or `(1, D)`.
    pub fn of(code: &Tensor) -> Result<Self> {
        let x = code.to_dtype(DType::F32)?.squeeze(0)?;
        let (c, h, w) = match x.dims() {
            [c, h, w] => (*c, *h, *w),
            [d] => (*d, 1, 1),
            dims => return Err(Error::Unavailable(format!("a code of shape {dims:?} has no channels to show"))),
        };
        let values = x.flatten_all()?.to_vec1::<f32>()?;
        let per = h * w;
        let energy: Vec<f32> =
            values.chunks(per).map(|ch| ch.iter().map(|v| v * v).sum::<f32>() / per as f32).collect();
        let max: Vec<f32> = values.chunks(per).map(|ch| ch.iter().copied().fold(f32::MIN, f32::max)).collect();
        let order = by_energy(&energy);
        let cols = (c as f64).sqrt().ceil().max(1.0) as u32;
        let rows = (c as u32).div_ceil(cols);
        let (tw, th) = (w as u32, h as u32);
        let mut atlas = RgbImage::new(cols * tw, rows * th);
        for (i, &ch) in order.iter().enumerate() {
            let (x0, y0) = ((i as u32 % cols) * tw, (i as u32 / cols) * th);
            let scale = if max[ch] > 0.0 { 255.0 / max[ch] } else { 0.0 };
            for (j, v) in values[ch * per..(ch + 1) * per].iter().enumerate() {
                let g = (v.max(0.0) * scale).round().clamp(0.0, 255.0) as u8;
                atlas.put_pixel(x0 + (j % w) as u32, y0 + (j / w) as u32, Rgb([g, g, g]));
            }
        }
        Ok(Self { energy, max, order, atlas, tile: (tw, th), cols })
    }
}

/// `f` with `layer`'s code zeroed outside `keep` (one flag per channel), as both decoders see it.
pub fn keep_channels(f: &Features, layer: Layer, keep: &[bool]) -> Result<Features> {
    let code = f.tap(layer).ok_or_else(|| Error::Unavailable(format!("the features hold no {layer} activation")))?;
    if keep.len() != code.dim(1)? {
        return Err(Error::Unavailable(format!("a mask of {} channels for {layer}'s {}", keep.len(), code.dim(1)?)));
    }
    let mut shape = vec![1usize; code.rank()];
    shape[1] = keep.len();
    let mask =
        Tensor::from_vec(keep.iter().map(|&k| if k { 1f32 } else { 0.0 }).collect::<Vec<_>>(), shape, code.device())?
            .to_dtype(code.dtype())?;
    let masked = code.broadcast_mul(&mask)?;
    let taps = f.taps.iter().map(|(t, x)| (*t, if *t == layer { masked.clone() } else { x.clone() })).collect();
    Ok(Features { taps, switches: f.switches.clone() })
}

/// The error maps' scale: |difference| in 0–255 units from 0 (dark) to this (bright); larger
/// differences saturate.
pub const ERROR_SCALE_MAX: f32 = 128.0;

/// What the switches change: [`error_map`] of the picture of the kind that reads the recorded
/// switches against that of its twin with fixed ones ([`Kind::switch_pair`]), when `pictures`
/// hold both.
pub fn switches_map(pictures: &[(Kind, &RgbImage)]) -> Option<(RgbImage, f64)> {
    let (fixed, recorded) = Kind::switch_pair()?;
    let find = |kind: Kind| pictures.iter().find(|(k, _)| *k == kind).map(|(_, img)| *img);
    Some(error_map(find(recorded)?, find(fixed)?))
}

/// Where `a` and `b` differ: per pixel the mean over RGB of |a − b| (0–255 units), through the
/// perceptual colour map [`colour_map`] over 0–[`ERROR_SCALE_MAX`]. Also the mean |a − b|.
pub fn error_map(a: &RgbImage, b: &RgbImage) -> (RgbImage, f64) {
    let (w, h) = (a.width().min(b.width()), a.height().min(b.height()));
    let mut out = RgbImage::new(w, h);
    let mut total = 0.0;
    for y in 0..h {
        for x in 0..w {
            let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
            let d = (0..3).map(|c| (p[c] as f32 - q[c] as f32).abs()).sum::<f32>() / 3.0;
            total += d as f64;
            out.put_pixel(x, y, colour_map(d / ERROR_SCALE_MAX));
        }
    }
    (out, total / (w as f64 * h as f64).max(1.0))
}

/// Magma-like perceptual colour map (dark purple → red → pale yellow), `t` in 0–1 (clamped):
/// lightness rises monotonically, so the eye reads larger as brighter.
pub fn colour_map(t: f32) -> Rgb<u8> {
    const STOPS: [[f32; 3]; 9] = [
        [0.0, 0.0, 4.0],
        [28.0, 16.0, 68.0],
        [79.0, 18.0, 123.0],
        [129.0, 37.0, 129.0],
        [181.0, 54.0, 122.0],
        [229.0, 80.0, 100.0],
        [251.0, 135.0, 97.0],
        [254.0, 194.0, 135.0],
        [252.0, 253.0, 191.0],
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    Rgb([c(0), c(1), c(2)])
}

/// A horizontal colour bar of `w × h` for [`error_map`]'s scale.
pub fn colour_bar(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| colour_map(x as f32 / (w.max(2) - 1) as f32))
}
