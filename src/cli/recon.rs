//! `layerinv reconstruct` and `layerinv eval`.

use crate::data::{list_images, load_image};
use crate::figure::{caption, grid, row, Tile};
use crate::fsutil::write_atomic_with;
use crate::model::{Kind, ModelSource};
use crate::recon::{evaluate, model_input, reconstruct, DecoderSet};
use crate::Error;
use anyhow::{bail, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `--decoders` default: the bundled decoders beside the bundled model.
pub fn decoders_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(crate::model::source::weights_dir)
}

pub fn reconstruct_cmd(image: &Path, layer: Option<&str>, all_layers: bool, decoders: &Path, out: &Path, model: &str, device: &str) -> Result<()> {
    let dev = crate::device::parse_device(device)?;
    let enc = ModelSource::parse(model).load(&dev)?;
    let set = DecoderSet::load(decoders, &enc);
    let img = load_image(image)?;
    let input = model_input(&enc, &img);
    let picture = if all_layers {
        let layers = set.complete_layers();
        if layers.is_empty() {
            bail!("no complete pair of decoders for {} in {}; make them with `{}`", enc.name, decoders.display(), crate::recon::train_command(decoders, "pool1,pool2,pool3,pool4,pool5", &Kind::ALL));
        }
        let recs = reconstruct(&enc, &set, &input, &layers, &Kind::ALL)?;
        let input_tile = Tile { image: &input, title: "input".into(), caption: String::new() };
        let tiles: Vec<Tile> = recs.iter().map(|r| Tile { image: &r.image, title: r.layer.clone(), caption: caption(r.psnr, r.ssim) }).collect();
        let mut rows: Vec<Vec<Option<&Tile>>> = vec![vec![Some(&input_tile)], vec![None]];
        for pair in tiles.chunks(2) {
            rows[0].push(pair.first());
            rows[1].push(pair.get(1));
        }
        grid(&["SAE".into(), "SWWAE".into()], &rows)
    } else {
        let Some(layer) = layer else { bail!("give --layer L (e.g. --layer pool3) or --all-layers") };
        if let Some(why) = enc.unavailable_reason(layer) {
            bail!(why);
        }
        if let Some(why) = set.unavailable_reason(layer) {
            bail!(why);
        }
        let recs = reconstruct(&enc, &set, &input, &[layer.to_string()], &Kind::ALL)?;
        let mut tiles = vec![Tile { image: &input, title: "input".into(), caption: image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() }];
        for r in &recs {
            tiles.push(Tile { image: &r.image, title: format!("{} from {}", r.kind.name().to_uppercase(), r.layer), caption: caption(r.psnr, r.ssim) });
        }
        row(&tiles)
    };
    write_atomic_with(out, |tmp| picture.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| Error::bad_file(tmp, e.to_string())))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

pub fn eval_cmd(data: &Path, decoders: &Path, model: &str, device: &str, as_json: bool) -> Result<()> {
    let dev = crate::device::parse_device(device)?;
    let enc = ModelSource::parse(model).load(&dev)?;
    let set = DecoderSet::load(decoders, &enc);
    if set.complete_layers().is_empty() {
        bail!("no complete pair of decoders for {} in {}; train some with `layerinv train`", enc.name, decoders.display());
    }
    let files = list_images(data)?;
    let mut images = Vec::new();
    for f in &files {
        match load_image(f) {
            Ok(img) => images.push(img),
            Err(e) => eprintln!("skipped {e}"),
        }
    }
    if images.is_empty() {
        bail!("{}: no readable images in this folder", data.display());
    }
    let bar = indicatif::ProgressBar::new(images.len() as u64);
    let rows = evaluate(&enc, &set, &images, |i, _| bar.set_position(i as u64))?;
    bar.finish_and_clear();
    if as_json {
        println!("{}", json!({"model": enc.name, "images": images.len(), "results": rows}));
        return Ok(());
    }
    println!("{} images, {}, decoders from {}", images.len(), enc.name, decoders.display());
    println!("floors: thumbnail = the photo squeezed to the layer's grid and blown back up; flat = its mean colour");
    println!("{:<6} {:<9} {:>10} {:>9} {:>7} {:>10} {:>11}", "layer", "kind", "MSE", "PSNR dB", "SSIM", "vs floor", "dependence");
    for r in &rows {
        let floor = rows.iter().find(|f| f.layer == r.layer && f.kind == crate::recon::THUMBNAIL).map(|f| f.psnr);
        let vs = match floor {
            Some(f) if r.kind != crate::recon::THUMBNAIL => format!("{:+.2}", r.psnr - f),
            _ => String::new(),
        };
        let dep = match r.dependence {
            Some(d) if d < crate::train::health::COLLAPSE_DEPENDENCE && r.kind != crate::recon::FLAT => format!("{d:.3} COLLAPSED"),
            Some(d) => format!("{d:.3}"),
            None => String::new(),
        };
        println!("{:<6} {:<9} {:>10.6} {:>9.2} {:>7.4} {:>10} {:>11}", r.layer, r.kind, r.mse, r.psnr, r.ssim, vs, dep);
    }
    Ok(())
}
