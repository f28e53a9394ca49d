//! Decoder files: safetensors plus metadata saying what the decoder was trained for.

use super::arch::{Arch, Layer, Tap};
use super::decoder::Decoder;
use super::decoder_spec::{DecoderSpec, Kind, Objective};
use super::encoder::Encoder;
use super::weights::{fmt_shape, read_safetensors, read_safetensors_metadata};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The `format` of decoder files.
pub const DECODER_FORMAT: &str = "layerinv-decoder/1";
const FORMAT: &str = DECODER_FORMAT;
/// The `format` of training checkpoints (weights plus optimizer state, f32).
pub const CHECKPOINT_FORMAT: &str = "layerinv-checkpoint/1";

/// What a decoder's starting weights had already been trained for (`--init-from`, every earlier
/// start counted): zero for a decoder trained from scratch. Its own `steps` and `images` count
/// only its run, whose learning-rate schedule they drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Earlier {
    pub steps: u64,
    pub images: u64,
}

/// Everything a decoder file records besides its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderMeta {
    pub spec: DecoderSpec,
    /// Fingerprint of the encoder it was trained against.
    pub encoder: String,
    pub steps: u64,
    pub images: u64,
    /// The training of the weights it started from (absent in older files: none).
    pub earlier: Earlier,
    pub val_loss: Option<f64>,
    pub val_psnr: Option<f64>,
    /// How it was trained (absent in older files: `first`).
    pub objective: Objective,
    /// The decoder's input scales by tap ([`Decoder::scales`]; absent in older files: none).
    pub scales: BTreeMap<String, f64>,
}

impl DecoderMeta {
    /// Whether the decoder (or checkpoint) in `path` was trained for the encoder `fingerprint`:
    /// the one check, with the one message, wherever a decoder meets an encoder.
    pub fn check_encoder(&self, path: &Path, fingerprint: &str) -> Result<()> {
        if self.encoder == fingerprint {
            return Ok(());
        }
        Err(Error::bad_file(
            path,
            format!(
                "trained for encoder {}, not the loaded model's ({fingerprint}): train decoders for this model",
                self.encoder
            ),
        ))
    }

    /// Whether the decoder in `path` is the `arch`/`layer`/`kind` one asked for: the one check,
    /// with the one message, of what a decoder file holds.
    pub fn check_decoder(&self, path: &Path, arch: Arch, layer: Tap, kind: Kind) -> Result<()> {
        let s = &self.spec;
        if (s.arch, s.layer, s.kind) == (arch, layer, kind) {
            return Ok(());
        }
        Err(Error::bad_file(
            path,
            format!("this is a {} {} {} decoder, expected {arch} {layer} {kind}", s.arch, s.layer, s.kind),
        ))
    }

    /// The training behind its weights, this run's and the earlier ones', for records:
    /// "5000 steps · 80000 images seen, after 10000 steps and 160000 images of the decoder it started from".
    pub fn training(&self) -> String {
        let own = format!("{} steps · {} images seen", self.steps, self.images);
        if self.earlier == Earlier::default() {
            return own;
        }
        format!(
            "{own}, after {} steps and {} images of the decoder it started from",
            self.earlier.steps, self.earlier.images
        )
    }

    fn to_map(&self) -> HashMap<String, String> {
        self.to_map_as(FORMAT)
    }

    /// The metadata as safetensors header entries, under the given `format`.
    pub fn to_map_as(&self, format: &str) -> HashMap<String, String> {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        HashMap::from([
            ("format".into(), format.into()),
            ("arch".into(), self.spec.arch.name().into()),
            ("layer".into(), self.spec.layer.to_string()),
            ("kind".into(), self.spec.kind.name().into()),
            ("width".into(), self.spec.width.to_string()),
            ("encoder".into(), self.encoder.clone()),
            ("steps".into(), self.steps.to_string()),
            ("images".into(), self.images.to_string()),
            ("earlier_steps".into(), self.earlier.steps.to_string()),
            ("earlier_images".into(), self.earlier.images.to_string()),
            ("val_loss".into(), opt(self.val_loss)),
            ("val_psnr".into(), opt(self.val_psnr)),
            ("objective".into(), self.objective.name().into()),
            ("scales".into(), self.scales.iter().map(|(t, s)| format!("{t}={s}")).collect::<Vec<_>>().join(",")),
        ])
    }

    fn from_map(path: &Path, m: &HashMap<String, String>) -> Result<Self> {
        Self::from_map_as(path, m, FORMAT)
    }

    /// Parse header entries written by [`Self::to_map_as`] with the same `format`.
    pub fn from_map_as(path: &Path, m: &HashMap<String, String>, format: &str) -> Result<Self> {
        let get = |k: &str| m.get(k).ok_or_else(|| Error::bad_file(path, format!("decoder metadata lacks {k:?}")));
        if m.get("format").map(String::as_str) != Some(format) {
            let what = if format == FORMAT { "layerinv decoder" } else { "layerinv training checkpoint" };
            return Err(Error::bad_file(path, format!("not a {what} (metadata format is not {format})")));
        }
        let arch =
            Arch::from_name(get("arch")?).ok_or_else(|| Error::bad_file(path, "unknown arch in decoder metadata"))?;
        let kind =
            Kind::from_name(get("kind")?).ok_or_else(|| Error::bad_file(path, "unknown kind in decoder metadata"))?;
        let num = |k: &str| -> Result<f64> {
            get(k)?.parse().map_err(|_| Error::bad_file(path, format!("bad {k} in decoder metadata")))
        };
        let opt = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok());
        let count = |k: &str| -> Result<u64> {
            m.get(k)
                .map_or(Ok(0), |v| v.parse().map_err(|_| Error::bad_file(path, format!("bad {k} in decoder metadata"))))
        };
        let layer = arch.tap_named(get("layer")?).map_err(|e| Error::bad_file(path, e.to_string()))?.layer();
        let spec =
            DecoderSpec::new(arch, layer, kind, num("width")?).map_err(|e| Error::bad_file(path, e.to_string()))?;
        Ok(Self {
            spec,
            encoder: get("encoder")?.clone(),
            steps: num("steps")? as u64,
            images: num("images")? as u64,
            earlier: Earlier { steps: count("earlier_steps")?, images: count("earlier_images")? },
            val_loss: opt("val_loss"),
            val_psnr: opt("val_psnr"),
            objective: match m.get("objective") {
                None => Objective::First,
                Some(o) => Objective::from_name(o).ok_or_else(|| {
                    Error::bad_file(path, format!("unknown training objective {o:?} in decoder metadata"))
                })?,
            },
            scales: parse_scales(path, m.get("scales").map(String::as_str).unwrap_or(""))?,
        })
    }
}

/// `tap=scale,…` as written by [`DecoderMeta::to_map_as`]; every scale finite and positive.
fn parse_scales(path: &Path, s: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let parsed = item.split_once('=').and_then(|(t, v)| Some((t, v.parse::<f64>().ok()?)));
        match parsed {
            Some((t, v)) if v.is_finite() && v > 0.0 => {
                out.insert(t.to_string(), v);
            }
            _ => return Err(Error::bad_file(path, format!("bad input scale {item:?} in decoder metadata"))),
        }
    }
    Ok(out)
}

/// The file name a decoder is stored under in a decoders folder.
pub fn decoder_file_name(arch: Arch, layer: Layer, kind: Kind) -> String {
    format!("{arch}_{layer}_{kind}.safetensors")
}

pub fn decoder_path(dir: &Path, arch: Arch, layer: Layer, kind: Kind) -> PathBuf {
    dir.join(decoder_file_name(arch, layer, kind))
}

/// Tensor `name` of the file `path` (read into `tensors`), when it has the `expected` shape: the
/// one check, with the one message, of a decoder's or checkpoint's tensors.
pub fn checked_tensor<'a>(
    path: &Path,
    tensors: &'a HashMap<String, Tensor>,
    name: &str,
    expected: &[usize],
) -> Result<&'a Tensor> {
    let t = tensors
        .get(name)
        .ok_or_else(|| Error::bad_file(path, format!("missing tensor {name} (expected {})", fmt_shape(expected))))?;
    if t.dims() != expected {
        return Err(Error::bad_file(
            path,
            format!("tensor {name} has shape {}, expected {}", fmt_shape(t.dims()), fmt_shape(expected)),
        ));
    }
    Ok(t)
}

/// Save decoder weights (converted to `dtype`) with their metadata, atomically.
pub fn save_decoder(path: &Path, meta: &DecoderMeta, tensors: &HashMap<String, Tensor>, dtype: DType) -> Result<()> {
    let mut out = Vec::new();
    for (name, shape) in meta.spec.params() {
        let t = checked_tensor(path, tensors, &name, &shape)?;
        out.push((name, t.to_dtype(dtype)?.to_device(&candle_core::Device::Cpu)?));
    }
    let bytes = safetensors::serialize(out, Some(meta.to_map())).map_err(|e| Error::bad_file(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Read only the metadata of a decoder file (its header, not its weights).
pub fn read_decoder_meta(path: &Path) -> Result<DecoderMeta> {
    DecoderMeta::from_map(path, &read_safetensors_metadata(path)?)
}

/// Load a decoder for `layer`/`kind` of `encoder`, refusing a file made for anything else.
pub fn load_decoder(path: &Path, encoder: &Encoder, layer: Layer, kind: Kind) -> Result<(Decoder, DecoderMeta)> {
    let (tensors, m) = read_safetensors(path, encoder.device())?;
    let meta = DecoderMeta::from_map(path, &m)?;
    meta.check_decoder(path, encoder.arch, encoder.arch.tap(layer)?, kind)?;
    meta.check_encoder(path, &encoder.fingerprint)?;
    let s = &meta.spec;
    let mut f32s = HashMap::new();
    for (name, shape) in s.params() {
        let t = checked_tensor(path, &tensors, &name, &shape)?;
        f32s.insert(name, t.to_dtype(DType::F32)?);
    }
    let vb = VarBuilder::from_tensors(f32s, DType::F32, encoder.device());
    let mut dec = Decoder::new(s.clone(), vb)?;
    dec.scales = meta.scales.clone();
    Ok((dec, meta))
}
