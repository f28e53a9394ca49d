//! One error type for the library. Every variant renders as a single line that names the file (or
//! the thing) involved and what is wrong with it, so front ends can show it as is.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    /// (Not marked as the error's source: the message already includes it, and a printed cause
    /// chain would repeat it.)
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file was read but its content is unusable (not an image, truncated weights, ...).
    #[error("{}: {msg}", path.display())]
    BadFile { path: PathBuf, msg: String },
    /// A request that cannot be served, e.g. a layer the model does not have.
    #[error("{0}")]
    Unavailable(String),
    /// A network download failed; the message says what to do by hand.
    #[error("{0}")]
    Download(String),
    /// An error from the tensor library (shape mismatch, device error).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), err: source }
    }

    pub fn bad_file(path: &Path, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.to_path_buf(), msg: one_line(&msg.into()) }
    }
}

/// Collapse a (possibly multi-line) message from a dependency into one line.
pub fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Map any displayable error to a `BadFile` error about `path`.
pub trait Context<T> {
    fn in_file(self, path: &Path) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn in_file(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::bad_file(path, e.to_string()))
    }
}
