//! Where the batch-1 latency of `layerinv bench` goes: the encoder pass and each decoder alone
//! (best of N), as scripts/torch_latency.py does for PyTorch. `cargo run --release --example latency -- N`.
use candle_core::{Device, Tensor};
use layerinv::model::Layer;
use layerinv::model::{DecoderSpec, Kind};
use layerinv::train::DecoderTrainer;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn best(reps: usize, f: &mut dyn FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut b = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        b = b.min(t.elapsed().as_secs_f64());
    }
    Ok(b * 1e3)
}

fn main() -> anyhow::Result<()> {
    let reps: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(5);
    let dev = Device::Cpu;
    let enc = layerinv::model::ModelSource::parse("bundled").load(&dev)?;
    let x = Tensor::randn(0f32, 1., (1, 3, 224, 224), &dev)?;
    println!("encoder_all {:.1}", best(reps, &mut || Ok(enc.forward(&x).map(|_| ())?))?);
    let f = enc.forward(&x)?;
    let mut decoders = Vec::new();
    for l in [Layer::POOL2, Layer::POOL5] {
        for k in Kind::ALL {
            let d = DecoderTrainer::new(DecoderSpec::new(enc.arch, l, k, 1.0)?, &dev)?
                .frozen(&dev, candle_core::DType::F32)?;
            println!("{l}_{} {:.1}", k.name(), best(reps, &mut || Ok(d.forward(&f).map(|_| ())?))?);
            decoders.push(d);
        }
    }
    // The whole of bench's infer_all_ms, timed one by one.
    for _ in 0..reps {
        let t = Instant::now();
        let f = enc.forward(&x)?;
        for d in &decoders {
            d.forward(&f)?;
        }
        println!("infer_all {:.1}", t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}
