//! What the app shows: its views, the panes of a reconstruction, a photo, a layer's channels.

use super::decoders::Source;
use super::worker::{LayerStatus, Variant};
use crate::compare::ChannelMaps;
use crate::model::Layer;
use crate::recon::Reconstruction;
use eframe::egui;
use image::RgbImage;
use std::path::PathBuf;

pub use crate::figure::View;

/// A blink held down: what the reconstruction panes show meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blink {
    #[default]
    Off,
    /// The input in place of every reconstruction (hold Space).
    Input,
    /// Each pane shows the next kind's picture (hold S).
    Swap,
}

/// One reconstruction as shown: texture plus numbers, and its error map.
pub struct Pane {
    /// The picture, its kind and layer, and its fidelity.
    pub rec: Reconstruction,
    /// The decoder's set.
    pub source: Source,
    pub texture: egui::TextureHandle,
    /// PSNR of the layer's floor for this photo (squeezed to the layer's grid and blown back up).
    pub floor: Option<f64>,
    /// |input − reconstruction| through the error colour map, and its mean (0–255 units).
    pub error: egui::TextureHandle,
    pub error_mean: f64,
}

/// Every kind's reconstruction of one photo from one layer (one variant of its code), by the
/// decoders of the panes' sources.
pub struct Rebuilt {
    pub panes: Vec<Pane>,
    /// |SWWAE − SAE|: what knowing the switches changes; and its mean.
    pub lost: Option<(egui::TextureHandle, f64)>,
    /// Seconds the worker took, and whether it had to run the encoder.
    pub seconds: f64,
    pub encoder_ran: bool,
}

/// The reconstruction cache's key: photo id, layer, variant of the code, each kind's decoder.
pub type Key = (u64, Layer, Variant, Vec<Source>);

/// A layer's code, channel by channel, as the channels view shows it.
pub struct Channels {
    pub maps: ChannelMaps,
    pub atlas: egui::TextureHandle,
}

pub struct Photo {
    pub id: u64,
    pub path: PathBuf,
    pub input: RgbImage,
    pub texture: egui::TextureHandle,
    /// The classifier's top-5 (name, probability) when the model has fc8.
    pub top5: Option<Vec<(String, f32)>>,
}

pub struct Model {
    pub name: String,
    pub arch: crate::model::Arch,
    pub layers: LayerStatus,
}

pub fn color_image(img: &RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

/// Textures the panes use: square pixels when zoomed in, smooth when shrunk.
pub const PIXELS: egui::TextureOptions = egui::TextureOptions {
    magnification: egui::TextureFilter::Nearest,
    minification: egui::TextureFilter::Linear,
    wrap_mode: egui::TextureWrapMode::ClampToEdge,
    mipmap_mode: None,
};
