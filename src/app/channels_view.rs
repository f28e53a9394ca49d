//! The channels view: the layer's code as a grid of activation maps ordered by energy (fc layers:
//! a strip of unit bars). Clicking a channel drops it from the code every decoder sees; the panes
//! above show the masked reconstruction, rebuilt by the decoders alone.

use super::compare_view::CompareView;
use super::shown::Channels;
use super::state::LayerinvApp;
use crate::compare::ChannelSpec;
use eframe::egui;

/// The channels view's own state.
#[derive(Debug)]
pub struct ChannelsView {
    /// How many channels "Top k" keeps.
    pub top_k: usize,
}

impl Default for ChannelsView {
    fn default() -> Self {
        Self { top_k: 16 }
    }
}

/// What the user did to the layer's channels.
#[derive(Debug)]
pub enum Action {
    Toggle(usize),
    Solo(usize),
    None,
    Spec(ChannelSpec),
}

impl ChannelsView {
    /// The pictures (drawn by `pictures`, with their zoom) above the layer's channels; what the
    /// user did to the channels, for the app to apply.
    pub fn ui(&mut self, ui: &mut egui::Ui, app: &LayerinvApp, pictures: &mut CompareView) -> Option<Action> {
        let avail = ui.available_size();
        let side = ((avail.x - 40.0) / 3.0).min(avail.y * 0.42 - 60.0).max(96.0);
        pictures.picture_rows(ui, app, side);
        let layer = app.layer;
        let (n, kept) = match app.mask(layer) {
            Some(keep) => (keep.len(), keep.iter().filter(|&&k| k).count()),
            None => (0, 0),
        };
        let top_k = &mut self.top_k;
        let mut action: Option<Action> = None;
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("{layer}: {kept} of {n} channels kept"));
            if ui.button("All").on_hover_text("Keep every channel").clicked() {
                action = Some(Action::Spec(ChannelSpec::List(vec![(0, n.saturating_sub(1))])));
            }
            if ui.button("None").on_hover_text("Drop every channel").clicked() {
                action = Some(Action::None);
            }
            if n > 0 {
                ui.add(egui::DragValue::new(top_k).range(1..=n).prefix("k "));
                let top =
                    ui.button("Top k").on_hover_text("Keep the k channels with the most energy in this photo's code");
                if top.clicked() {
                    action = Some(Action::Spec(ChannelSpec::Top(*top_k)));
                }
            }
            ui.label("Click a channel to drop it or take it back; right-click to keep it alone (solo).");
        });
        ui.separator();
        match app.channel_maps(layer) {
            None => {
                ui.spinner();
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e.as_str());
            }
            Some(Ok(c)) => {
                let keep = app.mask(layer).unwrap_or_default();
                egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                    action = action.take().or(if c.maps.tile == (1, 1) {
                        unit_strip(ui, c, &keep)
                    } else {
                        grid(ui, c, &keep)
                    });
                });
            }
        }
        action
    }
}

/// The activation maps, most energy first, each labelled with its channel index.
fn grid(ui: &mut egui::Ui, c: &Channels, keep: &[bool]) -> Option<Action> {
    let m = &c.maps;
    let n = m.order.len();
    let area = ui.available_width() * ui.available_height().max(200.0);
    let tile = ((area / n as f32).sqrt() - 6.0).clamp(28.0, 112.0);
    let rows = (n as u32).div_ceil(m.cols);
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(3.0, 3.0);
        for (i, &ch) in m.order.iter().enumerate() {
            let (col, row) = ((i as u32 % m.cols) as f32, (i as u32 / m.cols) as f32);
            let uv = egui::Rect::from_min_size(
                egui::pos2(col / m.cols as f32, row / rows as f32),
                egui::vec2(1.0 / m.cols as f32, 1.0 / rows as f32),
            );
            let image = egui::Image::new(&c.atlas)
                .uv(uv)
                .fit_to_exact_size(egui::Vec2::splat(tile))
                .sense(egui::Sense::click())
                .alt_text(format!("channel {ch}"));
            let resp = ui.add(image).on_hover_text(format!(
                "channel {ch}: max {:.3}, energy {:.4} ({}); click to {}",
                m.max[ch],
                m.energy[ch],
                ordinal(i + 1),
                if keep.get(ch) == Some(&false) { "take it back" } else { "drop it" }
            ));
            let painter = ui.painter();
            if keep.get(ch) == Some(&false) {
                painter.rect_filled(resp.rect, 0.0, egui::Color32::from_black_alpha(190));
                painter.line_segment([resp.rect.left_top(), resp.rect.right_bottom()], (1.5, egui::Color32::RED));
            }
            painter.text(
                resp.rect.left_bottom() + egui::vec2(2.0, -1.0),
                egui::Align2::LEFT_BOTTOM,
                ch.to_string(),
                egui::FontId::monospace(10.0),
                egui::Color32::from_rgb(120, 220, 255),
            );
            if resp.clicked() {
                action = Some(Action::Toggle(ch));
            }
            if resp.secondary_clicked() {
                action = Some(Action::Solo(ch));
            }
        }
    });
    action
}

/// fc layers: one bar per unit, most energy first, its height the unit's value.
fn unit_strip(ui: &mut egui::Ui, c: &Channels, keep: &[bool]) -> Option<Action> {
    let m = &c.maps;
    let top = m.max.iter().copied().fold(f32::MIN, f32::max).max(1e-6);
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(1.0, 4.0);
        for &u in &m.order {
            let (rect, resp) = ui.allocate_exact_size(egui::vec2(4.0, 48.0), egui::Sense::click());
            let h = 48.0 * (m.max[u] / top).clamp(0.0, 1.0);
            let bar = egui::Rect::from_min_max(egui::pos2(rect.left(), rect.bottom() - h), rect.right_bottom());
            let colour = if keep.get(u) == Some(&false) { egui::Color32::DARK_RED } else { egui::Color32::LIGHT_BLUE };
            ui.painter().rect_filled(bar, 0.0, colour);
            let resp = resp.on_hover_text(format!("unit {u}: {:.3}", m.max[u]));
            if resp.clicked() {
                action = Some(Action::Toggle(u));
            }
            if resp.secondary_clicked() {
                action = Some(Action::Solo(u));
            }
        }
    });
    action
}

fn ordinal(i: usize) -> String {
    let suffix = match (i % 10, i % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{i}{suffix} by energy")
}
