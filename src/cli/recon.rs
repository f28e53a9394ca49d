//! `layerinv reconstruct` and `layerinv eval`.

use crate::compare::{colour_bar, error_map, keep_channels, with_switches_of, ChannelSpec, ERROR_SCALE_MAX};
use crate::data::{list_images, load_image};
use crate::figure::{caption, draw_text, grid, row, text_width, Tile};
use crate::fsutil::write_atomic_with;
use crate::model::{Kind, ModelSource};
use crate::recon::{evaluate, features_for, model_input, reconstruct_from, DecoderSet, Reconstruction};
use crate::Error;
use anyhow::{bail, Result};
use image::RgbImage;
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
        let input_tile = Tile { image: &input, title: "input".into(), caption: String::new() };
        let tiles: Vec<Tile> = recs
            .iter()
            .map(|r| Tile { image: &r.image, title: r.layer.clone(), caption: caption(r.psnr, r.ssim) })
            .collect();
        let mut rows: Vec<Vec<Option<&Tile>>> = vec![vec![Some(&input_tile)], vec![None]];
        for pair in tiles.chunks(2) {
            rows[0].push(pair.first());
            rows[1].push(pair.get(1));
        }
        grid(&["SAE".into(), format!("SWWAE{swwae_note}")], &rows)
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
        if args.diff {
            diff_figure(&input, &recs, tiles)
        } else {
            row(&tiles)
        }
    };
    write_atomic_with(&args.out, |tmp| {
        picture.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| Error::bad_file(tmp, e.to_string()))
    })?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// The comparison row, and under it the error maps with their colour scale.
fn diff_figure(input: &RgbImage, recs: &[Reconstruction], top: Vec<Tile>) -> RgbImage {
    let find = |k: Kind| recs.iter().find(|r| r.kind == k).map(|r| &r.image);
    let (Some(sae), Some(swwae)) = (find(Kind::Sae), find(Kind::Swwae)) else { return row(&top) };
    let maps = [
        ("|input − SAE|", error_map(input, sae)),
        ("|input − SWWAE|", error_map(input, swwae)),
        ("|SWWAE − SAE|: the switches", error_map(swwae, sae)),
    ];
    let scale = scale_tile(input.width(), input.height());
    let mut bottom = vec![Tile { image: &scale, title: "scale, 0–255 units".into(), caption: String::new() }];
    for (title, (map, mean)) in &maps {
        bottom.push(Tile { image: map, title: (*title).into(), caption: format!("mean {mean:.1}") });
    }
    grid(&[], &[top.iter().map(Some).collect(), bottom.iter().map(Some).collect()])
}

/// A white tile with the error maps' colour bar and its ticks.
fn scale_tile(w: u32, h: u32) -> RgbImage {
    let mut tile = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let (bar_w, bar_h, x0, y0) = (w - 24, 28, 12, h / 2 - 14);
    image::imageops::replace(&mut tile, &colour_bar(bar_w, bar_h), x0 as i64, y0 as i64);
    let max = ERROR_SCALE_MAX as u32;
    for (i, v) in [0, max / 4, max / 2, 3 * max / 4, max].into_iter().enumerate() {
        let x = x0 as f32 + i as f32 * (bar_w - 1) as f32 / 4.0;
        let label = if v == max { format!("{v}+") } else { v.to_string() };
        // The ends inside the bar's span, the rest centred on their tick.
        let w = text_width(&label, 14.0);
        let left = match i {
            0 => x,
            4 => x - w,
            _ => x - w / 2.0,
        };
        draw_text(&mut tile, &label, left, (y0 + bar_h + 4) as f32, 14.0);
    }
    tile
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
