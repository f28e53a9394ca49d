//! The desktop app under egui_kittest: a harness on the CPU, waiting for the worker, dropping files.

use super::repo_path;
use eframe::egui;
use egui_kittest::Harness;
use layerinv::app::{AppOptions, LayerinvApp};
use layerinv::model::Layer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The app on the CPU with `decoders` before the bundled ones, on `image` (default: the demo
/// photo) at `layer`.
pub fn harness(decoders: &Path, image: Option<PathBuf>, layer: Layer) -> Harness<'static, LayerinvApp> {
    harness_with(options(decoders, image, Some(layer)), None)
}

pub fn options(decoders: &Path, image: Option<PathBuf>, layer: Option<Layer>) -> AppOptions {
    AppOptions {
        image: image.or_else(|| Some(repo_path("assets/chelsea.png"))),
        layer,
        model: "bundled".into(),
        decoders: Some(decoders.to_path_buf()),
        device: "cpu".into(),
        ..Default::default()
    }
}

/// The app with these options, restored from `storage` when one is given.
pub fn harness_with(opts: AppOptions, storage: Option<MemoryStorage>) -> Harness<'static, LayerinvApp> {
    Harness::builder().with_size(egui::vec2(1200.0, 850.0)).build_eframe(move |cc| {
        LayerinvApp::new(&cc.egui_ctx, opts, Arc::new(AtomicI32::new(0)), storage.as_ref().map(|s| s as _))
    })
}

/// eframe's storage kept in memory, as the app's persistence sees it.
#[derive(Default, Clone)]
pub struct MemoryStorage(pub HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// Step frames until `done` holds (the worker answers on its own thread).
pub fn wait_for(h: &mut Harness<'static, LayerinvApp>, what: &str, done: impl Fn(&LayerinvApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; last error: {:?}",
            h.state().last_error
        );
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

/// `layer` is on screen with a pane for every kind some set has a decoder for.
pub fn shows_layer(app: &LayerinvApp, layer: Layer) -> bool {
    let kinds = app.decoders.sources(layer).map_or(0, |s| s.len());
    matches!(app.panes(layer), Some(Ok(p)) if kinds > 0 && p.len() == kinds) && app.layer == layer
}

#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

pub fn drop_file(h: &mut Harness<'static, LayerinvApp>, path: PathBuf) {
    h.input_mut().dropped_files.push(Arc::new(Dropped(path)));
    h.step();
}
