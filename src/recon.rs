//! Reconstructions and their fidelity: a folder of decoders for one encoder, an image rebuilt from
//! chosen layers, and the evaluation over a folder of photos.

use crate::data::resize_centre_crop;
use crate::decoder_sets::{SetInfo, UserData};
use crate::error::{Error, Result};
use crate::model::decoder_file::decoder_file_name;
use crate::model::{decoder_path, load_decoder, Decoder, DecoderMeta, Encoder, Features, Kind};
use crate::train::metrics::{mse, psnr, speckle, ssim};
use candle_core::Tensor;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The command that would train the missing decoder(s).
pub fn train_command(dir: &Path, layer: &str, kinds: &[Kind]) -> String {
    let kinds: Vec<&str> = kinds.iter().map(Kind::name).collect();
    format!(
        "layerinv train --data <photos folder> --layers {layer} --kinds {} --out {}",
        kinds.join(","),
        dir.display()
    )
}

/// Every decoder a folder holds for an encoder, by (layer, kind); for the ones it cannot provide,
/// the reason (one line, with the command that makes it when it is missing).
pub struct DecoderSet {
    pub dir: PathBuf,
    /// Where the set comes from and each decoder's record, for titles.
    pub info: SetInfo,
    entries: Vec<(String, Kind, LoadedDecoder)>,
}

/// A decoder with its record, or why it could not be loaded.
type LoadedDecoder = std::result::Result<(Decoder, DecoderMeta), String>;

impl DecoderSet {
    /// Look in `dir` for a decoder of every tap the encoder serves, every kind.
    pub fn load(dir: &Path, enc: &Encoder) -> Self {
        let mut entries = Vec::new();
        for tap in enc.arch.taps() {
            let layer = tap.name();
            for kind in Kind::ALL {
                let entry = if let Some(why) = enc.unavailable_reason(layer) {
                    Err(why)
                } else {
                    let path = decoder_path(dir, enc.arch, layer, kind);
                    if path.exists() {
                        load_decoder(&path, enc, layer, kind).map_err(|e| e.to_string())
                    } else {
                        Err(format!(
                            "no {layer} {kind} decoder in {} ({} is missing); make it with `{}`",
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

    /// The decoder for `layer`/`kind`, or why there is none.
    pub fn get(&self, layer: &str, kind: Kind) -> Result<&Decoder> {
        match self.entries.iter().find(|(l, k, _)| l == layer && *k == kind) {
            Some((_, _, Ok((d, _)))) => Ok(d),
            Some((_, _, Err(why))) => Err(Error::Unavailable(why.clone())),
            None => Err(Error::Unavailable(format!("{layer} is not a layer of this model"))),
        }
    }

    /// The record of the decoder for `layer`/`kind`, when it is loaded.
    pub fn meta(&self, layer: &str, kind: Kind) -> Option<&DecoderMeta> {
        self.entries
            .iter()
            .find(|(l, k, _)| l == layer && *k == kind)
            .and_then(|(_, _, e)| e.as_ref().ok())
            .map(|(_, m)| m)
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
        let reasons: Vec<String> =
            Kind::ALL.iter().filter_map(|&k| self.get(layer, k).err().map(|e| e.to_string())).collect();
        let missing = format!("no {layer} ");
        match reasons.len() {
            n if n < Kind::ALL.len() => None,
            _ if reasons.iter().all(|r| r.starts_with(&missing)) => Some(format!(
                "no {layer} decoders in {}; make them with `{}`",
                self.dir.display(),
                train_command(&self.dir, layer, &Kind::ALL)
            )),
            _ => reasons.into_iter().find(|r| !r.starts_with(&missing)),
        }
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
                    Err(e) if e.to_string().starts_with(&format!("no {l} ")) => absent.push(l.as_str()),
                    Err(e) => out.push(e.to_string()),
                }
            }
            if !absent.is_empty() {
                out.push(format!(
                    "no {kind} decoders for {} in {}; make them with `{}`",
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

/// What made an evaluated picture: a decoder of some kind, or one of the trivial baselines every
/// decoder is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Decoder(Kind),
    /// The photo squeezed to the layer's own grid and blown back up ([`thumbnail`]).
    Thumbnail,
    /// Each photo's mean colour ([`flat`]).
    Flat,
}

impl Method {
    /// "sae", "swwae", …, "thumbnail", "flat" (the `kind` column of `eval`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Decoder(k) => k.name(),
            Method::Thumbnail => "thumbnail",
            Method::Flat => "flat",
        }
    }

    pub fn is_floor(&self) -> bool {
        !matches!(self, Method::Decoder(_))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Mean fidelity of one decoder (or floor) over a set of images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalRow {
    pub layer: String,
    pub kind: Method,
    /// The set the decoder came from ([`SetInfo::label`]: "bundled", "yours: 2026-12-04 14:02",
    /// "folder NAME"); `null` for the floors.
    pub decoders: Option<String>,
    /// Mean squared error in 0–1 pixel units.
    pub mse: f64,
    /// Mean PSNR in dB over the images (infinite when a reconstruction is exact; `null` in JSON).
    pub psnr: f64,
    pub ssim: f64,
    /// The variance of the pictures across the photos (per pixel and channel, averaged) over the
    /// photos' own, as the trainer's collapse check measures it (below
    /// [`crate::train::health::COLLAPSE_DEPENDENCE`]: collapsed); `null` for a single photo.
    pub dependence: Option<f64>,
    /// Mean [`speckle`] over the photos that have flat regions (0–255 units; about 0 for a
    /// faithful picture, below 0 for a blurrier one); `null` when none has.
    pub speckle: Option<f64>,
}

/// Sums for the variance across images of pictures of the same size: per element, and of squares.
#[derive(Default)]
struct Spread {
    sum: Vec<f64>,
    sq: f64,
    n: usize,
}

impl Spread {
    fn add(&mut self, img: &RgbImage) {
        let raw = img.as_raw();
        if self.sum.len() != raw.len() {
            self.sum = vec![0.0; raw.len()];
        }
        for (s, &v) in self.sum.iter_mut().zip(raw) {
            *s += v as f64;
            self.sq += (v as f64) * (v as f64);
        }
        self.n += 1;
    }

    /// Mean over elements of the variance across images.
    fn variance(&self) -> Option<f64> {
        if self.n < 2 || self.sum.is_empty() {
            return None;
        }
        let (n, len) = (self.n as f64, self.sum.len() as f64);
        let mean_sq = self.sum.iter().map(|s| (s / n) * (s / n)).sum::<f64>() / len;
        Some(self.sq / n / len - mean_sq)
    }
}

/// The floor of a layer whose activation is a `grid × grid` map: `input` box-filtered down to
/// `grid × grid` (each cell the mean of the pixels whose centres it covers) and blown back up to
/// its own size with a bicubic (Catmull-Rom) filter. A decoder that does not beat it is not using
/// what the layer holds.
pub fn thumbnail(input: &RgbImage, grid: u32) -> RgbImage {
    let (w, h) = input.dimensions();
    let grid = grid.clamp(1, w.min(h).max(1));
    if (grid, grid) == (w, h) {
        return input.clone();
    }
    let cell = |i: u32, n: u32| {
        ((i as u64 * n as u64 / grid as u64) as u32, (((i + 1) as u64 * n as u64).div_ceil(grid as u64) as u32).min(n))
    };
    let mut small = RgbImage::new(grid, grid);
    for gy in 0..grid {
        let (y0, y1) = cell(gy, h);
        for gx in 0..grid {
            let (x0, x1) = cell(gx, w);
            let mut sum = [0u64; 3];
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = input.get_pixel(x, y);
                    for c in 0..3 {
                        sum[c] += p[c] as u64;
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)).max(1) as u64;
            small.put_pixel(gx, gy, image::Rgb(sum.map(|s| ((s + n / 2) / n) as u8)));
        }
    }
    image::imageops::resize(&small, w, h, image::imageops::FilterType::CatmullRom)
}

/// The flat floor: every pixel the photo's mean colour.
pub fn flat(input: &RgbImage) -> RgbImage {
    thumbnail(input, 1)
}

/// The side of the square map at `layer` for a model-size input, `None` for a layer without one
/// (fc).
pub fn layer_grid(enc: &Encoder, layer: &str) -> Option<u32> {
    let shapes = enc.arch.tap_shapes();
    let (_, shape) = shapes.into_iter().find(|(t, _)| *t == layer)?;
    (shape.len() == 3).then(|| shape[1] as u32)
}

/// Evaluate every layer of each of `sets` on the same `images` (each brought to the model's
/// size): for each layer a row per set and decoder kind it holds there, and one for its
/// [`thumbnail`] floor, then one row for the [`flat`] floor (layer `"any"`). After each image
/// `each(i, input, recs)` sees its model-size input and its reconstructions, per set (to save
/// them, to show progress); an error it returns stops the evaluation.
pub fn evaluate(
    enc: &Encoder,
    sets: &[DecoderSet],
    images: &[RgbImage],
    mut each: impl FnMut(usize, &RgbImage, &[Vec<Reconstruction>]) -> Result<()>,
) -> Result<Vec<EvalRow>> {
    let complete: Vec<Vec<String>> = sets.iter().map(DecoderSet::layers).collect();
    let layers: Vec<String> =
        enc.arch.taps().iter().map(|t| t.to_string()).filter(|t| complete.iter().any(|c| c.contains(t))).collect();
    // (layer, what made the picture, the set)
    let mut rows: Vec<(String, Method, Option<usize>)> = Vec::new();
    for l in &layers {
        for (i, set) in sets.iter().enumerate().filter(|(i, _)| complete[*i].contains(l)) {
            rows.extend(set.kinds_at(l).into_iter().map(|k| (l.clone(), Method::Decoder(k), Some(i))));
        }
        if layer_grid(enc, l).is_some() {
            rows.push((l.clone(), Method::Thumbnail, None));
        }
    }
    rows.push(("any".into(), Method::Flat, None));
    let mut sums = vec![(0.0, 0.0, 0.0); rows.len()];
    let mut speckles = vec![(0.0, 0usize); rows.len()];
    let mut spreads: Vec<Spread> = rows.iter().map(|_| Spread::default()).collect();
    let mut input_spread = Spread::default();
    for (i, img) in images.iter().enumerate() {
        let input = model_input(enc, img);
        input_spread.add(&input);
        let features = features_for(enc, &input, &layers)?;
        let recs = sets
            .iter()
            .zip(&complete)
            .map(|(set, layers)| reconstruct_from(enc, set, &features, &input, layers, &Kind::ALL))
            .collect::<Result<Vec<_>>>()?;
        for ((((layer, kind, set), s), spread), sp) in
            rows.iter().zip(sums.iter_mut()).zip(spreads.iter_mut()).zip(speckles.iter_mut())
        {
            let floor;
            let image = match (*kind, set) {
                (Method::Decoder(k), Some(set)) => match recs[*set].iter().find(|r| &r.layer == layer && r.kind == k) {
                    Some(r) => &r.image,
                    None => continue,
                },
                (Method::Thumbnail, _) => {
                    floor = thumbnail(&input, layer_grid(enc, layer).unwrap_or(1));
                    &floor
                }
                _ => {
                    floor = flat(&input);
                    &floor
                }
            };
            spread.add(image);
            let m = mse(image, &input);
            s.0 += m;
            s.1 += psnr(m);
            s.2 += ssim(image, &input);
            if let Some(v) = speckle(image, &input) {
                *sp = (sp.0 + v, sp.1 + 1);
            }
        }
        each(i, &input, &recs)?;
    }
    let n = images.len().max(1) as f64;
    let vx = input_spread.variance().filter(|v| *v > 0.0);
    let labels = set_labels(sets);
    Ok(rows
        .into_iter()
        .zip(sums)
        .zip(spreads)
        .zip(speckles)
        .map(|((((layer, kind, set), (m, p, s)), spread), (sp, sp_n))| {
            let dependence = spread.variance().zip(vx).map(|(v, vx)| v / vx);
            let decoders = set.map(|i| labels[i].clone());
            let speckle = (sp_n > 0).then(|| sp / sp_n as f64);
            EvalRow { layer, kind, decoders, mse: m / n, psnr: p / n, ssim: s / n, dependence, speckle }
        })
        .collect())
}
