//! The comparison (the input and every kind's picture) and the error maps under it, every picture with the same
//! zoom and pan; a held blink swaps what the panes show.

use super::cell::{cell_ui, missing_ui, Cell};
use super::files::file_name;
use super::shown::{Blink, Rebuilt, View};
use super::state::LayerinvApp;
use super::zoom::ZoomPan;
use crate::compare::colour_map;
use crate::figure::{caption, error_title, mean_caption, scale_ticks, switches_title, SCALE_TITLE};
use crate::model::{Kind, Layer};
use eframe::egui;

const EXPLAIN: &str = "SWWAE knows where each maximum came from (the pooling switches); SAE must guess. \
The gap between them is what max-pooling throws away, as far as these decoders have learned to use the rest. \
Floor: the photo squeezed to the layer's grid and blown back up; a decoder below it is not using what the layer holds.";

const PREVIEW: &str = "Training preview: the running run's newest decoders for this layer, read again every few \
seconds. The panes of the decoders you chose stay as they are.";

/// The picture views' own state (Compare, Diff, and the pictures above Channels): one zoom and
/// pan for every picture, and the blink held down.
#[derive(Debug, Default)]
pub struct CompareView {
    pub zoom: ZoomPan,
    pub blink: Blink,
}

impl CompareView {
    /// The keys of the picture views: + and − zoom, 0 shows the whole picture, Space (the input)
    /// and S (the next kind) blink while held. `typing`: a text field has the keyboard.
    pub fn keys(&mut self, ui: &egui::Ui, typing: bool) {
        use egui::Key;
        if typing {
            self.blink = Blink::Off;
            return;
        }
        let pressed = |k: Key| ui.input(|i| i.key_pressed(k) && !i.modifiers.command);
        if pressed(Key::Plus) || pressed(Key::Equals) {
            self.zoom.zoom_by(2.0, egui::pos2(0.5, 0.5));
        }
        if pressed(Key::Minus) {
            self.zoom.zoom_by(0.5, egui::pos2(0.5, 0.5));
        }
        if pressed(Key::Num0) {
            self.zoom = Default::default();
        }
        self.blink = ui.input(|i| {
            if i.key_down(Key::Space) {
                Blink::Input
            } else if i.key_down(Key::S) && !i.modifiers.command {
                Blink::Swap
            } else {
                Blink::Off
            }
        });
    }

    /// The toolbar's zoom button while zoomed in: back to the whole picture.
    pub fn zoom_button(&mut self, ui: &mut egui::Ui) {
        if self.zoom.zoom > 1.0 {
            ui.separator();
            let button = ui.button(format!("zoom {:.1}×", self.zoom.zoom));
            if button.on_hover_text("Back to the whole picture (0)").clicked() {
                self.zoom = Default::default();
            }
        }
    }

    /// Compare and Diff: the row of pictures at the size the window allows, the error row in Diff.
    pub fn ui(&mut self, ui: &mut egui::Ui, app: &LayerinvApp) {
        let rows = if app.view == View::Diff { 2.0 } else { 1.0 };
        let avail = ui.available_size();
        // The input and a pane per kind.
        let columns = 1.0 + Kind::ALL.len() as f32;
        let fit = |cols: f32, rows: f32| ((avail.x - 40.0) / cols).min((avail.y - 120.0) / rows - 64.0).max(96.0);
        let side = match app.preview(app.layer).map(|p| p.panes.len() as f32) {
            // The training preview beside the panes, or in a row of its own: whichever is larger.
            Some(n) => fit(columns + n, rows).max(fit(columns, rows + 1.0)),
            None => fit(columns, rows),
        };
        self.picture_rows(ui, app, side);
        if app.view == View::Diff {
            scale_bar(ui, side.min(320.0));
        }
        if let Some(Ok(panes)) = app.panes(app.layer) {
            let find = |k: Kind| panes.iter().find(|p| p.rec.kind == k);
            let pair = Kind::switch_pair().and_then(|(fixed, recorded)| find(fixed).zip(find(recorded)));
            if let Some((fixed, recorded)) = pair {
                ui.label(format!(
                    "At {}, {} is {:+.1} dB PSNR and {:+.3} SSIM against {}.",
                    app.layer,
                    recorded.rec.kind.label(),
                    recorded.rec.psnr - fixed.rec.psnr,
                    recorded.rec.ssim - fixed.rec.ssim,
                    fixed.rec.kind.label()
                ));
            }
        }
        ui.label(EXPLAIN);
    }

    /// The input and every kind's reconstruction at `side` pixels (and in Diff, their error maps).
    pub fn picture_rows(&mut self, ui: &mut egui::Ui, app: &LayerinvApp, side: f32) {
        let Some(photo) = app.photo() else {
            ui.vertical_centered(|ui| {
                ui.add_space(80.0);
                ui.heading("Drop a photo or a folder here, or File > Open photo…");
            });
            return;
        };
        let input = input_cell(photo, self.blink);
        let copy = match app.rebuilt(app.layer) {
            Some(Ok(rebuilt)) => self.rebuilt_rows(ui, app, rebuilt, &input, side),
            Some(Err(e)) => {
                ui.horizontal_top(|ui| {
                    cell_ui(ui, &input, side, &mut self.zoom);
                    ui.colored_label(ui.visuals().error_fg_color, e.as_str());
                });
                None
            }
            None => pending_row(ui, app, &input, side, &mut self.zoom),
        };
        if let Some(img) = copy {
            app.ctx.copy_image(img);
        }
    }

    /// The input and the panes, the training preview beside them or in a row of its own, and in
    /// Diff the error maps; the picture to copy when the user asked for one.
    fn rebuilt_rows(
        &mut self,
        ui: &mut egui::Ui,
        app: &LayerinvApp,
        rebuilt: &Rebuilt,
        input: &Cell,
        side: f32,
    ) -> Option<egui::ColorImage> {
        let (layer, blink, zoom) = (app.layer, self.blink, &mut self.zoom);
        let cells = pane_cells(app, rebuilt, layer, false, blink);
        let missing = missing_panes(app, layer);
        // The run in progress beside the chosen decoders (same photo, same zoom): in the same row
        // when the window is wide enough for it, else in a row of its own.
        let preview = app.preview(layer).map(|p| pane_cells(app, p, layer, true, blink));
        let inline = preview.as_ref().is_some_and(|p| {
            (1 + Kind::ALL.len() + p.len()) as f32 * (side + ui.spacing().item_spacing.x) <= ui.available_width()
        });
        let (beside, below) = if inline { (preview, None) } else { (None, preview) };
        let mut copy = None;
        ui.horizontal_top(|ui| {
            for cell in std::iter::once(input).chain(&cells) {
                copy = copy.take().or(cell_ui(ui, cell, side, zoom));
            }
            for (title, why) in &missing {
                missing_ui(ui, title, why, side);
            }
            for cell in beside.iter().flatten() {
                copy = copy.take().or(cell_ui(ui, cell, side, zoom));
            }
        });
        if let Some(cells) = &below {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(side);
                    ui.label(PREVIEW);
                });
                for cell in cells {
                    copy = copy.take().or(cell_ui(ui, cell, side, zoom));
                }
            });
        }
        if app.view == View::Diff {
            ui.horizontal_top(|ui| {
                for cell in &error_cells(app, rebuilt) {
                    cell_ui(ui, cell, side, zoom);
                }
            });
        }
        copy
    }
}

/// The input photo's cell (its place says so while a blink is held).
fn input_cell(photo: &super::shown::Photo, blink: Blink) -> Cell<'_> {
    Cell {
        title: match blink {
            Blink::Off => "Input".into(),
            _ => "Input (blink held)".into(),
        },
        source: Some("this photo, at the model's input size".into()),
        about: None,
        texture: &photo.texture,
        image: Some(&photo.input),
        numbers: file_name(&photo.path),
        numbers_about: photo.top5.as_ref().map(|top| {
            let lines: Vec<String> = top.iter().map(|(c, p)| format!("{:5.1}%  {c}", 100.0 * p)).collect();
            format!("The classifier sees:\n{}", lines.join("\n"))
        }),
    }
}

/// Diff's second row: what the switches change, then each kind against the input.
fn error_cells<'a>(app: &LayerinvApp, rebuilt: &'a Rebuilt) -> Vec<Cell<'a>> {
    let switches = rebuilt.lost.as_ref().zip(switches_title()).map(|((tex, mean), title)| Cell {
        title,
        source: None,
        about: Some(
            "Where knowing the switches changes the picture: what max-pooling loses, as these decoders see it".into(),
        ),
        texture: tex,
        image: None,
        numbers: mean_caption(*mean),
        numbers_about: None,
    });
    let kinds = rebuilt.panes.iter().map(|p| Cell {
        title: error_title(p.rec.kind),
        source: Some(app.pane_source(p, app.layer, false)),
        about: None,
        texture: &p.error,
        image: None,
        numbers: mean_caption(p.error_mean),
        numbers_about: None,
    });
    switches.into_iter().chain(kinds).collect()
}

/// While the layer is being rebuilt: the input, and a spinner in each kind's place (or why it
/// has no decoder).
fn pending_row(
    ui: &mut egui::Ui,
    app: &LayerinvApp,
    input: &Cell,
    side: f32,
    zoom: &mut ZoomPan,
) -> Option<egui::ColorImage> {
    let layer = app.layer;
    let mut copy = None;
    ui.horizontal_top(|ui| {
        copy = cell_ui(ui, input, side, zoom);
        for kind in Kind::ALL {
            if let Some(why) = app.decoders.kind_missing(layer, kind) {
                missing_ui(ui, &app.pane_title(kind, layer), &why, side);
                continue;
            }
            ui.vertical(|ui| {
                ui.strong(app.pane_title(kind, layer));
                let source = app.decoders.shown(layer, kind).map(|s| s.note(layer, kind));
                ui.weak(source.unwrap_or_default());
                let (rect, _) = ui.allocate_exact_size(egui::Vec2::splat(side), egui::Sense::hover());
                ui.put(rect, egui::Spinner::new().size(32.0));
                ui.label("rebuilding…");
            });
        }
    });
    copy
}

/// Each kind with no decoder to show at `layer`: its pane title and why.
fn missing_panes(app: &LayerinvApp, layer: Layer) -> Vec<(String, String)> {
    Kind::ALL
        .iter()
        .filter_map(|&k| app.decoders.kind_missing(layer, k).map(|why| (app.pane_title(k, layer), why)))
        .collect()
}

/// The cells of a row of reconstructions (the chosen decoders', or the training preview's);
/// a held blink shows the input, or the other kind's picture, in their place.
fn pane_cells<'a>(
    app: &'a LayerinvApp,
    rebuilt: &'a Rebuilt,
    layer: Layer,
    preview: bool,
    blink: Blink,
) -> Vec<Cell<'a>> {
    let Some(photo) = app.photo() else { return Vec::new() };
    rebuilt
        .panes
        .iter()
        .map(|p| {
            // The next kind's picture (the first's after the last).
            let swapped = rebuilt.panes.iter().skip_while(|q| q.rec.kind <= p.rec.kind).find(|q| q.rec.kind != p.rec.kind);
            let swapped = swapped.or(rebuilt.panes.iter().find(|q| q.rec.kind != p.rec.kind)).unwrap_or(p);
            let place = p.rec.kind.label();
            let (texture, image, title) = match blink {
                Blink::Off => (&p.texture, &p.rec.image, app.pane_title(p.rec.kind, layer)),
                Blink::Input => (&photo.texture, &photo.input, format!("input, in {place}'s place")),
                Blink::Swap => {
                    (&swapped.texture, &swapped.rec.image, format!("{}, in {place}'s place", swapped.rec.kind.label()))
                }
            };
            let floor = p.floor.map(|f| format!("\nfloor {f:.1} dB")).unwrap_or_default();
            let record = app.decoders.record(&p.source, layer);
            Cell {
                title,
                source: Some(app.pane_source(p, layer, preview)),
                about: if preview { record.map(|r| format!("{PREVIEW}\n{r}")) } else { record },
                texture,
                image: Some(image),
                numbers: format!("{}{floor}", caption(p.rec.psnr, p.rec.ssim)),
                numbers_about: {
                    let floor = p.floor.map(|floor| {
                        format!(
                            "Floor for {layer}: {floor:.1} dB — this photo squeezed to {layer}'s grid and blown back up. \
                             {} is {:+.1} dB against it; a decoder below the floor is not using what the layer holds.",
                            p.rec.kind.label(),
                            p.rec.psnr - floor
                        )
                    });
                    let speckle = p.rec.speckle.map(|s| {
                        format!(
                            "Speckle {s:+.2}: the noise this picture adds where the photo is flat (7×7 luma spread under 4), \
                             as the mean |x − blur(x)| against the photo's own, 0–255 units; about 0 is clean, above 0.5 shows."
                        )
                    });
                    let lines: Vec<String> = floor.into_iter().chain(speckle).collect();
                    (!lines.is_empty()).then(|| lines.join("\n\n"))
                },
            }
        })
        .collect()
}

/// The error maps' colour scale, labelled in 0–255 units.
fn scale_bar(ui: &mut egui::Ui, width: f32) {
    ui.horizontal(|ui| {
        ui.label(format!("{SCALE_TITLE}:"));
        let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 30.0), egui::Sense::hover());
        let bar = egui::Rect::from_min_size(rect.min, egui::vec2(width, 14.0));
        let steps = 64;
        for i in 0..steps {
            let c = colour_map((i as f32 + 0.5) / steps as f32);
            let x0 = bar.left() + bar.width() * i as f32 / steps as f32;
            let x1 = bar.left() + bar.width() * (i + 1) as f32 / steps as f32;
            let r = egui::Rect::from_min_max(egui::pos2(x0, bar.top()), egui::pos2(x1 + 0.5, bar.bottom()));
            ui.painter().rect_filled(r, 0.0, egui::Color32::from_rgb(c[0], c[1], c[2]));
        }
        let font = egui::TextStyle::Small.resolve(ui.style());
        for (i, label) in scale_ticks().into_iter().enumerate() {
            let x = bar.left() + bar.width() * i as f32 / 4.0;
            let align = match i {
                0 => egui::Align2::LEFT_TOP,
                4 => egui::Align2::RIGHT_TOP,
                _ => egui::Align2::CENTER_TOP,
            };
            ui.painter().text(egui::pos2(x, bar.bottom() + 1.0), align, label, font.clone(), ui.visuals().text_color());
        }
    });
}
