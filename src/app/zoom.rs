//! Linked zoom and pan: every image pane of a view shows the same part of its picture.

use eframe::egui::{self, Pos2, Rect, Response, Vec2};

/// The part of the pictures on show: `zoom` 1 is the whole picture, `centre` in 0–1 picture
/// coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoomPan {
    pub zoom: f32,
    pub centre: Pos2,
}

/// Closest zoom: 16 picture pixels across a 224-pixel picture's pane at 14×.
pub const MAX_ZOOM: f32 = 16.0;

impl Default for ZoomPan {
    fn default() -> Self {
        Self { zoom: 1.0, centre: Pos2::new(0.5, 0.5) }
    }
}

impl ZoomPan {
    /// The picture's texture coordinates to draw.
    pub fn uv(&self) -> Rect {
        let half = 0.5 / self.zoom;
        Rect::from_center_size(self.centre, Vec2::splat(2.0 * half))
    }

    /// Zoom by `factor`, keeping the picture point under `anchor` (0–1 in the pane) in place.
    pub fn zoom_by(&mut self, factor: f32, anchor: Pos2) {
        let before = self.uv();
        let fixed = before.min + anchor.to_vec2() * before.size();
        self.zoom = (self.zoom * factor).clamp(1.0, MAX_ZOOM);
        let size = 1.0 / self.zoom;
        self.centre = fixed - (anchor.to_vec2() - Vec2::splat(0.5)) * size;
        self.clamp();
    }

    /// Move the view by `delta` pane-widths (a drag to the right shows what is to the left).
    pub fn pan(&mut self, delta: Vec2) {
        self.centre -= delta / self.zoom;
        self.clamp();
    }

    fn clamp(&mut self) {
        let half = 0.5 / self.zoom;
        self.centre.x = self.centre.x.clamp(half, 1.0 - half);
        self.centre.y = self.centre.y.clamp(half, 1.0 - half);
    }

    /// Wheel or pinch over the pane zooms about the pointer, a drag pans, a double-click resets.
    pub fn interact(&mut self, resp: &Response, ui: &egui::Ui) {
        let rect = resp.rect;
        if resp.double_clicked() {
            *self = Self::default();
            return;
        }
        if resp.dragged() {
            self.pan(resp.drag_delta() / rect.size());
        }
        if resp.hovered() {
            let (scroll, pinch, pointer) =
                ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta(), i.pointer.hover_pos()));
            let factor = pinch * (scroll / 200.0).exp();
            if factor != 1.0 {
                let anchor = pointer.map(|p| ((p - rect.min) / rect.size()).to_pos2()).unwrap_or(Pos2::new(0.5, 0.5));
                self.zoom_by(factor, anchor);
            }
        }
    }
}

/// One picture pane of a view: the texture's zoomed part, clickable and draggable, with `alt`
/// as its accessible name.
pub fn image_pane(ui: &mut egui::Ui, tex: &egui::TextureHandle, side: f32, zoom: &mut ZoomPan, alt: &str) -> Response {
    let image = egui::Image::new(tex)
        .uv(zoom.uv())
        .fit_to_exact_size(Vec2::splat(side))
        .sense(egui::Sense::click_and_drag())
        .alt_text(alt);
    let resp = ui.add(image);
    zoom.interact(&resp, ui);
    resp
}
