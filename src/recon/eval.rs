//! The evaluation over a folder of photos: every decoder of every set, and the trivial floors
//! each is judged against.

use super::{features_for, model_input, reconstruct_from, DecoderSet, Reconstruction};
use crate::decoder_sets::set_labels;
use crate::error::Result;
use crate::model::{Encoder, Kind, Layer};
use crate::train::metrics::{mse, psnr, speckle, ssim};
use image::RgbImage;

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
    /// The layer, or `any` for the flat colour.
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
pub fn layer_grid(enc: &Encoder, layer: Layer) -> Option<u32> {
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
    let complete: Vec<Vec<Layer>> = sets.iter().map(|s| s.info.layers()).collect();
    let layers: Vec<Layer> = enc.arch.layers().into_iter().filter(|l| complete.iter().any(|c| c.contains(l))).collect();
    // (layer, what made the picture, the set); no layer: the flat colour, of any layer
    let mut rows: Vec<(Option<Layer>, Method, Option<usize>)> = Vec::new();
    for &l in &layers {
        for (i, set) in sets.iter().enumerate().filter(|(i, _)| complete[*i].contains(&l)) {
            rows.extend(set.info.kinds_at(l).into_iter().map(|k| (Some(l), Method::Decoder(k), Some(i))));
        }
        if layer_grid(enc, l).is_some() {
            rows.push((Some(l), Method::Thumbnail, None));
        }
    }
    rows.push((None, Method::Flat, None));
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
                (Method::Decoder(k), Some(set)) => {
                    match recs[*set].iter().find(|r| Some(r.layer) == *layer && r.kind == k) {
                        Some(r) => &r.image,
                        None => continue,
                    }
                }
                (Method::Thumbnail, _) => {
                    floor = thumbnail(&input, layer.and_then(|l| layer_grid(enc, l)).unwrap_or(1));
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
    let labels = set_labels(&sets.iter().map(|s| &s.info).collect::<Vec<_>>());
    Ok(rows
        .into_iter()
        .zip(sums)
        .zip(spreads)
        .zip(speckles)
        .map(|((((layer, kind, set), (m, p, s)), spread), (sp, sp_n))| {
            let dependence = spread.variance().zip(vx).map(|(v, vx)| v / vx);
            let decoders = set.map(|i| labels[i].clone());
            let speckle = (sp_n > 0).then(|| sp / sp_n as f64);
            let layer = layer.map_or_else(|| "any".to_string(), |l| l.to_string());
            EvalRow { layer, kind, decoders, mse: m / n, psnr: p / n, ssim: s / n, dependence, speckle }
        })
        .collect())
}
