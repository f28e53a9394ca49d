//! `layerinv reconstruct` and `layerinv eval`.

use crate::compare::{ChannelSpec, CodeEdit};
use crate::data::{list_images, load_image};
use crate::decoder_sets::{set_labels, train_command, SetInfo};
use crate::figure::{figure, Shot, View};
use crate::fsutil::save_png;
use crate::model::{Kind, Layer, ModelSource};
use crate::recon::{
    evaluate, features_for, model_input, run, DecoderSet, DecoderSets, Method, Reconstruction, Request,
};
use crate::Error;
use anyhow::{bail, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `--decoders` given any number of times (a folder given twice counts once); none: the bundled
/// decoders beside the bundled model.
pub fn decoders_dirs(args: &[PathBuf]) -> Vec<PathBuf> {
    if args.is_empty() {
        return vec![crate::model::source::weights_dir()];
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in args {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    dirs
}

#[derive(clap::Args, Debug)]
pub struct ReconstructArgs {
    image: PathBuf,
    #[arg(long, required_unless_present = "all_layers")]
    layer: Option<Layer>,
    /// The paper's figure instead: a column per layer, a row per kind.
    #[arg(long)]
    all_layers: bool,
    /// Folder of decoders (default: the bundled ones); give it again to compare sets, a row each.
    #[arg(long)]
    decoders: Vec<PathBuf>,
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
    /// Also write the bare pictures into this folder, 224×224 PNGs a script can find:
    /// STEM_input.png and STEM_LAYER_KIND.png (`_setN` added with several --decoders, N from 1).
    #[arg(long, value_name = "DIR")]
    raw: Option<PathBuf>,
    /// Add a row of error maps: each kind against the input, and SWWAE against SAE (what the
    /// switches add), 0–255 units on a colour scale.
    #[arg(long)]
    diff: bool,
    #[arg(long, default_value = "bundled", value_parser = crate::model::ModelSource::check_name)]
    model: String,
    #[arg(long, default_value = "auto", value_parser = crate::device::check_device_name)]
    device: String,
}

pub fn reconstruct_cmd(args: &ReconstructArgs) -> Result<()> {
    let dirs = decoders_dirs(&args.decoders);
    if args.diff && dirs.len() > 1 {
        bail!("--diff draws the error maps of one set of decoders: give --decoders once");
    }
    let dev = crate::device::parse_device(&args.device)?;
    let enc = ModelSource::parse(&args.model).load(&dev)?;
    let mut sets = DecoderSets::load(&dirs, &enc);
    let infos: Vec<&SetInfo> = sets.iter().map(|s| &s.info).collect();
    // Which layers, checked before any encoder pass: every set must serve them.
    let layers = if args.all_layers {
        if args.keep_channels.is_some() || args.diff {
            bail!("--keep-channels and --diff work on one layer: give --layer L instead of --all-layers");
        }
        let mut layers = infos[0].layers();
        layers.retain(|l| infos.iter().all(|s| s.layers().contains(l)));
        if layers.is_empty() {
            let taps: Vec<Layer> = enc.arch.layers().into_iter().filter(|&l| enc.has_tap(l)).collect();
            bail!(
                "no decoders for {} in {}; make them with {}",
                enc.name,
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" and "),
                train_command(&dirs[0], &taps, &Kind::ALL)
            );
        }
        layers
    } else {
        let Some(layer) = args.layer else { bail!("give --layer L (e.g. --layer pool3) or --all-layers") };
        if let Some(why) = enc.unavailable_reason(layer) {
            bail!(why);
        }
        for set in &infos {
            if let Some(why) = set.unavailable_reason(layer) {
                bail!(why);
            }
        }
        vec![layer]
    };
    // What some kind lacks is said; the picture shows the others.
    let notes: Vec<String> = infos.iter().flat_map(|s| s.missing(&layers)).collect();
    let input = model_input(&enc, &load_image(&args.image)?);
    let own = features_for(&enc, &input, &layers)?;
    let theirs = match &args.switches_from {
        Some(other) => Some(features_for(&enc, &model_input(&enc, &load_image(other)?), &layers)?),
        None => None,
    };
    let mut edit = CodeEdit { switches_of: args.switches_from.clone(), keep: None };
    if let (Some(spec), &[layer]) = (&args.keep_channels, layers.as_slice()) {
        let code = own.tap(layer).ok_or_else(|| Error::Unavailable(format!("no {layer} activation")))?;
        edit.keep = Some(ChannelSpec::parse(spec)?.mask(code)?);
    }
    let change = edit.change();
    let request = Request::every_kind(&sets, &layers, edit);
    let pictures = run(&enc, &mut sets, &request, &input, &own, theirs.as_ref())?;
    // A row per set of decoders, in `--decoders` order.
    let labels = sets.labels();
    let rows: Vec<Vec<Shot>> = sets
        .iter()
        .zip(&labels)
        .map(|(set, label)| {
            pictures.iter().filter(|p| p.source.dir == set.info.dir).map(|p| (label.clone(), &p.rec)).collect()
        })
        .collect();
    let view = match (args.all_layers, args.diff) {
        (true, _) => View::AllLayers,
        (false, true) => View::Diff,
        (false, false) => View::Compare,
    };
    let picture = figure(view, &input, &file_name(&args.image), &rows, &change, Vec::new());
    save_png(&args.out, &picture)?;
    eprintln!("wrote {}", args.out.display());
    if let Some(dir) = &args.raw {
        let stem = args.image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let recs: Vec<Vec<Reconstruction>> =
            rows.iter().map(|row| row.iter().map(|(_, r)| (*r).clone()).collect()).collect();
        let n = save_raw(dir, &stem, &input, &recs)?;
        eprintln!("wrote {n} pictures into {}", dir.display());
    }
    for m in notes {
        eprintln!("note: {m}");
    }
    Ok(())
}

/// The bare pictures of one photo into `dir` (made if missing): `STEM_input.png`, and
/// `STEM_LAYER_KIND.png` for each reconstruction, with `_setN` added (N from 1, in `--decoders`
/// order) when there are several sets. Returns how many files it wrote.
fn save_raw(dir: &Path, stem: &str, input: &image::RgbImage, recs: &[Vec<Reconstruction>]) -> crate::Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    save_png(&dir.join(format!("{stem}_input.png")), input)?;
    let mut n = 1;
    for (i, set) in recs.iter().enumerate() {
        let suffix = if recs.len() > 1 { format!("_set{}", i + 1) } else { String::new() };
        for r in set {
            save_png(&dir.join(format!("{stem}_{}_{}{suffix}.png", r.layer, r.kind)), &r.image)?;
            n += 1;
        }
    }
    Ok(n)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `layerinv eval`: `save`, a folder for every photo's bare pictures ([`save_raw`], STEM the
/// photo's path under `data` with `_` for the folder separators).
pub fn eval_cmd(
    data: &Path,
    dirs: &[PathBuf],
    model: &str,
    device: &str,
    as_json: bool,
    save: Option<&Path>,
) -> Result<()> {
    let dev = crate::device::parse_device(device)?;
    let enc = ModelSource::parse(model).load(&dev)?;
    let sets: Vec<DecoderSet> = dirs.iter().map(|d| DecoderSet::load(d, &enc)).collect();
    for set in &sets {
        if set.info.layers().is_empty() {
            bail!("no decoders for {} in {}; train some with `layerinv train`", enc.name, set.info.dir.display());
        }
    }
    let notes: Vec<String> = sets.iter().flat_map(|s| s.info.missing(&s.info.layers())).collect();
    let files = list_images(data)?;
    let (mut images, mut stems) = (Vec::new(), Vec::new());
    for f in &files {
        match load_image(f) {
            Ok(img) => {
                images.push(img);
                let rel = f.strip_prefix(data).unwrap_or(f).with_extension("");
                stems.push(rel.to_string_lossy().replace(['/', '\\'], "_"));
            }
            Err(e) => eprintln!("skipped {e}"),
        }
    }
    if images.is_empty() {
        bail!("{}: no readable images in this folder", data.display());
    }
    let bar = indicatif::ProgressBar::new(images.len() as u64);
    let rows = evaluate(&enc, &sets, &images, |i, input, recs| {
        if let Some(dir) = save {
            save_raw(dir, &stems[i], input, recs)?;
        }
        bar.set_position(i as u64 + 1);
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(dir) = save {
        eprintln!("wrote the pictures of {} photos into {}", images.len(), dir.display());
    }
    // What some kind lacks (it has no rows).
    for m in &notes {
        eprintln!("note: {m}");
    }
    let labels = set_labels(&sets.iter().map(|s| &s.info).collect::<Vec<_>>());
    if as_json {
        let decoders: Vec<_> = sets
            .iter()
            .zip(&labels)
            .map(|(s, label)| json!({"label": label, "dir": s.info.dir.display().to_string()}))
            .collect();
        println!("{}", json!({"model": enc.name, "images": images.len(), "decoders": decoders, "results": rows}));
        return Ok(());
    }
    println!("{} images, {}", images.len(), enc.name);
    for (s, label) in sets.iter().zip(&labels) {
        println!("decoders {label}: {}", s.info.dir.display());
    }
    println!("floors: thumbnail = the photo squeezed to the layer's grid and blown back up; flat = its mean colour");
    let width = rows.iter().filter_map(|r| r.decoders.as_ref().map(|d| d.chars().count())).max().unwrap_or(0).max(8);
    println!(
        "speckle = noise added where the photo is flat, 0–255 units (about 0: clean; below 0: blurrier than the photo)"
    );
    println!(
        "{:<6} {:<9} {:<width$} {:>10} {:>9} {:>7} {:>10} {:>8} {:>11}",
        "layer", "kind", "decoders", "MSE", "PSNR dB", "SSIM", "vs floor", "speckle", "dependence"
    );
    for r in &rows {
        let floor = rows.iter().find(|f| f.layer == r.layer && f.kind == Method::Thumbnail).map(|f| f.psnr);
        let vs = match floor {
            Some(f) if !r.kind.is_floor() => format!("{:+.2}", r.psnr - f),
            _ => String::new(),
        };
        let dep = match r.dependence {
            Some(d) if d < crate::train::health::COLLAPSE_DEPENDENCE && r.kind != Method::Flat => {
                format!("{d:.3} COLLAPSED")
            }
            Some(d) => format!("{d:.3}"),
            None => String::new(),
        };
        let speckle = r.speckle.map(|s| format!("{s:+.2}")).unwrap_or_default();
        println!(
            "{:<6} {:<9} {:<width$} {:>10.6} {:>9.2} {:>7.4} {:>10} {:>8} {:>11}",
            r.layer,
            r.kind,
            r.decoders.as_deref().unwrap_or(""),
            r.mse,
            r.psnr,
            r.ssim,
            vs,
            speckle,
            dep
        );
    }
    Ok(())
}
