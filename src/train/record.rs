//! A training run's record, `run.json` in its output folder: what the run was asked to do, how
//! far it got and how it ended. It lets a decoder set say what it is ("yours: 2026-12-04 14:02,
//! step 60/500, cancelled"), the app compare a finished run with the decoders it would replace on
//! the run's own validation photos, and an unfinished run be resumed with the same settings.

use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::fsutil::{read_bounded, write_atomic};
use crate::model::Layer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record's file name in a run's output folder.
pub const RUN_RECORD: &str = "run.json";
const FORMAT: &str = "layerinv-run/1";
/// Largest record read (a few hundred validation photos, and a validation curve of about 100
/// bytes a point: 10,000 validations of 15 decoders fit).
const MAX_RECORD_BYTES: u64 = 32 << 20;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Training, or stopped without saying so (the process was killed): see
    /// [`RunRecord::is_live`].
    Running,
    /// Every decoder reached the steps asked for.
    Finished,
    Cancelled,
    Failed,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Cancelled => "cancelled",
            RunState::Failed => "failed",
        }
    }
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: String,
    /// When the run was first started (seconds since the Unix epoch); a resumed run keeps it.
    pub started: u64,
    pub state: RunState,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The step reached (the slowest decoder's).
    pub step: u64,
    /// The validation photos every decoder of the run was measured on.
    pub val_files: Vec<PathBuf>,
    /// What the run was asked to do (its folder is the record's own).
    pub settings: TrainConfig,
    /// Every validation of the run, resumed parts included, in order.
    #[serde(default)]
    pub curve: Vec<ValPoint>,
    /// Every rollback of the divergence guard, in order.
    #[serde(default)]
    pub rollbacks: Vec<RollbackPoint>,
}

/// One rollback of one decoder ([`super::guard`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPoint {
    /// The step whose loss diverged.
    pub step: u64,
    pub layer: Layer,
    pub kind: crate::model::Kind,
    /// That step's loss (`null` where it was not finite), and the median of the recent ones.
    pub loss: Option<f32>,
    pub typical: f32,
    /// The step the decoder went back to.
    pub back_to: u64,
    /// The decoder's peak learning rate from then on.
    pub lr: f64,
}

/// One decoder's validation at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValPoint {
    pub step: u64,
    pub layer: Layer,
    pub kind: crate::model::Kind,
    /// Mean squared error, 0–1 pixel units.
    pub loss: f64,
    /// Mean PSNR over the validation photos, dB.
    pub psnr: f64,
    /// Wall-clock seconds of training before this validation, over every part of a resumed run
    /// (absent in records from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secs: Option<f64>,
}

impl RunRecord {
    /// A new record for `cfg`, running, at step 0.
    pub fn new(cfg: &TrainConfig, started: u64, val_files: Vec<PathBuf>) -> Self {
        let settings = TrainConfig { out: PathBuf::new(), resume: false, ..cfg.clone() };
        Self {
            format: FORMAT.into(),
            started,
            state: RunState::Running,
            error: None,
            step: 0,
            val_files,
            settings,
            curve: Vec::new(),
            rollbacks: Vec::new(),
        }
    }

    /// Add a rollback of decoder `id` that left it at peak learning rate `lr`.
    pub fn add_rollback(&mut self, id: &super::events::DecoderId, r: &super::guard::Rollback, lr: f64) {
        self.rollbacks.push(RollbackPoint {
            step: r.step,
            layer: id.layer,
            kind: id.kind,
            loss: r.loss.is_finite().then_some(r.loss),
            typical: r.typical,
            back_to: r.back_to,
            lr,
        });
    }

    /// Add a validation's results, after `secs` seconds of training, to the curve.
    pub fn add_validation(&mut self, step: u64, secs: f64, results: &[super::events::ValResult]) {
        self.curve.extend(results.iter().map(|r| ValPoint {
            step,
            layer: r.id.layer,
            kind: r.id.kind,
            loss: r.loss,
            psnr: r.psnr,
            secs: Some(secs),
        }));
    }

    /// The seconds of training the curve has reached (0 for a new record).
    pub fn trained_secs(&self) -> f64 {
        self.curve.iter().filter_map(|p| p.secs).fold(0.0, f64::max)
    }

    /// The record in `dir`, `None` when the folder has none (a folder of decoders from elsewhere).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(RUN_RECORD);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = read_bounded(&path, "a run record", MAX_RECORD_BYTES, |h| h.first() == Some(&b'{'))?;
        let record: RunRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::bad_file(&path, format!("not a layerinv run record: {e}")))?;
        if record.format != FORMAT {
            return Err(Error::bad_file(&path, format!("run record format is {:?}, expected {FORMAT}", record.format)));
        }
        Ok(Some(record))
    }

    /// Write the record into `dir` (atomically: a crash leaves the previous one).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Unavailable(e.to_string()))?;
        write_atomic(&dir.join(RUN_RECORD), &text)
    }

    /// Whether a training run holds `dir` now (this process's or another's).
    pub fn is_live(dir: &Path) -> bool {
        crate::fsutil::folder_is_locked(dir)
    }

    /// The configuration to go on with this run in `dir` (resuming its checkpoints).
    pub fn resume_config(&self, dir: &Path) -> TrainConfig {
        TrainConfig { out: dir.to_path_buf(), resume: true, ..self.settings.clone() }
    }

    /// "finished", "cancelled at step 60 of 500", "unfinished at step 60 of 500" (stopped without
    /// saying so), "training, step 60 of 500", "failed at step 60 of 500: why".
    pub fn progress(&self, live: bool) -> String {
        let at = format!("at step {} of {}", self.step, self.settings.steps);
        match self.state {
            RunState::Finished => format!("finished, {} steps", self.step),
            RunState::Cancelled => format!("cancelled {at}"),
            RunState::Running if live => format!("training, step {} of {}", self.step, self.settings.steps),
            RunState::Running => format!("unfinished {at}"),
            RunState::Failed => format!("failed {at}: {}", self.error.as_deref().unwrap_or("unknown error")),
        }
    }
}

/// Seconds since the Unix epoch now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `unix` seconds as the user's local date and time, "2026-12-04 14:02" (UTC, marked so, where the
/// local time zone cannot be read).
pub fn local_time(unix: u64) -> String {
    #[cfg(unix)]
    {
        let t = unix as libc::time_t;
        // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if !unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min
            );
        }
    }
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Objective};

    #[test]
    fn utc_dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_426), (2025, 12, 4));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn a_record_round_trips_and_gives_back_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            TrainConfig::new("photos".into(), vec![crate::model::Layer::POOL3], Kind::ALL.to_vec(), dir.path().into());
        cfg.steps = 500;
        cfg.crop = Some(96);
        cfg.objective = Objective::All;
        let mut r = RunRecord::new(&cfg, 1_700_000_000, vec!["photos/a.png".into()]);
        r.step = 60;
        r.state = RunState::Cancelled;
        r.save(dir.path()).unwrap();
        let back = RunRecord::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, r);
        let again = back.resume_config(dir.path());
        assert_eq!((again.steps, again.crop, again.objective, again.resume), (500, Some(96), Objective::All, true));
        assert_eq!(again.kinds, Kind::ALL.to_vec());
        assert_eq!(back.progress(false), "cancelled at step 60 of 500");
        assert!(RunRecord::load(&dir.path().join("none")).unwrap().is_none());
        std::fs::write(dir.path().join(RUN_RECORD), b"{\"format\": 3}").unwrap();
        let err = RunRecord::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("run.json") && err.contains("not a layerinv run record"), "{err}");
        // A kind this version does not know is named.
        let text = serde_json::to_string(&r).unwrap().replace("\"swwae\"", "\"upside\"");
        std::fs::write(dir.path().join(RUN_RECORD), text).unwrap();
        let err = RunRecord::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("run.json") && err.contains("\"upside\"") && err.contains("sae, swwae"), "{err}");
    }
}
