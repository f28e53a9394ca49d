//! Training images: folders scanned recursively, random crops and flips, batches assembled on a
//! background thread so the encoder never waits for the disk.

use super::{load_image, resize_shorter_side, Preprocess};
use crate::error::{Error, Result};
use crate::model::Features;
use candle_core::{Device, Tensor};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// File extensions the trainer picks up (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];

/// Decoded images kept in memory between epochs, in bytes.
const CACHE_BYTES: usize = 1 << 30;

/// The photos directly in `dir` (not in its subfolders), sorted by name: what the app steps
/// through with PageUp/PageDown.
pub fn photos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && is_image_name(&e.path()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Every image file under `dir` (recursively), sorted.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::bad_file(dir, "not a folder"));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
            } else if is_image_name(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// How training crops are made: the image's shorter side is scaled to `scale` (the scale the
/// model sees the whole photo at: its input size), then a random `crop × crop` square is cut and
/// flipped left–right half of the time.
#[derive(Debug, Clone, Copy)]
pub struct CropSpec {
    pub scale: usize,
    pub crop: usize,
}

impl CropSpec {
    pub fn for_model(input_size: usize, crop: usize) -> Self {
        let scale = input_size.max(crop);
        Self { scale, crop }
    }
}

/// A file the loader could not use, with the reason.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub error: String,
}

/// What the background loader sends: a batch or a skipped file.
pub enum Loaded {
    /// Crops `(B, 3, crop, crop)` on the CPU, with their features when the loader encoded them
    /// (cut from photos encoded whole: [`crate::train::encoded`]); `None`: encode `x`.
    Batch {
        x: Tensor,
        features: Option<Features>,
    },
    Skipped(Skipped),
    /// Something the run's user should know about how batches are made (one line).
    Note(String),
    /// No file in the list could be read.
    Exhausted,
}

/// Random photos from a list, each decoded once and kept in memory (up to [`CACHE_BYTES`])
/// scaled so its shorter side is `scale`. A file that cannot be read leaves the list.
pub struct PhotoSource {
    files: Vec<PathBuf>,
    scale: u32,
    decoded: HashMap<PathBuf, Arc<RgbImage>>,
    decoded_bytes: usize,
}

/// A photo drawn from a [`PhotoSource`].
pub enum Drawn {
    Photo(PathBuf, Arc<RgbImage>),
    Skipped(Skipped),
    /// No file in the list could be read.
    Exhausted,
}

impl PhotoSource {
    pub fn new(files: Vec<PathBuf>, scale: usize) -> Self {
        Self { files, scale: scale as u32, decoded: HashMap::new(), decoded_bytes: 0 }
    }

    /// How many files are left in the list.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A photo chosen uniformly at random.
    pub fn draw(&mut self, rng: &mut StdRng) -> Drawn {
        if self.files.is_empty() {
            return Drawn::Exhausted;
        }
        let i = rng.random_range(0..self.files.len());
        if let Some(img) = self.decoded.get(&self.files[i]) {
            return Drawn::Photo(self.files[i].clone(), img.clone());
        }
        match load_image(&self.files[i]) {
            Ok(img) => {
                let img = Arc::new(resize_shorter_side(&img, self.scale));
                let bytes = img.as_raw().len();
                if self.decoded_bytes + bytes <= CACHE_BYTES {
                    self.decoded_bytes += bytes;
                    self.decoded.insert(self.files[i].clone(), img.clone());
                }
                Drawn::Photo(self.files[i].clone(), img)
            }
            Err(e) => {
                let path = self.files.swap_remove(i);
                Drawn::Skipped(Skipped { path, error: e.to_string() })
            }
        }
    }
}

/// Endless random batches, prepared on a background thread.
pub struct BatchLoader {
    rx: Option<Receiver<Loaded>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BatchLoader {
    /// Batches of random crops (flipped left–right half of the time) of the photos in `files`.
    pub fn new(files: Vec<PathBuf>, batch: usize, spec: CropSpec, preprocess: Preprocess, seed: u64) -> Self {
        Self::spawn(move |send| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut photos = PhotoSource::new(files, spec.scale);
            loop {
                let mut items = Vec::with_capacity(batch);
                while items.len() < batch {
                    match photos.draw(&mut rng) {
                        Drawn::Photo(_, img) => items.push(random_crop(&img, spec.crop, &mut rng)),
                        Drawn::Skipped(s) => {
                            if !send(Loaded::Skipped(s)) {
                                return;
                            }
                        }
                        Drawn::Exhausted => {
                            send(Loaded::Exhausted);
                            return;
                        }
                    }
                }
                let Ok(x) = crops_tensor(&items, spec.crop, preprocess) else { return };
                if !send(Loaded::Batch { x, features: None }) {
                    return;
                }
            }
        })
    }

    /// A loader whose thread runs `body`, which hands each message to `send`; `send` returns
    /// false once the loader is dropped, and `body` should then return.
    pub fn spawn(body: impl FnOnce(&mut dyn FnMut(Loaded) -> bool) + Send + 'static) -> Self {
        let (tx, rx) = sync_channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("batch-loader".into())
            .spawn(move || {
                let mut send = |m: Loaded| !stop2.load(Ordering::Relaxed) && tx.send(m).is_ok();
                body(&mut send)
            })
            .ok();
        Self { rx: Some(rx), stop, thread }
    }

    /// The next batch `(B, 3, crop, crop)` on the CPU, or a skipped file, or `None` when the
    /// loader thread is gone.
    pub fn next(&self) -> Option<Loaded> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Dropping the receiver makes the loader's next send fail, so it returns.
        self.stop.store(true, Ordering::Relaxed);
        self.rx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Square crops as one preprocessed batch `(B, 3, crop, crop)` on the CPU.
pub fn crops_tensor(items: &[RgbImage], crop: usize, preprocess: Preprocess) -> candle_core::Result<Tensor> {
    let tensors: Vec<Tensor> =
        items.iter().map(|img| preprocess.to_tensor(img, crop, &Device::Cpu)).collect::<candle_core::Result<_>>()?;
    Tensor::stack(&tensors, 0)
}

/// A random `crop × crop` square of `img`, flipped left–right half of the time.
pub fn random_crop(img: &RgbImage, crop: usize, rng: &mut StdRng) -> RgbImage {
    let (w, h) = img.dimensions();
    let c = crop as u32;
    let x = rng.random_range(0..=w.saturating_sub(c));
    let y = rng.random_range(0..=h.saturating_sub(c));
    let mut out = image::imageops::crop_imm(img, x, y, c.min(w), c.min(h)).to_image();
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

/// Images for validation and evaluation, each scaled and centre-cropped the same way, with the
/// files that could not be read.
pub fn load_centre_crops(files: &[PathBuf], spec: CropSpec) -> (Vec<(PathBuf, RgbImage)>, Vec<Skipped>) {
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        match load_image(f) {
            Ok(img) => {
                let img = resize_shorter_side(&img, spec.scale as u32);
                let (w, h) = img.dimensions();
                let c = spec.crop as u32;
                ok.push((f.clone(), image::imageops::crop_imm(&img, (w - c) / 2, (h - c) / 2, c, c).to_image()));
            }
            Err(e) => skipped.push(Skipped { path: f.clone(), error: e.to_string() }),
        }
    }
    (ok, skipped)
}
