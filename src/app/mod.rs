//! The desktop app (eframe/egui, glow renderer): drop in a photo, pick a layer, compare SAE and
//! SWWAE, look closer (zoom, blink, error maps), transplant switches, switch channels off; train
//! decoders from a menu. All compute runs on worker threads (see [`worker`]).
//!
//! `state` holds the app and its actions; its parts own their state: the photos (`photos`), what
//! the worker computed (`results`), the code edits (`edits`), the decoder sets (`decoders`), the
//! picture and channel views (`compare_view`, `channels_view`, which draw themselves from the
//! app's state), the dialogs and panels (`train_dialog`, `training`, `help`, `download`).
//! `replies` folds worker answers into it; `view`, `all_layers` and `menu` draw the window.

mod all_layers;
mod cell;
mod channels_view;
mod compare_view;
pub mod decoders;
mod download;
mod edits;
mod files;
mod help;
mod menu;
mod output;
mod photos;
mod replies;
mod results;
mod screenshot;
mod settings;
mod shown;
mod state;
mod train_dialog;
pub mod training;
mod view;
pub mod worker;
pub mod zoom;

pub use settings::Settings;
pub use shown::{Blink, View};
pub use state::{AppOptions, LayerinvApp};

use eframe::egui;

/// The window's icon (the package's 64-pixel one; a blank one if it cannot be read).
fn window_icon() -> egui::IconData {
    eframe::icon_data::from_png_bytes(include_bytes!("../../packaging/icons/layerinv-64.png")).unwrap_or_default()
}

/// Open the window and run until it is closed. Returns the process exit code (non-zero when a
/// `--screenshot` run could not show its view).
pub fn run(opts: AppOptions) -> anyhow::Result<i32> {
    let screenshot = opts.screenshot.is_some();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1180.0, 800.0])
            .with_min_inner_size([720.0, 520.0])
            .with_title("layerinv — what survives in each layer")
            .with_app_id("layerinv")
            .with_icon(window_icon())
            .with_drag_and_drop(true),
        // A --screenshot run opens at the default size and keeps nothing.
        persist_window: !screenshot,
        ..Default::default()
    };
    let exit = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let exit2 = exit.clone();
    eframe::run_native(
        "layerinv",
        native,
        Box::new(move |cc| Ok(Box::new(LayerinvApp::new(&cc.egui_ctx, opts, exit2, cc.storage)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(exit.load(std::sync::atomic::Ordering::SeqCst))
}
