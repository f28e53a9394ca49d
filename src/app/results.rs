//! What the worker computed for the photos on screen, and what it is computing: reconstructions
//! (by the decoders the panes show), training previews and channel maps. Kept until the model, the
//! photo's decoders or the run change; the app asks for what is missing.

use super::shown::{Channels, Key, Rebuilt};
use super::worker::Variant;
use crate::model::Layer;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::path::PathBuf;

/// Masked or transplanted reconstructions kept per photo and layer besides the plain one.
const KEEP_VARIANTS: usize = 4;

/// A training preview's place: photo id, layer, variant of the code.
pub type PreviewAt = (u64, Layer, Variant);

/// A channel map's place: photo id, layer.
pub type ChannelsAt = (u64, Layer);

#[derive(Default)]
pub struct Results {
    rebuilt: HashMap<Key, Result<Rebuilt, String>>,
    pending: HashSet<Key>,
    /// The newest reconstruction by the running run's decoders, and the refresh it was asked in.
    previews: HashMap<PreviewAt, (u64, Rebuilt)>,
    previews_pending: HashSet<PreviewAt>,
    /// Counts the preview's refreshes (a new checkpoint was read).
    preview_round: u64,
    channels: HashMap<ChannelsAt, Result<Channels, String>>,
    channels_pending: HashSet<ChannelsAt>,
}

impl Results {
    /// Forget everything (another model, another device).
    pub fn forget(&mut self) {
        *self = Self { preview_round: self.preview_round, ..Self::default() };
    }

    /// Pictures made with decoders from `dirs` (a run wrote new ones, or the set went) are stale;
    /// the others stay.
    pub fn forget_decoded_by(&mut self, dirs: &[PathBuf]) {
        self.rebuilt.retain(|k, _| !k.3.iter().any(|s| dirs.contains(&s.dir)));
    }

    pub fn rebuilt(&self, key: &Key) -> Option<&Result<Rebuilt, String>> {
        self.rebuilt.get(key)
    }

    pub fn is_pending(&self, key: &Key) -> bool {
        self.pending.contains(key)
    }

    /// Whether `key` is to be asked for (neither known nor asked); it counts as asked from now.
    pub fn ask(&mut self, key: &Key) -> bool {
        ask_once(&self.rebuilt, &mut self.pending, key)
    }

    /// A reconstruction arrived, or failed. At most [`KEEP_VARIANTS`] changed codes per photo
    /// and layer: this one and any others (the cache is unordered, so not necessarily the newest;
    /// a dropped one is rebuilt by the decoders when it is asked for again).
    pub fn store(&mut self, key: Key, rebuilt: Result<Rebuilt, String>) {
        self.pending.remove(&key);
        let (id, layer, variant, _) = &key;
        if !variant.is_plain() {
            let mut others: Vec<Key> = self
                .rebuilt
                .keys()
                .filter(|(i, l, v, _)| i == id && l == layer && !v.is_plain() && v != variant)
                .cloned()
                .collect();
            others.truncate(others.len().saturating_sub(KEEP_VARIANTS - 1));
            for k in others {
                self.rebuilt.remove(&k);
            }
        }
        self.rebuilt.insert(key, rebuilt);
    }

    /// A reconstruction nobody waits for any more (its photo left the screen) is not kept.
    pub fn abandon(&mut self, key: &Key) {
        self.pending.remove(key);
    }

    /// Every reconstruction held, for the `--screenshot` run's latency report.
    pub fn all_rebuilt(&self) -> impl Iterator<Item = (&Key, &Result<Rebuilt, String>)> {
        self.rebuilt.iter()
    }

    /// How many reconstructions are held (part of texture names, so that each is new).
    pub fn len(&self) -> usize {
        self.rebuilt.len()
    }

    /// The training preview at `at`, whatever refresh it came from.
    pub fn preview(&self, at: &PreviewAt) -> Option<&Rebuilt> {
        self.previews.get(at).map(|(_, r)| r)
    }

    /// Whether the preview at `at` is to be asked for (none from this refresh, none asked).
    pub fn ask_preview(&mut self, at: &PreviewAt) -> bool {
        let fresh = self.previews.get(at).is_some_and(|(round, _)| *round == self.preview_round);
        let new = !fresh && !self.previews_pending.contains(at);
        if new {
            self.previews_pending.insert(at.clone());
        }
        new
    }

    /// A preview arrived (`Some`) or failed (`None`: the old one stays until the next refresh).
    pub fn store_preview(&mut self, at: PreviewAt, rebuilt: Option<Rebuilt>) {
        self.previews_pending.remove(&at);
        if let Some(r) = rebuilt {
            self.previews.insert(at, (self.preview_round, r));
        }
    }

    /// The running run wrote new decoders: the previews are asked for again.
    pub fn refresh_previews(&mut self) {
        self.preview_round += 1;
    }

    /// The run started or ended: no preview is current.
    pub fn forget_previews(&mut self) {
        self.previews.clear();
    }

    pub fn channels(&self, at: &ChannelsAt) -> Option<&Result<Channels, String>> {
        self.channels.get(at)
    }

    /// Whether the channel maps at `at` are to be asked for; they count as asked from now.
    pub fn ask_channels(&mut self, at: &ChannelsAt) -> bool {
        ask_once(&self.channels, &mut self.channels_pending, at)
    }

    pub fn store_channels(&mut self, at: ChannelsAt, channels: Result<Channels, String>) {
        self.channels_pending.remove(&at);
        self.channels.insert(at, channels);
    }
}

/// Whether `at` is to be asked for (neither `known` nor `pending`); it is pending from now.
fn ask_once<K: Hash + Eq + Clone, V>(known: &HashMap<K, V>, pending: &mut HashSet<K>, at: &K) -> bool {
    let new = !known.contains_key(at) && !pending.contains(at);
    if new {
        pending.insert(at.clone());
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::CodeEdit;

    fn rebuilt(seconds: f64) -> Rebuilt {
        Rebuilt { panes: Vec::new(), lost: None, seconds, encoder_ran: false }
    }

    /// The variant that keeps only channel `c` of 8.
    fn masked(c: usize) -> Variant {
        Variant {
            edit: CodeEdit { switches_of: None, keep: Some((0..8).map(|i| i == c).collect()) },
            switches_id: None,
        }
    }

    fn key(id: u64, variant: Variant) -> Key {
        (id, Layer::POOL3, variant, Vec::new())
    }

    #[test]
    fn a_reconstruction_is_asked_for_once_until_forgotten() {
        let mut r = Results::default();
        let k = key(1, Variant::default());
        assert!(r.ask(&k));
        assert!(!r.ask(&k), "pending: not asked again");
        assert!(r.is_pending(&k));
        r.store(k.clone(), Ok(rebuilt(0.5)));
        assert!(!r.is_pending(&k));
        assert!(!r.ask(&k), "known: not asked again");
        assert!(matches!(r.rebuilt(&k), Some(Ok(b)) if b.seconds == 0.5));
        r.forget();
        assert!(r.rebuilt(&k).is_none());
        assert!(r.ask(&k));
        // A photo that left the screen: its answer is dropped and it may be asked for again.
        r.abandon(&k);
        assert!(r.ask(&k));
    }

    #[test]
    fn changed_codes_are_kept_up_to_a_limit_per_photo_and_layer_and_the_plain_one_always() {
        let mut r = Results::default();
        r.store(key(1, Variant::default()), Ok(rebuilt(0.0)));
        r.store(key(2, masked(0)), Ok(rebuilt(0.0)));
        for c in 0..7 {
            r.store(key(1, masked(c)), Ok(rebuilt(c as f64)));
        }
        let changed = r.all_rebuilt().filter(|(k, _)| k.0 == 1 && !k.2.is_plain()).count();
        assert_eq!(changed, KEEP_VARIANTS);
        assert!(r.rebuilt(&key(1, masked(6))).is_some(), "the newest stays");
        assert!(r.rebuilt(&key(1, Variant::default())).is_some(), "the plain code stays");
        assert!(r.rebuilt(&key(2, masked(0))).is_some(), "another photo's stays");
    }

    #[test]
    fn a_preview_is_asked_again_after_each_refresh_and_the_old_one_shows_meanwhile() {
        let mut r = Results::default();
        let at: PreviewAt = (1, Layer::POOL1, Variant::default());
        assert!(r.ask_preview(&at));
        assert!(!r.ask_preview(&at), "pending");
        r.store_preview(at.clone(), Some(rebuilt(1.0)));
        assert!(!r.ask_preview(&at), "fresh");
        r.refresh_previews();
        assert!(r.ask_preview(&at), "a new checkpoint: asked again");
        r.store_preview(at.clone(), None);
        assert_eq!(r.preview(&at).map(|p| p.seconds), Some(1.0), "a failed refresh keeps the old picture");
        r.forget_previews();
        assert!(r.preview(&at).is_none());
    }
}
