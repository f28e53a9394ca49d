//! The desktop app (eframe/egui, glow renderer): drop in a photo, pick a layer, compare SAE and
//! SWWAE; train decoders from a menu. All compute runs on worker threads (see [`worker`]).

mod dialogs;
mod state;
pub mod training;
mod view;
pub mod worker;

pub use state::{AppOptions, LayerinvApp, Shown};

use eframe::egui;

/// Open the window and run until it is closed. Returns the process exit code (non-zero when a
/// `--screenshot` run could not show its reconstructions).
pub fn run(opts: AppOptions) -> anyhow::Result<i32> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1180.0, 800.0])
            .with_min_inner_size([720.0, 520.0])
            .with_title("layerinv — what survives in each layer")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let exit = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let exit2 = exit.clone();
    eframe::run_native(
        "layerinv",
        native,
        Box::new(move |cc| Ok(Box::new(LayerinvApp::new(&cc.egui_ctx, opts, exit2)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(exit.load(std::sync::atomic::Ordering::SeqCst))
}
