//! Which decoders the panes show: the sets the worker found (bundled, each training run, folders
//! the user opened), the user's pick per layer and kind, and the Decoders menu that changes it.
//!
//! A pane shows, in this order: the `--decoders` folder of this session where it has the
//! decoder; the user's pick; the bundled decoder; the newest finished run's. A cancelled, failed
//! or unfinished run, or a folder nobody picked, is never shown unless picked. The app's actions on
//! the sets (open, forget, resume) and the training preview's sources are here too.

use super::shown::Rebuilt;
use super::state::LayerinvApp;
use super::worker::Job;
use crate::decoder_sets::{Forgotten, Origin, SetInfo};
use crate::model::{Kind, Layer};
use crate::train::record::RunState;
use eframe::egui;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::recon::Source;

/// What the user asked for in the Decoders menu.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Show this set's decoder for one layer and kind.
    Choose {
        layer: Layer,
        kind: Kind,
        dir: PathBuf,
    },
    /// Show this set's decoders wherever it has them.
    UseSet(PathBuf),
    /// Move the set to the trash folder (or take an outside folder off the list).
    Forget(PathBuf),
    /// Go on training an unfinished run.
    Resume(PathBuf),
    OpenFolder,
}

/// The decoder sets and the user's choice among them.
#[derive(Default)]
pub struct Decoders {
    /// What each known folder holds, in [`crate::decoder_sets::UserData::set_dirs`]'s order.
    pub sets: Vec<SetInfo>,
    /// Whether the worker has answered a scan for the current model.
    pub scanned: bool,
    /// The user's picks: (layer, kind) → set folder. Kept between runs.
    pub chosen: BTreeMap<(Layer, Kind), PathBuf>,
    /// `--decoders DIR`: first for this session wherever it has the decoder.
    pub pinned: Option<PathBuf>,
    /// Folders the user opened (Open decoders folder…). Kept between runs.
    pub folders: Vec<PathBuf>,
    /// A folder whose decoders become the picks once its scan arrives (just opened).
    pub adopt: Option<PathBuf>,
    /// Show a running training's newest decoders beside the chosen ones.
    pub preview: bool,
}

impl Decoders {
    pub fn set(&self, dir: &Path) -> Option<&SetInfo> {
        self.sets.iter().find(|s| s.dir == dir)
    }

    /// The title name of the set in `dir` ([`crate::decoder_sets::set_labels`]: its label, with
    /// its folder where two sets share a label).
    pub fn label(&self, dir: &Path) -> String {
        crate::decoder_sets::set_label(&self.sets.iter().collect::<Vec<_>>(), dir)
    }

    /// The folders beyond the bundled one and the runs: the pinned one and those opened.
    pub fn extra_dirs(&self) -> Vec<PathBuf> {
        self.pinned.iter().chain(&self.folders).cloned().collect()
    }

    /// Take in a scan: sets already known are replaced, new ones added in `order` (every set
    /// folder known now); sets no longer in `order` go. Returns the folders whose contents
    /// changed, appeared or went (pictures made with their decoders are stale).
    pub fn update(&mut self, scanned: Vec<SetInfo>, order: &[PathBuf]) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        for s in scanned {
            match self.sets.iter_mut().find(|k| k.dir == s.dir) {
                Some(k) if *k == s => {}
                Some(k) => {
                    changed.push(s.dir.clone());
                    *k = s;
                }
                None => {
                    changed.push(s.dir.clone());
                    self.sets.push(s);
                }
            }
        }
        changed.extend(self.sets.iter().filter(|s| !order.contains(&s.dir)).map(|s| s.dir.clone()));
        self.sets.retain(|s| order.contains(&s.dir));
        self.sets.sort_by_key(|s| order.iter().position(|d| *d == s.dir));
        self.scanned = true;
        if let Some(dir) = self.adopt.clone() {
            if self.set(&dir).is_some() {
                self.adopt = None;
                self.use_set(&dir);
            }
        }
        changed
    }

    /// The set whose decoder a `layer`/`kind` pane shows (see the module's order).
    pub fn shown(&self, layer: Layer, kind: Kind) -> Option<&SetInfo> {
        let usable = |d: &Path| self.set(d).filter(|s| s.usable(layer, kind).is_some());
        self.pinned
            .as_deref()
            .and_then(usable)
            .or_else(|| self.chosen.get(&(layer, kind)).and_then(|d| usable(d)))
            .or_else(|| self.sets.iter().find(|s| s.is_bundled() && s.usable(layer, kind).is_some()))
            .or_else(|| {
                // The newest finished run: runs come newest first.
                self.sets
                    .iter()
                    .find(|s| matches!(s.origin, Origin::Run { .. }) && s.finished() && s.usable(layer, kind).is_some())
            })
    }

    /// The source of every kind that has a decoder to show at `layer`, or `None` when none has.
    pub fn sources(&self, layer: Layer) -> Option<Vec<Source>> {
        let shown: Vec<Source> = Kind::ALL
            .iter()
            .filter_map(|&kind| self.shown(layer, kind).map(|s| Source { kind, dir: s.dir.clone() }))
            .collect();
        (!shown.is_empty()).then_some(shown)
    }

    /// Why `layer` cannot be shown, or `None` when some kind has a decoder for it.
    pub fn layer_unavailable(&self, layer: Layer) -> Option<String> {
        if !self.scanned {
            return Some("the decoders are still being looked for".into());
        }
        let missing: Vec<Kind> = Kind::ALL.into_iter().filter(|&k| self.shown(layer, k).is_none()).collect();
        (missing.len() == Kind::ALL.len()).then(|| self.why_missing(layer, &missing))
    }

    /// Why `kind` has no pane at `layer`, or `None` when it has a decoder to show.
    pub fn kind_missing(&self, layer: Layer, kind: Kind) -> Option<String> {
        (self.scanned && self.shown(layer, kind).is_none()).then(|| self.why_missing(layer, &[kind]))
    }

    /// What to do about `missing` kinds having no decoder to show at `layer`.
    fn why_missing(&self, layer: Layer, missing: &[Kind]) -> String {
        let names: Vec<&str> = missing.iter().map(Kind::label).collect();
        let unpicked: Vec<String> = self
            .sets
            .iter()
            .filter(|s| missing.iter().all(|&k| s.usable(layer, k).is_some()))
            .map(SetInfo::label)
            .collect();
        let kinds: Vec<&str> = missing.iter().map(Kind::name).collect();
        if unpicked.is_empty() {
            format!(
                "no {layer} {} decoder in any set; make it with Train > Train decoders…, or `layerinv train --data <photos folder> --layers {layer} --kinds {}`",
                names.join(" or "),
                kinds.join(",")
            )
        } else {
            format!(
                "{layer}'s {} decoders are only in runs that did not finish ({}): pick one in the Decoders menu",
                names.join(" and "),
                unpicked.join(", ")
            )
        }
    }

    /// Show `dir`'s decoder at `layer`/`kind`.
    pub fn choose(&mut self, layer: Layer, kind: Kind, dir: &Path) {
        self.chosen.insert((layer, kind), dir.to_path_buf());
    }

    /// Show `dir`'s decoders wherever it has them.
    pub fn use_set(&mut self, dir: &Path) {
        let Some(set) = self.set(dir) else { return };
        let picks: Vec<(Layer, Kind)> = set.held.iter().filter(|h| h.meta.is_ok()).map(|h| (h.layer, h.kind)).collect();
        for (layer, kind) in picks {
            self.choose(layer, kind, dir);
        }
    }

    /// Forget everything about `dir` (after its folder went to the trash or off the list).
    pub fn drop_set(&mut self, dir: &Path) {
        self.sets.retain(|s| s.dir != dir);
        self.chosen.retain(|_, d| d != dir);
        self.folders.retain(|d| d != dir);
        if self.pinned.as_deref() == Some(dir) {
            self.pinned = None;
        }
    }

    /// What a pane says of its decoder: the set's note, or why there is none.
    pub fn note(&self, source: &Source, layer: Layer) -> String {
        self.set(&source.dir).map(|s| s.note(layer, source.kind)).unwrap_or_else(|| source.dir.display().to_string())
    }

    /// A pane's tooltip: the decoder's full record.
    pub fn record(&self, source: &Source, layer: Layer) -> Option<String> {
        self.set(&source.dir)?.record(layer, source.kind)
    }

    /// The Decoders menu for the `layer` on screen. `training` is the folder a run is writing to,
    /// if any.
    pub fn menu_ui(&mut self, ui: &mut egui::Ui, layer: Layer, training: Option<&Path>) -> Option<Action> {
        let mut action = None;
        ui.label(egui::RichText::new(format!("Shown at {layer}")).strong());
        for kind in Kind::ALL {
            let shown = self.shown(layer, kind).map(|s| s.dir.clone());
            let offered: Vec<&SetInfo> = self.sets.iter().filter(|s| s.usable(layer, kind).is_some()).collect();
            ui.menu_button(format!("{} from {layer}", kind.label()), |ui| {
                if offered.is_empty() {
                    ui.label("no set has this decoder");
                }
                for s in offered {
                    let resp = ui.radio(shown.as_deref() == Some(s.dir.as_path()), s.note(layer, kind));
                    let resp = match s.record(layer, kind) {
                        Some(r) => resp.on_hover_text(r),
                        None => resp,
                    };
                    if resp.clicked() {
                        action = Some(Action::Choose { layer, kind, dir: s.dir.clone() });
                        ui.close();
                    }
                }
            });
        }
        ui.separator();
        ui.label(egui::RichText::new("Sets (click: show it wherever it has decoders)").strong());
        for s in &self.sets {
            let here = Kind::ALL.iter().all(|&k| self.shown(layer, k).is_some_and(|x| x.dir == s.dir));
            let mut resp =
                ui.add_enabled(s.held.iter().any(|h| h.meta.is_ok()), egui::Button::selectable(here, s.summary()));
            resp = resp.on_hover_text(s.dir.display().to_string());
            if let Some(p) = &s.problem {
                resp = resp.on_disabled_hover_text(p.as_str());
            }
            if resp.clicked() {
                action = Some(Action::UseSet(s.dir.clone()));
                ui.close();
            }
        }
        ui.separator();
        ui.menu_button("Set details", |ui| {
            for s in &self.sets {
                ui.menu_button(s.label(), |ui| {
                    ui.label(s.dir.display().to_string());
                    if let Origin::Run { record, live } = &s.origin {
                        ui.label(format!(
                            "run: {} · layers {} · photos {}",
                            record.progress(*live),
                            Layer::join(&record.settings.layers, ", "),
                            record.settings.data.display()
                        ));
                    }
                    for h in &s.held {
                        let line = match &h.meta {
                            Ok(_) => format!("{} {}: {}", h.layer, h.kind.label(), s.note(h.layer, h.kind)),
                            Err(e) => format!("{} {}: {e}", h.layer, h.kind.label()),
                        };
                        ui.label(line);
                    }
                    let resumable = matches!(&s.origin, Origin::Run { record, live: false }
                        if record.state != RunState::Finished);
                    if resumable
                        && ui
                            .add_enabled(training.is_none(), egui::Button::new("Resume this run"))
                            .on_disabled_hover_text("a training run is in progress")
                            .clicked()
                    {
                        action = Some(Action::Resume(s.dir.clone()));
                        ui.close();
                    }
                    if !s.is_bundled() {
                        let busy = training == Some(s.dir.as_path());
                        if ui
                            .add_enabled(!busy, egui::Button::new("Forget this set"))
                            .on_hover_text("Moves its folder to the trash folder (nothing is deleted); an outside folder only leaves the list")
                            .on_disabled_hover_text("a training run is writing to it")
                            .clicked()
                        {
                            action = Some(Action::Forget(s.dir.clone()));
                            ui.close();
                        }
                    }
                });
            }
        });
        if ui.button("Open decoders folder…").clicked() {
            action = Some(Action::OpenFolder);
            ui.close();
        }
        ui.checkbox(&mut self.preview, "Training preview beside the panes")
            .on_hover_text("While a run trains the layer on screen, show its newest decoders in a second row");
        action
    }
}

/// The app's actions on its decoder sets, and the training preview's sources.
impl LayerinvApp {
    /// Ask the worker what every known decoder folder holds (for the current model).
    pub(super) fn scan_sets(&mut self) {
        self.worker.send(Job::ScanSets(self.user.set_dirs(&self.decoders.extra_dirs())));
    }

    /// Add a folder of decoders and show its decoders wherever it has them.
    pub fn use_decoders_dir(&mut self, dir: PathBuf) {
        if !self.decoders.folders.contains(&dir) {
            self.decoders.folders.push(dir.clone());
        }
        self.decoders.adopt = Some(dir);
        self.scan_sets();
    }

    /// Do what the user picked in the Decoders menu.
    pub fn decoder_action(&mut self, action: Action) {
        match action {
            Action::Choose { layer, kind, dir } => self.decoders.choose(layer, kind, &dir),
            Action::UseSet(dir) => self.decoders.use_set(&dir),
            Action::Forget(dir) => self.forget_set(&dir),
            Action::Resume(dir) => self.resume_run(&dir),
            Action::OpenFolder => self.decoders_folder_dialog(),
        }
    }

    /// Forget a decoder set: its folder goes to the trash folder (an outside folder only leaves
    /// the list); panes that showed it fall back to the next decoder.
    pub fn forget_set(&mut self, dir: &Path) {
        let label = self.decoders.set(dir).map(|s| s.label()).unwrap_or_else(|| dir.display().to_string());
        match self.user.forget(dir) {
            Err(e) => self.last_error = Some(e.to_string()),
            Ok(done) => {
                self.decoders.drop_set(dir);
                self.note = Some(match done {
                    Forgotten::Moved(to) => {
                        format!("forgot {label}: its folder is now {} (move it back to have it again)", to.display())
                    }
                    Forgotten::Unlisted => {
                        format!("forgot {label}: {} is off the list, its files untouched", dir.display())
                    }
                });
                self.scan_sets();
            }
        }
    }

    /// Go on training the unfinished run in `dir` with its own settings.
    pub fn resume_run(&mut self, dir: &Path) {
        let cfg = crate::train::record::RunRecord::load(dir).and_then(|r| {
            Ok(r.ok_or_else(|| crate::Error::Unavailable(format!("{}: no run record to resume from", dir.display())))?
                .resume_config(dir))
        });
        match cfg {
            Ok(cfg) => self.start_training(cfg, self.device.clone()),
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }

    /// The training preview of the current photo at `layer`, when a run trains it.
    pub fn preview(&self, layer: Layer) -> Option<&Rebuilt> {
        let p = self.photo()?;
        self.preview_sources(layer)?;
        self.results.preview(&(p.id, layer, self.variant(layer)))
    }

    /// The running run's decoders at `layer` that exist yet, when the preview is on.
    pub fn preview_sources(&self, layer: Layer) -> Option<Vec<Source>> {
        let run = self.training.as_ref().filter(|r| r.is_running())?;
        if !self.decoders.preview || !run.cfg.layers.contains(&layer) {
            return None;
        }
        let out = run.out_dir();
        let set = self.decoders.set(&out)?;
        let sources: Vec<Source> = run
            .cfg
            .kinds
            .iter()
            .filter(|&&k| set.usable(layer, k).is_some())
            .map(|&kind| Source { kind, dir: out.clone() })
            .collect();
        (!sources.is_empty()).then_some(sources)
    }
}
