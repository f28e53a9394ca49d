//! Where the app's files are and how it asks for new ones: the demo photo, the system file
//! dialog (or why there is none).

use std::path::PathBuf;

/// Extensions the Open dialogs offer.
pub const PHOTO_FILTER: [&str; 8] = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

/// The demo photo shown on first start (beside the weights folder, in `assets/`).
pub fn demo_photo() -> Option<PathBuf> {
    let weights = crate::model::source::weights_dir();
    let p = weights.parent()?.join("assets").join("chelsea.png");
    p.is_file().then_some(p)
}

/// Why no system file dialog can open here, if we can tell: on Linux, rfd asks the XDG desktop
/// portal over the D-Bus session bus, and without a session bus nothing would appear at all.
pub fn no_file_dialog() -> Option<String> {
    if cfg!(target_os = "linux") && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        Some("no file dialog here (no D-Bus session for the desktop portal): drag files onto the window, or use --image/--model/--decoders".into())
    } else {
        None
    }
}

/// A file dialog, or why none can open.
pub fn file_dialog() -> Result<rfd::FileDialog, String> {
    match no_file_dialog() {
        Some(why) => Err(why),
        None => Ok(rfd::FileDialog::new()),
    }
}

/// The file name of `p` for titles and captions.
pub fn file_name(p: &std::path::Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
