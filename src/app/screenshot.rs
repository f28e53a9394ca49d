//! A `--screenshot` run's progress: wait until the view is complete, grab the window, exit.

use eframe::egui;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Screenshot {
    pub path: PathBuf,
    pub requested: bool,
    pub ready_frames: u32,
    pub started: Instant,
    /// Where the window's picture lands once egui has it.
    pub slot: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
    /// The reconstruction latencies already reported.
    pub reported: usize,
}

/// A screenshot run gives up (exit 1) after this long without its reconstructions.
pub const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(300);

impl Screenshot {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            requested: false,
            ready_frames: 0,
            started: Instant::now(),
            slot: Arc::new(Mutex::new(None)),
            reported: 0,
        }
    }
}
