//! Reconstructions and their fidelity: a folder of decoders for one encoder, an image rebuilt from
//! chosen layers, and ([`eval`]) the evaluation over a folder of photos against the floors.

mod eval;

pub use eval::{evaluate, flat, layer_grid, thumbnail, EvalRow, Method};

use crate::data::resize_centre_crop;
use crate::decoder_sets::{SetInfo, UserData};
use crate::error::{Error, Result};
use crate::model::decoder_file::decoder_file_name;
use crate::model::{decoder_path, load_decoder, Decoder, DecoderMeta, Encoder, Features, Kind};
use crate::train::metrics::{mse, psnr, speckle, ssim};
use candle_core::Tensor;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// How to make the missing decoder(s) of the set in `dir`: the training command, quoted. Into
/// `dir` itself, except for the bundled folder, which is the program's own (read-only where it is
/// installed): those go to a folder of the user's, shown beside the bundled ones with
/// `--decoders`.
pub fn train_command(dir: &Path, layer: &str, kinds: &[Kind]) -> String {
    let kinds: Vec<&str> = kinds.iter().map(Kind::name).collect();
    let command = |out: &Path| {
        format!(
            "`layerinv train --data <photos folder> --layers {layer} --kinds {} --out {}`",
            kinds.join(","),
            out.display()
        )
    };
    if crate::decoder_sets::is_bundled(dir) {
        let mine = Path::new("decoders");
        format!("{}, then add `--decoders {}`", command(mine), mine.display())
    } else {
        command(dir)
    }
}

/// Every decoder a folder holds for an encoder, by (layer, kind); for the ones it cannot provide,
/// the reason (one line, with the command that makes it when it is missing).
pub struct DecoderSet {
    pub dir: PathBuf,
    /// Where the set comes from and each decoder's record, for titles.
    pub info: SetInfo,
    entries: Vec<(String, Kind, Entry)>,
}

/// A decoder with its record, or why there is none.
enum Entry {
    Loaded(Box<(Decoder, DecoderMeta)>),
    /// No file for it: the line names the file and the command that makes it.
    Missing(String),
    /// The model cannot serve the layer, or the file is not a decoder it can use: why.
    Unusable(String),
}

impl DecoderSet {
    /// Look in `dir` for a decoder of every tap the encoder serves, every kind.
    pub fn load(dir: &Path, enc: &Encoder) -> Self {
        let mut entries = Vec::new();
        for tap in enc.arch.taps() {
            let layer = tap.name();
            for kind in Kind::ALL {
                let entry = if let Some(why) = enc.unavailable_reason(layer) {
                    Entry::Unusable(why)
                } else {
                    let path = decoder_path(dir, enc.arch, layer, kind);
                    if path.exists() {
                        match load_decoder(&path, enc, layer, kind) {
                            Ok(loaded) => Entry::Loaded(Box::new(loaded)),
                            Err(e) => Entry::Unusable(e.to_string()),
                        }
                    } else {
                        Entry::Missing(format!(
                            "no {layer} {kind} decoder in {} ({} is missing); make it with {}",
                            dir.display(),
                            decoder_file_name(enc.arch, layer, kind),
                            train_command(dir, layer, &[kind])
                        ))
                    }
                };
                entries.push((layer.to_string(), kind, entry));
            }
        }
        Self {
            dir: dir.to_path_buf(),
            info: SetInfo::read(dir, enc.arch, &enc.fingerprint, &UserData::default()),
            entries,
        }
    }

    /// What the set holds for `layer`/`kind`; `None` for a layer the model does not have.
    fn entry(&self, layer: &str, kind: Kind) -> Option<&Entry> {
        self.entries.iter().find(|(l, k, _)| l == layer && *k == kind).map(|(_, _, e)| e)
    }

    /// The decoder for `layer`/`kind`, or why there is none.
    pub fn get(&self, layer: &str, kind: Kind) -> Result<&Decoder> {
        match self.entry(layer, kind) {
            Some(Entry::Loaded(loaded)) => Ok(&loaded.0),
            Some(Entry::Missing(why) | Entry::Unusable(why)) => Err(Error::Unavailable(why.clone())),
            None => Err(Error::Unavailable(format!("{layer} is not a layer of this model"))),
        }
    }

    /// The record of the decoder for `layer`/`kind`, when it is loaded.
    pub fn meta(&self, layer: &str, kind: Kind) -> Option<&DecoderMeta> {
        match self.entry(layer, kind) {
            Some(Entry::Loaded(loaded)) => Some(&loaded.1),
            _ => None,
        }
    }

    /// Whether the set has no file at all for `layer`/`kind` (rather than one it cannot use).
    fn lacks(&self, layer: &str, kind: Kind) -> bool {
        matches!(self.entry(layer, kind), Some(Entry::Missing(_)))
    }

    /// The kinds loaded for `layer`, in [`Kind::ALL`]'s order.
    pub fn kinds_at(&self, layer: &str) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|&k| self.get(layer, k).is_ok()).collect()
    }

    /// Layers with at least one kind loaded, in the encoder's order.
    pub fn layers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (l, _, _) in &self.entries {
            if !out.contains(l) && !self.kinds_at(l).is_empty() {
                out.push(l.clone());
            }
        }
        out
    }

    /// Why `layer` cannot be shown with any kind, or `None` when some kind can show it.
    pub fn unavailable_reason(&self, layer: &str) -> Option<String> {
        if !self.kinds_at(layer).is_empty() {
            return None;
        }
        if Kind::ALL.iter().all(|&k| self.lacks(layer, k)) {
            return Some(format!(
                "no {layer} decoders in {}; make them with {}",
                self.dir.display(),
                train_command(&self.dir, layer, &Kind::ALL)
            ));
        }
        // The first kind that has a file it cannot use (or the layer the model lacks).
        Kind::ALL
            .iter()
            .filter(|&&k| !self.lacks(layer, k))
            .find_map(|&k| self.get(layer, k).err().map(|e| e.to_string()))
    }

    /// Over `layers` (each of which some kind can show), what the other kinds lack: a line per
    /// kind whose decoders are missing ("no upconv decoders for pool1, pool2 in DIR; make them
    /// with `…`"), and a line per decoder file that could not be loaded.
    pub fn missing(&self, layers: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let mut absent = Vec::new();
            for l in layers {
                match self.get(l, kind) {
                    Ok(_) => {}
                    Err(_) if self.lacks(l, kind) => absent.push(l.as_str()),
                    Err(e) => out.push(e.to_string()),
                }
            }
            if !absent.is_empty() {
                out.push(format!(
                    "no {kind} decoders for {} in {}; make them with {}",
                    absent.join(", "),
                    self.dir.display(),
                    train_command(&self.dir, &absent.join(","), &[kind])
                ));
            }
        }
        out
    }
}

/// The sets' names ([`SetInfo::label`]), each with its folder's path added where two sets share
/// a name.
pub fn set_labels(sets: &[DecoderSet]) -> Vec<String> {
    let labels: Vec<String> = sets.iter().map(|s| s.info.label()).collect();
    labels
        .iter()
        .zip(sets)
        .map(|(l, s)| {
            if labels.iter().filter(|m| *m == l).count() > 1 {
                format!("{l} ({})", s.dir.display())
            } else {
                l.clone()
            }
        })
        .collect()
}

/// One image rebuilt from one layer by one decoder, with its fidelity to the input.
#[derive(Clone)]
pub struct Reconstruction {
    pub layer: String,
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
    layers: &[String],
    kinds: &[Kind],
) -> Result<Vec<Reconstruction>> {
    if layers.is_empty() {
        return Ok(Vec::new());
    }
    reconstruct_from(enc, set, &features_for(enc, input, layers)?, input, layers, kinds)
}

/// The taps of `input` (model-size) up to the deepest of `layers` and their switches, from one
/// encoder pass that stops there (every tap when `layers` is empty).
pub fn features_for(enc: &Encoder, input: &RgbImage, layers: &[String]) -> Result<Features> {
    let deepest = enc.arch.taps_named(layers)?.into_iter().max();
    let x = input_tensor(enc, input)?;
    match deepest {
        Some(deepest) => enc.forward_to(&x, deepest.name()),
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
    layers: &[String],
    kinds: &[Kind],
) -> Result<Vec<Reconstruction>> {
    let mut decoders = Vec::new();
    for l in layers {
        let held: Vec<Kind> = set.kinds_at(l).into_iter().filter(|k| kinds.contains(k)).collect();
        if held.is_empty() {
            return Err(Error::Unavailable(
                set.unavailable_reason(l)
                    .unwrap_or_else(|| format!("no {l} decoder of the kinds asked for in {}", set.dir.display())),
            ));
        }
        for k in held {
            decoders.push((l.clone(), k, set.get(l, k)?));
        }
    }
    decoders.into_iter().map(|(layer, kind, d)| rebuild(enc, d, features, input, &layer, kind)).collect()
}

/// `input` (model-size) rebuilt by one decoder (`layer`/`kind`) from `features` of it.
pub fn rebuild(
    enc: &Encoder,
    decoder: &Decoder,
    features: &Features,
    input: &RgbImage,
    layer: &str,
    kind: Kind,
) -> Result<Reconstruction> {
    let y = decoder.forward(features)?.squeeze(0)?;
    let image = enc.preprocess.to_image(&y)?;
    let m = mse(&image, input);
    Ok(Reconstruction {
        layer: layer.to_string(),
        kind,
        psnr: psnr(m),
        ssim: ssim(&image, input),
        speckle: speckle(&image, input),
        image,
    })
}
