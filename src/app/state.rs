//! App state and everything that is not drawing: worker replies, the reconstruction cache,
//! training and download progress. The pictures it writes (`--screenshot`, the PNG export) are in
//! `state/output.rs`.

mod output;

use super::dialogs::{Download, TrainDialog};
use super::training::TrainingRun;
use super::worker::{Job, LayerStatus, Reply, Worker};
use crate::model::Kind;
use eframe::egui;
use image::RgbImage;
use output::Screenshot;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Command-line options of the app.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub image: Option<PathBuf>,
    pub layer: Option<String>,
    pub screenshot: Option<PathBuf>,
    /// `bundled`, `vgg16`, `vgg19` or a weights file.
    pub model: String,
    /// A decoders folder used before the bundled one.
    pub decoders: Option<PathBuf>,
    pub device: String,
}

/// One reconstruction as shown: texture plus numbers.
pub struct Pane {
    pub kind: Kind,
    pub texture: egui::TextureHandle,
    pub image: RgbImage,
    pub psnr: f64,
    pub ssim: f64,
    /// PSNR of the layer's floor for this photo (squeezed to the layer's grid and blown back up).
    pub floor: Option<f64>,
}

/// What the main view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Layer,
    AllLayers,
}

pub struct Photo {
    pub id: u64,
    pub path: PathBuf,
    pub input: RgbImage,
    pub texture: egui::TextureHandle,
    /// The classifier's top-5 (name, probability) when the model has fc8.
    pub top5: Option<Vec<(String, f32)>>,
}

pub struct Model {
    pub name: String,
    pub arch: String,
    pub layers: LayerStatus,
}

pub struct LayerinvApp {
    pub(super) ctx: egui::Context,
    pub(super) worker: Worker,
    pub(super) device_name: String,
    pub model_source: String,
    pub model: Option<Model>,
    pub decoder_dirs: Vec<PathBuf>,
    pub decoder_layers: LayerStatus,
    pub decoders_loaded: usize,
    pub layer: String,
    pub shown: Shown,
    pub photo: Option<Photo>,
    next_id: u64,
    /// Image being loaded (id, path).
    pub loading: Option<(u64, PathBuf)>,
    /// Reconstructions by (image id, layer): both panes, or the error.
    pub cache: HashMap<(u64, String), Result<Vec<Pane>, String>>,
    pending: HashSet<(u64, String)>,
    pub last_error: Option<String>,
    pub train_dialog: Option<TrainDialog>,
    pub training: Option<TrainingRun>,
    last_refresh: Instant,
    pub download: Option<Download>,
    pub about_open: bool,
    screenshot: Option<Screenshot>,
    exit: Arc<AtomicI32>,
}

/// While training, panes refresh from the newest decoder files at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(4);

/// Where decoders trained from the app go by default: `$XDG_DATA_HOME/layerinv/decoders` or
/// `~/.local/share/layerinv/decoders`.
pub fn user_decoders_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("layerinv").join("decoders")
}

/// The demo photo shown on first start (beside the weights folder, in `assets/`).
pub fn demo_photo() -> Option<PathBuf> {
    let weights = crate::model::source::weights_dir();
    let p = weights.parent()?.join("assets").join("chelsea.png");
    p.is_file().then_some(p)
}

impl LayerinvApp {
    pub fn new(ctx: &egui::Context, opts: AppOptions, exit: Arc<AtomicI32>) -> Self {
        let device_arg = if opts.device.is_empty() { "auto".to_string() } else { opts.device.clone() };
        let (device, device_error) = match crate::device::parse_device(&device_arg) {
            Ok(d) => (d, None),
            Err(e) => (candle_core::Device::Cpu, Some(e.to_string())),
        };
        let wake_ctx = ctx.clone();
        let worker = Worker::spawn(device.clone(), move || wake_ctx.request_repaint());
        let model_source = if opts.model.is_empty() { "bundled".to_string() } else { opts.model.clone() };
        let mut decoder_dirs = Vec::new();
        decoder_dirs.extend(opts.decoders.clone());
        let user = user_decoders_dir();
        if user.is_dir() && !decoder_dirs.contains(&user) {
            decoder_dirs.push(user);
        }
        decoder_dirs.push(crate::model::source::weights_dir());
        let mut app = Self {
            ctx: ctx.clone(),
            worker,
            device_name: crate::device::describe(&device),
            model_source: model_source.clone(),
            model: None,
            decoder_dirs: decoder_dirs.clone(),
            decoder_layers: Vec::new(),
            decoders_loaded: 0,
            layer: opts.layer.clone().unwrap_or_else(|| "pool3".into()),
            shown: Shown::Layer,
            photo: None,
            next_id: 1,
            loading: None,
            cache: HashMap::new(),
            pending: HashSet::new(),
            last_error: device_error,
            train_dialog: None,
            training: None,
            last_refresh: Instant::now(),
            download: None,
            about_open: false,
            screenshot: opts.screenshot.clone().map(Screenshot::new),
            exit,
        };
        app.worker.send(Job::LoadModel(model_source));
        app.worker.send(Job::LoadDecoders(decoder_dirs));
        if let Some(p) = opts.image.or_else(demo_photo) {
            app.open_image(&p);
        }
        app
    }

    /// Ask the worker to load an image; the current one stays until it arrives.
    pub fn open_image(&mut self, path: &Path) {
        let id = self.next_id;
        self.next_id += 1;
        self.loading = Some((id, path.to_path_buf()));
        self.worker.send(Job::LoadImage { id, path: path.to_path_buf() });
    }

    /// Move the viewer's compute to `name` (cpu, cuda, cuda:N): a new worker there reloads the
    /// model, the decoders and the photo; the old one finishes its current job in the background.
    /// The device the work runs on, as the status bar names it ("CPU (2 threads)", "CUDA 0 (…)").
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    pub fn set_device(&mut self, name: &str) {
        match crate::device::parse_device(name) {
            Err(e) => self.last_error = Some(e.to_string()),
            Ok(device) => {
                let ctx = self.ctx.clone();
                let old =
                    std::mem::replace(&mut self.worker, Worker::spawn(device.clone(), move || ctx.request_repaint()));
                let _ = std::thread::Builder::new().name("layerinv-old-worker".into()).spawn(move || drop(old));
                self.device_name = crate::device::describe(&device);
                self.last_error = None;
                self.load_model(self.model_source.clone());
            }
        }
    }

    pub fn load_model(&mut self, source: String) {
        self.model_source = source.clone();
        self.model = None;
        self.cache.clear();
        self.pending.clear();
        self.worker.send(Job::LoadModel(source));
        self.worker.send(Job::LoadDecoders(self.decoder_dirs.clone()));
        if let Some(p) = &self.photo {
            let path = p.path.clone();
            self.open_image(&path);
        }
    }

    /// Use `dir` first for decoders (keeping the others behind it) and reload them.
    pub fn use_decoders_dir(&mut self, dir: PathBuf) {
        self.decoder_dirs.retain(|d| d != &dir);
        self.decoder_dirs.insert(0, dir);
        self.reload_decoders();
    }

    fn reload_decoders(&mut self) {
        self.worker.send(Job::LoadDecoders(self.decoder_dirs.clone()));
        self.cache.clear();
        self.pending.clear();
    }

    /// Why `layer` cannot be shown, or `None`.
    pub fn layer_unavailable(&self, layer: &str) -> Option<String> {
        let from = |s: &LayerStatus| s.iter().find(|(l, _)| l == layer).and_then(|(_, r)| r.clone());
        match &self.model {
            None => Some("the model is still loading".into()),
            Some(m) => from(&m.layers).or_else(|| {
                if self.decoder_layers.is_empty() {
                    Some("the decoders are still loading".into())
                } else {
                    from(&self.decoder_layers)
                }
            }),
        }
    }

    pub fn available_layers(&self) -> Vec<String> {
        self.all_layers().into_iter().filter(|l| self.layer_unavailable(l).is_none()).collect()
    }

    pub fn all_layers(&self) -> Vec<String> {
        self.model.as_ref().map(|m| m.layers.iter().map(|(l, _)| l.clone()).collect()).unwrap_or_default()
    }

    /// Select a layer (and the single-layer view).
    pub fn select_layer(&mut self, layer: &str) {
        self.layer = layer.to_string();
        self.shown = Shown::Layer;
    }

    /// Move the selection by `step` among the available layers.
    pub fn step_layer(&mut self, step: i32) {
        let layers = self.available_layers();
        if layers.is_empty() {
            return;
        }
        let i = layers.iter().position(|l| *l == self.layer).map(|i| i as i32).unwrap_or(0);
        let j = (i + step).clamp(0, layers.len() as i32 - 1) as usize;
        self.layer = layers[j].clone();
    }

    /// Whether the reconstructions of the current photo at `layer` are being computed.
    pub fn is_pending(&self, layer: &str) -> bool {
        self.photo.as_ref().is_some_and(|p| self.pending.contains(&(p.id, layer.to_string())))
    }

    pub fn panes(&self, layer: &str) -> Option<&Result<Vec<Pane>, String>> {
        self.photo.as_ref().and_then(|p| self.cache.get(&(p.id, layer.to_string())))
    }

    /// Everything that is not drawing; called at the start of each frame.
    pub fn tick(&mut self) {
        while let Some(reply) = self.worker.try_recv() {
            self.on_reply(reply);
        }
        self.tick_training();
        if let Some(d) = &mut self.download {
            if let Some(result) = d.poll() {
                self.download = None;
                match result {
                    Ok(name) => self.load_model(name),
                    Err(e) => self.last_error = Some(e),
                }
            } else {
                self.ctx.request_repaint_after(Duration::from_millis(200));
            }
        }
        self.request_needed();
        self.tick_screenshot();
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Model { name, arch, layers, .. } => {
                self.model = Some(Model { name, arch, layers });
            }
            Reply::Decoders { dirs, layers, loaded } => {
                self.decoder_dirs = dirs;
                self.decoder_layers = layers;
                self.decoders_loaded = loaded;
                if self.layer_unavailable(&self.layer).is_some() {
                    if let Some(first) = self.available_layers().get(self.available_layers().len() / 2) {
                        self.layer = first.clone();
                    }
                }
            }
            Reply::Image { id, path, input, top5 } => {
                if self.loading.as_ref().is_some_and(|(i, _)| *i == id) {
                    self.loading = None;
                }
                let texture =
                    self.ctx.load_texture(format!("input-{id}"), color_image(&input), egui::TextureOptions::LINEAR);
                self.photo = Some(Photo { id, path, input, texture, top5 });
            }
            Reply::Reconstructed { id, layer, recs, floor } => {
                self.pending.remove(&(id, layer.clone()));
                let panes = recs
                    .into_iter()
                    .map(|r| Pane {
                        kind: r.kind,
                        texture: self.ctx.load_texture(
                            format!("{id}-{}-{}", r.layer, r.kind),
                            color_image(&r.image),
                            egui::TextureOptions::LINEAR,
                        ),
                        image: r.image,
                        psnr: r.psnr,
                        ssim: r.ssim,
                        floor,
                    })
                    .collect();
                self.cache.insert((id, layer), Ok(panes));
            }
            Reply::Failed { job, error } => {
                match job {
                    Job::LoadImage { id, .. } => {
                        if self.loading.as_ref().is_some_and(|(i, _)| *i == id) {
                            self.loading = None;
                        }
                    }
                    Job::Reconstruct { id, layer } => {
                        self.pending.remove(&(id, layer.clone()));
                        self.cache.insert((id, layer), Err(error.clone()));
                    }
                    Job::LoadModel(_) | Job::LoadDecoders(_) => {}
                }
                self.last_error = Some(error);
            }
        }
    }

    /// Ask for the reconstructions the view needs and nobody computed yet.
    fn request_needed(&mut self) {
        let Some(photo) = &self.photo else { return };
        if self.model.is_none() || self.decoder_layers.is_empty() {
            return;
        }
        let wanted: Vec<String> = match self.shown {
            Shown::Layer => vec![self.layer.clone()],
            Shown::AllLayers => self.available_layers(),
        };
        let id = photo.id;
        for layer in wanted {
            let key = (id, layer.clone());
            if self.layer_unavailable(&layer).is_none()
                && !self.cache.contains_key(&key)
                && !self.pending.contains(&key)
            {
                self.pending.insert(key);
                self.worker.send(Job::Reconstruct { id, layer });
            }
        }
    }

    fn tick_training(&mut self) {
        let Some(run) = &mut self.training else { return };
        run.poll();
        if run.take_checkpoint() && self.last_refresh.elapsed() >= REFRESH_EVERY {
            self.last_refresh = Instant::now();
            let out = run.out_dir();
            if self.decoder_dirs.first() != Some(&out) {
                self.decoder_dirs.retain(|d| d != &out);
                self.decoder_dirs.insert(0, out);
            }
            self.reload_decoders();
        }
    }

    /// Start a training run (from the dialog).
    pub fn start_training(&mut self, cfg: crate::train::TrainConfig, device: candle_core::Device) {
        let ctx = self.ctx.clone();
        self.last_refresh = Instant::now() - REFRESH_EVERY;
        self.training = Some(TrainingRun::start(cfg, self.model_source.clone(), device, move || ctx.request_repaint()));
    }
}

pub fn color_image(img: &RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}
