//! Encode once: the frozen encoder's codes and pooling switches of each whole training photo, and
//! of its mirror image, kept on disk in a cache folder, so that a run cuts its random crops out of
//! maps encoded once instead of encoding every crop (`docs/cpu_speed.md`, "Encode once").
//!
//! - **An entry** is one photo in one orientation, for one encoder (its fingerprint and the dtype
//!   it computes in) and one layout (the codes a run reads, and the switches of every pooling up
//!   to its deepest layer): `<cache>/<fingerprint>-<dtype>/<photo key>-<n|m>-<layout>.enc`. The
//!   photo key hashes the scaled photo's pixels, so an edited photo is a new entry. Codes are kept
//!   in f16, switches as the 2-bit position of each maximum in its 2×2 window.
//! - **Crops** then start on the deepest trained layer's grid (a multiple of its stride: 2 pixels
//!   at pool1, 32 at pool5), so every layer's cells line up with the photo's; the cells at a
//!   crop's edge see the photo around it, as they do when the app encodes a whole photo.
//! - **Filling** costs a whole photo's encoding per entry (about 5 crops of 96 pixels): a run
//!   fills the cache only when it draws each photo often enough to pay that back, and otherwise
//!   uses the entries that are there and encodes the other crops one by one, as without a cache.
//! - **Only a cache**: an entry that is damaged, truncated or made for another encoder or photo is
//!   said and made again; a folder that cannot be written, or is full (`limit`, after making room
//!   by deleting the oldest entries of other encoders and layouts), leaves the photos it cannot
//!   hold to be encoded crop by crop. Deleting the folder at any time is safe.

mod folder;
mod layout;

use super::config::TrainConfig;
use crate::data::{crops_tensor, BatchLoader, CropSpec, Drawn, Loaded, PhotoSource, Preprocess};
use crate::error::Result;
use crate::model::{Encoder, Tap};
use candle_core::{DType, Device};
use folder::{Folder, Stored};
use image::RgbImage;
pub use layout::Layout;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The cache's size limit unless the user gives one: the whole corpus (779 photos, both
/// orientations) for a pool1 run is about 4.3 GB, for pool3 1.2 GB, for pool5 0.6 GB.
pub const DEFAULT_LIMIT_BYTES: u64 = 6 << 30;

/// Where a run keeps its encodings, and how much room they may take.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub dir: PathBuf,
    /// Bytes the whole folder may hold.
    pub limit: u64,
    /// Fill the cache even when the run is too short to pay for it (to prepare it for later runs).
    pub fill_always: bool,
}

impl CacheConfig {
    /// `$XDG_CACHE_HOME/layerinv/encoded`, else `~/.cache/layerinv/encoded`, up to
    /// [`DEFAULT_LIMIT_BYTES`]; `None` without either variable.
    pub fn user_default() -> Option<Self> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(Self { dir: base.join("layerinv").join("encoded"), limit: DEFAULT_LIMIT_BYTES, fill_always: false })
    }
}

/// The cache key of a scaled photo: a hash of its size and pixels.
pub fn photo_key(img: &RgbImage) -> String {
    let mut h = Sha256::new();
    h.update(img.width().to_le_bytes());
    h.update(img.height().to_le_bytes());
    h.update(img.as_raw());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Whether a run that draws `draws` crops of `crop` pixels from `photos` photos scaled to
/// `scale` pays back encoding each photo whole (both orientations): each entry costs about a
/// 3:2 photo's pixels once and saves a crop's pixels at every draw of it.
fn fill_pays(draws: u64, photos: usize, crop: usize, scale: usize) -> bool {
    let per_entry = draws as f64 / (2 * photos.max(1)) as f64;
    per_entry * (crop * crop) as f64 >= 1.5 * (scale * scale) as f64
}

/// Crops from photos encoded whole for one run.
struct Encoding {
    enc: Arc<Encoder>,
    layout: Layout,
    folder: Option<Folder>,
    /// Encode photos that have no entry whole (else their crops are encoded one by one).
    fill: bool,
    /// Damaged entries said so far (the first few are named).
    damaged: usize,
}

/// Damaged entries named one by one before the rest go unsaid.
const DAMAGED_SAID: usize = 3;

impl Encoding {
    /// The maps of `img` (`key`, `mirror`): from its entry, or encoded whole now (and stored);
    /// `None` when its crops are to be encoded one by one.
    fn maps(
        &mut self,
        img: &RgbImage,
        key: &str,
        mirror: bool,
        say: &mut dyn FnMut(String),
    ) -> Result<Option<Vec<u8>>> {
        let (h, w) = (img.height() as usize, img.width() as usize);
        let mut remake = false;
        if let Some(folder) = &mut self.folder {
            match folder.read(&self.layout, key, mirror, h, w) {
                Ok(Some(maps)) => return Ok(Some(maps)),
                Ok(None) => {}
                Err(why) => {
                    self.damaged += 1;
                    if self.damaged <= DAMAGED_SAID {
                        let more = if self.damaged == DAMAGED_SAID {
                            " (further damaged entries are made again unsaid)"
                        } else {
                            ""
                        };
                        say(format!("encoder cache: {why}; encoding the photo again{more}"));
                    }
                    remake = true;
                }
            }
        }
        if !(self.fill || remake) {
            return Ok(None);
        }
        let x = self.enc.preprocess.image_tensor(img, &Device::Cpu)?.unsqueeze(0)?;
        let f = self.enc.forward_to(&x, self.enc.arch.stage_taps()[self.layout.deepest()].layer())?;
        let maps = self.layout.pack(&f, h, w)?;
        if let Some(folder) = &mut self.folder {
            match folder.write(key, mirror, h, w, &maps) {
                Stored::Yes => {}
                Stored::NoRoom => {
                    say(format!(
                        "encoder cache: {} is full ({:.1} GB, its limit): photos without an entry are now encoded crop by crop",
                        folder.root.display(),
                        folder.limit as f64 / 1e9
                    ));
                    self.fill = false;
                }
                Stored::Failed(why) => {
                    say(format!("encoder cache: cannot write in it ({why}); going on without storing"));
                    self.folder = None;
                    self.fill = false;
                }
            }
        }
        Ok(Some(maps))
    }
}

/// A random `crop`-pixel square's top-left corner in an `h × w` photo, on a grid of `step`.
fn corner(h: usize, w: usize, crop: usize, step: usize, rng: &mut StdRng) -> (usize, usize) {
    let y = step * rng.random_range(0..=(h - crop) / step);
    let x = step * rng.random_range(0..=(w - crop) / step);
    (y, x)
}

/// The run's batches. Where the run allows it (a CPU encoder, `cfg.cache` set, crops on the
/// deepest layer's grid), crops are cut from photos encoded whole through the cache, and the
/// batches carry their features; else crops as [`BatchLoader::new`] makes them. Also what to tell
/// the user about the cache, if anything.
#[allow(clippy::too_many_arguments)]
pub fn batch_loader(
    enc: &Arc<Encoder>,
    cfg: &TrainConfig,
    taps: &[Tap],
    files: Vec<PathBuf>,
    spec: CropSpec,
    seed: u64,
    steps_left: u64,
) -> (BatchLoader, Option<String>) {
    let Some(cache) = &cfg.cache else {
        return (BatchLoader::new(files, cfg.batch, spec, enc.preprocess, seed), None);
    };
    let off = |why: String| Some(format!("encoder cache: not used ({why}); each crop is encoded"));
    if !enc.device().is_cpu() {
        let note = off(format!("the encoder runs on {:?}, where encoding crops is cheap", enc.device().location()));
        return (BatchLoader::new(files, cfg.batch, spec, enc.preprocess, seed), note);
    }
    let layout = match Layout::plan(enc.arch, taps, cfg.objective, spec.crop) {
        Ok(l) => l,
        Err(why) => return (BatchLoader::new(files, cfg.batch, spec, enc.preprocess, seed), off(why)),
    };
    let folder = match Folder::open(cache, enc, &layout) {
        Ok(f) => f,
        Err(e) => return (BatchLoader::new(files, cfg.batch, spec, enc.preprocess, seed), off(e.to_string())),
    };
    let fill = cache.fill_always || fill_pays(steps_left * cfg.batch as u64, files.len(), spec.crop, spec.scale);
    let have = folder.count();
    let note = format!(
        "encoder cache: {} holds {have} photo encodings for this encoder and these layers (this run's {} photos need {}); {}",
        folder.dir.display(),
        files.len(),
        2 * files.len(),
        if fill {
            "the missing ones are made as their photos are drawn"
        } else {
            "the run is too short to pay for encoding its photos whole, so it encodes the crops of the others one by one (--fill-cache makes them anyway)"
        }
    );
    let encoding = Encoding { enc: Arc::clone(enc), layout, folder: Some(folder), fill, damaged: 0 };
    (spawn(encoding, files, cfg.batch, spec, seed), Some(note))
}

fn spawn(mut e: Encoding, files: Vec<PathBuf>, batch: usize, spec: CropSpec, seed: u64) -> BatchLoader {
    BatchLoader::spawn(move |send| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut photos = PhotoSource::new(files, spec.scale);
        let mut keys: HashMap<PathBuf, String> = HashMap::new();
        let preprocess: Preprocess = e.enc.preprocess;
        let dtype = e.enc.dtype();
        let step = e.layout.stride();
        loop {
            // Crops cut from encodings: the crop, its photo's maps and where it sits.
            let mut cut: Vec<(RgbImage, Vec<u8>, usize, usize, usize, usize)> = Vec::new();
            let mut alone: Vec<RgbImage> = Vec::new();
            while cut.len() + alone.len() < batch {
                let (path, img) = match photos.draw(&mut rng) {
                    Drawn::Photo(path, img) => (path, img),
                    Drawn::Skipped(s) => {
                        if !send(Loaded::Skipped(s)) {
                            return;
                        }
                        continue;
                    }
                    Drawn::Exhausted => {
                        send(Loaded::Exhausted);
                        return;
                    }
                };
                let key = keys.entry(path).or_insert_with(|| photo_key(&img)).clone();
                let mirror = rng.random_bool(0.5);
                let img: Arc<RgbImage> = if mirror { Arc::new(image::imageops::flip_horizontal(&*img)) } else { img };
                let mut notes = Vec::new();
                let maps = e.maps(&img, &key, mirror, &mut |m| notes.push(m));
                for n in notes {
                    if !send(Loaded::Note(n)) {
                        return;
                    }
                }
                let (h, w) = (img.height() as usize, img.width() as usize);
                match maps {
                    Ok(Some(maps)) => {
                        let (y, x) = corner(h, w, spec.crop, step, &mut rng);
                        let c = spec.crop as u32;
                        let piece = image::imageops::crop_imm(&*img, x as u32, y as u32, c, c).to_image();
                        cut.push((piece, maps, h, w, y, x));
                    }
                    Ok(None) => {
                        let (y, x) = corner(h, w, spec.crop, 1, &mut rng);
                        let c = spec.crop as u32;
                        alone.push(image::imageops::crop_imm(&*img, x as u32, y as u32, c, c).to_image());
                    }
                    Err(err) => {
                        // Crops of this photo are then encoded by the run, which says what fails.
                        if !send(Loaded::Note(format!("encoder cache: encoding a whole photo failed ({err})"))) {
                            return;
                        }
                        e.fill = false;
                        let (y, x) = corner(h, w, spec.crop, 1, &mut rng);
                        let c = spec.crop as u32;
                        alone.push(image::imageops::crop_imm(&*img, x as u32, y as u32, c, c).to_image());
                    }
                }
            }
            let Ok(batch) = assemble(&e, &cut, &alone, spec.crop, preprocess, dtype) else { return };
            if !send(batch) {
                return;
            }
        }
    })
}

/// One batch: the crops cut from encodings first (with their features), then those to encode
/// alone (encoded here, so the whole batch carries features).
#[allow(clippy::type_complexity)]
fn assemble(
    e: &Encoding,
    cut: &[(RgbImage, Vec<u8>, usize, usize, usize, usize)],
    alone: &[RgbImage],
    crop: usize,
    preprocess: Preprocess,
    dtype: DType,
) -> Result<Loaded> {
    let images: Vec<RgbImage> = cut.iter().map(|c| c.0.clone()).chain(alone.iter().cloned()).collect();
    let x = crops_tensor(&images, crop, preprocess)?;
    if cut.is_empty() {
        return Ok(Loaded::Batch { x, features: None });
    }
    let places: Vec<(&[u8], usize, usize, usize, usize)> =
        cut.iter().map(|(_, maps, h, w, y, xx)| (maps.as_slice(), *h, *w, *y, *xx)).collect();
    let mut features = e.layout.cut(&places, crop, dtype)?;
    if !alone.is_empty() {
        let deepest = e.enc.arch.stage_taps()[e.layout.deepest()];
        let rest = e.enc.forward_to(&x.narrow(0, cut.len(), alone.len())?, deepest.layer())?;
        features = e.layout.concat(features, &rest)?;
    }
    Ok(Loaded::Batch { x, features: Some(features) })
}
