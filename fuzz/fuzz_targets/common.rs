//! The loaders read paths: each input is written to a file in memory-backed /dev/shm (or the temp
//! folder) under the name the loader dispatches on.
use std::path::PathBuf;

pub fn as_file(name: &str, data: &[u8]) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let path = dir.join(format!("layerinv-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("the fuzz scratch file");
    path
}
