//! The pictures the app writes: the `--screenshot` run (wait for the view, grab the window,
//! exit), File > Export view as PNG, and the copy to the clipboard.

use super::files::file_name;
use super::screenshot::SCREENSHOT_TIMEOUT;
use super::shown::{color_image, Pane, View};
use super::state::LayerinvApp;
use crate::figure::{all_layers, caption, diff_figure, recon_title, row, CodeChange, Tile};
use crate::model::Kind;
use crate::recon::Reconstruction;
use eframe::egui;
use image::{Rgb, RgbImage};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl LayerinvApp {
    /// Whether everything the current view shows has arrived (`Err` when it failed).
    pub fn view_complete(&self) -> Result<bool, String> {
        if self.photo.is_none() || self.loading.is_some() || self.model.is_none() {
            return Ok(false);
        }
        let layers = match self.view {
            View::AllLayers => self.available_layers(),
            _ => vec![self.layer.clone()],
        };
        if self.view == View::Channels || self.keep_spec.is_some() {
            match self.channel_maps(&self.layer) {
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(_)) if self.keep_spec.is_none() => {}
                _ => return Ok(false),
            }
        }
        for l in &layers {
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
        for ((_, layer, variant, _), r) in &self.cache {
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
        let failed = complete.as_ref().err().cloned().or_else(|| {
            (self.photo.is_none() && self.loading.is_none() && self.model.is_some())
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

    /// How the code at `layer` is changed before the decoders, as titles say it.
    pub fn code_change(&self, layer: &str) -> CodeChange {
        self.variant(layer).edit.change()
    }

    /// A pane's title: the kind, the layer, and how the code was changed (the decoder's set is
    /// on the line under it, [`Self::pane_source`]).
    pub fn pane_title(&self, kind: Kind, layer: &str) -> String {
        recon_title(kind, Some(layer), None, &self.code_change(layer))
    }

    /// What a pane says of its decoder's set: "bundled", "yours: 2026-12-04 14:02, step 60/500
    /// (cancelled), val 16.1 dB", "training preview, step 35".
    pub fn pane_source(&self, pane: &Pane, layer: &str, preview: bool) -> String {
        if preview {
            let step = self.decoders.set(&pane.source.dir).and_then(|s| s.usable(layer, pane.kind)).map(|m| m.steps);
            return format!("training preview, step {}", step.unwrap_or(0));
        }
        self.decoders.note(&pane.source, layer)
    }

    /// The current view as one labelled picture (what Export and Copy write).
    pub fn view_figure(&self) -> Result<RgbImage, String> {
        let not_ready = || "nothing to export yet: the reconstructions are not ready".to_string();
        let photo = self.photo.as_ref().ok_or_else(not_ready)?;
        if self.view == View::AllLayers {
            let mut recs = Vec::new();
            for l in self.available_layers() {
                let rebuilt = self.rebuilt(&l).and_then(|r| r.as_ref().ok()).ok_or_else(not_ready)?;
                for p in &rebuilt.panes {
                    let rec = Reconstruction {
                        layer: l.clone(),
                        kind: p.kind,
                        image: p.image.clone(),
                        psnr: p.psnr,
                        ssim: p.ssim,
                        speckle: p.speckle,
                    };
                    recs.push((self.decoders.set(&p.source.dir).map(|s| s.label()).unwrap_or_default(), rec));
                }
            }
            // A row per kind and set (one set per kind unless the user mixed sets across layers).
            let mut rows: Vec<(String, Vec<&Reconstruction>)> = Vec::new();
            let change = CodeChange { kept: None, ..self.code_change(&self.layer) };
            for kind in Kind::ALL {
                for (set, r) in recs.iter().filter(|(_, r)| r.kind == kind) {
                    let label = recon_title(kind, None, Some(set), &change);
                    match rows.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, row)) => row.push(r),
                        None => rows.push((label, vec![r])),
                    }
                }
            }
            return Ok(all_layers(&photo.input, &rows));
        }
        let layer = self.layer.as_str();
        let rebuilt = self.rebuilt(layer).and_then(|r| r.as_ref().ok()).ok_or_else(not_ready)?;
        let mut tiles = vec![Tile { image: &photo.input, title: "input".into(), caption: file_name(&photo.path) }];
        let change = self.code_change(layer);
        for p in &rebuilt.panes {
            let set = self.decoders.set(&p.source.dir).map(|s| s.label());
            tiles.push(Tile {
                image: &p.image,
                title: recon_title(p.kind, Some(layer), set.as_deref(), &change),
                caption: caption(p.psnr, p.ssim),
            });
        }
        if let Some(preview) = self.preview(layer) {
            for p in &preview.panes {
                tiles.push(Tile {
                    image: &p.image,
                    title: format!("{} · {}", self.pane_title(p.kind, layer), self.pane_source(p, layer, true)),
                    caption: caption(p.psnr, p.ssim),
                });
            }
        }
        let pictures: Vec<(Kind, &RgbImage)> = rebuilt.panes.iter().map(|p| (p.kind, &p.image)).collect();
        Ok(match self.view {
            View::Diff => diff_figure(&photo.input, &pictures, &tiles),
            View::Channels => {
                let top = row(&tiles);
                match (self.channel_maps(layer), self.mask(layer)) {
                    (Some(Ok(c)), Some(keep)) => below(&top, &channel_sheet(&c.maps, &keep, top.width())),
                    _ => top,
                }
            }
            View::Compare | View::AllLayers => row(&tiles),
        })
    }

    /// Write the current view as a PNG.
    pub fn export_view(&self, path: &Path) -> Result<(), String> {
        let pic = self.view_figure()?;
        crate::fsutil::write_atomic_with(path, |tmp| {
            pic.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| crate::Error::bad_file(tmp, e.to_string()))
        })
        .map_err(|e| e.to_string())
    }

    /// Put the current view's picture on the clipboard.
    pub fn copy_view(&mut self) {
        match self.view_figure() {
            Ok(pic) => self.ctx.copy_image(color_image(&pic)),
            Err(e) => self.last_error = Some(e),
        }
    }
}

/// The channel atlas at `width` pixels, switched-off channels darkened with a red corner.
fn channel_sheet(maps: &crate::compare::ChannelMaps, keep: &[bool], width: u32) -> RgbImage {
    let mut atlas = maps.atlas.clone();
    let (tw, th) = maps.tile;
    for (i, &ch) in maps.order.iter().enumerate() {
        if keep.get(ch) == Some(&false) {
            let (x0, y0) = ((i as u32 % maps.cols) * tw, (i as u32 / maps.cols) * th);
            for y in y0..y0 + th {
                for x in x0..x0 + tw {
                    let p = atlas.get_pixel_mut(x, y);
                    *p = Rgb([p[0] / 4 + 96, p[1] / 4, p[2] / 4]);
                }
            }
        }
    }
    let h = (atlas.height() as u64 * width as u64 / atlas.width().max(1) as u64).max(1) as u32;
    image::imageops::resize(&atlas, width, h, image::imageops::FilterType::Nearest)
}

/// `top` above `bottom` on white.
fn below(top: &RgbImage, bottom: &RgbImage) -> RgbImage {
    let mut out =
        RgbImage::from_pixel(top.width().max(bottom.width()), top.height() + bottom.height() + 8, Rgb([255; 3]));
    image::imageops::replace(&mut out, top, 0, 0);
    image::imageops::replace(&mut out, bottom, 0, (top.height() + 8) as i64);
    out
}
