//! Reconstructions and their fidelity: a folder of decoders for one encoder, an image rebuilt from
//! chosen layers, and ([`eval`]) the evaluation over a folder of photos against the floors.

mod eval;
mod request;

pub use eval::{evaluate, flat, layer_grid, thumbnail, EvalRow, Method};
pub use request::{run, DecoderSets, Picture, Request, Source};

use crate::data::resize_centre_crop;
use crate::decoder_sets::{SetInfo, UserData};
use crate::error::{Error, Result};
use crate::model::{decoder_path, load_decoder, Decoder, DecoderMeta, Encoder, Features, Kind, Layer};
use crate::train::metrics::{mse, psnr, speckle, ssim};
use candle_core::Tensor;
use image::RgbImage;
use std::collections::HashMap;
use std::path::Path;

/// A set of decoders ([`SetInfo`]: what its folder holds) with the decoders loaded so far, each
/// once. A file whose header was fine but whose weights are not is marked unusable in the
/// set's record when it is loaded.
pub struct DecoderSet {
    pub info: SetInfo,
    loaded: HashMap<(Layer, Kind), (Decoder, DecoderMeta)>,
}

impl DecoderSet {
    /// The set `info` describes, nothing loaded yet.
    pub fn open(info: SetInfo) -> Self {
        Self { info, loaded: HashMap::new() }
    }

    /// The set in `dir` for `enc`, every usable decoder loaded.
    pub fn load(dir: &Path, enc: &Encoder) -> Self {
        let mut set = Self::open(SetInfo::read(dir, enc.arch, &enc.fingerprint, &UserData::default()));
        let usable: Vec<(Layer, Kind)> =
            set.info.held.iter().filter(|h| h.meta.is_ok()).map(|h| (h.layer, h.kind)).collect();
        for (layer, kind) in usable {
            // A failure is kept in the record (`mark_unusable`), said where the layer is asked for.
            let _ = set.load_one(enc, layer, kind);
        }
        set
    }

    /// The decoder for `layer`/`kind`, loaded now if it was not yet, or why there is none.
    pub fn load_one(&mut self, enc: &Encoder, layer: Layer, kind: Kind) -> Result<&Decoder> {
        let key = (layer, kind);
        if !self.loaded.contains_key(&key) {
            if self.info.usable(layer, kind).is_none() {
                return Err(Error::Unavailable(self.info.why_not(layer, kind)));
            }
            match load_decoder(&decoder_path(&self.info.dir, enc.arch, layer, kind), enc, layer, kind) {
                Ok(loaded) => {
                    self.loaded.insert(key, loaded);
                }
                Err(e) => {
                    self.info.mark_unusable(layer, kind, e.to_string());
                    return Err(e);
                }
            }
        }
        self.get(layer, kind)
    }

    /// The loaded decoder for `layer`/`kind`, or why there is none.
    pub fn get(&self, layer: Layer, kind: Kind) -> Result<&Decoder> {
        match self.loaded.get(&(layer, kind)) {
            Some((d, _)) => Ok(d),
            None => Err(Error::Unavailable(self.info.why_not(layer, kind))),
        }
    }

    /// Take in a new reading of the folder: a decoder stays loaded while its file's record is
    /// the one it was loaded with (a run in progress rewrites its files each checkpoint).
    pub fn refresh(&mut self, info: SetInfo) {
        self.loaded.retain(|(l, k), (_, meta)| info.usable(*l, *k) == Some(meta));
        self.info = info;
    }
}

/// One image rebuilt from one layer by one decoder, with its fidelity to the input.
#[derive(Clone)]
pub struct Reconstruction {
    pub layer: Layer,
    pub kind: Kind,
    pub image: RgbImage,
    /// dB; infinite for an exact copy.
    pub psnr: f64,
    pub ssim: f64,
    /// Noise painted where the photo is flat ([`speckle`]); `None` when it has no flat region.
    pub speckle: Option<f64>,
}

/// The model-size input the reconstructions are compared with (shorter side resized to the
/// model's input size, centre crop).
pub fn model_input(enc: &Encoder, img: &RgbImage) -> RgbImage {
    resize_centre_crop(img, enc.arch.input_size() as u32)
}

/// Rebuild `input` (already model-size, see [`model_input`]) from each of `layers` with each of
/// `kinds`, from one encoder pass (up to the deepest of `layers`).
pub fn reconstruct(
    enc: &Encoder,
    set: &DecoderSet,
    input: &RgbImage,
    layers: &[Layer],
    kinds: &[Kind],
) -> Result<Vec<Reconstruction>> {
    if layers.is_empty() {
        return Ok(Vec::new());
    }
    reconstruct_from(enc, set, &features_for(enc, input, layers)?, input, layers, kinds)
}

/// The taps of `input` (model-size) up to the deepest of `layers` and their switches, from one
/// encoder pass that stops there (every tap when `layers` is empty).
pub fn features_for(enc: &Encoder, input: &RgbImage, layers: &[Layer]) -> Result<Features> {
    let deepest = enc.arch.taps_of(layers)?.into_iter().max();
    let x = input_tensor(enc, input)?;
    match deepest {
        Some(deepest) => enc.forward_to(&x, deepest.layer()),
        None => enc.forward(&x),
    }
}

/// Every tap of `input` (model-size) from one encoder pass, to reconstruct any layer from later
/// ([`reconstruct_from`]) without running the encoder again.
pub fn features_of(enc: &Encoder, input: &RgbImage) -> Result<Features> {
    enc.forward(&input_tensor(enc, input)?)
}

fn input_tensor(enc: &Encoder, input: &RgbImage) -> Result<Tensor> {
    let n = enc.arch.input_size();
    Ok(enc.preprocess.to_tensor(input, n, enc.device())?.unsqueeze(0)?)
}

/// [`reconstruct`] from `features` the encoder computed for `input` (covering `layers`). Each
/// of `kinds` the set holds at a layer rebuilds it; a layer none of them can rebuild is an error.
pub fn reconstruct_from(
    enc: &Encoder,
    set: &DecoderSet,
    features: &Features,
    input: &RgbImage,
    layers: &[Layer],
    kinds: &[Kind],
) -> Result<Vec<Reconstruction>> {
    let mut decoders = Vec::new();
    for &l in layers {
        let held: Vec<Kind> = set.info.kinds_at(l).into_iter().filter(|k| kinds.contains(k)).collect();
        if held.is_empty() {
            return Err(Error::Unavailable(
                set.info
                    .unavailable_reason(l)
                    .unwrap_or_else(|| format!("no {l} decoder of the kinds asked for in {}", set.info.dir.display())),
            ));
        }
        for k in held {
            decoders.push((l, k, set.get(l, k)?));
        }
    }
    decoders.into_iter().map(|(layer, kind, d)| rebuild(enc, d, features, input, layer, kind)).collect()
}

/// `input` (model-size) rebuilt by one decoder (`layer`/`kind`) from `features` of it.
pub fn rebuild(
    enc: &Encoder,
    decoder: &Decoder,
    features: &Features,
    input: &RgbImage,
    layer: Layer,
    kind: Kind,
) -> Result<Reconstruction> {
    let y = decoder.forward(features)?.squeeze(0)?;
    let image = enc.preprocess.to_image(&y)?;
    let m = mse(&image, input);
    Ok(Reconstruction { layer, kind, psnr: psnr(m), ssim: ssim(&image, input), speckle: speckle(&image, input), image })
}
