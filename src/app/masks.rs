//! The channel masks: which channels of a layer's code the decoders see.

use super::shown::Channels;
use super::state::LayerinvApp;
use crate::compare::ChannelSpec;

impl LayerinvApp {
    /// The current photo's code at `layer`, channel by channel.
    pub fn channel_maps(&self, layer: &str) -> Option<&Result<Channels, String>> {
        let p = self.photo.as_ref()?;
        self.channels.get(&(p.id, layer.to_string()))
    }

    /// The channels kept at `layer` (all when none was switched off), once the layer's channels
    /// are known.
    pub fn mask(&self, layer: &str) -> Option<Vec<bool>> {
        let n = match self.channel_maps(layer) {
            Some(Ok(c)) => c.maps.energy.len(),
            _ => return self.masks.get(layer).cloned(),
        };
        Some(self.masks.get(layer).cloned().unwrap_or_else(|| vec![true; n]))
    }

    /// Keep exactly the channels `keep` at `layer` (all: no mask).
    pub fn set_mask(&mut self, layer: &str, keep: Vec<bool>) {
        if keep.iter().all(|&k| k) {
            self.masks.remove(layer);
        } else {
            self.masks.insert(layer.to_string(), keep);
        }
    }

    /// Switch channel `c` of `layer` off, or on again.
    pub fn toggle_channel(&mut self, layer: &str, c: usize) {
        if let Some(mut keep) = self.mask(layer) {
            if let Some(k) = keep.get_mut(c) {
                *k = !*k;
                self.set_mask(layer, keep);
            }
        }
    }

    /// Keep the channels `spec` names at `layer` (`top:K` by this photo's energies).
    pub fn keep_channels(&mut self, layer: &str, spec: &ChannelSpec) {
        let Some(Ok(c)) = self.channel_maps(layer) else { return };
        match spec.mask_for(c.maps.energy.len(), &c.maps.energy) {
            Ok(keep) => self.set_mask(layer, keep),
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }
}
