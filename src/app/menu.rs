//! The menu bar: File, View, Model, Decoders, Train, Help.

use super::download::Download;
use super::files::{file_dialog, PHOTO_FILTER};
use super::shown::View;
use super::state::LayerinvApp;
use super::train_dialog::TrainDialog;
use crate::model::hub::HubModel;
use crate::model::Layer;
use eframe::egui;

impl LayerinvApp {
    /// A file dialog, or `None` (with the reason in the status bar) when none can open.
    fn dialog(&mut self) -> Option<rfd::FileDialog> {
        file_dialog().map_err(|why| self.last_error = Some(why)).ok()
    }

    pub(super) fn open_dialog(&mut self) {
        if let Some(p) = self.dialog().and_then(|d| d.add_filter("images", &PHOTO_FILTER).pick_file()) {
            self.open_image(&p);
        }
    }

    pub(super) fn export_dialog(&mut self) {
        let name = format!("layerinv_{}_{}.png", self.layer, self.view.name());
        if let Some(p) = self.dialog().and_then(|d| d.set_file_name(name).save_file()) {
            if let Err(e) = self.export_view(&p) {
                self.last_error = Some(e);
            }
        }
    }

    /// Open decoders folder…: its decoders are shown wherever it has them.
    pub(super) fn decoders_folder_dialog(&mut self) {
        if let Some(p) = self.dialog().and_then(|d| d.pick_folder()) {
            self.use_decoders_dir(p);
        }
    }

    pub(super) fn switches_dialog(&mut self) {
        if let Some(p) = self.dialog().and_then(|d| d.add_filter("images", &PHOTO_FILTER).pick_file()) {
            self.use_switches_of(&p);
        }
    }

    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        ui.menu_button("File", |ui| {
            if ui.add(egui::Button::new("Open photo…").shortcut_text("Ctrl+O")).clicked() {
                ui.close();
                self.open_dialog();
            }
            if ui
                .button("Open folder…")
                .on_hover_text("Show its first photo; PageUp/PageDown step through it")
                .clicked()
            {
                ui.close();
                if let Some(p) = self.dialog().and_then(|d| d.pick_folder()) {
                    self.open_path(&p);
                }
            }
            ui.menu_button("Recent photos", |ui| {
                if self.settings.recent.is_empty() {
                    ui.label("none yet");
                }
                for p in self.settings.recent.clone() {
                    if ui.button(p.display().to_string()).clicked() {
                        ui.close();
                        self.open_path(&p);
                    }
                }
            });
            ui.separator();
            if ui.add(egui::Button::new("Export view as PNG…").shortcut_text("Ctrl+S")).clicked() {
                ui.close();
                self.export_dialog();
            }
            if ui.add(egui::Button::new("Copy view").shortcut_text("Ctrl+Shift+C")).clicked() {
                ui.close();
                self.copy_view();
            }
            ui.separator();
            if ui.button("Quit").clicked() {
                ui.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        });
        ui.menu_button("View", |ui| {
            for (i, v) in View::ALL.into_iter().enumerate() {
                if ui
                    .add(egui::Button::selectable(self.view == v, v.title()).shortcut_text(format!("{}", i + 1)))
                    .clicked()
                {
                    ui.close();
                    self.view = v;
                }
            }
            ui.separator();
            if ui.button("Switches from another photo…").clicked() {
                ui.close();
                self.switches_dialog();
            }
            let transplant = self.edits.switches_of(self.photos.current_id()).is_some();
            if ui.add_enabled(transplant, egui::Button::new("The photo's own switches")).clicked() {
                ui.close();
                self.use_own_switches();
            }
            if ui.add(egui::Button::new("Whole picture (zoom 1×)").shortcut_text("0")).clicked() {
                ui.close();
                self.compare.zoom = Default::default();
            }
        });
        ui.menu_button("Model", |ui| {
            if ui.button("Bundled VGG-16 trunk").clicked() {
                ui.close();
                self.load_model("bundled".into());
            }
            for m in [HubModel::Vgg16, HubModel::Vgg19] {
                let label = format!("Download {} (Hugging Face)", m.name().to_uppercase().replace("VGG", "VGG-"));
                let busy = self.download.is_some();
                if ui
                    .add_enabled(!busy, egui::Button::new(label))
                    .on_disabled_hover_text("a download is running")
                    .clicked()
                {
                    ui.close();
                    self.download = Some(Download::start(m, ui.ctx().clone()));
                }
            }
            if ui.button("Open weights file…").clicked() {
                ui.close();
                if let Some(p) = self
                    .dialog()
                    .and_then(|d| d.add_filter("weights", &["safetensors", "pth", "pt", "onnx"]).pick_file())
                {
                    self.load_model(p.display().to_string());
                }
            }
            ui.separator();
            ui.label("Compute on");
            let on_cpu = self.device_name.starts_with("CPU");
            if ui.radio(on_cpu, "CPU").clicked() && !on_cpu {
                ui.close();
                self.set_device("cpu");
            }
            let cuda = egui::RadioButton::new(!on_cpu, "CUDA GPU");
            let why = "this layerinv was built without CUDA (README: Building with CUDA)";
            if ui.add_enabled(candle_core::utils::cuda_is_available(), cuda).on_disabled_hover_text(why).clicked()
                && on_cpu
            {
                ui.close();
                self.set_device("cuda");
            }
        });
        ui.menu_button("Decoders", |ui| {
            let training = self.training.as_ref().filter(|r| r.is_running()).map(|r| r.out_dir());
            let layer = self.layer;
            if let Some(action) = self.decoders.menu_ui(ui, layer, training.as_deref()) {
                self.decoder_action(action);
            }
        });
        ui.menu_button("Train", |ui| {
            let running = self.training.as_ref().is_some_and(|r| r.is_running());
            if ui
                .add_enabled(!running, egui::Button::new("Train decoders…"))
                .on_disabled_hover_text("a training run is in progress")
                .clicked()
            {
                ui.close();
                let layers: Vec<Layer> = self
                    .model
                    .as_ref()
                    .map(|m| m.layers.iter().filter(|(_, r)| r.is_none()).map(|(l, _)| *l).collect())
                    .unwrap_or_default();
                if let Some(arch) = self.model.as_ref().map(|m| m.arch) {
                    self.train_dialog = Some(TrainDialog::new(arch, layers, self.layer, self.user.clone()));
                }
            }
        });
        ui.menu_button("Help", |ui| {
            if ui.add(egui::Button::new("Shortcuts").shortcut_text("F1")).clicked() {
                ui.close();
                self.help.shortcuts = true;
            }
            if ui.button("About").clicked() {
                ui.close();
                self.help.about = true;
            }
        });
        if let Some(d) = &self.download {
            ui.separator();
            ui.spinner();
            ui.label(d.status());
            if ui.button("Cancel download").clicked() {
                // The transfer thread is left to finish on its own; its result is ignored.
                self.download = None;
            }
        }
    }

    /// The dialogs and windows over the view.
    pub(super) fn dialogs(&mut self, ctx: &egui::Context) {
        self.help.ui(ctx);
        if let Some(d) = &mut self.train_dialog {
            match d.ui(ctx) {
                super::train_dialog::Outcome::Open => {}
                super::train_dialog::Outcome::Closed => self.train_dialog = None,
                super::train_dialog::Outcome::Start(cfg, dev) => {
                    self.train_dialog = None;
                    self.start_training(*cfg, dev);
                }
            }
        }
    }
}
