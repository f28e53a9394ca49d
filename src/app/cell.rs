//! A picture pane as the comparison views draw it: its title, the line under it, the picture
//! with the shared zoom, its numbers; and the place of a kind that has no decoder.

use super::shown::color_image;
use super::zoom::{image_pane, ZoomPan};
use eframe::egui;

/// A picture with its title above and its numbers below.
pub struct Cell<'a> {
    pub title: String,
    /// The line under the title: where the decoder comes from ("bundled", "yours: …").
    pub source: Option<String>,
    /// The title's tooltip (a decoder's record).
    pub about: Option<String>,
    pub texture: &'a egui::TextureHandle,
    /// The picture itself, for the pane's Copy menu.
    pub image: Option<&'a image::RgbImage>,
    pub numbers: String,
    pub numbers_about: Option<String>,
}

/// Draw a cell; the picture to copy when the user asked for it (right-click > Copy).
pub fn cell_ui(ui: &mut egui::Ui, cell: &Cell, side: f32, zoom: &mut ZoomPan) -> Option<egui::ColorImage> {
    let mut copy = None;
    ui.vertical(|ui| {
        ui.set_max_width(side);
        let title = ui.strong(cell.title.as_str());
        if let Some(about) = &cell.about {
            title.on_hover_text(about.as_str());
        }
        if let Some(source) = &cell.source {
            let line = ui.add(egui::Label::new(egui::RichText::new(source.as_str()).weak()).truncate());
            if let Some(about) = &cell.about {
                line.on_hover_text(about.as_str());
            }
        }
        let resp = image_pane(ui, cell.texture, side, zoom, &format!("picture: {}", cell.title));
        if let Some(img) = cell.image {
            resp.context_menu(|ui| {
                if ui.button("Copy this picture").clicked() {
                    copy = Some(color_image(img));
                    ui.close();
                }
            });
        }
        let numbers = ui.label(cell.numbers.as_str());
        if let Some(about) = &cell.numbers_about {
            numbers.on_hover_text(about.as_str());
        }
    });
    copy
}

/// The place of a kind with no decoder to show: its title and what to do about it.
pub fn missing_ui(ui: &mut egui::Ui, title: &str, why: &str, side: f32) {
    ui.vertical(|ui| {
        ui.set_width(side);
        ui.strong(title);
        ui.weak("no decoder");
        let (rect, _) = ui.allocate_exact_size(egui::Vec2::splat(side), egui::Sense::hover());
        ui.painter().rect_stroke(
            rect,
            4.0,
            egui::Stroke::new(1.0, ui.visuals().weak_text_color()),
            egui::StrokeKind::Inside,
        );
        ui.put(rect.shrink(12.0), egui::Label::new(egui::RichText::new(why).weak()).wrap());
    });
}
