//! Where a model comes from: the bundled trunk, a weights file, or a hub download.

use super::encoder::Encoder;
use super::hub::HubModel;
use super::weights::load_weights_file;
use crate::error::{Error, Result};
use candle_core::Device;
use std::path::PathBuf;

/// File name of the bundled ImageNet VGG-16 conv trunk inside the weights folder.
pub const BUNDLED_MODEL_FILE: &str = "vgg16_imagenet_trunk.f16.safetensors";

#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    Bundled,
    File(PathBuf),
    Hub(HubModel),
}

impl ModelSource {
    /// `bundled`, `vgg16`/`vgg19` (hub cache), or a path to a weights file.
    pub fn parse(s: &str) -> Self {
        if s == "bundled" {
            ModelSource::Bundled
        } else if let Some(m) = HubModel::from_name(s) {
            ModelSource::Hub(m)
        } else {
            ModelSource::File(PathBuf::from(s))
        }
    }

    /// The weights file to load (no network: a hub model must already be downloaded).
    pub fn path(&self) -> Result<PathBuf> {
        match self {
            ModelSource::Bundled => Ok(weights_dir().join(BUNDLED_MODEL_FILE)),
            ModelSource::File(p) => Ok(p.clone()),
            ModelSource::Hub(m) => m.cached().ok_or_else(|| {
                Error::Unavailable(format!(
                    "{} is not downloaded yet: run `layerinv fetch {}`, or get {} by hand and pass --model /path/to/it",
                    m.name(),
                    m.name(),
                    m.manual_url()
                ))
            }),
        }
    }

    pub fn load(&self, device: &Device) -> Result<Encoder> {
        Encoder::new(load_weights_file(&self.path()?, device)?)
    }
}

/// The folder holding the bundled model and decoders: `$LAYERINV_WEIGHTS` if set, else a
/// `weights/` folder beside the executable or two levels up (cargo's `target/<profile>/`), else
/// the source checkout this binary was built from.
pub fn weights_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LAYERINV_WEIGHTS") {
        return PathBuf::from(d);
    }
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights");
    let near_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors().skip(1).take(4).map(|d| d.join("weights")).find(|d| d.join(BUNDLED_MODEL_FILE).is_file())
    });
    near_exe.unwrap_or(built_in)
}
