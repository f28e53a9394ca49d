//! The fast convolution (our CPU kernels; cuDNN in CUDA builds) against candle's on the CPU,
//! forward and backward, for the shapes we use. On CUDA run with `NVIDIA_TF32_OVERRIDE=0`, so that
//! cuDNN computes in full f32 and the same tolerances hold (scripts/gpu-check.sh does).

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::devices;
use layerinv::ops::{conv2d, conv2d_packed, conv2d_ref, conv2d_with, ConvAlgo, PackedKernel};

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    a.sub(b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
}

/// (batch, cin, cout, h, w, k, pad): VGG 3×3/1, AlexNet 5×5/2, 1×1, odd sizes, batch below and
/// above the thread count (both code paths), one image of a small map with many channels.
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 8] = [
    (1, 3, 8, 9, 7, 3, 1),
    (3, 16, 4, 8, 8, 3, 1),
    (2, 5, 6, 13, 11, 5, 2),
    (1, 4, 4, 6, 6, 1, 0),
    (4, 8, 3, 5, 9, 3, 0),
    (2, 64, 32, 14, 14, 3, 1),
    (1, 32, 96, 10, 12, 3, 1),
    (1, 80, 70, 7, 9, 3, 1),
];

fn inputs(c: (usize, usize, usize, usize, usize, usize, usize)) -> (Tensor, Tensor, Tensor) {
    let (b, cin, cout, h, w, k, _) = c;
    let dev = Device::Cpu;
    (
        Tensor::randn(0f32, 1., (b, cin, h, w), &dev).unwrap(),
        Tensor::randn(0f32, 0.3, (cout, cin, k, k), &dev).unwrap(),
        Tensor::randn(0f32, 1., cout, &dev).unwrap(),
    )
}

#[test]
fn forward_matches_candle() {
    for dev in devices() {
        for (c, relu) in CASES.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let (x, w, b) = inputs(c);
            let on = |t: &Tensor| t.to_device(&dev).unwrap();
            let fast = conv2d(&on(&x), &on(&w), &on(&b), c.6, relu).unwrap().to_device(&Device::Cpu).unwrap();
            let slow = conv2d_ref(&x, &w, &b, c.6, relu).unwrap();
            assert_eq!(fast.dims(), slow.dims(), "{c:?}");
            assert!(max_rel_diff(&fast, &slow) < 1e-5, "{dev:?} {c:?}: {}", max_rel_diff(&fast, &slow));
        }
    }
}

#[test]
fn gradients_match_candle_autodiff() {
    for dev in devices() {
        for (c, relu) in CASES.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let (x, w, b) = inputs(c);
            let (_, _, cout, h, wd, k, p) = c;
            let g = Tensor::randn(0f32, 1., (c.0, cout, h + 2 * p + 1 - k, wd + 2 * p + 1 - k), &Device::Cpu).unwrap();
            let grads = |f: fn(&Tensor, &Tensor, &Tensor, usize, bool) -> candle_core::Result<Tensor>, dev: &Device| {
                let on = |t: &Tensor| Var::from_tensor(&t.to_device(dev).unwrap()).unwrap();
                let (xv, wv, bv) = (on(&x), on(&w), on(&b));
                let y = f(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), p, relu).unwrap();
                let gs = y.mul(&g.to_device(dev).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
                [xv, wv, bv].map(|v| gs.get(v.as_tensor()).unwrap().to_device(&Device::Cpu).unwrap())
            };
            let (fast, slow) = (grads(conv2d, &dev), grads(conv2d_ref, &Device::Cpu));
            for (name, (a, b)) in ["dx", "dw", "db"].iter().zip(fast.iter().zip(slow.iter())) {
                assert!(max_rel_diff(a, b) < 1e-4, "{dev:?} {c:?} relu={relu} {name}: {}", max_rel_diff(a, b));
            }
        }
    }
}

/// Winograd F(2×2, 3×3), forced on every 3×3 padding-1 case (Auto takes it only for 64+
/// channels, 128 in and 64 out for the weight gradient), against candle: forward, dx and dw (both gradients
/// run Winograd too). Its transforms add and subtract the products in another order than the
/// direct sum, so f32 rounding differs by a few ulps of the largest partial sums: within 2e-5 of
/// the output scale forward, 1e-4 for the gradients (as the direct kernel's tolerance above).
#[test]
fn winograd_matches_candle_forward_and_backward() {
    fn winograd(x: &Tensor, w: &Tensor, b: &Tensor, p: usize, relu: bool) -> candle_core::Result<Tensor> {
        conv2d_with(x, w, b, p, relu, ConvAlgo::Winograd)
    }
    for c in CASES.into_iter().filter(|c| c.5 == 3 && c.6 == 1) {
        for relu in [false, true] {
            let (x, w, b) = inputs(c);
            let (fast, slow) = (winograd(&x, &w, &b, 1, relu).unwrap(), conv2d_ref(&x, &w, &b, 1, relu).unwrap());
            assert!(max_rel_diff(&fast, &slow) < 2e-5, "{c:?}: {}", max_rel_diff(&fast, &slow));
            let g = Tensor::randn(0f32, 1., fast.dims(), &Device::Cpu).unwrap();
            let grads = |f: fn(&Tensor, &Tensor, &Tensor, usize, bool) -> candle_core::Result<Tensor>| {
                let (xv, wv, bv) =
                    (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
                let y = f(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), 1, relu).unwrap();
                let gs = y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
                [xv, wv].map(|v| gs.get(v.as_tensor()).unwrap().clone())
            };
            let (fast, slow) = (grads(winograd), grads(conv2d_ref));
            for (name, (a, b)) in ["dx", "dw"].iter().zip(fast.iter().zip(slow.iter())) {
                assert!(max_rel_diff(a, b) < 1e-4, "{c:?} relu={relu} {name}: {}", max_rel_diff(a, b));
            }
        }
    }
}

/// A kernel packed once (what the encoder's and a loaded decoder's layers hold) gives what packing
/// per call gives, bit for bit, for the direct kernel's shapes and for Winograd's (64+ channels,
/// 3×3, padding 1), in f32 and in bf16; an input of another dtype than the packing's falls back
/// to packing per call; a variable's kernel (it changes with every training step), or one
/// computed from a variable, is never packed.
#[test]
fn packed_kernels_give_the_per_call_results() {
    for c in [CASES[0], CASES[2], CASES[5], (1, 64, 70, 14, 14, 3, 1)] {
        let (x, w, b) = inputs(c);
        for dtype in [DType::F32, DType::BF16] {
            let (x, w, b) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap(), b.to_dtype(dtype).unwrap());
            let packed = PackedKernel::new(&w, c.6).unwrap().expect("a plain CPU kernel is packed");
            for relu in [false, true] {
                let per_call = conv2d(&x, &w, &b, c.6, relu).unwrap();
                let once = conv2d_packed(&x, &w, &b, c.6, relu, &packed).unwrap();
                assert_eq!(once.dtype(), dtype);
                let diff = once.to_dtype(DType::F32).unwrap().sub(&per_call.to_dtype(DType::F32).unwrap()).unwrap();
                assert_eq!(diff.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0, "{c:?} {dtype:?}");
            }
        }
        // Packed in f32, run in bf16: the f32 packing does not fit, so the op packs per call.
        let packed = PackedKernel::new(&w, c.6).unwrap().unwrap();
        let bf = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
        let once = conv2d_packed(&bf(&x), &bf(&w), &bf(&b), c.6, true, &packed).unwrap();
        let per_call = conv2d(&bf(&x), &bf(&w), &bf(&b), c.6, true).unwrap();
        assert_eq!(max_rel_diff(&once.to_dtype(DType::F32).unwrap(), &per_call.to_dtype(DType::F32).unwrap()), 0.0);
        let var = Var::from_tensor(&w).unwrap();
        assert!(PackedKernel::new(var.as_tensor(), c.6).unwrap().is_none(), "a variable is not packed");
        assert!(PackedKernel::new(&bf(var.as_tensor()), c.6).unwrap().is_none(), "nor a tensor computed from one");
    }
}

/// bf16 convolutions (our CPU kernels compute in f32 and round the result; cuDNN keeps bf16 data
/// and f32 arithmetic) against f32 on the same bf16-rounded inputs: forward and all three
/// gradients within bf16's rounding of the result.
#[test]
fn bf16_matches_f32_to_bf16_precision() {
    use candle_core::DType;
    let round = |t: &Tensor| t.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap();
    for dev in devices() {
        for (c, relu) in CASES.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let (x, w, b) = inputs(c);
            let (x, w, b) = (round(&x), round(&w), round(&b));
            let (_, _, cout, h, wd, k, p) = c;
            let g = round(
                &Tensor::randn(0f32, 1., (c.0, cout, h + 2 * p + 1 - k, wd + 2 * p + 1 - k), &Device::Cpu).unwrap(),
            );
            let run = |dtype: DType| {
                let on = |t: &Tensor| Var::from_tensor(&t.to_device(&dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
                let (xv, wv, bv) = (on(&x), on(&w), on(&b));
                let y = conv2d(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), p, relu).unwrap();
                assert_eq!(y.dtype(), dtype);
                let gs = y
                    .mul(&g.to_device(&dev).unwrap().to_dtype(dtype).unwrap())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let back = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_device(&Device::Cpu).unwrap();
                [
                    back(&y),
                    back(gs.get(xv.as_tensor()).unwrap()),
                    back(gs.get(wv.as_tensor()).unwrap()),
                    back(gs.get(bv.as_tensor()).unwrap()),
                ]
            };
            let (full, half) = (run(DType::F32), run(DType::BF16));
            for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(half.iter().zip(full.iter())) {
                // bf16 keeps 8 significant bits: a relative rounding error of at most 2^-8 per value.
                assert!(max_rel_diff(a, b) < 1e-2, "{dev:?} {c:?} relu={relu} {name}: {}", max_rel_diff(a, b));
            }
        }
    }
}

/// A decoder's first convolution reads the unpooled code, which needs no gradient: the op skips
/// dX there (candle would otherwise store one) and still gives the parameters' gradients.
#[test]
fn no_input_gradient_for_a_constant_input() {
    let (x, w, b) = inputs((2, 64, 32, 14, 14, 3, 1));
    let dw_of = |f: fn(&Tensor, &Tensor, &Tensor, usize, bool) -> candle_core::Result<Tensor>, dev: &Device| {
        let (x, wv, bv) = (
            x.to_device(dev).unwrap(),
            Var::from_tensor(&w.to_device(dev).unwrap()).unwrap(),
            b.to_device(dev).unwrap(),
        );
        let grads = f(&x, wv.as_tensor(), &bv, 1, true).unwrap().sum_all().unwrap().backward().unwrap();
        (grads.get(&x).is_some(), grads.get(wv.as_tensor()).unwrap().to_device(&Device::Cpu).unwrap())
    };
    let (_, slow) = dw_of(conv2d_ref, &Device::Cpu);
    for dev in devices() {
        let (has_dx, fast) = dw_of(conv2d, &dev);
        assert!(!has_dx, "{dev:?}: a gradient for a constant input");
        assert!(max_rel_diff(&fast, &slow) < 1e-4, "{dev:?}: {}", max_rel_diff(&fast, &slow));
    }
}

#[test]
fn weight_gradient_matches_finite_differences() {
    let (x, w, b) = inputs((2, 3, 2, 5, 6, 3, 1));
    let g = Tensor::randn(0f32, 1., (2, 2, 5, 6), &Device::Cpu).unwrap();
    let wv = Var::from_tensor(&w).unwrap();
    let loss = conv2d(&x, wv.as_tensor(), &b, 1, false).unwrap().mul(&g).unwrap().sum_all().unwrap();
    let dw = loss.backward().unwrap().get(wv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let base = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let f = |v: Vec<f32>| {
        let w = Tensor::from_vec(v, w.shape(), &Device::Cpu).unwrap();
        conv2d(&x, &w, &b, 1, false).unwrap().mul(&g).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64
    };
    for i in 0..base.len() {
        let eps = 1e-2;
        let (mut up, mut down) = (base.clone(), base.clone());
        up[i] += eps;
        down[i] -= eps;
        let fd = (f(up) - f(down)) / (2. * eps as f64);
        assert!((fd - dw[i] as f64).abs() < 2e-2 * (1. + fd.abs()), "dw[{i}]: fd {fd} vs {}", dw[i]);
    }
}

#[test]
fn misfit_kernels_are_errors() {
    let (x, w, b) = inputs((1, 3, 8, 9, 7, 3, 1));
    assert!(conv2d(&x, &w.narrow(1, 0, 2).unwrap(), &b, 1, false).is_err());
    let tiny = Tensor::zeros((1, 3, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(conv2d(&tiny, &w, &b, 0, false).is_err());
}
