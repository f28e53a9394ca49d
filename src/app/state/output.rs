//! The pictures the app writes: the `--screenshot` run (wait for the reconstructions, grab the
//! window, exit) and File > Export comparison PNG.

use super::LayerinvApp;
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(super) struct Screenshot {
    path: PathBuf,
    requested: bool,
    ready_frames: u32,
    started: Instant,
    slot: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
}

/// A screenshot run gives up (exit 1) after this long without its reconstructions.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(300);

impl Screenshot {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path, requested: false, ready_frames: 0, started: Instant::now(), slot: Arc::new(Mutex::new(None)) }
    }
}

impl LayerinvApp {
    pub(super) fn tick_screenshot(&mut self) {
        if self.screenshot.is_none() {
            return;
        }
        let shown = self.photo.is_some()
            && self.loading.is_none()
            && match self.panes(&self.layer) {
                Some(Ok(p)) => p.len() == 2,
                _ => false,
            };
        let failed =
            self.panes(&self.layer).is_some_and(|r| r.is_err()) || (self.photo.is_none() && self.loading.is_none());
        let Some(shot) = &mut self.screenshot else { return };
        if let Some(img) = shot.slot.lock().ok().and_then(|mut s| s.take()) {
            let [w, h] = img.size;
            let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
            let path = shot.path.clone();
            let saved = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
                .ok_or_else(|| crate::Error::Unavailable("screenshot has the wrong size".into()))
                .and_then(|img| {
                    crate::fsutil::write_atomic_with(&path, |tmp| {
                        img.save_with_format(tmp, image::ImageFormat::Png)
                            .map_err(|e| crate::Error::bad_file(tmp, e.to_string()))
                    })
                });
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
        let timed_out = shot.started.elapsed() > SCREENSHOT_TIMEOUT;
        if (failed && self.model.is_some()) || timed_out {
            let why = self.last_error.clone().unwrap_or_else(|| "the reconstructions did not appear in time".into());
            eprintln!("error: {why}");
            self.exit.store(1, Ordering::SeqCst);
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if shown {
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

    /// Write the input | SAE | SWWAE row of the current layer as a PNG.
    pub fn export_comparison(&self, path: &Path) -> Result<(), String> {
        let (Some(photo), Some(Ok(panes))) = (&self.photo, self.panes(&self.layer)) else {
            return Err("nothing to export yet: the reconstructions are not ready".into());
        };
        let name = photo.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut tiles = vec![crate::figure::Tile { image: &photo.input, title: "input".into(), caption: name }];
        for p in panes {
            tiles.push(crate::figure::Tile {
                image: &p.image,
                title: format!("{} from {}", p.kind.name().to_uppercase(), self.layer),
                caption: crate::figure::caption(p.psnr, p.ssim),
            });
        }
        let pic = crate::figure::row(&tiles);
        crate::fsutil::write_atomic_with(path, |tmp| {
            pic.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| crate::Error::bad_file(tmp, e.to_string()))
        })
        .map_err(|e| e.to_string())
    }
}
