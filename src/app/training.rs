//! A training run started from the app: the trainer on its own thread, its events gathered into
//! loss curves and progress for the training panel.

use crate::model::ModelSource;
use crate::train::{train, CancelToken, DecoderId, Event, TrainConfig};
use candle_core::Device;
use eframe::egui;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

enum Msg {
    Event(Event),
    Done(std::result::Result<(), String>),
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Running,
    Finished,
    Cancelled,
    Failed(String),
}

impl RunState {
    /// "finished at step 500", "was cancelled at step 60", "failed at step 60: why".
    pub fn describe(&self, step: u64) -> String {
        match self {
            RunState::Running => format!("is at step {step}"),
            RunState::Finished => format!("finished at step {step}"),
            RunState::Cancelled => format!("was cancelled at step {step}"),
            RunState::Failed(e) => format!("failed at step {step}: {e}"),
        }
    }
}

/// A run in the background. Dropping it cancels the run, which saves a checkpoint, and waits.
pub struct TrainingRun {
    pub cfg: TrainConfig,
    cancel: CancelToken,
    rx: Receiver<Msg>,
    thread: Option<JoinHandle<()>>,
    pub state: RunState,
    /// Training loss per decoder: `[step, loss]`.
    pub curves: Vec<(DecoderId, Vec<[f64; 2]>)>,
    /// Latest validation PSNR per decoder.
    pub val_psnr: Vec<(DecoderId, f64)>,
    /// Decoders the latest validation found collapsed, with how it was measured.
    pub collapsed: Vec<(DecoderId, String)>,
    /// Every rollback of the divergence guard: the decoder, the step whose loss diverged, what
    /// happened.
    pub rollbacks: Vec<(DecoderId, u64, String)>,
    pub step: u64,
    pub images_per_s: f64,
    pub eta_s: f64,
    pub skipped: usize,
    /// Set when a checkpoint was written since [`Self::new_decoders`] last said so.
    checkpoint: bool,
    /// When [`Self::new_decoders`] last said so.
    last_refresh: Option<Instant>,
    /// The training thread has ended (its run record is written).
    done: bool,
    pub messages: Vec<String>,
}

impl TrainingRun {
    /// Load the model on the training thread and train; `wake` is called after each event.
    pub fn start(cfg: TrainConfig, model: String, device: Device, wake: impl Fn() + Send + 'static) -> Self {
        let (tx, rx) = channel();
        let cancel = CancelToken::default();
        let (c2, cfg2) = (cancel.clone(), cfg.clone());
        let thread = std::thread::Builder::new()
            .name("layerinv-trainer".into())
            .spawn(move || {
                let result = ModelSource::parse(&model).load(&device).and_then(|enc| {
                    let mut sink = |e: &Event| {
                        let _ = tx.send(Msg::Event(e.clone()));
                        wake();
                    };
                    train(&enc, &cfg2, &mut sink, &c2)
                });
                let _ = tx.send(Msg::Done(result.map(|_| ()).map_err(|e| e.to_string())));
                wake();
            })
            .ok();
        let mut run = Self {
            cfg,
            cancel,
            rx,
            thread,
            state: RunState::Running,
            curves: Vec::new(),
            val_psnr: Vec::new(),
            collapsed: Vec::new(),
            rollbacks: Vec::new(),
            step: 0,
            images_per_s: 0.0,
            eta_s: 0.0,
            skipped: 0,
            checkpoint: false,
            last_refresh: None,
            done: false,
            messages: Vec::new(),
        };
        if run.thread.is_none() {
            run.state = RunState::Failed("could not start the training thread".into());
            run.done = true;
        }
        run
    }

    /// Take in whatever the trainer reported since the last call.
    pub fn poll(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Event(e) => self.apply(e),
                Msg::Done(Ok(())) => {
                    self.done = true;
                    if self.state == RunState::Running {
                        self.state = RunState::Finished;
                    }
                }
                Msg::Done(Err(e)) => {
                    self.done = true;
                    self.state = RunState::Failed(e);
                }
            }
        }
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::Started { decoders, .. } => {
                self.curves = decoders.into_iter().map(|(id, _)| (id, Vec::new())).collect();
            }
            Event::Skipped(s) => {
                self.skipped += 1;
                self.messages.push(format!("skipped {}: {}", s.path.display(), s.error));
            }
            Event::Note(note) => self.messages.push(note),
            Event::Step { step, losses, images_per_s, eta_s, .. } => {
                self.step = step;
                self.images_per_s = images_per_s;
                self.eta_s = eta_s;
                for (id, loss) in losses {
                    if let Some((_, c)) = self.curves.iter_mut().find(|(i, _)| *i == id) {
                        c.push([step as f64, loss as f64]);
                    }
                }
            }
            Event::Validation { results, .. } => {
                self.collapsed.clear();
                self.val_psnr = results.into_iter().map(|r| (r.id, r.psnr)).collect();
            }
            Event::Collapsed { id, why, .. } => self.collapsed.push((id, why)),
            Event::RolledBack { id, rollback, lr } => {
                let text = rollback.describe(&id, lr);
                self.rollbacks.push((id, rollback.step, text));
            }
            Event::Checkpoint { .. } => self.checkpoint = true,
            Event::DecoderFailed { id, error } => self.messages.push(format!("{id} stopped: {error}")),
            Event::Finished { cancelled, .. } => {
                self.checkpoint = true;
                if cancelled {
                    self.state = RunState::Cancelled;
                }
            }
        }
    }

    /// Whether the training thread is still at work (a cancelled run is until it has saved).
    pub fn is_running(&self) -> bool {
        !self.done
    }

    /// Whether new decoder files were written since the last call.
    /// Whether the run wrote new decoder files since this last said so, at most once per `every`
    /// (a checkpoint in between is reported when `every` has passed).
    pub fn new_decoders(&mut self, every: Duration) -> bool {
        let due = self.last_refresh.is_none_or(|t| t.elapsed() >= every);
        if !(self.checkpoint && due) {
            return false;
        }
        self.checkpoint = false;
        self.last_refresh = Some(Instant::now());
        true
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn out_dir(&self) -> PathBuf {
        self.cfg.out.clone()
    }
}

impl Drop for TrainingRun {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TrainingRun {
    /// The training panel: progress, validation PSNR, collapse warnings, loss curves, Cancel.
    /// Returns whether the user closed the panel (of a run that has ended).
    pub fn ui(&mut self, ui: &mut egui::Ui) -> bool {
        let run = &*self;
        let mut cancel = false;
        let mut dismiss = false;
        ui.horizontal(|ui| {
            ui.strong("Training");
            let state = match &run.state {
                RunState::Running => format!(
                    "step {}/{} · {:.1} img/s · {} · ETA {}",
                    run.step,
                    run.cfg.steps,
                    run.images_per_s,
                    run.cfg.precision.name(),
                    fmt_secs(run.eta_s)
                ),
                RunState::Finished => {
                    format!("finished at step {}: decoders saved in {}", run.step, run.cfg.out.display())
                }
                RunState::Cancelled => {
                    format!(
                        "cancelled at step {}: checkpoint saved (Decoders > Set details > Resume this run)",
                        run.step
                    )
                }
                RunState::Failed(e) => format!("failed: {e}"),
            };
            ui.label(state);
            if run.state == RunState::Running {
                ui.spinner();
                if ui.button("Cancel").on_hover_text("Stop after this step and save a checkpoint").clicked() {
                    cancel = true;
                }
            } else if ui.button("Close panel").clicked() {
                dismiss = true;
            }
        });
        if !run.val_psnr.is_empty() {
            let parts: Vec<String> = run.val_psnr.iter().map(|(id, p)| format!("{id} {p:.1} dB")).collect();
            ui.label(format!("validation PSNR: {}", parts.join(" · ")));
        }
        for (id, why) in &run.collapsed {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {id} decoder {why}"));
        }
        for (_, _, what) in &run.rollbacks {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {what}"));
        }
        let warn = ui.visuals().warn_fg_color;
        if let Some(m) = run.messages.last() {
            ui.label(m.as_str());
        }
        egui_plot::Plot::new("loss-curves")
            .legend(egui_plot::Legend::default())
            .x_axis_label("step")
            .y_axis_label("log10 loss")
            .allow_scroll(false)
            .show(ui, |plot| {
                for (id, pts) in &run.curves {
                    let log: Vec<[f64; 2]> = pts.iter().filter(|p| p[1] > 0.0).map(|p| [p[0], p[1].log10()]).collect();
                    plot.line(egui_plot::Line::new(id.to_string(), log));
                }
                // Each rollback: a dashed line at the step whose loss diverged.
                for (id, step, _) in &run.rollbacks {
                    plot.vline(
                        egui_plot::VLine::new(format!("rollback: {id}"), *step as f64)
                            .color(warn)
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                }
            });
        if cancel {
            run.cancel();
        }
        dismiss
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}
