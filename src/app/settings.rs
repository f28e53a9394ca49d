//! What the app keeps between runs (eframe's persistence): the last photo, layer, view and model,
//! the recent photos, the decoder folders opened and which set each pane shows. eframe keeps the
//! window's size and place itself.

use super::shown::View;
use crate::model::{Kind, Layer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The key under which the settings are kept (one JSON string).
const KEY: &str = "layerinv-settings";

/// Recent photos kept.
const RECENT: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub photo: Option<PathBuf>,
    pub layer: Option<Layer>,
    pub view: View,
    /// Empty: the default.
    pub model: String,
    /// Decoder folders the user opened.
    pub decoder_folders: Vec<PathBuf>,
    /// The set each pane shows where the user picked one: (layer, kind) → folder.
    pub decoder_choice: BTreeMap<(Layer, Kind), PathBuf>,
    /// Whether a run's newest decoders are shown beside the chosen ones while it trains.
    pub preview: bool,
    /// Newest first.
    pub recent: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            photo: None,
            layer: None,
            view: View::default(),
            model: String::new(),
            decoder_folders: Vec::new(),
            decoder_choice: BTreeMap::new(),
            preview: true,
            recent: Vec::new(),
        }
    }
}

impl Settings {
    /// The kept settings; defaults where nothing (or something unreadable) was kept.
    pub fn load(storage: &dyn eframe::Storage) -> Self {
        let Some(text) = storage.get_string(KEY) else { return Self::default() };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return Self::default() };
        let path = |k: &str| v.get(k).and_then(|p| p.as_str()).map(PathBuf::from);
        let text = |k: &str| v.get(k).and_then(|p| p.as_str()).map(str::to_string);
        Self {
            photo: path("photo"),
            layer: text("layer").and_then(|n| Layer::from_name(&n)),
            view: text("view").and_then(|n| View::from_name(&n)).unwrap_or_default(),
            model: text("model").unwrap_or_default(),
            // "decoders": the one folder earlier versions kept, used first.
            decoder_folders: v
                .get("decoder_folders")
                .and_then(|r| r.as_array())
                .map(|a| a.iter().filter_map(|p| p.as_str()).map(PathBuf::from).collect())
                .or_else(|| path("decoders").map(|d| vec![d]))
                .unwrap_or_default(),
            decoder_choice: v
                .get("decoder_choice")
                .and_then(|r| r.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|c| {
                            let layer = Layer::from_name(c.get("layer")?.as_str()?)?;
                            let kind = Kind::from_name(c.get("kind")?.as_str()?)?;
                            Some(((layer, kind), PathBuf::from(c.get("dir")?.as_str()?)))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            preview: v.get("preview").and_then(|p| p.as_bool()).unwrap_or(true),
            recent: v
                .get("recent")
                .and_then(|r| r.as_array())
                .map(|a| a.iter().filter_map(|p| p.as_str()).map(PathBuf::from).take(RECENT).collect())
                .unwrap_or_default(),
        }
    }

    pub fn save(&self, storage: &mut dyn eframe::Storage) {
        let v = serde_json::json!({
            "photo": self.photo,
            "layer": self.layer,
            "view": self.view.name(),
            "model": self.model,
            "decoder_folders": self.decoder_folders,
            "decoder_choice": self
                .decoder_choice
                .iter()
                .map(|((layer, kind), dir)| serde_json::json!({"layer": layer, "kind": kind.name(), "dir": dir}))
                .collect::<Vec<_>>(),
            "preview": self.preview,
            "recent": self.recent,
        });
        storage.set_string(KEY, v.to_string());
    }

    /// A photo was opened: it is the last photo and the newest recent one.
    pub fn remember(&mut self, photo: &Path) {
        self.photo = Some(photo.to_path_buf());
        self.recent.retain(|p| p != photo);
        self.recent.insert(0, photo.to_path_buf());
        self.recent.truncate(RECENT);
    }
}
