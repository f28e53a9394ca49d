//! What happens each frame besides drawing: worker replies into the caches, requests for what
//! the view needs, training and download progress.

use super::shown::{color_image, Channels, Model, Pane, Photo, Rebuilt, View, PIXELS};
use super::state::LayerinvApp;
use super::training::RunState;
use super::worker::{Job, Reply, Verdict};
use crate::model::{Kind, Layer};
use std::time::Duration;

/// While training, panes refresh from the newest decoder files at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(4);

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
                // A layer this architecture lacks (asked for, or kept from another model): its
                // middle trunk layer instead (pool3 for VGG), saying so when it was asked for.
                if let Err(e) = arch.tap(self.layer) {
                    if self.layer != super::state::DEFAULT_LAYER {
                        self.last_error = Some(e.to_string());
                    }
                    let trunk = arch.stage_taps();
                    if let Some(middle) = trunk.get(trunk.len() / 2) {
                        self.layer = middle.layer();
                    }
                }
                self.model = Some(Model { name, arch, layers });
            }
            Reply::Sets(sets) => {
                let dirs: Vec<_> = sets.iter().map(|s| s.dir.clone()).collect();
                let order = self.user.set_dirs(&self.decoders.extra_dirs());
                // Pictures made with decoders that changed (a run wrote new ones) or went are stale;
                // the others stay, so reading the folders again recomputes nothing else.
                let changed = self.decoders.update(sets, &order);
                self.results.forget_decoded_by(&changed);
                if self.layer_unavailable(self.layer).is_some() {
                    if let Some(first) = self.available_layers().get(self.available_layers().len() / 2) {
                        self.layer = *first;
                    }
                }
                if let Some(run) = self.judge_after_scan.take() {
                    if dirs.contains(&run) {
                        self.judge(&run);
                    } else {
                        self.judge_after_scan = Some(run);
                    }
                }
            }
            Reply::Judged { run, photos, verdicts } => self.on_judged(&run, photos, verdicts),
            Reply::Image { id, path, input, top5 } => {
                let texture = self.ctx.load_texture(format!("input-{id}"), color_image(&input), PIXELS);
                self.settings.remember(&path);
                self.photos.arrived(Photo { id, path, input, texture, top5 });
            }
            Reply::Reconstructed {
                id,
                layer,
                variant,
                sources,
                preview,
                recs,
                errors,
                lost,
                floor,
                seconds,
                encoder_ran,
            } => {
                let key = (id, layer, variant, sources.clone());
                if self.photos.current_id() != Some(id) {
                    // A photo no longer on screen: nothing waits for it any more.
                    if preview {
                        self.results.store_preview((id, layer, key.2), None);
                    } else {
                        self.results.abandon(&key);
                    }
                    return;
                }
                let n = self.results.len();
                let name = |what: &str, kind: Kind| format!("{id}-{layer}-{kind}-{what}-{n}");
                let panes: Vec<Pane> = recs
                    .into_iter()
                    .zip(sources)
                    .zip(errors)
                    .map(|((rec, source), (err, error_mean))| Pane {
                        source,
                        texture: self.ctx.load_texture(name("rec", rec.kind), color_image(&rec.image), PIXELS),
                        error: self.ctx.load_texture(name("err", rec.kind), color_image(&err), PIXELS),
                        error_mean,
                        rec,
                        floor,
                    })
                    .collect();
                let lost_name = format!("{id}-{layer}-lost-{n}");
                let lost = lost.map(|(map, mean)| (self.ctx.load_texture(lost_name, color_image(&map), PIXELS), mean));
                let rebuilt = Rebuilt { panes, lost, seconds, encoder_ran };
                if preview {
                    self.results.store_preview((id, layer, key.2), Some(rebuilt));
                } else {
                    self.results.store(key, Ok(rebuilt));
                }
            }
            Reply::Channels { id, layer, maps } => {
                let atlas = self.ctx.load_texture(format!("channels-{id}-{layer}"), color_image(&maps.atlas), PIXELS);
                self.results.store_channels((id, layer), Ok(Channels { maps, atlas }));
            }
            Reply::Failed { job, error } => {
                match job {
                    Job::LoadImage { id, .. } => self.photos.done_loading(id),
                    Job::Reconstruct { id, layer, variant, preview: true, .. } => {
                        self.results.store_preview((id, layer, variant), None);
                    }
                    Job::Reconstruct { id, layer, variant, sources, preview: false } => {
                        self.results.store((id, layer, variant, sources), Err(error.clone()));
                    }
                    Job::Channels { id, layer } => self.results.store_channels((id, layer), Err(error.clone())),
                    Job::ScanSets(_) => self.decoders.scanned = true,
                    Job::LoadModel(_) | Job::Judge { .. } => {}
                }
                self.last_error = Some(error);
            }
        }
    }

    /// `--keep-channels`: once the shown layer's channels are known, turn the spec into its mask.
    fn apply_keep_spec(&mut self) {
        if self.edits.keep_spec.is_none() || !matches!(self.channel_maps(self.layer), Some(Ok(_))) {
            return;
        }
        if let Some(spec) = self.edits.keep_spec.take() {
            let layer = self.layer;
            self.keep_channels(layer, &spec);
        }
    }

    /// Ask for the reconstructions, training previews and channel maps the view needs and nobody
    /// computed yet.
    fn request_needed(&mut self) {
        let Some(photo) = self.photo() else { return };
        if self.model.is_none() || !self.decoders.scanned || self.photos.loading.is_some() {
            return;
        }
        let id = photo.id;
        let wanted: Vec<Layer> = match self.view {
            View::AllLayers => self.available_layers(),
            _ => vec![self.layer],
        };
        let needs_channels = self.view == View::Channels || self.edits.keep_spec.is_some();
        for layer in wanted {
            if self.layer_unavailable(layer).is_some() {
                continue;
            }
            let at = (id, layer);
            if needs_channels && self.results.ask_channels(&at) {
                self.worker.send(Job::Channels { id, layer });
            }
            if self.edits.keep_spec.is_some() {
                continue; // the mask is not known yet
            }
            let Some(key) = self.key(layer) else { continue };
            if self.results.ask(&key) {
                let (id, layer, variant, sources) = key;
                self.worker.send(Job::Reconstruct { id, layer, variant, sources, preview: false });
            }
        }
        // The training preview, at the layer on screen: asked again after each refresh.
        let layer = self.layer;
        if let (Some(sources), false) = (self.preview_sources(layer), self.view == View::AllLayers) {
            let at = (id, layer, self.variant(layer));
            if self.results.ask_preview(&at) {
                let (id, layer, variant) = at;
                self.worker.send(Job::Reconstruct { id, layer, variant, sources, preview: true });
            }
        }
    }

    fn tick_training(&mut self) {
        let Some(run) = &mut self.training else { return };
        let was_running = run.is_running();
        run.poll();
        let out = run.out_dir();
        if was_running && !run.is_running() {
            // The run ended: read its folder (and its record) once more; a finished run is then
            // measured against the decoders it would replace.
            self.results.forget_previews();
            if run.state == RunState::Finished {
                self.judge_after_scan = Some(out.clone());
            } else {
                self.note = Some(format!(
                    "the run {}: its decoders are in the Decoders menu; the panes keep what they showed",
                    run.state.describe(run.step)
                ));
            }
            self.worker.send(Job::ScanSets(vec![out]));
            return;
        }
        if run.new_decoders(REFRESH_EVERY) {
            self.worker.send(Job::ScanSets(vec![out]));
            self.results.refresh_previews();
        }
    }

    /// Start a training run (from the dialog, or resuming one); its folder joins the sets.
    pub fn start_training(&mut self, cfg: crate::train::TrainConfig, device: candle_core::Device) {
        let ctx = self.ctx.clone();
        self.results.forget_previews();
        let out = cfg.out.clone();
        if !out.starts_with(self.user.runs()) && !self.decoders.folders.contains(&out) {
            self.decoders.folders.push(out);
        }
        self.training = Some(super::training::TrainingRun::start(cfg, self.model_source.clone(), device, move || {
            ctx.request_repaint()
        }));
    }

    /// Measure the finished run in `run` against the decoders the panes show now, on its own
    /// validation photos.
    fn judge(&mut self, run: &std::path::Path) {
        let Some(set) = self.decoders.set(run) else { return };
        let crate::decoder_sets::Origin::Run { record, .. } = &set.origin else { return };
        if record.val_files.is_empty() {
            self.note = Some(format!(
                "{} finished; it had no validation photos to compare on, so the panes keep their decoders: pick it in the Decoders menu",
                set.label()
            ));
            return;
        }
        let pairs: Vec<(Layer, Kind, Option<std::path::PathBuf>)> = set
            .held
            .iter()
            .filter(|h| h.meta.is_ok())
            .map(|h| (h.layer, h.kind, self.decoders.shown(h.layer, h.kind).map(|s| s.dir.clone())))
            .filter(|(_, _, current)| current.as_deref() != Some(run))
            .collect();
        if pairs.is_empty() {
            return;
        }
        self.note = Some(format!(
            "{} finished: comparing it with the decoders on screen on its validation photos…",
            set.label()
        ));
        let photos = record.val_files.clone();
        self.worker.send(Job::Judge { run: run.to_path_buf(), photos, pairs });
    }

    /// A finished run's decoders take over the panes whose decoders they beat on the same photos.
    fn on_judged(&mut self, run: &std::path::Path, photos: usize, verdicts: Vec<Verdict>) {
        let Some(label) = self.decoders.set(run).map(|s| s.label()) else { return };
        let mut won = Vec::new();
        let mut lost = Vec::new();
        for v in &verdicts {
            let theirs = match &v.current {
                Some((dir, p)) => {
                    let name = self.decoders.set(dir).map(|s| s.label()).unwrap_or_else(|| dir.display().to_string());
                    format!("{name}'s {p:.1} dB")
                }
                None => "nothing before".into(),
            };
            let line = format!("{} {} {:.1} dB against {theirs}", v.layer, v.kind.label(), v.run_psnr);
            if v.current.as_ref().is_none_or(|(_, p)| v.run_psnr > *p) {
                self.decoders.choose(v.layer, v.kind, run);
                won.push(line);
            } else {
                lost.push(line);
            }
        }
        let mut parts = Vec::new();
        if !won.is_empty() {
            parts.push(format!("now shown: {} (Decoders menu to switch back)", won.join(", ")));
        }
        if !lost.is_empty() {
            parts.push(format!("kept the decoders on screen: {}", lost.join(", ")));
        }
        self.note = Some(format!("{label} finished, on its {photos} validation photos: {}", parts.join("; ")));
    }
}
