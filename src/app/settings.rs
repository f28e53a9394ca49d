//! What the app keeps between runs (eframe's persistence): the last photo, layer, view, model and
//! decoders folder, and the recent photos. eframe keeps the window's size and place itself.

use super::shown::View;
use std::path::{Path, PathBuf};

/// The key under which the settings are kept (one JSON string).
const KEY: &str = "layerinv-settings";

/// Recent photos kept.
const RECENT: usize = 10;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub photo: Option<PathBuf>,
    pub layer: Option<String>,
    pub view: View,
    /// Empty: the default.
    pub model: String,
    pub decoders: Option<PathBuf>,
    /// Newest first.
    pub recent: Vec<PathBuf>,
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
            layer: text("layer"),
            view: text("view").and_then(|n| View::from_name(&n)).unwrap_or_default(),
            model: text("model").unwrap_or_default(),
            decoders: path("decoders"),
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
            "decoders": self.decoders,
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
