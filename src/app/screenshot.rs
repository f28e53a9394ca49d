//! A `--screenshot` run: wait until the view is complete, grab the window, write it, exit.

use super::shown::View;
use super::state::LayerinvApp;
use eframe::egui;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
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
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(300);

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

impl LayerinvApp {
    /// Whether everything the current view shows has arrived (`Err` when it failed).
    pub fn view_complete(&self) -> Result<bool, String> {
        if self.photo().is_none() || self.photos.loading.is_some() || self.model.is_none() {
            return Ok(false);
        }
        let layers = match self.view {
            View::AllLayers => self.available_layers(),
            _ => vec![self.layer],
        };
        if self.view == View::Channels || self.edits.keep_spec.is_some() {
            match self.channel_maps(self.layer) {
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(_)) if self.edits.keep_spec.is_none() => {}
                _ => return Ok(false),
            }
        }
        for &l in &layers {
            match self.rebuilt(l) {
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(_)) => {}
                None => return Ok(false),
            }
        }
        Ok(!layers.is_empty())
    }

    pub(super) fn tick_screenshot(&mut self) {
        let complete = self.view_complete();
        let Some(shot) = &mut self.screenshot else { return };
        // Report each reconstruction's time once (the README's latency figures come from here).
        let mut times: Vec<String> = Vec::new();
        for ((_, layer, variant, _), r) in self.results.all_rebuilt() {
            if let Ok(r) = r {
                let what = if variant.is_plain() { "plain" } else { "changed code" };
                let ran = if r.encoder_ran { "encoder and decoders" } else { "decoders only" };
                times.push(format!("{layer} ({what}): {:.0} ms, {ran}", 1000.0 * r.seconds));
            }
        }
        if times.len() > shot.reported {
            times.sort();
            for t in &times {
                eprintln!("rebuilt {t}");
            }
            shot.reported = times.len();
        }
        if let Some(img) = shot.slot.lock().ok().and_then(|mut s| s.take()) {
            let [w, h] = img.size;
            let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
            let path = shot.path.clone();
            let saved = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
                .ok_or_else(|| crate::Error::Unavailable("screenshot has the wrong size".into()))
                .and_then(|img| crate::fsutil::save_png(&path, &img));
            match saved {
                Ok(()) => eprintln!("wrote {}", path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    self.exit.store(1, Ordering::SeqCst);
                }
            }
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if shot.requested {
            self.ctx.request_repaint();
            return;
        }
        let failed = complete.as_ref().err().cloned().or_else(|| {
            (self.photos.current.is_none() && self.photos.loading.is_none() && self.model.is_some())
                .then(|| self.last_error.clone().unwrap_or_else(|| "no photo to show".into()))
        });
        let failed = failed.or_else(|| {
            (shot.started.elapsed() > SCREENSHOT_TIMEOUT).then(|| "the view did not appear in time".to_string())
        });
        if let Some(why) = failed {
            eprintln!("error: {why}");
            self.exit.store(1, Ordering::SeqCst);
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if complete == Ok(true) {
            // Let the textures reach the screen for a couple of frames, then grab it.
            shot.ready_frames += 1;
            if shot.ready_frames >= 3 {
                shot.requested = true;
                let slot = shot.slot.clone();
                let ctx = self.ctx.clone();
                self.ctx.request_screenshot(move |img: Arc<egui::ColorImage>| {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(img);
                    }
                    ctx.request_repaint();
                });
            }
        }
        self.ctx.request_repaint_after(Duration::from_millis(50));
    }
}
