//! The paper's figure: the input, then a column per layer, a row per decoder kind.

use super::state::LayerinvApp;
use crate::model::{Kind, Layer};
use eframe::egui;

/// The figure, drawn from the app's state (the view has none of its own); the layer whose
/// picture was clicked, to open it.
pub fn ui(ui: &mut egui::Ui, app: &LayerinvApp) -> Option<Layer> {
    let Some(photo) = app.photo() else {
        ui.heading("Drop a photo here, or File > Open image…");
        return None;
    };
    let layers = app.available_layers();
    // A column of row labels (LABEL_WIDTH), the input and the layers; a row per kind.
    const LABEL_WIDTH: f32 = 100.0;
    let across = (ui.available_width() - LABEL_WIDTH - 20.0) / (layers.len() as f32 + 1.0) - 6.0;
    let down = (ui.available_height() - 40.0) / Kind::ALL.len() as f32 - 6.0;
    let side = across.min(down).clamp(96.0, 224.0);
    let size = egui::vec2(side, side);
    let input_tex = photo.texture.clone();
    let mut clicked = None;
    egui::Grid::new("all-layers").spacing([6.0, 6.0]).show(ui, |ui| {
        ui.label("");
        ui.strong("input");
        for &l in &layers {
            ui.strong(l.name());
        }
        ui.end_row();
        for (row, kind) in Kind::ALL.iter().enumerate() {
            let label = kind.label();
            // The row's decoder set, when every layer's comes from one ("mixed" otherwise).
            let mut sets: Vec<String> =
                layers.iter().filter_map(|&l| app.decoders.shown(l, *kind).map(|s| s.label())).collect();
            sets.dedup();
            ui.vertical(|ui| {
                ui.set_width(LABEL_WIDTH);
                ui.strong(label);
                ui.weak(match sets.len() {
                    0 => "no decoders (hover a cell)",
                    1 => sets[0].as_str(),
                    _ => "mixed sets (hover a picture)",
                });
            });
            if row == 0 {
                ui.add(egui::Image::new(&input_tex).fit_to_exact_size(size).alt_text("input image"));
            } else {
                ui.label("");
            }
            for &l in &layers {
                match app.panes(l) {
                    Some(Ok(panes)) => match panes.iter().find(|p| p.rec.kind == *kind) {
                        Some(p) => {
                            let resp = ui
                                .add(
                                    egui::Image::new(&p.texture)
                                        .fit_to_exact_size(size)
                                        .sense(egui::Sense::click())
                                        .alt_text(format!("{label} {l}")),
                                )
                                .on_hover_text(format!(
                                    "{} · {}: PSNR {:.1} dB, SSIM {:.3}. Click to open this layer.",
                                    app.pane_title(*kind, l),
                                    app.pane_source(p, l, false),
                                    p.rec.psnr,
                                    p.rec.ssim
                                ));
                            if resp.clicked() {
                                clicked = Some(l);
                            }
                        }
                        None => {
                            let why = app.decoders.kind_missing(l, *kind).unwrap_or_default();
                            ui.add_sized(size, egui::Label::new("—")).on_hover_text(why);
                        }
                    },
                    Some(Err(e)) => {
                        ui.label(e.as_str());
                    }
                    None => {
                        ui.add_sized(size, egui::Spinner::new());
                    }
                }
            }
            ui.end_row();
        }
    });
    clicked
}
