//! The pictures the app writes: File > Export view as PNG and the copy to the clipboard (the
//! `--screenshot` run is in `screenshot.rs`).

use super::files::file_name;
use super::shown::{color_image, Pane, View};
use super::state::LayerinvApp;
use crate::figure::{caption, figure, recon_title, CodeChange, Tile};
use crate::model::{Kind, Layer};
use image::{Rgb, RgbImage};
use std::path::Path;

impl LayerinvApp {
    /// How the code at `layer` is changed before the decoders, as titles say it.
    pub fn code_change(&self, layer: Layer) -> CodeChange {
        self.variant(layer).edit.change()
    }

    /// A pane's title: the kind, the layer, and how the code was changed (the decoder's set is
    /// on the line under it, [`Self::pane_source`]).
    pub fn pane_title(&self, kind: Kind, layer: Layer) -> String {
        recon_title(kind, Some(layer), None, &self.code_change(layer))
    }

    /// What a pane says of its decoder's set: "bundled", "yours: 2026-12-04 14:02, step 60/500
    /// (cancelled), val 16.1 dB", "training preview, step 35".
    pub fn pane_source(&self, pane: &Pane, layer: Layer, preview: bool) -> String {
        if preview {
            let step =
                self.decoders.set(&pane.source.dir).and_then(|s| s.usable(layer, pane.rec.kind)).map(|m| m.steps);
            return format!("training preview, step {}", step.unwrap_or(0));
        }
        self.decoders.note(&pane.source, layer)
    }

    /// The current view as one labelled picture (what Export and Copy write): the same figure
    /// as `layerinv reconstruct` draws ([`figure`]), the app's panes in one row.
    pub fn view_figure(&self) -> Result<RgbImage, String> {
        let not_ready = || "nothing to export yet: the reconstructions are not ready".to_string();
        let photo = self.photo().ok_or_else(not_ready)?;
        let layers = match self.view {
            View::AllLayers => self.available_layers(),
            _ => vec![self.layer],
        };
        let mut row = Vec::new();
        for &l in &layers {
            let rebuilt = self.rebuilt(l).and_then(|r| r.as_ref().ok()).ok_or_else(not_ready)?;
            row.extend(rebuilt.panes.iter().map(|p| (self.decoders.label(&p.source.dir), &p.rec)));
        }
        let layer = self.layer;
        let preview: Vec<Tile> = match (self.view, self.preview(layer)) {
            (View::AllLayers, _) | (_, None) => Vec::new(),
            (_, Some(preview)) => preview
                .panes
                .iter()
                .map(|p| Tile {
                    image: &p.rec.image,
                    title: format!("{} · {}", self.pane_title(p.rec.kind, layer), self.pane_source(p, layer, true)),
                    caption: caption(p.rec.psnr, p.rec.ssim),
                })
                .collect(),
        };
        let top = figure(self.view, &photo.input, &file_name(&photo.path), &[row], &self.code_change(layer), preview);
        Ok(match (self.view, self.channel_maps(layer), self.mask(layer)) {
            (View::Channels, Some(Ok(c)), Some(keep)) => below(&top, &channel_sheet(&c.maps, &keep, top.width())),
            _ => top,
        })
    }

    /// Write the current view as a PNG.
    pub fn export_view(&self, path: &Path) -> Result<(), String> {
        let pic = self.view_figure()?;
        crate::fsutil::save_png(path, &pic).map_err(|e| e.to_string())
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
