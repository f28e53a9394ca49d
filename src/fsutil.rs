//! Crash-safe file writing: write a temporary file beside the target, fsync it, rename it over the
//! target, fsync the directory. A crash at any moment leaves either the old file or the new one.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Read a file a user gave, refusing before reading anything but its first bytes: what is not a
/// regular file (a device such as /dev/zero, a folder, a pipe), a file over `limit` bytes, an
/// empty file, and one whose first (up to 32) bytes `looks_right` rejects. `what` names the kind
/// of file expected in the messages ("an image"). Bounded even if the file grows while it is read.
pub fn read_bounded(path: &Path, what: &str, limit: u64, looks_right: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, mut bytes) = open_bounded(path, what, limit, looks_right)?;
    let head = bytes.len() as u64;
    file.take(limit + 1 - head).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::bad_file(
            path,
            format!("file grew past the {} MB limit for {what} while it was read", mb(limit)),
        ));
    }
    Ok(bytes)
}

/// The checks of [`read_bounded`] without reading the rest: the open file, and its first bytes
/// (read; the rest follows them), for readers that take a path.
pub fn open_bounded(
    path: &Path,
    what: &str,
    limit: u64,
    looks_right: impl Fn(&[u8]) -> bool,
) -> Result<(std::fs::File, Vec<u8>)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::bad_file(path, format!("not a regular file, not {what}")));
    }
    if meta.len() > limit {
        return Err(Error::bad_file(
            path,
            format!("file is {} MB, over the {} MB limit for {what}", mb(meta.len()), mb(limit)),
        ));
    }
    if meta.len() == 0 {
        return Err(Error::bad_file(path, format!("empty file, not {what}")));
    }
    let mut head = [0u8; 32];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(|e| Error::io(path, e))? {
            0 => break,
            k => n += k,
        }
    }
    if !looks_right(&head[..n]) {
        return Err(Error::bad_file(path, format!("not {what} (unrecognised file format)")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    bytes.extend_from_slice(&head[..n]);
    Ok((file, bytes))
}

fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// The temporary name used while `path` is being written.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// An error about the temporary file `tmp`, reworded to name `path`, the file the user asked for.
fn name_target(e: Error, tmp: &Path, path: &Path) -> Error {
    match e {
        Error::Io { path: p, err } if p == tmp => Error::Io { path: path.to_path_buf(), err },
        Error::BadFile { path: p, msg } if p == tmp => Error::BadFile { path: path.to_path_buf(), msg },
        other => other,
    }
}

/// Atomically replace `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
        Ok(())
    })
}

/// Write `img` as a PNG at `path`, atomically (a crash leaves no half-written file): every
/// picture layerinv writes (figures, exports, screenshots, bare pictures) goes through here.
pub fn save_png<P>(path: &Path, img: &image::ImageBuffer<P, Vec<P::Subpixel>>) -> Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    write_atomic_with(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| Error::bad_file(tmp, e.to_string()))
    })
}

/// Atomically replace `path` with whatever `write` puts at the temporary path it is given.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        let f = std::fs::OpenOptions::new().write(true).open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(name_target(e, &tmp, path));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Persist the rename itself; not every platform can open a directory, so this is best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The lock file a training run holds in its output folder.
pub const LOCK_FILE: &str = ".layerinv-train.lock";

/// An exclusive, advisory lock on a folder: held while the value lives, released when it is
/// dropped or when its process dies (the operating system drops the lock with the process, so a
/// `kill -9` never leaves a stale lock; the file itself stays and is reused).
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

/// Take the folder's lock (creating the folder), or say which process holds it.
pub fn lock_folder(dir: &Path) -> Result<FolderLock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::Read::take(&file, 32), &mut holder);
            let who = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("another training run (pid {pid})"),
                Err(_) => "another training run".to_string(),
            };
            return Err(Error::Unavailable(format!(
                "{}: {who} is writing to this folder; wait for it to finish or choose another output folder",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    // Who holds it, for the message a second run prints (the lock, not this text, is what counts).
    let pid = std::process::id().to_string();
    let _ =
        file.set_len(0).and_then(|()| std::io::Seek::rewind(&mut file)).and_then(|()| file.write_all(pid.as_bytes()));
    Ok(FolderLock { _file: file })
}

/// Whether a training run (in this process or another) holds `dir`'s lock now. A folder without a
/// lock file, or one that cannot be opened, is not held.
pub fn folder_is_locked(dir: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(dir.join(LOCK_FILE)) else { return false };
    // A second open of the file is its own lock holder, so this fails while the run holds it,
    // also within the process that runs it; the probe's own lock goes with `file`.
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Remove the temporary files (`NAME.tmpPID`, see [`temp_path`]) that a killed writer left in
/// `dir`: those whose process is gone. Call it while holding the folder's lock. Returns what was
/// removed.
pub fn remove_stale_temps(dir: &Path) -> Vec<PathBuf> {
    // Whether a process is alive is read from /proc; elsewhere nothing is removed.
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = temp_owner(&path) else { continue };
        let alive = pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && !alive && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// The process id in a temporary file's name (`NAME.tmpPID`), if it is one.
fn temp_owner(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let (stem, pid) = name.rsplit_once(".tmp")?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}
