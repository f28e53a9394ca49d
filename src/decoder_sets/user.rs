//! The user's layerinv folder: where training runs, the earlier versions' decoders and the
//! trash live, which set folders the app knows of, and forgetting a set (moved, never deleted).

use super::{folder_name, is_bundled};
use crate::error::{Error, Result};
use crate::model::Layer;
use crate::train::record::{local_time, RunRecord};
use std::path::{Path, PathBuf};

/// The user's layerinv folder, where training runs, the earlier versions' decoders and the trash
/// live: `$XDG_DATA_HOME/layerinv`, or `~/.local/share/layerinv` ([`UserData::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UserData(pub PathBuf);

impl Default for UserData {
    fn default() -> Self {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        Self(base.join("layerinv"))
    }
}

impl UserData {
    /// Where each training run started from the app gets its own folder.
    pub fn runs(&self) -> PathBuf {
        self.0.join("runs")
    }

    /// Where forgotten sets go (moved, not deleted: move a folder back to have it again).
    pub fn trash(&self) -> PathBuf {
        self.0.join("trash")
    }

    /// The one folder earlier versions of the app trained into (kept as a set of its own).
    pub fn earlier(&self) -> PathBuf {
        self.0.join("decoders")
    }

    /// A new folder for a run started now on `layers`: `runs/2026-12-04_1402_pool3-pool4` (with
    /// `_2`, `_3`, … when a run started in the same minute).
    pub fn new_run_dir(&self, layers: &[Layer]) -> PathBuf {
        let stamp = local_time(crate::train::record::now_unix());
        let stamp: String =
            stamp.chars().take(16).map(|c| if c == ' ' { '_' } else { c }).filter(|c| *c != ':').collect();
        let base = format!("{stamp}_{}", Layer::join(layers, "-"));
        let runs = self.runs();
        let mut dir = runs.join(&base);
        let mut n = 2;
        while dir.exists() {
            dir = runs.join(format!("{base}_{n}"));
            n += 1;
        }
        dir
    }

    /// Every set folder the app knows of: the bundled one, `extra` folders (opened by the user),
    /// the earlier versions' folder when it holds decoders, and every run, newest first.
    pub fn set_dirs(&self, extra: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![crate::model::source::weights_dir()];
        let mut push = |d: PathBuf| {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        };
        for d in extra {
            push(d.clone());
        }
        let earlier = self.earlier();
        let has_decoders = |d: &Path| {
            std::fs::read_dir(d).is_ok_and(|entries| {
                entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            })
        };
        if has_decoders(&earlier) {
            push(earlier);
        }
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.runs())
            .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        runs.sort();
        runs.reverse();
        for r in runs {
            push(r);
        }
        dirs
    }

    /// Forget the set in `dir`: a folder of layerinv's own (a run's, the earlier versions') is
    /// moved to [`Self::trash`], never deleted; a folder of the user's elsewhere is only taken off
    /// the list; the bundled set and a folder a run is writing to are refused.
    pub fn forget(&self, dir: &Path) -> Result<Forgotten> {
        if is_bundled(dir) {
            return Err(Error::Unavailable("the bundled decoders cannot be forgotten".into()));
        }
        if RunRecord::is_live(dir) {
            return Err(Error::Unavailable(format!(
                "{}: a training run is writing to this folder; cancel it first",
                dir.display()
            )));
        }
        if !dir.starts_with(&self.0) {
            return Ok(Forgotten::Unlisted);
        }
        let trash = self.trash();
        std::fs::create_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
        let name = folder_name(dir);
        let mut to = trash.join(&name);
        let mut n = 2;
        while to.exists() {
            to = trash.join(format!("{name}_{n}"));
            n += 1;
        }
        std::fs::rename(dir, &to).map_err(|e| Error::io(dir, e))?;
        Ok(Forgotten::Moved(to))
    }
}

/// What forgetting a set did.
#[derive(Debug, Clone, PartialEq)]
pub enum Forgotten {
    /// The folder was moved here; move it back to have the set again.
    Moved(PathBuf),
    /// A folder of the user's own elsewhere: taken off the list, its files left where they are.
    Unlisted,
}
