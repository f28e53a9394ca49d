//! Drawing: menu bar, layer picker, the Input | SAE | SWWAE panes, the all-layers figure, status.

use super::state::{LayerinvApp, Pane, Shown};
use eframe::egui;

const EXPLAIN: &str = "SWWAE knows where each maximum came from (the pooling switches); SAE must guess. \
The gap between them is what max-pooling throws away, as far as these decoders have learned to use the rest. \
Floor: the photo squeezed to the layer's grid and blown back up; a decoder below it is not using what the layer holds.";

impl eframe::App for LayerinvApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.tick();
        self.handle_input(ui);
        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| self.menu_bar(ui));
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        if self.training.is_some() {
            egui::Panel::bottom("training").resizable(true).default_size(230.0).show(ui, |ui| self.training_panel(ui));
        }
        egui::Panel::top("layers").show(ui, |ui| self.layer_picker(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::both().show(ui, |ui| match self.shown {
                Shown::Layer => self.layer_view(ui),
                Shown::AllLayers => self.all_layers_view(ui),
            });
        });
        self.dialogs(ui.ctx());
        self.drop_overlay(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Dropping the run cancels it; the trainer saves a checkpoint before the thread ends.
        if let Some(run) = self.training.take() {
            eprintln!("saving a training checkpoint in {} …", run.out_dir().display());
            drop(run);
        }
    }
}

impl LayerinvApp {
    fn handle_input(&mut self, ui: &mut egui::Ui) {
        let dropped: Vec<std::path::PathBuf> =
            ui.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        if let Some(p) = dropped.first() {
            self.open_image(p);
        }
        if !ui.ctx().egui_wants_keyboard_input() {
            if ui.input(|i| i.key_pressed(egui::Key::ArrowLeft)) {
                self.step_layer(-1);
            }
            if ui.input(|i| i.key_pressed(egui::Key::ArrowRight)) {
                self.step_layer(1);
            }
        }
    }

    fn drop_overlay(&self, ui: &mut egui::Ui) {
        if !ui.input(|i| !i.raw.hovered_files.is_empty()) {
            return;
        }
        let painter =
            ui.ctx().layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop-overlay")));
        let rect = ui.ctx().content_rect();
        painter.rect_filled(rect, 0.0, egui::Color32::from_black_alpha(190));
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "Drop the photo to rebuild it",
            egui::TextStyle::Heading.resolve(ui.style()),
            egui::Color32::WHITE,
        );
    }

    fn layer_picker(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Layer:");
            for layer in self.all_layers() {
                let why = self.layer_unavailable(&layer);
                let selected = self.shown == Shown::Layer && self.layer == layer;
                let button = egui::Button::selectable(selected, layer.as_str());
                let resp = ui.add_enabled(why.is_none(), button);
                let resp = match &why {
                    Some(w) => resp.on_disabled_hover_text(w.as_str()),
                    None => resp.on_hover_text(format!(
                        "Rebuild the photo from {layer} (Left/Right arrow keys step through layers)"
                    )),
                };
                if resp.clicked() {
                    self.select_layer(&layer);
                }
            }
            ui.separator();
            let all = self.shown == Shown::AllLayers;
            if ui
                .add(egui::Button::selectable(all, "All layers"))
                .on_hover_text("The paper's figure: a column per layer, rows SAE and SWWAE")
                .clicked()
            {
                self.shown = if all { Shown::Layer } else { Shown::AllLayers };
            }
            if self.loading.is_some() {
                ui.spinner();
                ui.label("loading image…");
            }
        });
    }

    fn layer_view(&mut self, ui: &mut egui::Ui) {
        let Some(photo) = &self.photo else {
            ui.vertical_centered(|ui| {
                ui.add_space(80.0);
                ui.heading("Drop a photo here, or File > Open image…");
            });
            return;
        };
        let side = ((ui.available_width() - 40.0) / 3.0).clamp(160.0, 448.0);
        let size = egui::vec2(side, side);
        let layer = self.layer.clone();
        let input_tex = photo.texture.clone();
        let name = photo.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let top5 = photo.top5.clone();
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.strong("Input");
                ui.add(egui::Image::new(&input_tex).fit_to_exact_size(size).alt_text("input image"));
                ui.label(name);
                if let Some(top) = &top5 {
                    ui.label("The classifier sees:");
                    for (class, p) in top {
                        ui.label(format!("{:5.1}%  {class}", 100.0 * p));
                    }
                }
            });
            match self.panes(&layer) {
                Some(Ok(panes)) => {
                    for p in panes {
                        pane(ui, p, &layer, size);
                    }
                }
                Some(Err(e)) => {
                    ui.vertical(|ui| {
                        ui.colored_label(ui.visuals().error_fg_color, e.as_str());
                    });
                }
                None => {
                    for title in ["SAE", "SWWAE"] {
                        ui.vertical(|ui| {
                            ui.strong(format!("{title} from {layer}"));
                            let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                            ui.put(rect, egui::Spinner::new().size(32.0));
                            ui.label("rebuilding…");
                        });
                    }
                }
            }
        });
        ui.add_space(8.0);
        if let Some(Ok(panes)) = self.panes(&layer) {
            if let [sae, swwae] = panes.as_slice() {
                ui.label(format!(
                    "At {layer}, SWWAE is {:+.1} dB PSNR and {:+.3} SSIM against SAE.",
                    swwae.psnr - sae.psnr,
                    swwae.ssim - sae.ssim
                ));
            }
        }
        ui.label(EXPLAIN);
    }

    fn all_layers_view(&mut self, ui: &mut egui::Ui) {
        let Some(photo) = &self.photo else {
            ui.heading("Drop a photo here, or File > Open image…");
            return;
        };
        let layers = self.available_layers();
        let side = ((ui.available_width() - 120.0) / (layers.len() as f32 + 1.0)).clamp(96.0, 224.0);
        let size = egui::vec2(side, side);
        let input_tex = photo.texture.clone();
        let mut clicked = None;
        egui::Grid::new("all-layers").spacing([6.0, 6.0]).show(ui, |ui| {
            ui.label("");
            ui.strong("input");
            for l in &layers {
                ui.strong(l.as_str());
            }
            ui.end_row();
            for (row, kind) in ["SAE", "SWWAE"].iter().enumerate() {
                ui.strong(*kind);
                if row == 0 {
                    ui.add(egui::Image::new(&input_tex).fit_to_exact_size(size).alt_text("input image"));
                } else {
                    ui.label("");
                }
                for l in &layers {
                    match self.panes(l) {
                        Some(Ok(panes)) => match panes.get(row) {
                            Some(p) => {
                                let resp = ui
                                    .add(
                                        egui::Image::new(&p.texture)
                                            .fit_to_exact_size(size)
                                            .sense(egui::Sense::click())
                                            .alt_text(format!("{kind} {l}")),
                                    )
                                    .on_hover_text(format!(
                                        "{kind} from {l}: PSNR {:.1} dB, SSIM {:.3}. Click to open this layer.",
                                        p.psnr, p.ssim
                                    ));
                                if resp.clicked() {
                                    clicked = Some(l.clone());
                                }
                            }
                            None => {
                                ui.label("—");
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
        if let Some(l) = clicked {
            self.select_layer(&l);
        }
        ui.label(EXPLAIN);
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Device: {}", self.device_name));
            ui.separator();
            match &self.model {
                Some(m) => ui.label(format!("Model: {} ({})", m.name, m.arch)),
                None => ui.label(format!("Model: loading {} …", self.model_source)),
            };
            ui.separator();
            let dirs: Vec<String> = self.decoder_dirs.iter().map(|d| d.display().to_string()).collect();
            ui.label(format!("Decoders: {} loaded", self.decoders_loaded))
                .on_hover_text(format!("from (first wins): {}", dirs.join(", ")));
            if let Some(e) = self.last_error.clone() {
                ui.separator();
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
                if ui.small_button("x").on_hover_text("Dismiss the error").clicked() {
                    self.last_error = None;
                }
            }
        });
    }
}

fn pane(ui: &mut egui::Ui, p: &Pane, layer: &str, size: egui::Vec2) {
    let title = format!("{} from {layer}", p.kind.name().to_uppercase());
    ui.vertical(|ui| {
        ui.strong(title.as_str());
        ui.add(egui::Image::new(&p.texture).fit_to_exact_size(size).alt_text(title.as_str()));
        let psnr = if p.psnr.is_finite() { format!("{:.1} dB", p.psnr) } else { "inf".into() };
        let floor = p.floor.map(|f| format!("   floor {f:.1} dB")).unwrap_or_default();
        let numbers = ui.label(format!("PSNR {psnr}   SSIM {:.3}{floor}", p.ssim));
        if let Some(floor) = p.floor {
            numbers.on_hover_text(format!(
                "Floor for {layer}: {floor:.1} dB — this photo squeezed to {layer}'s grid and blown back up. \
                 {} is {:+.1} dB against it; a decoder below the floor is not using what the layer holds.",
                p.kind.name().to_uppercase(),
                p.psnr - floor
            ));
        }
    });
}
