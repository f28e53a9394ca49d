//! Training images: folders scanned recursively, random crops and flips, batches assembled on a
//! background thread so the encoder never waits for the disk.

use super::{load_image, resize_shorter_side, Preprocess};
use crate::error::{Error, Result};
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
    Batch(Tensor),
    Skipped(Skipped),
    /// No file in the list could be read.
    Exhausted,
}

/// Endless random batches from a list of files, prepared on a background thread.
pub struct BatchLoader {
    rx: Option<Receiver<Loaded>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BatchLoader {
    pub fn new(files: Vec<PathBuf>, batch: usize, spec: CropSpec, preprocess: Preprocess, seed: u64) -> Self {
        let (tx, rx) = sync_channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("batch-loader".into())
            .spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut files = files;
                let mut cache: HashMap<PathBuf, Arc<RgbImage>> = HashMap::new();
                let mut cached_bytes = 0usize;
                'outer: while !stop2.load(Ordering::Relaxed) {
                    let mut items = Vec::with_capacity(batch);
                    while items.len() < batch {
                        if files.is_empty() {
                            let _ = tx.send(Loaded::Exhausted);
                            break 'outer;
                        }
                        let i = rng.random_range(0..files.len());
                        let img = match cache.get(&files[i]) {
                            Some(img) => img.clone(),
                            None => match load_image(&files[i]) {
                                Ok(img) => {
                                    let img = Arc::new(resize_shorter_side(&img, spec.scale as u32));
                                    let bytes = img.as_raw().len();
                                    if cached_bytes + bytes <= CACHE_BYTES {
                                        cached_bytes += bytes;
                                        cache.insert(files[i].clone(), img.clone());
                                    }
                                    img
                                }
                                Err(e) => {
                                    let path = files.swap_remove(i);
                                    if tx.send(Loaded::Skipped(Skipped { path, error: e.to_string() })).is_err() {
                                        break 'outer;
                                    }
                                    continue;
                                }
                            },
                        };
                        items.push(random_crop(&img, spec.crop, &mut rng));
                    }
                    let tensors: candle_core::Result<Vec<Tensor>> =
                        items.iter().map(|img| preprocess.to_tensor(img, spec.crop, &Device::Cpu)).collect();
                    let Ok(tensors) = tensors else { break };
                    let Ok(x) = Tensor::stack(&tensors, 0) else { break };
                    if tx.send(Loaded::Batch(x)).is_err() {
                        break;
                    }
                }
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

fn random_crop(img: &RgbImage, crop: usize, rng: &mut StdRng) -> RgbImage {
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
