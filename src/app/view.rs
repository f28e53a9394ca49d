//! The window: menu, toolbar (layer, view, switches), the view, status bar; keys.

use super::files::file_name;
use super::shown::View;
use super::state::LayerinvApp;
use eframe::egui;

impl eframe::App for LayerinvApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.tick();
        self.handle_input(ui);
        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| self.menu_bar(ui));
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        if let Some(run) = &mut self.training {
            let mut dismiss = false;
            egui::Panel::bottom("training").resizable(true).default_size(230.0).show(ui, |ui| dismiss = run.ui(ui));
            if dismiss {
                self.training = None;
            }
        }
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            // The views draw themselves from the app's state; they own only their own.
            let mut compare = std::mem::take(&mut self.compare);
            match self.view {
                View::Compare | View::Diff => compare.ui(ui, self),
                View::Channels => {
                    let mut channels = std::mem::take(&mut self.channels_view);
                    let action = channels.ui(ui, self, &mut compare);
                    self.channels_view = channels;
                    if let Some(action) = action {
                        self.channel_action(action);
                    }
                }
                View::AllLayers => {
                    let clicked = egui::ScrollArea::both().show(ui, |ui| super::all_layers::ui(ui, self)).inner;
                    if let Some(layer) = clicked {
                        self.select_layer(layer);
                    }
                }
            }
            self.compare = compare;
        });
        self.dialogs(ui.ctx());
        self.drop_overlay(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A --screenshot run leaves the user's settings as they were.
        if self.screenshot.is_none() {
            self.current_settings().save(storage);
        }
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
            self.open_path(p);
        }
        let typing = ui.ctx().egui_wants_keyboard_input();
        self.compare.keys(ui, typing);
        if typing {
            return;
        }
        use egui::Key;
        let pressed = |k: Key| ui.input(|i| i.key_pressed(k) && !i.modifiers.command);
        for (key, step) in [(Key::ArrowLeft, -1), (Key::ArrowRight, 1)] {
            if pressed(key) {
                self.step_layer(step);
            }
        }
        for (key, step) in [(Key::PageUp, -1), (Key::PageDown, 1)] {
            if pressed(key) {
                self.step_photo(step);
            }
        }
        for (key, view) in [Key::Num1, Key::Num2, Key::Num3, Key::Num4].into_iter().zip(View::ALL) {
            if pressed(key) {
                self.view = view;
            }
        }
        if pressed(Key::F1) {
            self.help.shortcuts = !self.help.shortcuts;
        }
        let command =
            |k: Key, shift: bool| ui.input(|i| i.modifiers.command && i.modifiers.shift == shift && i.key_pressed(k));
        if command(Key::O, false) {
            self.open_dialog();
        }
        if command(Key::S, false) {
            self.export_dialog();
        }
        if command(Key::C, true) {
            self.copy_view();
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
            "Drop the photo (or a folder) to rebuild it",
            egui::TextStyle::Heading.resolve(ui.style()),
            egui::Color32::WHITE,
        );
    }

    /// Layer buttons, the view tabs, where SWWAE's switches come from, the zoom.
    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Layer:");
            for layer in self.all_layers() {
                let why = self.layer_unavailable(layer);
                let selected = self.view != View::AllLayers && self.layer == layer;
                let resp = ui.add_enabled(why.is_none(), egui::Button::selectable(selected, layer.name()));
                let resp = match &why {
                    Some(w) => resp.on_disabled_hover_text(w.as_str()),
                    None => resp.on_hover_text(format!("Rebuild the photo from {layer} (←/→ step through layers)")),
                };
                if resp.clicked() {
                    self.select_layer(layer);
                }
            }
            ui.separator();
            for (i, v) in View::ALL.into_iter().enumerate() {
                if ui
                    .add(egui::Button::selectable(self.view == v, v.title()))
                    .on_hover_text(format!("key {}", i + 1))
                    .clicked()
                {
                    self.view = v;
                }
            }
            ui.separator();
            self.switches_picker(ui);
            self.compare.zoom_button(ui);
            if self.photos.loading.is_some() {
                ui.spinner();
                ui.label("loading image…");
            }
        });
    }

    /// "Switches: own ▾": SWWAE decodes with this photo's switches or another's.
    fn switches_picker(&mut self, ui: &mut egui::Ui) {
        let own = self.photos.current_id();
        let current = self.edits.switches_of(own);
        let text = current.map(|(_, p)| file_name(p)).unwrap_or_else(|| "this photo's own".into());
        let mut pick = None;
        let mut other = false;
        let l = ui.label("Switches:");
        egui::ComboBox::from_id_salt("switches")
            .selected_text(text)
            .show_ui(ui, |ui| {
                if ui.selectable_label(current.is_none(), "this photo's own").clicked() {
                    pick = Some(None);
                }
                for (id, path) in self.photos.history.iter().rev() {
                    if Some(*id) != own && ui.selectable_label(current.is_some_and(|(c, _)| c == id), file_name(path)).clicked() {
                        pick = Some(Some(path.clone()));
                    }
                }
                if ui.button("Another photo…").clicked() {
                    other = true;
                }
            })
            .response
            .labelled_by(l.id)
            .on_hover_text("SWWAE puts this photo's pooled values where another photo's maxima were: what (values) against where (switches)");
        match pick {
            Some(Some(path)) => self.use_switches_of(&path),
            Some(None) => self.use_own_switches(),
            None => {}
        }
        if other {
            self.switches_dialog();
        }
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
            let shown: Vec<String> = crate::model::Kind::ALL
                .iter()
                .filter_map(|&k| self.decoders.shown(self.layer, k).map(|s| format!("{} {}", k.label(), s.label())))
                .collect();
            let sets: Vec<String> = self.decoders.sets.iter().map(|s| s.summary()).collect();
            ui.label(format!("Decoders: {}", if shown.is_empty() { "none".into() } else { shown.join(", ") }))
                .on_hover_text(format!("Decoders menu to choose · sets:\n{}", sets.join("\n")));
            if let Some(Ok(r)) = self.rebuilt(self.layer) {
                ui.separator();
                let what = if r.encoder_ran { "encoder and decoders" } else { "decoders only" };
                ui.label(format!("rebuilt in {:.0} ms ({what})", 1000.0 * r.seconds));
            }
            if let Some(n) = self.note.clone() {
                ui.separator();
                ui.label(n);
                if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                    self.note = None;
                }
            }
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
