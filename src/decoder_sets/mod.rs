//! Decoder sets: the folders decoders come from (the bundled ones, one folder per training run,
//! folders the user opened), what each holds (read from the files' headers, not their weights),
//! and how a picture names the decoder it came from. The app lets the user pick a set per layer
//! and kind; the CLI takes several `--decoders` folders to compare them on the same photos.

mod user;

pub use user::{Forgotten, UserData};

use crate::model::decoder_file::{decoder_file_name, read_decoder_meta};
use crate::model::{decoder_path, Arch, DecoderMeta, Kind, Layer};
use crate::train::record::{local_time, RunRecord, RunState};
use std::path::{Path, PathBuf};

/// Where a set came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The decoders that come with layerinv (`weights/`).
    Bundled,
    /// A training run's folder, with its record; `live` while a run is writing to it.
    Run { record: Box<RunRecord>, live: bool },
    /// What earlier versions of the app trained into, with no record of the runs.
    Earlier,
    /// Any other folder of decoders.
    Folder,
}

/// One decoder file of a set: its record, or why it cannot serve this encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub layer: Layer,
    pub kind: Kind,
    pub meta: std::result::Result<DecoderMeta, String>,
}

/// A folder of decoders and what it holds for one encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct SetInfo {
    pub dir: PathBuf,
    /// The architecture of the encoder it was read for.
    pub arch: Arch,
    pub origin: Origin,
    /// The decoder files present, in the architecture's tap order, kinds in [`Kind::ALL`] order.
    pub held: Vec<Held>,
    /// Why the folder or its run record could not be read.
    pub problem: Option<String>,
}

impl SetInfo {
    /// What `dir` holds for the encoder `arch`/`fingerprint` (decoder headers only); `user`
    /// tells the earlier versions' folder.
    pub fn read(dir: &Path, arch: Arch, fingerprint: &str, user: &UserData) -> Self {
        let (origin, problem) = if is_bundled(dir) {
            (Origin::Bundled, None)
        } else if dir == user.earlier() {
            (Origin::Earlier, None)
        } else {
            match RunRecord::load(dir) {
                Ok(Some(record)) => (Origin::Run { record: Box::new(record), live: RunRecord::is_live(dir) }, None),
                Ok(None) => (Origin::Folder, None),
                Err(e) => (Origin::Folder, Some(e.to_string())),
            }
        };
        let problem = problem.or_else(|| (!dir.is_dir()).then(|| format!("{}: no such folder", dir.display())));
        let mut held = Vec::new();
        for tap in arch.taps() {
            let layer = tap.layer();
            for kind in Kind::ALL {
                let path = decoder_path(dir, arch, layer, kind);
                if !path.is_file() {
                    continue;
                }
                let meta = read_decoder_meta(&path)
                    .and_then(|m| {
                        m.check_decoder(&path, arch, tap, kind)?;
                        m.check_encoder(&path, fingerprint)?;
                        Ok(m)
                    })
                    .map_err(|e| e.to_string());
                held.push(Held { layer, kind, meta });
            }
        }
        Self { dir: dir.to_path_buf(), arch, origin, held, problem }
    }

    /// The decoder for `layer`/`kind` when the set has a usable one.
    pub fn usable(&self, layer: Layer, kind: Kind) -> Option<&DecoderMeta> {
        self.held.iter().find(|h| h.layer == layer && h.kind == kind).and_then(|h| h.meta.as_ref().ok())
    }

    /// Whether the set may take over a pane without being picked: bundled decoders and finished
    /// runs; never a cancelled, failed or unfinished run, nor a folder nobody picked.
    pub fn finished(&self) -> bool {
        match &self.origin {
            Origin::Bundled => true,
            Origin::Run { record, live } => record.state == RunState::Finished && !live,
            Origin::Earlier | Origin::Folder => false,
        }
    }

    pub fn is_bundled(&self) -> bool {
        self.origin == Origin::Bundled
    }

    /// The set's name in titles: "bundled", "yours: 2026-12-04 14:02", "folder my_decoders".
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Bundled => "bundled".into(),
            Origin::Run { record, .. } => format!("yours: {}", local_time(record.started)),
            Origin::Earlier => "yours: earlier runs".into(),
            Origin::Folder => format!("folder {}", folder_name(&self.dir)),
        }
    }

    /// The set in a menu: its label, the layers it holds, how its run stands.
    pub fn summary(&self) -> String {
        let layers = self.layers();
        let holds = if layers.is_empty() { "no usable decoders".to_string() } else { Layer::join(&layers, ", ") };
        match &self.origin {
            Origin::Run { record, live } => format!("{} · {holds} · {}", self.label(), record.progress(*live)),
            _ => format!("{} · {holds}", self.label()),
        }
    }

    /// What a pane showing this set's `layer`/`kind` decoder says of it: "bundled",
    /// "yours: 2026-12-04 14:02, step 60/500 (cancelled), val 16.1 dB".
    pub fn note(&self, layer: Layer, kind: Kind) -> String {
        let Some(m) = self.usable(layer, kind) else { return self.label() };
        let val = m.val_psnr.map(|p| format!(", val {p:.1} dB")).unwrap_or_default();
        match &self.origin {
            Origin::Bundled => self.label(),
            Origin::Run { record, live } => {
                let state = match record.state {
                    RunState::Running if *live => "training",
                    RunState::Running => "unfinished",
                    s => s.name(),
                };
                format!("{}, step {}/{} ({state}){val}", self.label(), m.steps, record.settings.steps)
            }
            Origin::Earlier | Origin::Folder => format!("{}, {} steps{val}", self.label(), m.steps),
        }
    }

    /// The decoder's full record, for a tooltip.
    pub fn record(&self, layer: Layer, kind: Kind) -> Option<String> {
        let m = self.usable(layer, kind)?;
        let val = m.val_psnr.map(|p| format!(" · validation {p:.1} dB")).unwrap_or_default();
        let mut out = format!(
            "{} {layer} decoder, {}: {}{val} · objective {} · width {}\n{}",
            kind.label(),
            self.label(),
            m.training(),
            m.objective.name(),
            m.spec.width,
            decoder_path(&self.dir, m.spec.arch, layer, kind).display()
        );
        if let Origin::Run { record, live } = &self.origin {
            out += &format!(
                "\nrun: {} · layers {} · photos {}",
                record.progress(*live),
                Layer::join(&record.settings.layers, ", "),
                record.settings.data.display()
            );
        }
        Some(out)
    }

    /// Why `layer`/`kind` is not usable from this set: what is wrong with its file, or that
    /// there is none, with the command that makes it.
    pub fn why_not(&self, layer: Layer, kind: Kind) -> String {
        match self.held.iter().find(|h| h.layer == layer && h.kind == kind) {
            Some(Held { meta: Err(e), .. }) => e.clone(),
            _ => format!(
                "no {layer} {kind} decoder in {} ({} is missing); make it with {}",
                self.dir.display(),
                decoder_file_name(self.arch, layer, kind),
                train_command(&self.dir, &[layer], &[kind])
            ),
        }
    }

    /// Mark `layer`/`kind`'s file as unusable for `why` (its header was fine, its weights were
    /// not).
    pub fn mark_unusable(&mut self, layer: Layer, kind: Kind, why: String) {
        if let Some(h) = self.held.iter_mut().find(|h| h.layer == layer && h.kind == kind) {
            h.meta = Err(why);
        }
    }

    /// Whether the folder has no file at all for `layer`/`kind` (rather than one it cannot use).
    fn lacks(&self, layer: Layer, kind: Kind) -> bool {
        !self.held.iter().any(|h| h.layer == layer && h.kind == kind)
    }

    /// The kinds with a usable decoder for `layer`, in [`Kind::ALL`]'s order.
    pub fn kinds_at(&self, layer: Layer) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|&k| self.usable(layer, k).is_some()).collect()
    }

    /// Layers with at least one usable decoder, in the encoder's order.
    pub fn layers(&self) -> Vec<Layer> {
        let mut out: Vec<Layer> = Vec::new();
        for h in self.held.iter().filter(|h| h.meta.is_ok()) {
            if !out.contains(&h.layer) {
                out.push(h.layer);
            }
        }
        out
    }

    /// Why `layer` cannot be shown with any kind, or `None` when some kind can show it.
    pub fn unavailable_reason(&self, layer: Layer) -> Option<String> {
        if !self.kinds_at(layer).is_empty() {
            return None;
        }
        if Kind::ALL.iter().all(|&k| self.lacks(layer, k)) {
            return Some(format!(
                "no {layer} decoders in {}; make them with {}",
                self.dir.display(),
                train_command(&self.dir, &[layer], &Kind::ALL)
            ));
        }
        // The first kind that has a file it cannot use.
        Kind::ALL.iter().find(|&&k| !self.lacks(layer, k)).map(|&k| self.why_not(layer, k))
    }

    /// Over `layers` (each of which some kind can show), what the other kinds lack: a line per
    /// kind whose decoders are missing ("no upconv decoders for pool1, pool2 in DIR; make them
    /// with `…`"), and a line per decoder file that cannot be used.
    pub fn missing(&self, layers: &[Layer]) -> Vec<String> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let mut absent = Vec::new();
            for &l in layers {
                if self.usable(l, kind).is_some() {
                    continue;
                }
                if self.lacks(l, kind) {
                    absent.push(l);
                } else {
                    out.push(self.why_not(l, kind));
                }
            }
            if !absent.is_empty() {
                out.push(format!(
                    "no {kind} decoders for {} in {}; make them with {}",
                    Layer::join(&absent, ", "),
                    self.dir.display(),
                    train_command(&self.dir, &absent, &[kind])
                ));
            }
        }
        out
    }
}

/// How to make the missing decoder(s) of the set in `dir`: the training command, quoted. Into
/// `dir` itself, except for the bundled folder, which is the program's own (read-only where it is
/// installed): those go to a folder of the user's, shown beside the bundled ones with
/// `--decoders`.
pub fn train_command(dir: &Path, layers: &[Layer], kinds: &[Kind]) -> String {
    let kinds: Vec<&str> = kinds.iter().map(Kind::name).collect();
    let layer = Layer::join(layers, ",");
    let command = |out: &Path| {
        format!(
            "`layerinv train --data <photos folder> --layers {layer} --kinds {} --out {}`",
            kinds.join(","),
            out.display()
        )
    };
    if is_bundled(dir) {
        let mine = Path::new("decoders");
        format!("{}, then add `--decoders {}`", command(mine), mine.display())
    } else {
        command(dir)
    }
}

/// The title name of the set in `dir` among `sets` ([`set_labels`]), or the folder where it is
/// not one of them.
pub fn set_label(sets: &[&SetInfo], dir: &Path) -> String {
    match sets.iter().position(|s| s.dir == dir) {
        Some(i) => set_labels(sets).swap_remove(i),
        None => dir.display().to_string(),
    }
}

/// The sets' names ([`SetInfo::label`]), each with its folder's path added where two sets share
/// a name.
pub fn set_labels(sets: &[&SetInfo]) -> Vec<String> {
    let labels: Vec<String> = sets.iter().map(|s| s.label()).collect();
    labels
        .iter()
        .zip(sets)
        .map(|(l, s)| {
            if labels.iter().filter(|m| *m == l).count() > 1 {
                format!("{l} ({})", s.dir.display())
            } else {
                l.clone()
            }
        })
        .collect()
}

fn folder_name(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// Whether `dir` is the bundled decoders' folder.
pub fn is_bundled(dir: &Path) -> bool {
    let bundled = crate::model::source::weights_dir();
    dir == bundled || dir.canonicalize().ok().is_some_and(|d| Some(d) == bundled.canonicalize().ok())
}
