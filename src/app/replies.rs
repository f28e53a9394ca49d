//! What happens each frame besides drawing: worker replies into the caches, requests for what
//! the view needs, training and download progress.

use super::shown::{color_image, Channels, Model, Pane, Photo, Rebuilt, View, PIXELS};
use super::state::LayerinvApp;
use super::worker::{Job, Reply};
use crate::compare::error_map;
use crate::model::Kind;
use std::time::{Duration, Instant};

/// While training, panes refresh from the newest decoder files at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(4);

/// Masked or transplanted reconstructions kept per photo and layer besides the plain one.
const KEEP_VARIANTS: usize = 4;

impl LayerinvApp {
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
        self.apply_keep_spec();
        self.request_needed();
        self.tick_screenshot();
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Model { name, arch, layers, .. } => {
                self.model = Some(Model { name, arch, layers });
            }
            Reply::Decoders { dirs, layers, loaded, records } => {
                self.decoder_dirs = dirs;
                self.decoder_layers = layers;
                self.decoders_loaded = loaded;
                self.records = records;
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
                let texture = self.ctx.load_texture(format!("input-{id}"), color_image(&input), PIXELS);
                if let Some(dir) = path.parent() {
                    let same_folder = self.folder.first().and_then(|p| p.parent()) == Some(dir);
                    if !same_folder || !self.folder.contains(&path) {
                        self.folder = crate::data::photos_in(dir).unwrap_or_default();
                    }
                }
                self.history.retain(|(_, p)| p != &path);
                self.history.push((id, path.clone()));
                self.settings.remember(&path);
                self.photo = Some(Photo { id, path, input, texture, top5 });
            }
            Reply::Reconstructed { id, layer, variant, recs, floor, seconds, encoder_ran } => {
                let key = (id, layer.clone(), variant);
                self.pending.remove(&key);
                let Some(input) = self.photo.as_ref().filter(|p| p.id == id).map(|p| p.input.clone()) else {
                    return;
                };
                let name = |what: &str, kind: Kind| format!("{id}-{layer}-{kind}-{what}-{}", self.cache.len());
                let panes: Vec<Pane> = recs
                    .into_iter()
                    .map(|r| {
                        let (err, error_mean) = error_map(&input, &r.image);
                        Pane {
                            kind: r.kind,
                            texture: self.ctx.load_texture(name("rec", r.kind), color_image(&r.image), PIXELS),
                            error: self.ctx.load_texture(name("err", r.kind), color_image(&err), PIXELS),
                            error_mean,
                            image: r.image,
                            psnr: r.psnr,
                            ssim: r.ssim,
                            floor,
                        }
                    })
                    .collect();
                let find = |k: Kind| panes.iter().find(|p| p.kind == k).map(|p| &p.image);
                let lost = match (find(Kind::Sae), find(Kind::Swwae)) {
                    (Some(sae), Some(swwae)) => {
                        let (map, mean) = error_map(swwae, sae);
                        Some((self.ctx.load_texture(name("lost", Kind::Swwae), color_image(&map), PIXELS), mean))
                    }
                    _ => None,
                };
                if !key.2.is_plain() {
                    // At most KEEP_VARIANTS changed codes per photo and layer: this one and any
                    // others (the cache is unordered, so not necessarily the newest; a dropped
                    // one is rebuilt by the decoders when it is asked for again).
                    let mut others: Vec<_> = self
                        .cache
                        .keys()
                        .filter(|(i, l, v)| *i == id && *l == layer && !v.is_plain() && *v != key.2)
                        .cloned()
                        .collect();
                    others.truncate(others.len().saturating_sub(KEEP_VARIANTS - 1));
                    for k in others {
                        self.cache.remove(&k);
                    }
                }
                self.cache.insert(key, Ok(Rebuilt { panes, lost, seconds, encoder_ran }));
            }
            Reply::Channels { id, layer, maps } => {
                self.channels_pending.remove(&(id, layer.clone()));
                let atlas = self.ctx.load_texture(format!("channels-{id}-{layer}"), color_image(&maps.atlas), PIXELS);
                self.channels.insert((id, layer), Ok(Channels { maps, atlas }));
            }
            Reply::Failed { job, error } => {
                match job {
                    Job::LoadImage { id, .. } => {
                        if self.loading.as_ref().is_some_and(|(i, _)| *i == id) {
                            self.loading = None;
                        }
                    }
                    Job::Reconstruct { id, layer, variant } => {
                        let key = (id, layer, variant);
                        self.pending.remove(&key);
                        self.cache.insert(key, Err(error.clone()));
                    }
                    Job::Channels { id, layer } => {
                        self.channels_pending.remove(&(id, layer.clone()));
                        self.channels.insert((id, layer), Err(error.clone()));
                    }
                    Job::LoadModel(_) | Job::LoadDecoders(_) => {}
                }
                self.last_error = Some(error);
            }
        }
    }

    /// `--keep-channels`: once the shown layer's channels are known, turn the spec into its mask.
    fn apply_keep_spec(&mut self) {
        if self.keep_spec.is_none() || !matches!(self.channel_maps(&self.layer), Some(Ok(_))) {
            return;
        }
        if let Some(spec) = self.keep_spec.take() {
            let layer = self.layer.clone();
            self.keep_channels(&layer, &spec);
        }
    }

    /// Ask for the reconstructions and channel maps the view needs and nobody computed yet.
    fn request_needed(&mut self) {
        let Some(photo) = &self.photo else { return };
        if self.model.is_none() || self.decoder_layers.is_empty() || self.loading.is_some() {
            return;
        }
        let id = photo.id;
        let wanted: Vec<String> = match self.view {
            View::AllLayers => self.available_layers(),
            _ => vec![self.layer.clone()],
        };
        let needs_channels = self.view == View::Channels || self.keep_spec.is_some();
        for layer in wanted {
            if self.layer_unavailable(&layer).is_some() {
                continue;
            }
            let at = (id, layer.clone());
            if needs_channels && !self.channels.contains_key(&at) && !self.channels_pending.contains(&at) {
                self.channels_pending.insert(at.clone());
                self.worker.send(Job::Channels { id, layer: layer.clone() });
            }
            if self.keep_spec.is_some() {
                continue; // the mask is not known yet
            }
            let key = (id, layer.clone(), self.variant(&layer));
            if !self.cache.contains_key(&key) && !self.pending.contains(&key) {
                self.pending.insert(key.clone());
                self.worker.send(Job::Reconstruct { id, layer, variant: key.2 });
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
        self.training = Some(super::training::TrainingRun::start(cfg, self.model_source.clone(), device, move || {
            ctx.request_repaint()
        }));
    }
}
