//! Where a model comes from: the bundled trunk, a weights file, or a hub download.

use super::encoder::Encoder;
use super::hub::HubModel;
use super::weights::load_weights_file;
use crate::error::{Error, Result};
use candle_core::Device;
use std::path::{Path, PathBuf};

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

    /// Why this is a mistyped model name rather than a file: a bare word that names no file.
    fn mistyped(&self) -> Option<String> {
        match self {
            ModelSource::File(p) if !p.exists() && p.extension().is_none() && p.components().count() == 1 => {
                Some(format!(
                    "unknown model \"{}\": give bundled, {} or a weights file (.safetensors, .pth, .onnx)",
                    p.display(),
                    HubModel::names()
                ))
            }
            _ => None,
        }
    }

    /// The command line's check of `--model`: a model name or a file, never a mistyped name.
    pub fn check_name(s: &str) -> std::result::Result<String, String> {
        match ModelSource::parse(s).mistyped() {
            Some(why) => Err(why),
            None => Ok(s.to_string()),
        }
    }

    /// The weights file to load (no network: a hub model must already be downloaded).
    pub fn path(&self) -> Result<PathBuf> {
        if let Some(why) = self.mistyped() {
            return Err(Error::Unavailable(why));
        }
        match self {
            ModelSource::Bundled => bundled_model_path(),
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

/// The folders the bundled model and decoders are looked for in, in order: `$LAYERINV_WEIGHTS`
/// (`env`), a `weights/` folder beside the executable (`exe`), `../share/layerinv/weights` from
/// it (an installed package: `/usr/bin` → `/usr/share/layerinv/weights`), the `weights/` folder
/// of a checkout the executable sits two or three levels inside (cargo's `target/<profile>/` and
/// its `deps/` and `examples/`), and last `checkout`'s, the source this binary was built from.
pub fn weights_places(env: Option<PathBuf>, exe: Option<&Path>, checkout: &Path) -> Vec<PathBuf> {
    let mut places: Vec<PathBuf> = env.into_iter().collect();
    if let Some(dir) = exe.and_then(Path::parent) {
        places.push(dir.join("weights"));
        places.extend(dir.parent().map(|prefix| prefix.join("share/layerinv/weights")));
        places.extend(dir.ancestors().skip(2).take(2).map(|d| d.join("weights")));
    }
    places.push(checkout.join("weights"));
    places
}

/// The first of `places` that holds the bundled model, or one line naming every place looked.
pub fn find_weights_dir(places: &[PathBuf]) -> std::result::Result<PathBuf, String> {
    if let Some(d) = places.iter().find(|d| d.join(BUNDLED_MODEL_FILE).is_file()) {
        return Ok(d.clone());
    }
    let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "the bundled model ({BUNDLED_MODEL_FILE}) is in none of the places looked: {}; set LAYERINV_WEIGHTS to the folder that holds it, or pass --model FILE",
        looked.join(", ")
    ))
}

/// This process's [`weights_places`].
fn own_weights_places() -> Vec<PathBuf> {
    let exe = std::env::current_exe().ok();
    weights_places(
        std::env::var_os("LAYERINV_WEIGHTS").map(PathBuf::from),
        exe.as_deref(),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}

/// The folder holding the bundled model and decoders ([`weights_places`]); where none does,
/// `$LAYERINV_WEIGHTS` or else the checkout's (so that lists of decoder folders name one).
pub fn weights_dir() -> PathBuf {
    find_weights_dir(&own_weights_places()).unwrap_or_else(|_| {
        std::env::var_os("LAYERINV_WEIGHTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("weights"))
    })
}

/// The bundled model's file, or why there is none.
fn bundled_model_path() -> Result<PathBuf> {
    find_weights_dir(&own_weights_places()).map(|d| d.join(BUNDLED_MODEL_FILE)).map_err(Error::Unavailable)
}
