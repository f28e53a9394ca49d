//! How a layer's code is changed before the decoders see it: the channels kept per layer, and
//! whose switches SWWAE decodes with. The app's part of [`crate::compare::CodeEdit`].

use super::channels_view::Action;
use super::state::LayerinvApp;
use super::worker::Variant;
use crate::compare::{ChannelSpec, CodeEdit};
use crate::model::Layer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct CodeEdits {
    /// Channels kept per layer, where not all are.
    masks: HashMap<Layer, Vec<bool>>,
    /// `--keep-channels`, until the layer's channels are known.
    pub keep_spec: Option<ChannelSpec>,
    /// Decode with this other photo's switches (id, file).
    switches_from: Option<(u64, PathBuf)>,
}

impl CodeEdits {
    /// No edit yet; `keep_spec` (`--keep-channels`) becomes the layer's mask when its channels
    /// are known.
    pub fn new(keep_spec: Option<ChannelSpec>) -> Self {
        Self { keep_spec, ..Self::default() }
    }

    /// The other photo whose switches the decoders that read switches use, if not `own`'s.
    pub fn switches_of(&self, own: Option<u64>) -> Option<&(u64, PathBuf)> {
        self.switches_from.as_ref().filter(|(id, _)| Some(*id) != own)
    }

    pub fn use_switches_of(&mut self, id: u64, path: &Path) {
        self.switches_from = Some((id, path.to_path_buf()));
    }

    pub fn use_own_switches(&mut self) {
        self.switches_from = None;
    }

    /// How `layer`'s code is changed, for the photo `own`.
    pub fn variant(&self, layer: Layer, own: Option<u64>) -> Variant {
        let switches = self.switches_of(own).cloned();
        Variant {
            switches_id: switches.as_ref().map(|(id, _)| *id),
            edit: CodeEdit { switches_of: switches.map(|(_, path)| path), keep: self.masks.get(&layer).cloned() },
        }
    }

    /// The channels kept at `layer`: all of its `channels` when none was switched off (`None`
    /// while their number is not known and nothing is switched off).
    pub fn mask(&self, layer: Layer, channels: Option<usize>) -> Option<Vec<bool>> {
        self.masks.get(&layer).cloned().or_else(|| channels.map(|n| vec![true; n]))
    }

    /// Whether every layer's code has all its channels.
    pub fn keeps_all(&self) -> bool {
        self.masks.is_empty()
    }

    /// Keep exactly the channels `keep` at `layer` (all: no mask).
    pub fn set_mask(&mut self, layer: Layer, keep: Vec<bool>) {
        if keep.iter().all(|&k| k) {
            self.masks.remove(&layer);
        } else {
            self.masks.insert(layer, keep);
        }
    }
}

impl LayerinvApp {
    /// The current photo's code at `layer`, channel by channel.
    pub fn channel_maps(&self, layer: Layer) -> Option<&Result<super::shown::Channels, String>> {
        let p = self.photo()?;
        self.results.channels(&(p.id, layer))
    }

    /// The channels kept at `layer` (all when none was switched off), once the layer's channels
    /// are known.
    pub fn mask(&self, layer: Layer) -> Option<Vec<bool>> {
        let n = match self.channel_maps(layer) {
            Some(Ok(c)) => Some(c.maps.energy.len()),
            _ => None,
        };
        self.edits.mask(layer, n)
    }

    /// Switch channel `c` of `layer` off, or on again.
    pub fn toggle_channel(&mut self, layer: Layer, c: usize) {
        if let Some(mut keep) = self.mask(layer) {
            if let Some(k) = keep.get_mut(c) {
                *k = !*k;
                self.edits.set_mask(layer, keep);
            }
        }
    }

    /// Keep the channels `spec` names at `layer` (`top:K` by this photo's energies).
    pub fn keep_channels(&mut self, layer: Layer, spec: &ChannelSpec) {
        let Some(Ok(c)) = self.channel_maps(layer) else { return };
        match spec.mask_for(c.maps.energy.len(), &c.maps.energy) {
            Ok(keep) => self.edits.set_mask(layer, keep),
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }

    /// Apply what the user did in the channels view to the shown layer's mask.
    pub(super) fn channel_action(&mut self, action: Action) {
        let layer = self.layer;
        let n = self.mask(layer).map_or(0, |keep| keep.len());
        match action {
            Action::Toggle(c) => self.toggle_channel(layer, c),
            Action::Solo(c) => self.edits.set_mask(layer, (0..n).map(|i| i == c).collect()),
            Action::None => self.edits.set_mask(layer, vec![false; n]),
            Action::Spec(spec) => self.keep_channels(layer, &spec),
        }
    }
}
