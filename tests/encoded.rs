//! The encoder cache (`src/train/encoded/`): crops cut from photos encoded whole carry exactly
//! the whole photo's codes and switches, and a cache that is damaged, unwritable or full is said
//! and never makes a batch wrong.

mod common;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use layerinv::data::{list_images, resize_shorter_side, CropSpec, Loaded};
use layerinv::model::Layer;
use layerinv::model::{Arch, Encoder, Features, Kind};
use layerinv::ops::unpool;
use layerinv::train::encoded::{batch_loader, CacheConfig};
use layerinv::train::TrainConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CROP: usize = 32;
const LAYERS: [Layer; 2] = [Layer::POOL1, Layer::POOL2];

fn config(photos: &Path, cache: Option<CacheConfig>) -> TrainConfig {
    let mut cfg = TrainConfig::new(photos.to_path_buf(), LAYERS.to_vec(), vec![Kind::Swwae], PathBuf::from("unused"));
    cfg.batch = 4;
    cfg.crop = Some(CROP);
    cfg.cache = cache;
    cfg
}

fn cache_in(dir: &Path, limit: u64) -> CacheConfig {
    CacheConfig { dir: dir.to_path_buf(), limit, fill_always: true }
}

/// The notes and the first batch of a loader for `cfg` (seeded with `seed`), and the loader's
/// own note.
fn first_batch(
    enc: &Arc<Encoder>,
    cfg: &TrainConfig,
    seed: u64,
) -> (Option<String>, Vec<String>, Tensor, Option<Features>) {
    let taps = enc.arch.taps_of(&cfg.layers).unwrap();
    let files = list_images(&cfg.data).unwrap();
    let spec = CropSpec::for_model(enc.arch.input_size(), CROP);
    let (loader, note) = batch_loader(enc, cfg, &taps, files, spec, seed, 100);
    let mut notes = Vec::new();
    loop {
        match loader.next() {
            Some(Loaded::Note(n)) => notes.push(n),
            Some(Loaded::Batch { x, features }) => return (note, notes, x, features),
            Some(Loaded::Skipped(s)) => panic!("skipped {}", s.path.display()),
            Some(Loaded::Exhausted) | None => panic!("no batch"),
        }
    }
}

/// The photos as the loader scales them, each also mirrored.
fn scaled_photos(dir: &Path, enc: &Encoder) -> Vec<RgbImage> {
    let mut out = Vec::new();
    for f in list_images(dir).unwrap() {
        let img = resize_shorter_side(&layerinv::data::load_image(&f).unwrap(), enc.arch.input_size() as u32);
        out.push(image::imageops::flip_horizontal(&img));
        out.push(img);
    }
    out
}

/// Where `crop` sits in one of `photos`, its top-left corner on a grid of `step` pixels.
fn find(crop: &RgbImage, photos: &[RgbImage], step: usize) -> Option<(usize, usize, usize)> {
    let c = crop.width() as usize;
    for (p, img) in photos.iter().enumerate() {
        let (w, h) = (img.width() as usize, img.height() as usize);
        for y in (0..=h - c).step_by(step) {
            'at: for x in (0..=w - c).step_by(step) {
                for dy in 0..c {
                    for dx in 0..c {
                        if img.get_pixel((x + dx) as u32, (y + dy) as u32) != crop.get_pixel(dx as u32, dy as u32) {
                            continue 'at;
                        }
                    }
                }
                return Some((p, y, x));
            }
        }
    }
    None
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn max_abs_value(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Every crop of the batch is a crop of one of the photos on pool2's 4-pixel grid, and its codes
/// and switches are the whole photo's at that place: each layer's code unpooled with the crop's
/// switches equals the whole photo's code unpooled with the whole photo's switches, cut there (up
/// to the f16 rounding of the stored codes). Away from the crop's edges they also equal the codes
/// of the crop encoded alone (at the edges those see zero padding instead of the photo).
fn assert_cut_from_whole_photos(enc: &Encoder, dir: &Path, x: &Tensor, f: &Features) {
    let photos = scaled_photos(dir, enc);
    for i in 0..x.dim(0).unwrap() {
        let xi = x.get(i).unwrap();
        let crop = enc.preprocess.to_image(&xi).unwrap();
        let (p, y, x0) =
            find(&crop, &photos, 4).unwrap_or_else(|| panic!("crop {i} is not on pool2's grid of a photo"));
        let whole = enc.preprocess.image_tensor(&photos[p], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let fw = enc.forward_to(&whole, Layer::POOL2).unwrap();
        let alone = enc.forward_to(&xi.unsqueeze(0).unwrap(), Layer::POOL2).unwrap();
        for (stage, &tap) in LAYERS.iter().enumerate() {
            let cut = f.tap(tap).unwrap().narrow(0, i, 1).unwrap();
            let sw = f.switches[stage].as_ref().unwrap();
            let sw_i = layerinv::ops::PoolSwitches { indices: sw.indices.narrow(0, i, 1).unwrap(), ..sw.clone() };
            let mine = unpool(&cut, &sw_i).unwrap();
            let s = 1 << stage;
            let theirs = unpool(fw.tap(tap).unwrap(), fw.switches[stage].as_ref().unwrap())
                .unwrap()
                .narrow(2, y / s, CROP / s)
                .unwrap()
                .narrow(3, x0 / s, CROP / s)
                .unwrap();
            let tol = 2e-3 * max_abs_value(&theirs) + 1e-6;
            assert!(max_abs(&mine, &theirs) <= tol, "crop {i} {tap}: {} > {tol}", max_abs(&mine, &theirs));
            // Cells far enough from the edge that their receptive field stays inside the crop.
            let (m, g) = (2, CROP >> (stage + 1));
            let inner = |t: &Tensor| t.narrow(2, m, g - 2 * m).unwrap().narrow(3, m, g - 2 * m).unwrap();
            let a = inner(&cut);
            let b = inner(alone.tap(tap).unwrap());
            assert!(max_abs(&a, &b) <= tol, "crop {i} {tap} inside: {} > {tol}", max_abs(&a, &b));
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "enc") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

fn folder_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for sub in std::fs::read_dir(dir).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            n += f.metadata().unwrap().len();
        }
    }
    n
}

#[test]
fn crops_cut_from_cached_encodings_carry_the_whole_photos_codes_and_switches() {
    let enc = Arc::new(common::random_encoder(Arch::Vgg16, false));
    let photos = common::demo_photo_dir(false);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(photos.path(), Some(cache_in(cache.path(), 1 << 30)));

    let (note, notes, x, f) = first_batch(&enc, &cfg, 7);
    assert!(note.as_deref().is_some_and(|n| n.contains("holds 0 photo encodings")), "{note:?}");
    assert!(notes.is_empty(), "{notes:?}");
    let f = f.expect("a filling cache gives the batch its features");
    assert_eq!(f.tap(Layer::POOL2).unwrap().dims(), &[4, 128, 8, 8]);
    assert_cut_from_whole_photos(&enc, photos.path(), &x, &f);

    // A second run reads the entries the first one wrote: the same batch, from disk.
    let written = entries(cache.path());
    assert!(!written.is_empty());
    let (note, notes, x2, f2) = first_batch(&enc, &cfg, 7);
    assert!(note.as_deref().is_some_and(|n| n.contains(&format!("holds {} photo", written.len()))), "{note:?}");
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(max_abs(&x, &x2), 0.0);
    let f2 = f2.unwrap();
    for tap in LAYERS {
        assert_eq!(max_abs(f.tap(tap).unwrap(), f2.tap(tap).unwrap()), 0.0);
    }
    for s in 0..2 {
        let (a, b) = (&f.switches[s].as_ref().unwrap().indices, &f2.switches[s].as_ref().unwrap().indices);
        assert_eq!(
            a.to_dtype(DType::F32)
                .unwrap()
                .sub(&b.to_dtype(DType::F32).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }
}

#[test]
fn damaged_truncated_and_foreign_entries_are_said_and_made_again() {
    let enc = Arc::new(common::random_encoder(Arch::Vgg16, false));
    let photos = common::demo_photo_dir(false);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(photos.path(), Some(cache_in(cache.path(), 1 << 30)));
    let (_, _, x, clean) = first_batch(&enc, &cfg, 11);
    let clean = clean.unwrap();

    // Each kind of damage in turn, to every entry: the next run's first batch meets it.
    for (kind, why) in ["truncated", "checksum", "another encoder", "longer than its maps"].iter().enumerate() {
        for path in entries(cache.path()) {
            let mut bytes = std::fs::read(&path).unwrap();
            match kind {
                0 => bytes.truncate(bytes.len() / 2),
                1 => {
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0x5a;
                }
                3 => bytes.extend(vec![0u8; 1 << 20]),
                _ => {
                    // Another encoder's entry under this one's name.
                    let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
                    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
                }
            }
            std::fs::write(&path, bytes).unwrap();
        }
        let (_, notes, x2, again) = first_batch(&enc, &cfg, 11);
        assert!(notes.iter().any(|n| n.contains(why)), "no note says {why}: {notes:?}");
        assert!(notes.iter().all(|n| n.starts_with("encoder cache: ") && !n.contains('\n')), "{notes:?}");
        // The batch is the one the clean cache gave: nothing damaged was used.
        assert_eq!(max_abs(&x, &x2), 0.0);
        let again = again.unwrap();
        for tap in LAYERS {
            assert_eq!(max_abs(clean.tap(tap).unwrap(), again.tap(tap).unwrap()), 0.0, "{why}: {tap}");
        }
        // And the entries were made again: the next run has nothing to say.
        let (_, notes, _, _) = first_batch(&enc, &cfg, 11);
        assert!(notes.is_empty(), "{why}: {notes:?}");
    }
}

#[test]
fn a_cache_folder_that_cannot_be_made_is_said_and_each_crop_is_encoded() {
    let enc = Arc::new(common::random_encoder(Arch::Vgg16, false));
    let photos = common::demo_photo_dir(false);
    let tmp = tempfile::tempdir().unwrap();
    let blocked = tmp.path().join("a-file");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let cfg = config(photos.path(), Some(cache_in(&blocked, 1 << 30)));
    let (note, _, x, f) = first_batch(&enc, &cfg, 3);
    let note = note.unwrap();
    assert!(note.starts_with("encoder cache: not used (") && note.contains("a-file"), "{note}");
    assert!(f.is_none(), "without a cache the run encodes the crops itself");
    assert_eq!(x.dims(), &[4, 3, CROP, CROP]);
}

#[test]
fn a_full_cache_makes_room_from_other_encoders_then_stops_storing() {
    let enc = Arc::new(common::random_encoder(Arch::Vgg16, false));
    let photos = common::demo_photo_dir(false);
    let cache = tempfile::tempdir().unwrap();
    // One entry's size, from a first run in another folder.
    let probe = tempfile::tempdir().unwrap();
    first_batch(&enc, &config(photos.path(), Some(cache_in(probe.path(), 1 << 30))), 5);
    let one = entries(probe.path()).iter().map(|p| p.metadata().unwrap().len()).max().unwrap();

    // An old entry of another encoder, and room for it and one of ours, or two of ours.
    let other = cache.path().join("0123456789abcdef-f32");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("old-n-pool1-s1.enc"), vec![0u8; one as usize]).unwrap();
    let limit = 2 * one + one / 2;
    let cfg = config(photos.path(), Some(cache_in(cache.path(), limit)));
    let (_, notes, x, f) = first_batch(&enc, &cfg, 5);
    assert!(!other.join("old-n-pool1-s1.enc").exists(), "the other encoder's entry went first");
    assert!(folder_bytes(cache.path()) <= limit, "{} > {limit}", folder_bytes(cache.path()));
    assert!(notes.iter().any(|n| n.contains("is full")), "{notes:?}");
    // Every crop of the batch is still right: cut from an encoding, or encoded alone.
    let f = f.unwrap();
    assert_eq!(f.tap(Layer::POOL1).unwrap().dims(), &[4, 64, 16, 16]);
    let alone = enc.forward_to(&x, Layer::POOL2).unwrap();
    for i in 0..4 {
        let (a, b) = (f.tap(Layer::POOL2).unwrap().get(i).unwrap(), alone.tap(Layer::POOL2).unwrap().get(i).unwrap());
        let inner = |t: &Tensor| t.narrow(1, 2, 4).unwrap().narrow(2, 2, 4).unwrap();
        assert!(max_abs(&inner(&a), &inner(&b)) <= 2e-3 * max_abs_value(&b) + 1e-6);
    }
}

#[test]
fn crops_off_the_deepest_layers_grid_use_no_cache_and_say_why() {
    let enc = Arc::new(common::random_encoder(Arch::Vgg16, false));
    let photos = common::demo_photo_dir(false);
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(photos.path(), Some(cache_in(cache.path(), 1 << 30)));
    cfg.layers = vec![Layer::POOL5];
    let taps = enc.arch.taps_of(&cfg.layers).unwrap();
    let files = list_images(photos.path()).unwrap();
    // 48-pixel crops are not whole 32-pixel cells of pool5.
    let spec = CropSpec::for_model(224, 48);
    let (_, note) = batch_loader(&enc, &cfg, &taps, files, spec, 1, 100);
    let note = note.unwrap();
    assert!(note.contains("not used") && note.contains("48-pixel crops") && note.contains("pool5"), "{note}");
    assert!(entries(cache.path()).is_empty());
}
