//! The Train dialog: the trainer's settings as a form; it hands back a configuration to start.

use super::files::file_dialog;
use crate::decoder_sets::UserData;
use crate::device::Precision;
use crate::model::{Arch, Kind, Layer, Objective};
use crate::train::TrainConfig;
use candle_core::Device;
use eframe::egui;
use std::path::PathBuf;

/// What the dialog asks of the app after a frame.
pub enum Outcome {
    Open,
    Closed,
    Start(Box<TrainConfig>, Device),
}

/// The Train dialog's fields.
pub struct TrainDialog {
    /// The loaded model's architecture (which of its layers are fc).
    pub arch: Arch,
    pub data: String,
    pub layers: Vec<(Layer, bool)>,
    pub kinds: Vec<(Kind, bool)>,
    /// Steps, batch, width, learning rate, precision and objective as the form shows them; the
    /// rest as [`TrainConfig::trial`] has it.
    pub settings: TrainConfig,
    /// The crop side for conv layers (fc layers always train at the model's input size).
    pub crop: usize,
    pub device: String,
    /// Empty: a new folder for this run under the user's runs folder.
    pub out: String,
    pub user: UserData,
    pub error: Option<String>,
}

impl TrainDialog {
    pub fn new(arch: Arch, layers: Vec<Layer>, current: Layer, user: UserData) -> Self {
        let settings = TrainConfig::trial();
        Self {
            arch,
            data: String::new(),
            layers: layers.into_iter().map(|l| (l, l == current)).collect(),
            kinds: Kind::ALL.iter().map(|&k| (k, settings.kinds.contains(&k))).collect(),
            crop: settings.crop.unwrap_or(arch.input_size()),
            settings,
            device: "auto".into(),
            out: String::new(),
            user,
            error: None,
        }
    }

    /// The trainer's configuration, or what is wrong with the fields.
    pub fn config(&self) -> Result<TrainConfig, String> {
        if self.data.trim().is_empty() {
            return Err("choose a folder of training photos".into());
        }
        let layers: Vec<Layer> = self.layers.iter().filter(|(_, on)| *on).map(|(l, _)| *l).collect();
        let kinds: Vec<Kind> = self.kinds.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect();
        if layers.is_empty() || kinds.is_empty() {
            return Err("pick at least one layer and one kind".into());
        }
        let fc = layers.iter().any(|&l| self.arch.tap(l).is_ok_and(|t| t.is_fc()));
        let out = match self.out.trim() {
            "" => self.user.new_run_dir(&layers),
            dir => PathBuf::from(dir),
        };
        Ok(TrainConfig {
            data: PathBuf::from(self.data.trim()),
            layers,
            kinds,
            out,
            steps: self.settings.steps.max(1),
            batch: self.settings.batch.max(1),
            crop: if fc { None } else { Some(self.crop) },
            resume: true,
            ..self.settings.clone()
        })
    }
}

impl TrainDialog {
    /// Draw the dialog; what the user asked for.
    pub fn ui(&mut self, ctx: &egui::Context) -> Outcome {
        let mut start = None;
        let mut close = false;
        let d = self;
        let mut open = true;
        egui::Window::new("Train decoders").open(&mut open).collapsible(false).show(ctx, |ui| {
                egui::Grid::new("train-form").num_columns(2).show(ui, |ui| {
                    let l = ui.label("Photos folder");
                    ui.horizontal(|ui| {
                        ui.add(egui::TextEdit::singleline(&mut d.data).hint_text("folder of jpg/png photos")).labelled_by(l.id);
                        if ui.button("Browse…").clicked() {
                            match file_dialog() {
                                Err(why) => d.error = Some(why),
                                Ok(dialog) => {
                                    if let Some(p) = dialog.pick_folder() {
                                        d.data = p.display().to_string();
                                    }
                                }
                            }
                        }
                    });
                    ui.end_row();
                    ui.label("Layers");
                    ui.horizontal_wrapped(|ui| {
                        for (l, on) in &mut d.layers {
                            ui.checkbox(on, l.name());
                        }
                    });
                    ui.end_row();
                    ui.label("Kinds");
                    ui.horizontal(|ui| {
                        for (k, on) in &mut d.kinds {
                            ui.checkbox(on, k.label());
                        }
                    });
                    ui.end_row();
                    ui.label("Steps");
                    ui.add(egui::DragValue::new(&mut d.settings.steps).range(1..=1_000_000).prefix("steps "));
                    ui.end_row();
                    ui.label("Crop (px)");
                    ui.add(egui::DragValue::new(&mut d.crop).range(32..=448).prefix("crop ")).on_hover_text("fc layers always use the full model size");
                    ui.end_row();
                    ui.label("Batch");
                    ui.add(egui::DragValue::new(&mut d.settings.batch).range(1..=256).prefix("batch "));
                    ui.end_row();
                    ui.label("Width");
                    ui.add(egui::DragValue::new(&mut d.settings.width).range(0.125..=1.0).speed(0.01).prefix("width ")).on_hover_text("decoder channels inside each stage, 1 = full mirror");
                    ui.end_row();
                    ui.label("Learning rate");
                    ui.add(egui::DragValue::new(&mut d.settings.lr).range(1e-6..=1e-1).speed(1e-5).prefix("lr ")).on_hover_text(
                        "Adam's peak rate; up-conv decoders below pool1 take a share of it (pool2 5/8, pool3 5/16, pool4 and pool5 5/32). A decoder whose loss explodes is rolled back with half its rate.",
                    );
                    ui.end_row();
                    ui.label("Device");
                    egui::ComboBox::from_id_salt("train-device").selected_text(d.device.as_str()).show_ui(ui, |ui| {
                        for dev in ["auto", "cpu", "cuda"] {
                            ui.selectable_value(&mut d.device, dev.to_string(), dev);
                        }
                    });
                    ui.end_row();
                    ui.label("Precision");
                    egui::ComboBox::from_id_salt("train-dtype").selected_text(d.settings.precision.name()).show_ui(ui, |ui| {
                        for p in Precision::ALL {
                            ui.selectable_value(&mut d.settings.precision, p, p.name());
                        }
                    })
                    .response
                    .on_hover_text("bf16: mixed precision (bf16 activations and convolutions, f32 weights); faster on GPUs with bf16 tensor cores, not on the CPU");
                    ui.end_row();
                    ui.label("Objective");
                    egui::ComboBox::from_id_salt("train-objective").selected_text(d.settings.objective.name()).show_ui(ui, |ui| {
                        for o in Objective::ALL {
                            ui.selectable_value(&mut d.settings.objective, o, o.name());
                        }
                    })
                    .response
                    .on_hover_text("first: image loss only · all: plus every stage against the encoder's activation of its depth · layerwise: each stage alone, then the stack fine-tuned on the image");
                    ui.end_row();
                    let l = ui.label("Save to");
                    let hint = format!("a new folder in {}", d.user.runs().display());
                    ui.add(egui::TextEdit::singleline(&mut d.out).hint_text(hint))
                        .labelled_by(l.id)
                        .on_hover_text("Each run gets its own folder; the Decoders menu lists it, and the panes show it only when you pick it, or when it finishes and beats what they show on its validation photos");
                    ui.end_row();
                });
                if let Some(e) = &d.error {
                    ui.colored_label(ui.visuals().error_fg_color, e.as_str());
                }
                ui.horizontal(|ui| {
                    if ui.button("Start training").clicked() {
                        match d.config().and_then(|cfg| crate::device::parse_device(&d.device).map(|dev| (cfg, dev)).map_err(|e| e.to_string())) {
                            Ok(x) => start = Some(x),
                            Err(e) => d.error = Some(e),
                        }
                    }
                    if ui.button("Close").clicked() {
                        close = true;
                    }
                });
            });
        if !open {
            close = true;
        }
        match start {
            Some((cfg, dev)) => Outcome::Start(Box::new(cfg), dev),
            None if close => Outcome::Closed,
            None => Outcome::Open,
        }
    }
}
