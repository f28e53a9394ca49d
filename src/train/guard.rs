//! The divergence guard: each decoder of a run keeps, in memory, its last state whose loss was
//! healthy (weights, Adam's moments and step count); a loss that is not finite or that rises far
//! above its recent losses rolls the decoder back to that state with half the learning rate.
//! After [`MAX_ROLLBACKS`] rollbacks the decoder stops, left at its last good state.
//!
//! "Far above" is, for [`PERSIST`] steps in a row, [`RISE`] times the median of the last [`WINDOW`] healthy losses, not their
//! minimum: a batch of a few flat-sky crops can score a tenth of a textured one, so the minimum
//! of a few hundred small batches sits far below what the decoder typically does, while a
//! diverging decoder's loss leaves the median by orders of magnitude within a few steps (the
//! up-conv pool3 run that asked for this guard: 0.11 → 9.2 → 6,332).
//!
//! Two ways a diverging decoder slipped past that rule (a learning rate of 10,000 on tiny crops):
//! - a loss that climbs drags the median up with it: SWWAE's went from 0.04 to 118 at step 10
//!   and 768 at step 40 with no rollback, its high steps never three in a row and the ones
//!   between them joining the median. So the typical loss is the median, or the lowest median
//!   the decoder has had, whichever is lower: a training loss falls, so for a healthy decoder
//!   the two agree;
//! - after a rollback, a loss that alternates above and below the limit never stays high three
//!   steps in a row (SAE ended at about 45 times its usual loss after three rollbacks). A decoder
//!   that has diverged once is watched closer: [`PERSIST`] high steps among the last
//!   [`PERSIST_WITHIN`] count.

use super::events::DecoderId;
use super::step::{DecoderTrainer, Snapshot};
use crate::error::Result;
use std::collections::VecDeque;

/// A loss this many times the median of the recent ones counts as diverged.
pub const RISE: f32 = 10.0;
/// How many of the latest healthy losses the median is taken over.
pub const WINDOW: usize = 200;
/// Steps between two candidate snapshots.
pub const SNAPSHOT_EVERY: u64 = 20;
/// Steps in a row whose loss must be that high before it counts as diverged (a single small batch
/// of textured crops can score ten times a flat one; a diverging decoder stays up). A loss that is
/// not finite counts at once.
pub const PERSIST: u32 = 3;
/// After a rollback: high steps count when [`PERSIST`] of the last this many are high, in a row
/// or not.
pub const PERSIST_WITHIN: usize = 5;
/// Rollbacks after which the decoder stops.
pub const MAX_ROLLBACKS: u32 = 4;
/// Below this many recent losses (a fresh or reset history) the median is a poor guide to batch
/// noise, so only a rise of [`EARLY_RISE`] times it counts; non-finite losses always count.
const MIN_HISTORY: usize = 5;
pub const EARLY_RISE: f32 = 100.0;

/// What one step's loss says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Healthy,
    /// Far above the recent median, fewer than [`PERSIST`] steps in a row: the step stands, the
    /// loss stays out of the median and confirms no snapshot.
    Suspect,
    /// The loss is not finite or [`RISE`] times above `typical`: the median of the recent losses,
    /// or the lowest median the decoder has had, whichever is lower.
    Diverged {
        typical: f32,
    },
}

/// One decoder's guard.
#[derive(Default)]
pub struct Guard {
    recent: VecDeque<f32>,
    /// The last state confirmed good: its loss was healthy.
    good: Option<Snapshot>,
    /// A state taken before a step, confirmed good when that step's loss is healthy (the loss of
    /// a step is computed with the weights before its update).
    pending: Option<Snapshot>,
    /// Whether each of the latest steps (at most [`PERSIST_WITHIN`]) was far above the typical
    /// loss, newest last.
    highs: VecDeque<bool>,
    /// The lowest median of the recent losses so far (once there were enough of them).
    lowest: Option<f32>,
    pub rollbacks: u32,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    /// The step whose loss diverged (1-based, as progress counts).
    pub step: u64,
    pub loss: f32,
    /// The decoder's usual loss: the median of its recent healthy losses, or the lowest such
    /// median it has had.
    pub typical: f32,
    /// The step the decoder went back to.
    pub back_to: u64,
    /// The decoder's learning-rate multiplier from now on ([`DecoderTrainer::lr_scale`]).
    pub lr_scale: f64,
    /// Rollbacks of this decoder so far, this one included.
    pub count: u32,
}

/// A loss (or a ratio of losses) for a message: three decimals up to 10,000, else "1.2e12".
pub fn fmt_loss(v: f32) -> String {
    if v.is_finite() && v.abs() >= 1e4 {
        format!("{v:.1e}")
    } else if v.is_finite() && v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

impl Rollback {
    /// "pool3 upconv decoder diverged at step 48 (loss 9.2, 84× its recent median 0.11): rolled
    /// back to step 40, learning rate halved to 5.0e-4 (rollback 1 of at most 4)".
    pub fn describe(&self, id: &DecoderId, lr: f64) -> String {
        let loss = if self.loss.is_finite() {
            format!(
                "loss {}, {}× its usual {}",
                fmt_loss(self.loss),
                fmt_loss(self.loss / self.typical),
                fmt_loss(self.typical)
            )
        } else {
            format!("loss {}", self.loss)
        };
        format!(
            "{id} decoder diverged at step {} ({loss}): rolled back to step {}, learning rate halved to {lr:.1e} (rollback {} of at most {MAX_ROLLBACKS})",
            self.step, self.back_to, self.count
        )
    }
}

impl Guard {
    /// Before a step: take a candidate snapshot when one is due (the first step, then every
    /// [`SNAPSHOT_EVERY`] steps).
    pub fn before_step(&mut self, trainer: &DecoderTrainer) -> Result<()> {
        let due = match &self.good {
            None => true,
            Some(g) => trainer.steps >= g.steps + SNAPSHOT_EVERY,
        };
        if due && self.pending.as_ref().is_none_or(|p| p.steps != trainer.steps) {
            self.pending = Some(trainer.snapshot()?);
        }
        Ok(())
    }

    /// Judge a step's loss; a healthy one joins the recent losses and confirms a pending
    /// snapshot taken before this step.
    pub fn judge(&mut self, loss: f32, trainer_steps_before: u64) -> Verdict {
        let median = self.median();
        let typical = self.lowest.map_or(median, |l| l.min(median));
        let rise = if self.recent.len() >= MIN_HISTORY { RISE } else { EARLY_RISE };
        let high = !loss.is_finite() || loss > rise * typical;
        self.highs.push_back(high);
        if self.highs.len() > PERSIST_WITHIN {
            self.highs.pop_front();
        }
        if high {
            self.pending = None;
            // Before any rollback, PERSIST steps in a row; after one, any PERSIST of the last
            // PERSIST_WITHIN.
            let highs = if self.rollbacks == 0 {
                self.highs.iter().rev().take_while(|&&h| h).count()
            } else {
                self.highs.iter().filter(|&&h| h).count()
            };
            let persists = highs >= PERSIST as usize;
            if !loss.is_finite() || persists {
                self.highs.clear();
                return Verdict::Diverged { typical };
            }
            return Verdict::Suspect;
        }
        self.recent.push_back(loss);
        if self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
        if self.recent.len() >= MIN_HISTORY {
            let m = self.median();
            self.lowest = Some(self.lowest.map_or(m, |l| l.min(m)));
        }
        if self.pending.as_ref().is_some_and(|p| p.steps == trainer_steps_before) {
            self.good = self.pending.take();
        }
        Verdict::Healthy
    }

    /// The median of the recent losses (infinite while there are none).
    fn median(&self) -> f32 {
        let mut v: Vec<f32> = self.recent.iter().copied().collect();
        if v.is_empty() {
            return f32::INFINITY;
        }
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    }

    /// Forget the recent losses (the loss changes meaning: `layerwise` starts its fine-tune).
    pub fn reset_history(&mut self) {
        self.recent.clear();
        self.lowest = None;
    }

    /// Put `trainer` back to the last good state with half the learning rate. `None` when there
    /// is no good state to go back to.
    pub fn roll_back(
        &mut self,
        trainer: &mut DecoderTrainer,
        step: u64,
        loss: f32,
        typical: f32,
    ) -> Result<Option<Rollback>> {
        let Some(good) = &self.good else { return Ok(None) };
        trainer.restore(good)?;
        trainer.lr_scale *= 0.5;
        self.rollbacks += 1;
        Ok(Some(Rollback {
            step,
            loss,
            typical,
            back_to: good.steps,
            lr_scale: trainer.lr_scale,
            count: self.rollbacks,
        }))
    }

    /// Whether the decoder has rolled back as often as it may.
    pub fn exhausted(&self) -> bool {
        self.rollbacks >= MAX_ROLLBACKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_read_well_in_messages() {
        assert_eq!(fmt_loss(0.1234), "0.123");
        assert_eq!(fmt_loss(84.4), "84");
        assert_eq!(fmt_loss(1.2118e13), "1.2e13");
        assert_eq!(fmt_loss(f32::NAN), "NaN");
    }

    #[test]
    fn a_rise_of_ten_times_the_recent_median_or_a_nan_diverges() {
        let mut g = Guard::default();
        let judge = |g: &mut Guard, loss: f32| g.judge(loss, 0);
        // Too few losses for the median to say much: only a hundredfold rise counts; a NaN always.
        assert_eq!(judge(&mut g, 1.0), Verdict::Healthy);
        assert_eq!(judge(&mut g, 150.0), Verdict::Suspect);
        assert_eq!(judge(&mut g, 50.0), Verdict::Healthy);
        assert!(matches!(judge(&mut g, f32::NAN), Verdict::Diverged { .. }));
        for _ in 0..8 {
            assert_eq!(judge(&mut g, 0.5), Verdict::Healthy);
        }
        // A lucky batch far below the others does not make the typical loss look diverged.
        assert_eq!(judge(&mut g, 0.01), Verdict::Healthy);
        assert_eq!(judge(&mut g, 4.0), Verdict::Healthy);
        // One or two high steps are a hard batch; the third in a row is divergence.
        assert_eq!(judge(&mut g, 5.5), Verdict::Suspect);
        assert_eq!(judge(&mut g, 0.6), Verdict::Healthy);
        assert_eq!(judge(&mut g, 5.5), Verdict::Suspect);
        assert_eq!(judge(&mut g, 60.0), Verdict::Suspect);
        assert_eq!(judge(&mut g, 600.0), Verdict::Diverged { typical: 0.5 });
        assert!(matches!(judge(&mut g, f32::INFINITY), Verdict::Diverged { .. }));
        // A loss that climbs drags the median with it, not the lowest median: after WINDOW steps
        // at 4.0 (each under ten times 0.5) the median is 4.0, yet 6.0 is twelve times 0.5.
        for _ in 0..WINDOW {
            assert_eq!(judge(&mut g, 4.0), Verdict::Healthy);
        }
        assert_eq!(judge(&mut g, 6.0), Verdict::Suspect);
        assert_eq!(judge(&mut g, 6.0), Verdict::Suspect);
        assert_eq!(judge(&mut g, 6.0), Verdict::Diverged { typical: 0.5 });
        // A new objective (layerwise's fine-tune) starts a new history.
        g.reset_history();
        assert_eq!(judge(&mut g, 1e6), Verdict::Healthy);
    }

    /// Before a rollback, high steps must come three in a row; after one, three of the last five.
    #[test]
    fn after_a_rollback_three_high_steps_in_five_diverge() {
        let alternate = |g: &mut Guard| -> Vec<Verdict> {
            for _ in 0..10 {
                assert_eq!(g.judge(1.0, 0), Verdict::Healthy);
            }
            [50.0, 1.0, 50.0, 1.0, 50.0].into_iter().map(|l| g.judge(l, 0)).collect()
        };
        let mut fresh = Guard::default();
        assert!(alternate(&mut fresh).iter().all(|v| *v != Verdict::Diverged { typical: 1.0 }));
        let mut watched = Guard { rollbacks: 1, ..Guard::default() };
        assert_eq!(alternate(&mut watched).last(), Some(&Verdict::Diverged { typical: 1.0 }));
    }
}
