//! Per-shape timing of the CPU convolution forward (VGG-16's 3×3 shapes), to compare with
//! PyTorch's `conv2d` on the same shapes (scripts/torch_convshape.py), and the direct kernel
//! against Winograd F(2×2, 3×3) in alternating runs (best of REPS each; `auto` is what
//! `conv2d` picks): `cargo run --release --example convshape -- BATCH REPS [train]` (`train`:
//! forward and both gradients).
use candle_core::{Device, Tensor, Var};
use layerinv::ops::{conv2d_with, ConvAlgo};
use std::time::Instant;

// The app's allocator, so that buffer reuse and page faults are as in `layerinv bench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).take(2).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let (b, reps) = (args.first().copied().unwrap_or(1), args.get(1).copied().unwrap_or(5));
    let shapes = [
        (3, 64, 224),
        (64, 64, 224),
        (64, 3, 224),
        (64, 128, 112),
        (128, 64, 112),
        (128, 128, 112),
        (128, 256, 56),
        (256, 128, 56),
        (256, 256, 56),
        (256, 512, 28),
        (512, 256, 28),
        (512, 512, 28),
        (512, 512, 14),
    ];
    let dev = Device::Cpu;
    // `train`: forward, then the input and weight gradients (what a training step runs per layer).
    let train = std::env::args().nth(3).as_deref() == Some("train");
    for (ci, co, h) in shapes {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, ci, h, h), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (co, ci, 3, 3), &dev)?)?;
        let bias = Tensor::randn(0f32, 1., co, &dev)?;
        let dy = Tensor::randn(0f32, 1., (b, co, h, h), &dev)?;
        let run = |algo: ConvAlgo| -> anyhow::Result<()> {
            let y = conv2d_with(x.as_tensor(), w.as_tensor(), &bias, 1, true, algo)?;
            if train {
                y.mul(&dy)?.sum_all()?.backward()?;
            }
            Ok(())
        };
        let algos = [ConvAlgo::Direct, ConvAlgo::Winograd, ConvAlgo::Auto];
        for algo in algos {
            run(algo)?;
        }
        let mut best = [f64::MAX; 3];
        for _ in 0..reps {
            for (i, algo) in algos.into_iter().enumerate() {
                let t = Instant::now();
                run(algo)?;
                best[i] = best[i].min(t.elapsed().as_secs_f64());
            }
        }
        let mac = (b * ci * co * 9 * h * h * if train { 3 } else { 1 }) as f64;
        println!(
            "{ci:4}->{co:4} {h:4}  direct {:7.2} ms {:5.1} GMAC/s  winograd {:7.2} ms ({:.2}× direct)  auto {:7.2} ms",
            best[0] * 1e3,
            mac / best[0] / 1e9,
            best[1] * 1e3,
            best[1] / best[0],
            best[2] * 1e3
        );
    }
    Ok(())
}
