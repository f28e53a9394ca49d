//! Where SWWAE's speckle comes from (issue 25, docs/fidelity.md "Speckle, measured"). The SWWAE
//! decoders of a set rebuild held-out photos three times, from the same pooled values:
//!
//! - `own`: the switches the photo's max-pooling recorded (what SWWAE always uses);
//! - `fixed where flat`: SAE's fixed cell in every pooling window that lies wholly where the photo
//!   is flat (the speckle measure's mask), the recorded switch elsewhere;
//! - `fixed`: SAE's fixed cell in every window.
//!
//! Where the photo is flat, which cell of a window holds its maximum is decided by tiny
//! differences, so the recorded switches there are close to random positions. If the speckle is
//! the decoder drawing those positions, it falls in `fixed where flat` while the PSNR elsewhere
//! stays. Prints PSNR and speckle per layer, means over the photos.
//!
//! `cargo run --release --example switch_speckle -- VAL_DIR [DECODERS_DIR] [LAYERS]`
//! (defaults: weights/, pool1,pool2,pool3,pool4,pool5)
use layerinv::model::Layer;
use layerinv::model::{Features, Kind, ModelSource};
use layerinv::ops::PoolSwitches;
use layerinv::recon::{features_of, model_input, rebuild, DecoderSet};
use layerinv::train::metrics::flat_mask;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `f` with SAE's fixed cell in every window of every stage where `use_fixed(stage, y, x)` says
/// so (`y`, `x`: the window's cell in that stage's pooled grid).
fn with_fixed_where(f: &Features, use_fixed: &dyn Fn(usize, usize, usize) -> bool) -> anyhow::Result<Features> {
    let mut out = f.clone();
    for (stage, sw) in out.switches.iter_mut().enumerate() {
        let Some(sw) = sw else { continue };
        let fixed = PoolSwitches::fixed(sw)?;
        let (b, c, oh, ow) = sw.indices.dims4()?;
        let own = sw.indices.flatten_all()?.to_vec1::<u32>()?;
        let fix = fixed.indices.flatten_all()?.to_vec1::<u32>()?;
        let mixed: Vec<u32> = (0..own.len())
            .map(|i| {
                let (y, x) = ((i / ow) % oh, i % ow);
                if use_fixed(stage, y, x) {
                    fix[i]
                } else {
                    own[i]
                }
            })
            .collect();
        sw.indices = candle_core::Tensor::from_vec(mixed, (b, c, oh, ow), sw.indices.device())?;
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let val = PathBuf::from(
        args.next().ok_or_else(|| anyhow::anyhow!("usage: switch_speckle VAL_DIR [DECODERS_DIR] [LAYERS]"))?,
    );
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "weights".into()));
    let layers = args
        .next()
        .unwrap_or_else(|| "pool1,pool2,pool3,pool4,pool5".into())
        .split(',')
        .map(Layer::parse)
        .collect::<layerinv::Result<Vec<Layer>>>()?;
    let dev = candle_core::Device::Cpu;
    let enc = ModelSource::parse("bundled").load(&dev)?;
    let set = DecoderSet::load(&dir, &enc);
    let photos = layerinv::data::photos_in(&val)?;
    let variants = ["own", "fixed where flat", "fixed"];
    // [layer][variant] -> (psnr sum, speckle sum, photos with a flat region); flat windows share.
    let mut sums = vec![vec![(0.0, 0.0, 0usize); variants.len()]; layers.len()];
    let mut flat_share = vec![0.0; layers.len()];
    for (n, path) in photos.iter().enumerate() {
        let input = model_input(&enc, &layerinv::data::load_image(path)?);
        let (w, h) = (input.width() as usize, input.height() as usize);
        let flat = flat_mask(&input);
        let f = features_of(&enc, &input)?;
        // A window of stage s (0-based) covers image pixels [y·2^(s+1), (y+1)·2^(s+1)) on each axis.
        let window_flat = |stage: usize, y: usize, x: usize| {
            let side = 2usize << stage;
            (y * side..((y + 1) * side).min(h))
                .all(|py| (x * side..((x + 1) * side).min(w)).all(|px| flat[py * w + px]))
        };
        // The three codes, one per variant, serve every layer (each decoder reads its own stages).
        let feats =
            [f.clone(), with_fixed_where(&f, &|s, y, x| window_flat(s, y, x))?, with_fixed_where(&f, &|_, _, _| true)?];
        for (li, &layer) in layers.iter().enumerate() {
            let decoder = set.get(layer, Kind::Swwae)?;
            let stages = enc.arch.tap(layer)?.index() + 1;
            let (mut windows, mut flat_windows) = (0usize, 0usize);
            for s in 0..stages {
                if let Some(Some(sw)) = f.switches.get(s) {
                    let (_, _, oh, ow) = sw.indices.dims4()?;
                    windows += oh * ow;
                    flat_windows += (0..oh * ow).filter(|i| window_flat(s, i / ow, i % ow)).count();
                }
            }
            flat_share[li] += flat_windows as f64 / windows.max(1) as f64;
            for (vi, fv) in feats.iter().enumerate() {
                let r = rebuild(&enc, decoder, fv, &input, layer, Kind::Swwae)?;
                let e = &mut sums[li][vi];
                e.0 += r.psnr;
                if let Some(s) = r.speckle {
                    e.1 += s;
                    e.2 += 1;
                }
            }
        }
        eprint!("\r{}/{} photos", n + 1, photos.len());
    }
    eprintln!();
    let n = photos.len().max(1) as f64;
    println!("SWWAE decoders of {}, {} photos of {}", dir.display(), photos.len(), val.display());
    println!("| layer | flat windows | switches | PSNR dB | speckle |");
    println!("|---|---|---|---|---|");
    for (li, layer) in layers.iter().enumerate() {
        for (vi, v) in variants.iter().enumerate() {
            let (p, s, k) = sums[li][vi];
            let share = if vi == 0 { format!("{:.0}%", 100.0 * flat_share[li] / n) } else { String::new() };
            println!("| {layer} | {share} | {v} | {:.2} | {:+.2} |", p / n, s / k.max(1) as f64);
        }
    }
    Ok(())
}
