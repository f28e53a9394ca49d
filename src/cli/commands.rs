//! The subcommands, each a thin layer over library calls.

use crate::data::load_image;
use crate::fsutil::write_atomic_with;
use crate::model::hub::HubModel;
use crate::model::weights::{load_weights_file, META_ARCH, META_NAME, META_PREPROCESS};
use crate::model::{Encoder, Layer, ModelSource};
use crate::Error;
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use serde_json::json;
use std::path::Path;

pub fn info(model: &str, as_json: bool) -> Result<()> {
    let enc = ModelSource::parse(model).load(&Device::Cpu)?;
    let params = enc.params_per_tap();
    let taps: Vec<_> = enc
        .arch
        .tap_shapes()
        .into_iter()
        .zip(params)
        .map(|((name, shape), (_, params))| json!({"name": name, "shape": shape, "available": enc.has_tap(name), "params": params}))
        .collect();
    let n = enc.arch.input_size();
    if as_json {
        let v = json!({"model": enc.name, "arch": enc.arch.name(), "input": [3, n, n], "taps": taps});
        println!("{v}");
        return Ok(());
    }
    println!("model:      {}", enc.name);
    println!("arch:       {} (input 3×{n}×{n}, {} preprocessing)", enc.arch, enc.preprocess.name());
    println!("encoder id: {}", enc.fingerprint);
    println!("{:<6} {:>14} {:>12} {:>10}", "tap", "shape", "params", "available");
    for t in taps {
        let shape: Vec<String> = t["shape"].as_array().into_iter().flatten().map(|d| d.to_string()).collect();
        let avail = if t["available"] == json!(true) { "yes" } else { "no" };
        println!(
            "{:<6} {:>14} {:>12} {:>10}",
            t["name"].as_str().unwrap_or(""),
            shape.join("×"),
            t["params"].as_u64().unwrap_or(0),
            avail
        );
    }
    Ok(())
}

pub fn features(image: &Path, layer: Layer, out: &Path, model: &str) -> Result<()> {
    let enc = ModelSource::parse(model).load(&Device::Cpu)?;
    if let Some(why) = enc.unavailable_reason(layer) {
        bail!(why);
    }
    let img = load_image(image)?;
    let x = enc.preprocess.to_tensor(&img, enc.arch.input_size(), enc.device())?.unsqueeze(0)?;
    let f = enc.forward_to(&x, layer)?;
    let t = f.tap(layer).ok_or_else(|| Error::Unavailable(format!("no {layer} activation")))?.squeeze(0)?;
    let t = t.to_dtype(DType::F32)?;
    write_atomic_with(out, |tmp| t.write_npy(tmp).map_err(|e| Error::bad_file(tmp, e.to_string())))?;
    eprintln!("wrote {} {:?} to {}", layer, t.dims(), out.display());
    Ok(())
}

/// An indicatif bar fed by hf-hub's progress callbacks.
struct Bar(Option<indicatif::ProgressBar>);

impl hf_hub::api::Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        let bar = indicatif::ProgressBar::new(size as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(filename.to_string());
        self.0 = Some(bar);
    }
    fn update(&mut self, size: usize) {
        if let Some(b) = &self.0 {
            b.inc(size as u64);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
    }
}

pub fn fetch(m: HubModel, endpoint: Option<&str>) -> Result<()> {
    let path = m.fetch(endpoint, Bar(None))?;
    let enc = Encoder::new(load_weights_file(&path, &Device::Cpu)?)?;
    println!(
        "{} ready at {} ({} taps available)",
        m.repo(),
        path.display(),
        enc.arch.taps().iter().filter(|t| enc.has_tap(t.layer())).count()
    );
    Ok(())
}

pub fn import_onnx(input: &Path, output: &Path, name: Option<&str>) -> Result<()> {
    if input.extension().and_then(|e| e.to_str()) != Some("onnx") {
        bail!("{}: expected an .onnx file", input.display());
    }
    let w = load_weights_file(input, &Device::Cpu)?;
    let mut names: Vec<&String> = w.tensors.keys().collect();
    names.sort();
    let tensors: Vec<(String, candle_core::Tensor)> =
        names.into_iter().map(|n| Ok((n.clone(), w.tensors[n].to_dtype(DType::F16)?))).collect::<Result<_>>()?;
    let src = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let meta = std::collections::HashMap::from([
        (META_ARCH.to_string(), w.arch.name().to_string()),
        (META_PREPROCESS.to_string(), w.preprocess.name().to_string()),
        (META_NAME.to_string(), name.map(str::to_string).unwrap_or_else(|| format!("{} ({src})", w.arch))),
        ("source".to_string(), src),
    ]);
    let bytes = safetensors::serialize(tensors, Some(meta))?;
    crate::fsutil::write_atomic(output, &bytes)?;
    println!(
        "wrote {} ({} conv layers, {} preprocessing, f16) to {}",
        w.arch,
        w.arch.convs().len(),
        w.preprocess.name(),
        output.display()
    );
    Ok(())
}

/// `layerinv bench`: `cfg`'s empty `layers` and `kinds` mean every layer of the conv trunk and
/// every kind.
pub fn bench(device: &str, model: &str, as_json: bool, mut cfg: crate::bench::BenchConfig) -> Result<()> {
    if cfg.batch == 0 || cfg.steps == 0 {
        bail!("--batch and --steps must be at least 1");
    }
    if cfg.kinds.is_empty() {
        cfg.kinds = crate::model::Kind::ALL.to_vec();
    }
    let dev = crate::device::parse_device(device)?;
    let enc = ModelSource::parse(model).load(&dev)?;
    // No layers named: every layer of the conv trunk.
    let taps = if cfg.layers.is_empty() { enc.arch.stage_taps() } else { enc.arch.taps_of(&cfg.layers)? };
    cfg.layers = taps.iter().map(|t| t.layer()).collect();
    for &l in &cfg.layers {
        if let Some(why) = enc.unavailable_reason(l) {
            bail!(why);
        }
    }
    let name = match dev {
        Device::Cpu => "cpu".to_string(),
        _ => crate::device::describe(&dev),
    };
    let v = crate::bench::run(&enc, &cfg, &name)?;
    if as_json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
