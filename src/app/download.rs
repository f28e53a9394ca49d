//! A model download from the Hugging Face Hub on a background thread, with progress.

use crate::model::hub::HubModel;
use eframe::egui;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

pub struct Download {
    pub model: HubModel,
    pub progress: Arc<Mutex<(u64, u64)>>,
    rx: Receiver<Result<String, String>>,
}

struct Progress(Arc<Mutex<(u64, u64)>>);

impl hf_hub::api::Progress for Progress {
    fn init(&mut self, size: usize, _filename: &str) {
        if let Ok(mut p) = self.0.lock() {
            *p = (0, size as u64);
        }
    }
    fn update(&mut self, size: usize) {
        if let Ok(mut p) = self.0.lock() {
            p.0 += size as u64;
        }
    }
    fn finish(&mut self) {}
}

impl Download {
    pub fn start(model: HubModel, ctx: egui::Context) -> Self {
        let progress = Arc::new(Mutex::new((0, 0)));
        let (tx, rx) = channel();
        let p = Progress(progress.clone());
        let _ = std::thread::Builder::new().name("layerinv-download".into()).spawn(move || {
            let r = model.fetch(None, p).map(|_| model.name().to_string()).map_err(|e| e.to_string());
            let _ = tx.send(r);
            ctx.request_repaint();
        });
        Self { model, progress, rx }
    }

    /// The model name to load once done, or the error.
    pub fn poll(&mut self) -> Option<Result<String, String>> {
        self.rx.try_recv().ok()
    }

    /// "downloading timm/vgg16.tv_in1k 42% (220 MB)".
    pub fn status(&self) -> String {
        let (done, total) = self.progress.lock().map(|p| *p).unwrap_or((0, 0));
        let pct = if total > 0 { format!(" {:.0}%", 100.0 * done as f64 / total as f64) } else { String::new() };
        format!("downloading {}{pct} ({} MB)", self.model.repo(), done / 1_000_000)
    }
}
