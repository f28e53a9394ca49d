//! Loading encoder weights from any supported file into one canonical set of tensors:
//! `features.N.{weight,bias}` (torchvision conv names) and `fc6`/`fc7`/`fc8.{weight,bias}` with
//! 2-D `(out, in)` weights. A model whose weights stop at the conv trunk is valid: its fc taps are
//! simply unavailable.

use super::arch::{Arch, Layer};
use super::onnx::read_onnx_trunk;
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::fsutil::{open_bounded, read_bounded};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata keys of a layerinv model file (the bundled trunk, `import-onnx` output).
pub const META_ARCH: &str = "arch";
pub const META_PREPROCESS: &str = "preprocess";
pub const META_NAME: &str = "name";

/// Encoder weights, validated against their architecture, in f32.
pub struct ModelWeights {
    pub arch: Arch,
    pub preprocess: Preprocess,
    /// What to call the model in the UI.
    pub name: String,
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    /// How many of fc6, fc7, fc8 (in that order) the weights provide.
    pub fc_available: usize,
    /// Hex sha256 over the canonical tensors: decoders record it to refuse a foreign encoder.
    pub fingerprint: String,
}

/// Largest accepted weights, decoder or checkpoint file (VGG-19 in f32 is 0.55 GB). A larger file is
/// refused before it is read.
pub const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Raw tensors and metadata read from a file, before validation.
struct RawWeights {
    tensors: HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
    preprocess_hint: Preprocess,
}

/// Read `(tensors, metadata)` of a safetensors file, with a one-line error for broken files.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    // Eight bytes of header length, then the header's JSON object.
    let bytes = read_bounded(path, "a safetensors file", MAX_WEIGHTS_BYTES, |h| h.len() < 9 || h[8] == b'{')?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
    Ok((tensors, metadata))
}

/// Largest safetensors header read on its own (a decoder's is a few kB).
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Only the `__metadata__` of a safetensors file, read from its header without the tensors.
pub fn read_safetensors_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let (file, head) = open_bounded(path, "a safetensors file", MAX_WEIGHTS_BYTES, |h| h.len() < 9 || h[8] == b'{')?;
    let broken =
        |why: String| Error::bad_file(path, format!("not a valid safetensors file (truncated or corrupt?): {why}"));
    if head.len() < 9 {
        return Err(broken("shorter than its header".into()));
    }
    let n = u64::from_le_bytes(head[..8].try_into().map_err(|_| broken("no header length".into()))?);
    if n > MAX_HEADER_BYTES {
        return Err(broken(format!("header of {n} bytes")));
    }
    let mut header = head[8..].to_vec();
    let have = header.len() as u64;
    if have < n {
        file.take(n - have).read_to_end(&mut header).map_err(|e| Error::io(path, e))?;
    }
    if (header.len() as u64) < n {
        return Err(broken("the header is cut short".into()));
    }
    header.truncate(n as usize);
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| broken(e.to_string()))?;
    let mut out = HashMap::new();
    if let Some(m) = v.get("__metadata__").and_then(|m| m.as_object()) {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(out)
}

fn read_raw(path: &Path, device: &Device) -> Result<RawWeights> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => {
            let (tensors, metadata) = read_safetensors(path, device)?;
            Ok(RawWeights { tensors, metadata, preprocess_hint: Preprocess::Torch })
        }
        "pth" | "pt" | "bin" => {
            // A zip archive (torch.save since 1.6); candle reads it from the path.
            open_bounded(path, "a zip-format PyTorch file", MAX_WEIGHTS_BYTES, |h| h.starts_with(b"PK\x03\x04"))?;
            let read = |key| super::pth::read_pth(path, key);
            // A bare state dict, or a training checkpoint holding one under "state_dict".
            let list = read(None).and_then(|l| if l.is_empty() { read(Some("state_dict")) } else { Ok(l) })?;
            let tensors = list.into_iter().map(|(k, v)| (k.trim_start_matches("module.").to_string(), v)).collect();
            Ok(RawWeights { tensors, metadata: HashMap::new(), preprocess_hint: Preprocess::Torch })
        }
        "onnx" => {
            let trunk = read_onnx_trunk(path, device)?;
            let arch = Arch::ALL.into_iter().find(|a| conv_shapes_match(*a, &trunk.convs)).ok_or_else(|| {
                let shapes: Vec<String> = trunk.convs.iter().map(|(w, _)| fmt_shape(w.dims())).collect();
                Error::bad_file(
                    path,
                    format!("its {} convolutions ({}) match no known architecture", shapes.len(), shapes.join(", ")),
                )
            })?;
            let mut tensors = HashMap::new();
            for (spec, (w, b)) in arch.convs().iter().zip(trunk.convs) {
                tensors.insert(format!("{}.weight", spec.key()), w);
                tensors.insert(format!("{}.bias", spec.key()), b);
            }
            let metadata = HashMap::from([(META_ARCH.to_string(), arch.name().to_string())]);
            Ok(RawWeights { tensors, metadata, preprocess_hint: trunk.preprocess })
        }
        _ => Err(Error::bad_file(path, "unknown weights format: expected .safetensors, .pth or .onnx")),
    }
}

fn conv_shapes_match(arch: Arch, convs: &[(Tensor, Tensor)]) -> bool {
    let specs = arch.convs();
    specs.len() == convs.len()
        && specs.iter().zip(convs).all(|(s, (w, b))| w.dims() == [s.cout, s.cin, s.k, s.k] && b.dims() == [s.cout])
}

pub fn fmt_shape(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
}

/// timm and torchvision names → canonical names (fc layers need the arch for torchvision).
fn canonical_name(name: &str, arch: Arch) -> Option<String> {
    let (layer, param) = name.rsplit_once('.')?;
    if !matches!(param, "weight" | "bias") {
        return None;
    }
    let fc = match layer {
        "pre_logits.fc1" => Some(Layer::FC6),
        "pre_logits.fc2" => Some(Layer::FC7),
        "head.fc" => Some(Layer::FC8),
        "fc6" | "fc7" | "fc8" => Layer::from_name(layer),
        _ => layer
            .strip_prefix("classifier.")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| arch.fcs().into_iter().find(|f| f.classifier_index == i).map(|f| f.tap)),
    };
    match fc {
        Some(fc) => Some(format!("{fc}.{param}")),
        None if layer.starts_with("features.") => Some(name.to_string()),
        None => None,
    }
}

/// Guess the architecture from which conv weights are present.
fn detect_arch(tensors: &HashMap<String, Tensor>) -> Option<Arch> {
    let n_convs =
        tensors.iter().filter(|(k, v)| k.starts_with("features.") && k.ends_with(".weight") && v.rank() == 4).count();
    Arch::ALL.into_iter().find(|a| {
        let convs = a.convs();
        convs.len() == n_convs
            && convs.iter().all(|c| {
                tensors.get(&format!("{}.weight", c.key())).is_some_and(|w| w.dims() == [c.cout, c.cin, c.k, c.k])
            })
    })
}

/// Load and validate encoder weights from a `.safetensors`, `.pth` or `.onnx` file.
pub fn load_weights_file(path: &Path, device: &Device) -> Result<ModelWeights> {
    let raw = read_raw(path, device)?;
    let arch = match raw.metadata.get(META_ARCH) {
        Some(a) => Arch::from_name(a)
            .ok_or_else(|| Error::bad_file(path, format!("unknown architecture {a:?} in metadata")))?,
        None => detect_arch(&raw.tensors).ok_or_else(|| describe_mismatch(path, &raw.tensors))?,
    };
    let mut named: HashMap<String, Tensor> = HashMap::new();
    for (k, v) in raw.tensors {
        if let Some(c) = canonical_name(&k, arch) {
            named.insert(c, v);
        }
    }
    let mut tensors = HashMap::new();
    let mut take = |name: String, want: &[usize], reshape: bool| -> Result<bool> {
        let Some(t) = named.remove(&name) else { return Ok(false) };
        let t = if t.dims() != want && reshape && t.elem_count() == want.iter().product::<usize>() {
            t.reshape(want)?
        } else {
            t
        };
        if t.dims() != want {
            return Err(Error::bad_file(
                path,
                format!("tensor {name} has shape {}, {arch} expects {}", fmt_shape(t.dims()), fmt_shape(want)),
            ));
        }
        tensors.insert(name, t.to_dtype(DType::F32)?);
        Ok(true)
    };
    for c in arch.convs() {
        for (param, want) in [("weight", vec![c.cout, c.cin, c.k, c.k]), ("bias", vec![c.cout])] {
            let name = format!("{}.{param}", c.key());
            if !take(name.clone(), &want, false)? {
                return Err(Error::bad_file(
                    path,
                    format!("missing tensor {name} ({arch} expects {})", fmt_shape(&want)),
                ));
            }
        }
    }
    let mut fc_available = 0;
    for fc in arch.fcs() {
        let w = take(format!("{}.weight", fc.tap), &[fc.dout, fc.din], true)?;
        let b = take(format!("{}.bias", fc.tap), &[fc.dout], false)?;
        if !(w && b) {
            break;
        }
        fc_available += 1;
    }
    // Keep only the prefix of fc layers that is complete.
    for fc in &arch.fcs()[fc_available..] {
        tensors.remove(&format!("{}.weight", fc.tap));
        tensors.remove(&format!("{}.bias", fc.tap));
    }
    let preprocess = match raw.metadata.get(META_PREPROCESS) {
        Some(p) => Preprocess::from_name(p)
            .ok_or_else(|| Error::bad_file(path, format!("unknown preprocessing {p:?} in metadata")))?,
        None => raw.preprocess_hint,
    };
    let name = raw.metadata.get(META_NAME).cloned().unwrap_or_else(|| {
        format!("{arch} ({})", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    });
    let fingerprint = fingerprint(&tensors)?;
    Ok(ModelWeights { arch, preprocess, name, path: path.to_path_buf(), tensors, fc_available, fingerprint })
}

/// Explain why no architecture matched: compare with the arch whose conv count is closest.
fn describe_mismatch(path: &Path, tensors: &HashMap<String, Tensor>) -> Error {
    let n =
        tensors.iter().filter(|(k, v)| k.starts_with("features.") && k.ends_with(".weight") && v.rank() == 4).count();
    if n == 0 {
        return Error::bad_file(path, "no conv weights named features.N.weight: not a VGG or AlexNet state dict");
    }
    let arch = Arch::ALL.into_iter().min_by_key(|a| a.convs().len().abs_diff(n)).unwrap_or(Arch::Vgg16);
    for c in arch.convs() {
        let name = format!("{}.weight", c.key());
        let want = [c.cout, c.cin, c.k, c.k];
        match tensors.get(&name) {
            None => {
                return Error::bad_file(path, format!("missing tensor {name} ({arch} expects {})", fmt_shape(&want)))
            }
            Some(t) if t.dims() != want => {
                return Error::bad_file(
                    path,
                    format!("tensor {name} has shape {}, {arch} expects {}", fmt_shape(t.dims()), fmt_shape(&want)),
                )
            }
            Some(_) => {}
        }
    }
    Error::bad_file(path, format!("{n} conv weights match no known architecture (VGG-11/13/16/19, AlexNet)"))
}

/// sha256 over sorted names, shapes and f32 little-endian values; the first 16 hex digits.
pub fn fingerprint(tensors: &HashMap<String, Tensor>) -> Result<String> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        let t = &tensors[name];
        h.update(name.as_bytes());
        h.update(fmt_shape(t.dims()).as_bytes());
        let values = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        h.update(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}
