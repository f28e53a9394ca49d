//! `layerinv reconstruct` and `layerinv eval`.

use crate::compare::{keep_channels, with_switches_of, ChannelSpec};
use crate::data::{list_images, load_image};
use crate::figure::{all_layers, caption, diff_figure, row, Tile};
use crate::fsutil::write_atomic_with;
use crate::model::{Kind, ModelSource};
use crate::recon::{evaluate, features_for, model_input, reconstruct_from, DecoderSet};
use crate::Error;
use anyhow::{bail, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `--decoders` default: the bundled decoders beside the bundled model.
pub fn decoders_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(crate::model::source::weights_dir)
}

#[derive(clap::Args, Debug)]
pub struct ReconstructArgs {
    image: PathBuf,
    #[arg(long, required_unless_present = "all_layers")]
    layer: Option<String>,
    /// The paper's figure instead: a column per layer, rows SAE and SWWAE.
    #[arg(long)]
    all_layers: bool,
    /// Folder of decoders (default: the bundled ones).
    #[arg(long)]
    decoders: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Decode with the pooling switches of this photo instead (the "where" of another photo with
    /// the "what" of this one; only SWWAE reads switches).
    #[arg(long)]
    switches_from: Option<PathBuf>,
    /// Keep only these channels of the layer's code, zero the rest: `0-31,64,100`, or `top:16` (the
    /// 16 with the most energy in this photo's code).
    #[arg(long)]
    keep_channels: Option<String>,
    /// Add a row of error maps: |input − SAE|, |input − SWWAE| and |SWWAE − SAE| (what the
    /// switches add), 0–255 units on a colour scale.
    #[arg(long)]
    diff: bool,
    #[arg(long, default_value = "bundled")]
    model: String,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn reconstruct_cmd(args: &ReconstructArgs) -> Result<()> {
    let decoders = decoders_dir(args.decoders.clone());
    let dev = crate::device::parse_device(&args.device)?;
    let enc = ModelSource::parse(&args.model).load(&dev)?;
    let set = DecoderSet::load(&decoders, &enc);
    // Which layers, checked before any encoder pass.
    let layers = if args.all_layers {
        if args.keep_channels.is_some() || args.diff {
            bail!("--keep-channels and --diff work on one layer: give --layer L instead of --all-layers");
        }
        let layers = set.complete_layers();
        if layers.is_empty() {
            bail!(
                "no complete pair of decoders for {} in {}; make them with `{}`",
                enc.name,
                decoders.display(),
                crate::recon::train_command(&decoders, "pool1,pool2,pool3,pool4,pool5", &Kind::ALL)
            );
        }
        layers
    } else {
        let Some(layer) = args.layer.as_deref() else { bail!("give --layer L (e.g. --layer pool3) or --all-layers") };
        if let Some(why) = enc.unavailable_reason(layer) {
            bail!(why);
        }
        if let Some(why) = set.unavailable_reason(layer) {
            bail!(why);
        }
        vec![layer.to_string()]
    };
    let input = model_input(&enc, &load_image(&args.image)?);
    let mut features = features_for(&enc, &input, &layers)?;
    let mut swwae_note = String::new();
    if let Some(other) = &args.switches_from {
        let theirs = features_for(&enc, &model_input(&enc, &load_image(other)?), &layers)?;
        features = with_switches_of(&features, &theirs)?;
        swwae_note = format!(", switches of {}", file_name(other));
    }
    let picture = if args.all_layers {
        let recs = reconstruct_from(&enc, &set, &features, &input, &layers, &Kind::ALL)?;
        all_layers(&input, &recs, &swwae_note)
    } else {
        let layer = layers[0].as_str();
        let mut code_note = String::new();
        if let Some(spec) = &args.keep_channels {
            let code = features.tap(layer).ok_or_else(|| Error::Unavailable(format!("no {layer} activation")))?;
            let keep = ChannelSpec::parse(spec)?.mask(code)?;
            code_note = format!(", {} of {} channels", keep.iter().filter(|&&k| k).count(), keep.len());
            features = keep_channels(&features, layer, &keep)?;
        }
        let recs = reconstruct_from(&enc, &set, &features, &input, &layers, &Kind::ALL)?;
        let mut tiles = vec![Tile { image: &input, title: "input".into(), caption: file_name(&args.image) }];
        for r in &recs {
            let note = if r.kind == Kind::Swwae { swwae_note.as_str() } else { "" };
            tiles.push(Tile {
                image: &r.image,
                title: format!("{} from {}{code_note}{note}", r.kind.name().to_uppercase(), r.layer),
                caption: caption(r.psnr, r.ssim),
            });
        }
        let find = |k: Kind| recs.iter().find(|r| r.kind == k).map(|r| &r.image);
        match (args.diff, find(Kind::Sae), find(Kind::Swwae)) {
            (true, Some(sae), Some(swwae)) => diff_figure(&input, sae, swwae, &tiles),
            _ => row(&tiles),
        }
    };
    write_atomic_with(&args.out, |tmp| {
        picture.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| Error::bad_file(tmp, e.to_string()))
    })?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn eval_cmd(data: &Path, decoders: &Path, model: &str, device: &str, as_json: bool) -> Result<()> {
    let dev = crate::device::parse_device(device)?;
    let enc = ModelSource::parse(model).load(&dev)?;
    let set = DecoderSet::load(decoders, &enc);
    if set.complete_layers().is_empty() {
        bail!(
            "no complete pair of decoders for {} in {}; train some with `layerinv train`",
            enc.name,
            decoders.display()
        );
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
    println!(
        "{:<6} {:<9} {:>10} {:>9} {:>7} {:>10} {:>11}",
        "layer", "kind", "MSE", "PSNR dB", "SSIM", "vs floor", "dependence"
    );
    for r in &rows {
        let floor = rows.iter().find(|f| f.layer == r.layer && f.kind == crate::recon::THUMBNAIL).map(|f| f.psnr);
        let vs = match floor {
            Some(f) if r.kind != crate::recon::THUMBNAIL => format!("{:+.2}", r.psnr - f),
            _ => String::new(),
        };
        let dep = match r.dependence {
            Some(d) if d < crate::train::health::COLLAPSE_DEPENDENCE && r.kind != crate::recon::FLAT => {
                format!("{d:.3} COLLAPSED")
            }
            Some(d) => format!("{d:.3}"),
            None => String::new(),
        };
        println!("{:<6} {:<9} {:>10.6} {:>9.2} {:>7.4} {:>10} {:>11}", r.layer, r.kind, r.mse, r.psnr, r.ssim, vs, dep);
    }
    Ok(())
}
