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

use super::config::TrainConfig;
use crate::data::{crops_tensor, BatchLoader, CropSpec, Drawn, Loaded, PhotoSource, Preprocess};
use crate::error::{Error, Result};
use crate::model::{Arch, Encoder, Features, Objective, Tap};
use crate::ops::PoolSwitches;
use candle_core::{DType, Device, Tensor};
use half::f16;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The cache's size limit unless the user gives one: the whole corpus (779 photos, both
/// orientations) for a pool1 run is about 4.3 GB, for pool3 1.2 GB, for pool5 0.6 GB.
pub const DEFAULT_LIMIT_BYTES: u64 = 6 << 30;

const MAGIC: &[u8] = b"LAYERINV-ENCODED 1\n";

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

/// What a run keeps of each photo: the codes it reads and the switches of every pooling up to its
/// deepest layer (all of them 2×2 windows of stride 2 after size-keeping convolutions).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The codes kept: tap name, its stage's index, channels.
    codes: Vec<(&'static str, usize, usize)>,
    /// Channels of each stage's pooling, from the first stage to the deepest trained one.
    pools: Vec<usize>,
}

impl Layout {
    /// The layout for decoders of `taps` trained with `objective` on crops of `crop` pixels, or
    /// why their crops cannot be cut from whole photos.
    pub fn plan(arch: Arch, taps: &[Tap], objective: Objective, crop: usize) -> std::result::Result<Self, String> {
        if let Some(t) = taps.iter().find(|t| t.is_fc()) {
            return Err(format!("{t} reads the whole input"));
        }
        let deepest = taps.iter().map(|t| t.index()).max().ok_or("no layer to train")?;
        let stages = arch.stages();
        let mut pools = Vec::new();
        for st in stages.iter().take(deepest + 1) {
            let keeps_size = st.convs.iter().all(|c| c.stride == 1 && 2 * c.pad + 1 == c.k);
            let halves = st.pool.is_some_and(|p| p.k == 2 && p.stride == 2);
            let channels = st.convs.last().map(|c| c.cout);
            match channels {
                Some(c) if keeps_size && halves => pools.push(c),
                _ => return Err(format!("{}'s stage is not size-keeping convolutions and a 2×2 pooling", st.tap)),
            }
        }
        let stride = 1 << pools.len();
        if !crop.is_multiple_of(stride) {
            let name = stages[deepest].tap;
            return Err(format!("{crop}-pixel crops are not a multiple of {name}'s {stride}-pixel cells"));
        }
        // The objectives beyond the image loss compare every stage with the encoder's activation.
        let codes = (0..=deepest)
            .filter(|&i| objective != Objective::First || taps.iter().any(|t| t.index() == i))
            .map(|i| (stages[i].tap, i, pools[i]))
            .collect();
        Ok(Self { codes, pools })
    }

    /// The deepest layer's cell side in pixels: crops start at multiples of it.
    pub fn stride(&self) -> usize {
        1 << self.pools.len()
    }

    fn deepest(&self) -> usize {
        self.pools.len() - 1
    }

    /// The layout's part of an entry's file name: `pool1+pool3-s3` (codes, pooled stages).
    fn tag(&self) -> String {
        let codes: Vec<&str> = self.codes.iter().map(|c| c.0).collect();
        format!("{}-s{}", codes.join("+"), self.pools.len())
    }

    /// Bytes of an entry's maps for an `h × w` photo.
    fn payload_len(&self, h: usize, w: usize) -> usize {
        self.offsets(h, w).last().copied().unwrap_or(0)
    }

    /// Where each section of an entry's maps starts for an `h × w` photo: the codes (f16), then
    /// the switches (four to a byte); the last item is the end.
    fn offsets(&self, h: usize, w: usize) -> Vec<usize> {
        let cells = |i: usize| (h >> (i + 1)) * (w >> (i + 1));
        let codes = self.codes.iter().map(|&(_, i, c)| 2 * c * cells(i));
        let pools = self.pools.iter().enumerate().map(|(i, c)| (c * cells(i)).div_ceil(4));
        let mut at = 0;
        let mut out = vec![0];
        for len in codes.chain(pools) {
            at += len;
            out.push(at);
        }
        out
    }

    /// An entry's maps from the features of one whole `h × w` photo: the codes in f16, then the
    /// switches, four to a byte.
    pub fn pack(&self, f: &Features, h: usize, w: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.payload_len(h, w));
        for &(tap, i, c) in &self.codes {
            let t = f.tap(tap).ok_or_else(|| Error::Unavailable(format!("the encoding lacks {tap}")))?;
            check_dims(t, (1, c, h >> (i + 1), w >> (i + 1)), tap)?;
            for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
                out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        for (i, &c) in self.pools.iter().enumerate() {
            let sw = f.switches.get(i).and_then(|s| s.as_ref());
            let sw = sw.ok_or_else(|| Error::Unavailable(format!("the encoding lacks stage {}'s switches", i + 1)))?;
            let (oh, ow) = (h >> (i + 1), w >> (i + 1));
            check_dims(&sw.indices, (1, c, oh, ow), "switches")?;
            let in_w = sw.in_hw.1;
            let idx = sw.indices.flatten_all()?.to_vec1::<u32>()?;
            let mut packed = vec![0u8; (c * oh * ow).div_ceil(4)];
            for (n, &k) in idx.iter().enumerate() {
                let (oy, ox) = ((n / ow) % oh, n % ow);
                let (iy, ix) = (k as usize / in_w, k as usize % in_w);
                let (dy, dx) = (iy.wrapping_sub(2 * oy), ix.wrapping_sub(2 * ox));
                if dy > 1 || dx > 1 {
                    return Err(Error::Unavailable(format!("stage {}'s switch {k} is outside its window", i + 1)));
                }
                packed[n / 4] |= ((2 * dy + dx) as u8) << (2 * (n % 4));
            }
            out.extend_from_slice(&packed);
        }
        Ok(out)
    }

    /// The features of a batch of crops cut from entries: `(maps, h, w, y, x)` for each, where
    /// `maps` is an entry of an `h × w` photo ([`Self::pack`]) and `(y, x)` the crop's top-left
    /// pixel (multiples of [`Self::stride`]); codes in `dtype`, on the CPU.
    pub fn cut(&self, crops: &[(&[u8], usize, usize, usize, usize)], crop: usize, dtype: DType) -> Result<Features> {
        let b = crops.len();
        let mut taps = Vec::new();
        let mut switches = Vec::new();
        for (n, &(tap, i, c)) in self.codes.iter().enumerate() {
            let g = crop >> (i + 1);
            let mut v = Vec::with_capacity(b * c * g * g);
            for &(maps, h, w, y, x) in crops {
                let (gh, gw) = (h >> (i + 1), w >> (i + 1));
                let start = self.offsets(h, w)[n];
                let plane = &maps[start..start + 2 * c * gh * gw];
                let (y0, x0) = (y >> (i + 1), x >> (i + 1));
                for ch in 0..c {
                    for row in y0..y0 + g {
                        let at = 2 * ((ch * gh + row) * gw + x0);
                        v.extend(
                            plane[at..at + 2 * g].chunks_exact(2).map(|p| f16::from_le_bytes([p[0], p[1]]).to_f32()),
                        );
                    }
                }
            }
            taps.push((tap, Tensor::from_vec(v, (b, c, g, g), &Device::Cpu)?.to_dtype(dtype)?));
        }
        for (i, &c) in self.pools.iter().enumerate() {
            let g = crop >> (i + 1);
            let mut v = Vec::with_capacity(b * c * g * g);
            for &(maps, h, w, y, x) in crops {
                let (gh, gw) = (h >> (i + 1), w >> (i + 1));
                let start = self.offsets(h, w)[self.codes.len() + i];
                let (y0, x0) = (y >> (i + 1), x >> (i + 1));
                for ch in 0..c {
                    for oy in 0..g {
                        for ox in 0..g {
                            let n = (ch * gh + y0 + oy) * gw + x0 + ox;
                            let pos = (maps[start + n / 4] >> (2 * (n % 4))) & 3;
                            let (dy, dx) = ((pos >> 1) as usize, (pos & 1) as usize);
                            v.push(((2 * oy + dy) * 2 * g + 2 * ox + dx) as u32);
                        }
                    }
                }
            }
            let indices = Tensor::from_vec(v, (b, c, g, g), &Device::Cpu)?;
            switches.push(Some(PoolSwitches { indices, in_hw: (2 * g, 2 * g), kernel: 2, stride: 2 }));
        }
        Ok(Features { taps, switches })
    }

    /// `a`'s batch followed by `b`'s, for the maps this layout keeps (`b` may hold more).
    fn concat(&self, a: Features, b: &Features) -> Result<Features> {
        let mut taps = Vec::new();
        for (tap, t) in a.taps {
            let u = b.tap(tap).ok_or_else(|| Error::Unavailable(format!("the encoding lacks {tap}")))?;
            taps.push((tap, Tensor::cat(&[&t, &u.to_device(&Device::Cpu)?], 0)?));
        }
        let mut switches = Vec::new();
        for (i, s) in a.switches.into_iter().enumerate() {
            let other = b.switches.get(i).and_then(|s| s.as_ref());
            switches.push(match (s, other) {
                (Some(s), Some(o)) => Some(PoolSwitches {
                    indices: Tensor::cat(&[&s.indices, &o.indices.to_device(&Device::Cpu)?], 0)?,
                    ..s
                }),
                _ => return Err(Error::Unavailable(format!("the encoding lacks stage {}'s switches", i + 1))),
            });
        }
        Ok(Features { taps, switches })
    }
}

fn check_dims(t: &Tensor, want: (usize, usize, usize, usize), what: &str) -> Result<()> {
    if t.dims4()? != want {
        return Err(Error::Unavailable(format!("{what} has shape {:?}, expected {want:?}", t.dims())));
    }
    Ok(())
}

/// A cheap 64-bit checksum of an entry's maps (it only has to catch damage, not attacks).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cache key of a scaled photo: a hash of its size and pixels.
pub fn photo_key(img: &RgbImage) -> String {
    let mut h = Sha256::new();
    h.update(img.width().to_le_bytes());
    h.update(img.height().to_le_bytes());
    h.update(img.as_raw());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// What writing an entry came to.
enum Stored {
    Yes,
    /// The folder is full: this entry did not fit.
    NoRoom,
    /// Writing failed (why).
    Failed(String),
}

/// One encoder's and layout's entries in the cache folder.
struct Folder {
    root: PathBuf,
    dir: PathBuf,
    tag: String,
    /// The start of every entry's header: the encoder and the layout.
    header: String,
    limit: u64,
    /// Bytes the whole cache folder holds.
    used: u64,
    /// Entries of other encoders and layouts, newest first (the last goes first to make room).
    others: Vec<(PathBuf, u64)>,
}

impl Folder {
    fn open(cfg: &CacheConfig, enc: &Encoder, layout: &Layout) -> Result<Self> {
        let dtype = format!("{:?}", enc.dtype()).to_lowercase();
        let dir = cfg.dir.join(format!("{}-{dtype}", enc.fingerprint));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        crate::fsutil::remove_stale_temps(&dir);
        let tag = layout.tag();
        let mut used = 0;
        let mut others = Vec::new();
        for sub in std::fs::read_dir(&cfg.dir).map_err(|e| Error::io(&cfg.dir, e))?.flatten() {
            let Ok(files) = std::fs::read_dir(sub.path()) else { continue };
            for f in files.flatten() {
                let Ok(meta) = f.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                used += meta.len();
                let path = f.path();
                let ours = path.parent() == Some(dir.as_path())
                    && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&format!("-{tag}.enc")));
                if !ours {
                    let age = meta.modified().ok();
                    others.push((age, path, meta.len()));
                }
            }
        }
        others.sort_by_key(|o| std::cmp::Reverse(o.0));
        let header = format!("{} {dtype} {tag}", enc.fingerprint);
        let others = others.into_iter().map(|(_, p, n)| (p, n)).collect();
        Ok(Self { root: cfg.dir.clone(), dir, tag, header, limit: cfg.limit, used, others })
    }

    /// How many entries of this encoder and layout the folder holds.
    fn count(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let end = format!("-{}.enc", self.tag);
        entries.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(&end))).count()
    }

    fn path(&self, key: &str, mirror: bool) -> PathBuf {
        self.dir.join(format!("{key}-{}-{}.enc", if mirror { "m" } else { "n" }, self.tag))
    }

    fn entry_header(&self, key: &str, mirror: bool, h: usize, w: usize) -> Vec<u8> {
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(
            format!("{} {h}x{w} {key}-{}\n", self.header, if mirror { "m" } else { "n" }).as_bytes(),
        );
        head
    }

    /// The maps of the entry for this photo, `None` when there is none, or why the one there
    /// cannot be used (it is then deleted).
    fn read(
        &mut self,
        layout: &Layout,
        key: &str,
        mirror: bool,
        h: usize,
        w: usize,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        let path = self.path(key, mirror);
        let head = self.entry_header(key, mirror, h, w);
        let len = head.len() + layout.payload_len(h, w) + 8;
        // Never more than an entry's own size is read, whatever lies in the folder.
        let bytes = match std::fs::File::open(&path) {
            Ok(file) => {
                use std::io::Read;
                let mut bytes = Vec::with_capacity(len);
                file.take(len as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let why = if bytes.len() < len && bytes.starts_with(&head) {
            Some("truncated")
        } else if !bytes.starts_with(&head) {
            Some("made for another encoder or photo")
        } else if bytes.len() != len {
            Some("longer than its maps")
        } else {
            let (maps, sum) = bytes[head.len()..].split_at(len - head.len() - 8);
            let mut a = [0u8; 8];
            a.copy_from_slice(sum);
            (checksum(maps) != u64::from_le_bytes(a)).then_some("damaged (its checksum does not match)")
        };
        if let Some(why) = why {
            let size = std::fs::metadata(&path).map_or(bytes.len() as u64, |m| m.len());
            if std::fs::remove_file(&path).is_ok() {
                self.used = self.used.saturating_sub(size);
            }
            return Err(format!("{} was {why}", path.display()));
        }
        let mut bytes = bytes;
        bytes.truncate(len - 8);
        Ok(Some(bytes.split_off(head.len())))
    }

    /// Write an entry, making room first by deleting the oldest entries of other encoders and
    /// layouts.
    fn write(&mut self, key: &str, mirror: bool, h: usize, w: usize, maps: &[u8]) -> Stored {
        let mut bytes = self.entry_header(key, mirror, h, w);
        bytes.extend_from_slice(maps);
        bytes.extend_from_slice(&checksum(maps).to_le_bytes());
        let n = bytes.len() as u64;
        let reclaimable: u64 = self.others.iter().map(|o| o.1).sum();
        if self.used.saturating_sub(reclaimable) + n > self.limit {
            return Stored::NoRoom;
        }
        while self.used + n > self.limit {
            let Some((old, len)) = self.others.pop() else { return Stored::NoRoom };
            if std::fs::remove_file(&old).is_ok() {
                self.used = self.used.saturating_sub(len);
            }
        }
        let path = self.path(key, mirror);
        match crate::fsutil::write_atomic(&path, &bytes) {
            Ok(()) => {
                self.used += n;
                Stored::Yes
            }
            Err(e) => Stored::Failed(e.to_string()),
        }
    }
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
        let f = self.enc.forward_to(&x, self.enc.arch.stage_taps()[self.layout.deepest()].name())?;
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
        let rest = e.enc.forward_to(&x.narrow(0, cut.len(), alone.len())?, deepest.name())?;
        features = e.layout.concat(features, &rest)?;
    }
    Ok(Loaded::Batch { x, features: Some(features) })
}
