//! The app's state and the user's actions on it. Its parts are panels that own their state: the
//! photos (`photos.rs`), what the worker computed (`results.rs`), the code edits (`edits.rs`),
//! the decoder sets (`decoders.rs`), the views (`compare_view.rs`, `channels_view.rs`), the
//! dialogs. Worker replies are folded in by `replies.rs`, the window drawn by `view.rs`, the
//! pictures it writes made in `output.rs` and `screenshot.rs`, what it remembers between runs
//! kept by `settings.rs`.

use super::channels_view::ChannelsView;
use super::compare_view::CompareView;
use super::decoders::Decoders;
use super::download::Download;
use super::edits::CodeEdits;
use super::files::demo_photo;
use super::help::Help;
use super::photos::Photos;
use super::results::Results;
use super::screenshot::Screenshot;
use super::settings::Settings;
use super::shown::{Key, Model, Pane, Photo, Rebuilt, View};
use super::train_dialog::TrainDialog;
use super::training::TrainingRun;
use super::worker::{Job, Variant, Worker};
use crate::compare::ChannelSpec;
use crate::decoder_sets::UserData;
use crate::model::Layer;
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

/// Command-line options of the app.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// A photo, or a folder of photos (the first is shown).
    pub image: Option<PathBuf>,
    pub layer: Option<Layer>,
    pub screenshot: Option<PathBuf>,
    /// `bundled`, `vgg16`, `vgg19` or a weights file; empty: the last one used, else `bundled`.
    pub model: String,
    /// A decoders folder shown first, wherever it has the decoder, for this run of the app.
    pub decoders: Option<PathBuf>,
    /// The user's layerinv folder (training runs, trash); default `~/.local/share/layerinv`.
    pub data_dir: Option<PathBuf>,
    pub device: String,
    pub view: Option<View>,
    /// Decode SWWAE with this other photo's switches.
    pub switches_from: Option<PathBuf>,
    /// Keep only these channels of the first layer shown (`0-31,64`, `top:16`).
    pub keep_channels: Option<String>,
}

/// The layer the app opens on when none was asked for or kept (VGG's middle; a model without it
/// opens on its own middle layer).
pub const DEFAULT_LAYER: Layer = Layer::POOL3;

pub struct LayerinvApp {
    pub(super) ctx: egui::Context,
    pub(super) worker: Worker,
    pub(super) device_name: String,
    /// Where the viewer computes (a resumed training run starts there too).
    pub(super) device: candle_core::Device,
    pub model_source: String,
    pub model: Option<Model>,
    /// Where training runs go and forgotten sets are moved.
    pub user: UserData,
    /// The decoder sets and which one each pane shows.
    pub decoders: Decoders,
    pub layer: Layer,
    pub view: View,
    pub photos: Photos,
    /// What the worker computed for them, and is computing.
    pub results: Results,
    /// How the code is changed before the decoders (channel masks, another photo's switches).
    pub edits: CodeEdits,
    /// Zoom, pan and blink of the picture views.
    pub compare: CompareView,
    pub channels_view: ChannelsView,
    /// A line for the status bar that is not an error (a finished run took over a pane…).
    pub note: Option<String>,
    /// A finished run to measure against the decoders it would replace, once its folder is read.
    pub(super) judge_after_scan: Option<PathBuf>,
    pub settings: Settings,
    pub last_error: Option<String>,
    pub train_dialog: Option<TrainDialog>,
    pub training: Option<TrainingRun>,
    pub download: Option<Download>,
    pub help: Help,
    pub(super) screenshot: Option<Screenshot>,
    pub(super) exit: Arc<AtomicI32>,
}

impl LayerinvApp {
    /// The app, restored from `storage` (eframe's persistence) where the options leave it free;
    /// a `--screenshot` run reads nothing from it.
    pub fn new(
        ctx: &egui::Context,
        opts: AppOptions,
        exit: Arc<AtomicI32>,
        storage: Option<&dyn eframe::Storage>,
    ) -> Self {
        let settings = match (&opts.screenshot, storage) {
            (None, Some(s)) => Settings::load(s),
            _ => Settings::default(),
        };
        let device_arg = if opts.device.is_empty() { "auto".to_string() } else { opts.device.clone() };
        let (device, device_error) = match crate::device::parse_device(&device_arg) {
            Ok(d) => (d, None),
            Err(e) => (candle_core::Device::Cpu, Some(e.to_string())),
        };
        let user = opts.data_dir.clone().map(UserData).unwrap_or_default();
        let wake_ctx = ctx.clone();
        let worker = Worker::spawn(device.clone(), user.clone(), move || wake_ctx.request_repaint());
        let model_source = [opts.model.clone(), settings.model.clone(), "bundled".into()]
            .into_iter()
            .find(|m| !m.is_empty())
            .unwrap_or_default();
        let decoders = Decoders {
            chosen: settings.decoder_choice.clone(),
            pinned: opts.decoders.clone(),
            folders: settings.decoder_folders.clone(),
            preview: settings.preview,
            ..Default::default()
        };
        let mut last_error = device_error;
        let view = opts.view.unwrap_or(settings.view);
        let keep_spec = opts.keep_channels.as_deref().and_then(|s| match ChannelSpec::parse(s) {
            Ok(spec) => Some(spec),
            Err(e) => {
                last_error = Some(e.to_string());
                None
            }
        });
        let mut app = Self {
            ctx: ctx.clone(),
            worker,
            device_name: crate::device::describe(&device),
            device: device.clone(),
            model_source: model_source.clone(),
            model: None,
            user,
            decoders,
            // Checked against the model when it has loaded.
            layer: opts.layer.or(settings.layer).unwrap_or(DEFAULT_LAYER),
            view,
            photos: Photos::default(),
            results: Results::default(),
            edits: CodeEdits::new(keep_spec),
            compare: CompareView::default(),
            channels_view: ChannelsView::default(),
            note: None,
            judge_after_scan: None,
            settings,
            last_error,
            train_dialog: None,
            training: None,
            download: None,
            help: Help::default(),
            screenshot: opts.screenshot.clone().map(Screenshot::new),
            exit,
        };
        app.worker.send(Job::LoadModel(model_source));
        app.scan_sets();
        if let Some(other) = &opts.switches_from {
            app.use_switches_of(other);
        }
        let last = app.settings.photo.clone().filter(|p| p.is_file());
        if let Some(p) = opts.image.or(last).or_else(demo_photo) {
            app.open_path(&p);
        }
        app
    }

    /// Open a photo, or the first photo of a folder.
    pub fn open_path(&mut self, path: &Path) {
        if path.is_dir() {
            match crate::data::photos_in(path) {
                Ok(photos) if !photos.is_empty() => self.open_image(&photos[0]),
                Ok(_) => self.last_error = Some(format!("{}: no photos in this folder", path.display())),
                Err(e) => self.last_error = Some(e.to_string()),
            }
        } else {
            self.open_image(path);
        }
    }

    /// Ask the worker to load an image; the current one stays until it arrives.
    pub fn open_image(&mut self, path: &Path) {
        let id = self.photos.start_loading(path);
        self.worker.send(Job::LoadImage { id, path: path.to_path_buf() });
    }

    /// The photo on screen.
    pub fn photo(&self) -> Option<&Photo> {
        self.photos.current.as_ref()
    }

    /// Step by `step` through the photos of the current photo's folder.
    pub fn step_photo(&mut self, step: i32) {
        if let Some(next) = self.photos.step(step) {
            self.open_image(&next);
        }
    }

    /// SWWAE decodes with the switches of the photo at `path` (loaded by the worker when needed).
    pub fn use_switches_of(&mut self, path: &Path) {
        let id = self.photos.id_of(path);
        self.edits.use_switches_of(id, path);
    }

    /// SWWAE decodes with the photo's own switches again.
    pub fn use_own_switches(&mut self) {
        self.edits.use_own_switches();
    }

    /// The device the work runs on, as the status bar names it ("CPU (2 threads)", "CUDA 0 (…)").
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Move the viewer's compute to `name` (cpu, cuda, cuda:N): a new worker there reloads the
    /// model, the decoders and the photo; the old one finishes its current job in the background.
    pub fn set_device(&mut self, name: &str) {
        match crate::device::parse_device(name) {
            Err(e) => self.last_error = Some(e.to_string()),
            Ok(device) => {
                let ctx = self.ctx.clone();
                let old = std::mem::replace(
                    &mut self.worker,
                    Worker::spawn(device.clone(), self.user.clone(), move || ctx.request_repaint()),
                );
                let _ = std::thread::Builder::new().name("layerinv-old-worker".into()).spawn(move || drop(old));
                self.device_name = crate::device::describe(&device);
                self.device = device;
                self.last_error = None;
                self.load_model(self.model_source.clone());
            }
        }
    }

    pub fn load_model(&mut self, source: String) {
        self.model_source = source.clone();
        self.model = None;
        self.results.forget();
        self.worker.send(Job::LoadModel(source));
        self.decoders.scanned = false;
        self.scan_sets();
        if let Some(path) = self.photo().map(|p| p.path.clone()) {
            self.open_image(&path);
        }
    }

    /// Why `layer` cannot be shown, or `None`.
    pub fn layer_unavailable(&self, layer: Layer) -> Option<String> {
        match &self.model {
            None => Some("the model is still loading".into()),
            Some(m) => m
                .layers
                .iter()
                .find(|(l, _)| *l == layer)
                .and_then(|(_, r)| r.clone())
                .or_else(|| self.decoders.layer_unavailable(layer)),
        }
    }

    pub fn available_layers(&self) -> Vec<Layer> {
        self.all_layers().into_iter().filter(|&l| self.layer_unavailable(l).is_none()).collect()
    }

    pub fn all_layers(&self) -> Vec<Layer> {
        self.model.as_ref().map(|m| m.layers.iter().map(|(l, _)| *l).collect()).unwrap_or_default()
    }

    /// Select a layer (leaving the all-layers view for the comparison).
    pub fn select_layer(&mut self, layer: Layer) {
        self.layer = layer;
        if self.view == View::AllLayers {
            self.view = View::Compare;
        }
    }

    /// Move the selection by `step` among the available layers.
    pub fn step_layer(&mut self, step: i32) {
        let layers = self.available_layers();
        if layers.is_empty() {
            return;
        }
        let i = layers.iter().position(|l| *l == self.layer).map(|i| i as i32).unwrap_or(0);
        let j = (i + step).clamp(0, layers.len() as i32 - 1) as usize;
        self.layer = layers[j];
    }

    /// How `layer`'s code is changed before the decoders: the chosen switches, its channel mask.
    pub fn variant(&self, layer: Layer) -> Variant {
        self.edits.variant(layer, self.photos.current_id())
    }

    /// The cache key of the current photo's reconstructions at `layer`: the variant of its code
    /// and the decoders the panes show (`None` while a kind has none).
    pub fn key(&self, layer: Layer) -> Option<Key> {
        let p = self.photo()?;
        Some((p.id, layer, self.variant(layer), self.decoders.sources(layer)?))
    }

    /// Whether the reconstructions of the current photo at `layer` are being computed.
    pub fn is_pending(&self, layer: Layer) -> bool {
        self.key(layer).is_some_and(|k| self.results.is_pending(&k))
    }

    /// The current photo's reconstructions at `layer`, as the current variant and decoders have
    /// them.
    pub fn rebuilt(&self, layer: Layer) -> Option<&Result<Rebuilt, String>> {
        self.results.rebuilt(&self.key(layer)?)
    }

    /// The panes of [`Self::rebuilt`].
    pub fn panes(&self, layer: Layer) -> Option<Result<&Vec<Pane>, &String>> {
        self.rebuilt(layer).map(|r| r.as_ref().map(|r| &r.panes))
    }

    /// The settings as they stand now, for eframe to keep.
    pub fn current_settings(&self) -> Settings {
        Settings {
            layer: Some(self.layer),
            view: self.view,
            model: self.model_source.clone(),
            decoder_folders: self.decoders.folders.clone(),
            decoder_choice: self.decoders.chosen.clone(),
            preview: self.decoders.preview,
            ..self.settings.clone()
        }
    }
}
