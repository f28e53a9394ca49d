//! What a channel-mask change or a switch transplant costs in the app at a layer: the app's own
//! worker (encoder pass kept, the decoders alone run), timed by the worker. Prints every change
//! and the median. `cargo run --release --example app_latency -- [LAYER] [CHANGES]`.
use layerinv::app::decoders::Source;
use layerinv::app::worker::{Job, Reply, Variant, Worker};
use layerinv::compare::CodeEdit;
use layerinv::model::Layer;
use layerinv::model::{decoder_path, Arch, Kind};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn answer(w: &Worker) -> anyhow::Result<Reply> {
    loop {
        if let Some(r) = w.try_recv() {
            if let Reply::Failed { error, .. } = r {
                anyhow::bail!(error);
            }
            return Ok(r);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn main() -> anyhow::Result<()> {
    let layer = std::env::args().nth(1).map_or(Ok(Layer::POOL5), |s| Layer::parse(&s))?;
    let changes: usize = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(10);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let w = Worker::spawn(candle_core::Device::Cpu, Default::default(), || {});
    w.send(Job::LoadModel("bundled".into()));
    answer(&w)?;
    // The kinds the bundled set has at this layer, as the app shows them.
    let weights = root.join("weights");
    let sources: Vec<Source> = Kind::ALL
        .iter()
        .filter(|&&kind| decoder_path(&weights, Arch::Vgg16, layer, kind).is_file())
        .map(|&kind| Source { kind, dir: weights.clone() })
        .collect();
    if sources.is_empty() {
        anyhow::bail!("no bundled decoder for {layer} in {}", weights.display());
    }
    let kinds: Vec<&str> = sources.iter().map(|s| s.kind.name()).collect();
    println!("{layer}: timing the bundled {} decoders", kinds.join(", "));
    let (photo, other) = (root.join("assets/chelsea.png"), root.join("assets/rocket.jpg"));
    for (id, path) in [(1, &other), (2, &photo)] {
        w.send(Job::LoadImage { id, path: path.clone() });
        answer(&w)?;
    }
    w.send(Job::Channels { id: 2, layer });
    let Reply::Channels { maps, .. } = answer(&w)? else { anyhow::bail!("unexpected reply") };
    let channels = maps.energy.len();
    let run = |variant: Variant| -> anyhow::Result<(f64, bool)> {
        w.send(Job::Reconstruct { id: 2, layer, variant, sources: sources.clone(), preview: false });
        match answer(&w)? {
            Reply::Reconstructed { seconds, encoder_ran, .. } => Ok((seconds * 1e3, encoder_ran)),
            _ => anyhow::bail!("unexpected reply"),
        }
    };
    let (first, _) = run(Variant::default())?;
    println!("{layer} plain, first use: {first:.0} ms");
    let mut times = Vec::new();
    for i in 0..changes {
        // Alternate a mask change (channel i off) and a transplant of the other photo's switches.
        let variant = if i % 2 == 0 {
            let mut keep = vec![true; channels];
            keep[i % channels] = false;
            Variant { edit: CodeEdit { switches_of: None, keep: Some(keep) }, switches_id: None }
        } else {
            Variant { edit: CodeEdit { switches_of: Some(other.clone()), keep: None }, switches_id: Some(1) }
        };
        let what = if i % 2 == 0 { "mask" } else { "transplant" };
        let (ms, encoder_ran) = run(variant)?;
        println!("{layer} {what}: {ms:.0} ms{}", if encoder_ran { " (ran the encoder)" } else { ", decoders only" });
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!("{layer}: median of {changes} changes {:.0} ms", times[times.len() / 2]);
    Ok(())
}
