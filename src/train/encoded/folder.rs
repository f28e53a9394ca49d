//! The cache folder: one file per entry (a header naming the encoder, layout, photo and
//! orientation; the maps; a checksum), bounded in size, read no further than an entry's own size.

use super::layout::Layout;
use super::CacheConfig;
use crate::error::{Error, Result};
use crate::model::Encoder;
use std::path::PathBuf;

const MAGIC: &[u8] = b"LAYERINV-ENCODED 1\n";

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

/// What writing an entry came to.
pub(super) enum Stored {
    Yes,
    /// The folder is full: this entry did not fit.
    NoRoom,
    /// Writing failed (why).
    Failed(String),
}

/// One encoder's and layout's entries in the cache folder.
pub(super) struct Folder {
    pub(super) root: PathBuf,
    pub(super) dir: PathBuf,
    tag: String,
    /// The start of every entry's header: the encoder and the layout.
    header: String,
    pub(super) limit: u64,
    /// Bytes the whole cache folder holds.
    used: u64,
    /// Entries of other encoders and layouts, newest first (the last goes first to make room).
    others: Vec<(PathBuf, u64)>,
}

impl Folder {
    pub(super) fn open(cfg: &CacheConfig, enc: &Encoder, layout: &Layout) -> Result<Self> {
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
    pub(super) fn count(&self) -> usize {
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
    pub(super) fn read(
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
    pub(super) fn write(&mut self, key: &str, mirror: bool, h: usize, w: usize, maps: &[u8]) -> Stored {
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
