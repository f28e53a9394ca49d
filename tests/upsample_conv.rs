//! The fused upsample-and-convolve op (SAE's fixed-cell unpooling or up-conv's spread, then the
//! stage's convolution, computed from the coarse map) against its unfused twin: forward, the
//! gradients of the input, the kernel and the bias, odd sizes, channel counts on both sides of the
//! Winograd threshold, ReLU, bf16, and the overlapping windows where it declines.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use layerinv::model::Layer;
use layerinv::ops::{
    interleave, interleave_ref, max_pool_with_switches, upsample_conv, upsample_conv_ref, PoolSwitches, Upsample,
    UpsamplePlan,
};

fn max_abs(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap()
}

/// Largest difference relative to the largest value of `b`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = a.to_dtype(DType::F64).unwrap().sub(&b.to_dtype(DType::F64).unwrap()).unwrap();
    max_abs(&d) / max_abs(b).max(1e-12)
}

/// The pooling of a random `(b, c, h, w)` map with 2×2 (or `k × k`) stride-2 windows: its output
/// (the coarse code) and switches.
fn pooled(b: usize, c: usize, h: usize, w: usize, k: usize) -> (Tensor, PoolSwitches) {
    let fine = Tensor::randn(0f32, 1., (b, c, h, w), &Device::Cpu).unwrap();
    max_pool_with_switches(&fine, k, 2).unwrap()
}

/// `(cin, cout)`: below the Winograd threshold, and at it (64 in, so the coarse convolution of
/// up-conv, 4·64 out, runs Winograd).
const CHANNELS: [(usize, usize); 2] = [(5, 7), (64, 64)];
/// Fine sizes: even, odd in either direction, non-square.
const SIZES: [(usize, usize); 3] = [(8, 8), (7, 9), (12, 6)];

/// One case: the upsampling, the fine kernel size, `(cin, cout)`, the fine `(h, w)`.
type Case = (Upsample, usize, (usize, usize), (usize, usize));

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (up, k) in [(Upsample::FixedCell, 3), (Upsample::Spread, 5), (Upsample::Spread, 3), (Upsample::FixedCell, 5)] {
        for ch in CHANNELS {
            for hw in SIZES {
                v.push((up, k, ch, hw));
            }
        }
    }
    v
}

#[test]
fn fused_matches_the_unfused_twin_forward() {
    for (up, k, (cin, cout), (h, w)) in cases() {
        let (x, sw) = pooled(2, cin, h, w, 2);
        let wt = Tensor::randn(0f32, 0.1, (cout, cin, k, k), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 0.1, cout, &Device::Cpu).unwrap();
        assert!(UpsamplePlan::new(up, k, &sw).is_some(), "{up:?} k={k} applies to 2×2 windows");
        for relu in [false, true] {
            let fused = upsample_conv(&x, &wt, &b, relu, up, &sw).unwrap();
            let twin = upsample_conv_ref(&x, &wt, &b, relu, up, &sw).unwrap();
            assert_eq!(fused.dims(), &[2, cout, h, w]);
            let d = rel_diff(&fused, &twin);
            assert!(d < 1e-5, "{up:?} k={k} {cin}->{cout} {h}x{w} relu={relu}: relative difference {d}");
        }
    }
}

/// d/d(x, w, b) of `sum(g ⊙ out)` through the fused op and through the twin.
#[test]
fn fused_gradients_match_the_twin() {
    for (up, k, (cin, cout), (h, w)) in cases() {
        let (x, sw) = pooled(2, cin, h, w, 2);
        let g = Tensor::randn(0f32, 1., (2, cout, h, w), &Device::Cpu).unwrap();
        let wt = Tensor::randn(0f32, 0.1, (cout, cin, k, k), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 0.1, cout, &Device::Cpu).unwrap();
        let grads = |fused: bool| {
            let (xv, wv, bv) =
                (Var::from_tensor(&x).unwrap(), Var::from_tensor(&wt).unwrap(), Var::from_tensor(&b).unwrap());
            let f = if fused { upsample_conv } else { upsample_conv_ref };
            let y = f(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), true, up, &sw).unwrap();
            let gs = y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            [&xv, &wv, &bv].map(|v| gs.get(v.as_tensor()).unwrap().clone())
        };
        let (a, r) = (grads(true), grads(false));
        for (name, (ga, gr)) in ["input", "kernel", "bias"].iter().zip(a.iter().zip(r.iter())) {
            assert_eq!(ga.dims(), gr.dims());
            let d = rel_diff(ga, gr);
            assert!(d < 1e-4, "{up:?} k={k} {cin}->{cout} {h}x{w}: {name} gradient, relative difference {d}");
        }
    }
}

/// In bf16 (storage; the arithmetic is f32) the fused op stays within bf16's rounding of the twin.
#[test]
fn fused_bf16_matches_the_twin_within_rounding() {
    for (up, k) in [(Upsample::FixedCell, 3), (Upsample::Spread, 5)] {
        let (x, sw) = pooled(2, 16, 10, 10, 2);
        let wt = Tensor::randn(0f32, 0.1, (8, 16, k, k), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 0.1, 8, &Device::Cpu).unwrap();
        let xb = x.to_dtype(DType::BF16).unwrap();
        let fused = upsample_conv(&xb, &wt, &b, false, up, &sw).unwrap();
        assert_eq!(fused.dtype(), DType::BF16);
        let twin = upsample_conv_ref(&xb, &wt, &b, false, up, &sw).unwrap();
        let d = rel_diff(&fused, &twin);
        assert!(d < 2e-2, "{up:?}: bf16 relative difference {d}");
    }
}

/// AlexNet's overlapping 3×3 stride-2 windows have no common phase structure: the op declines and
/// runs the twin, with the same numbers.
#[test]
fn overlapping_windows_fall_back_to_the_twin() {
    for up in [Upsample::FixedCell, Upsample::Spread] {
        let (x, sw) = pooled(1, 4, 13, 11, 3);
        assert!(UpsamplePlan::new(up, 3, &sw).is_none());
        let wt = Tensor::randn(0f32, 0.1, (3, 4, 3, 3), &Device::Cpu).unwrap();
        let b = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let fused = upsample_conv(&x, &wt, &b, false, up, &sw).unwrap();
        let twin = upsample_conv_ref(&x, &wt, &b, false, up, &sw).unwrap();
        assert_eq!(rel_diff(&fused, &twin), 0.0);
    }
}

/// The interleave (phases to the fine map, cropped) against reshapes and a permutation, and its
/// gradient (the split) against theirs.
#[test]
fn interleave_matches_its_twin_with_its_gradient() {
    for (h, w, fine) in [(3, 4, (6, 8)), (4, 5, (7, 9)), (5, 5, (8, 9))] {
        let y = Tensor::randn(0f32, 1., (2, 12, h, w), &Device::Cpu).unwrap();
        let fast = interleave(&y, fine).unwrap();
        let slow = interleave_ref(&y, fine).unwrap();
        assert_eq!(fast.dims(), &[2, 3, fine.0, fine.1]);
        assert_eq!(rel_diff(&fast, &slow), 0.0);
        let g = Tensor::randn(0f32, 1., (2, 3, fine.0, fine.1), &Device::Cpu).unwrap();
        let grad = |f: fn(&Tensor, (usize, usize)) -> candle_core::Result<Tensor>| {
            let v = Var::from_tensor(&y).unwrap();
            let l = f(v.as_tensor(), fine).unwrap().mul(&g).unwrap().sum_all().unwrap();
            l.backward().unwrap().get(v.as_tensor()).unwrap().clone()
        };
        assert_eq!(rel_diff(&grad(interleave), &grad(interleave_ref)), 0.0);
    }
    // A size the phases cannot fill is an error, not a panic.
    let y = Tensor::zeros((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(interleave(&y, (5, 4)).is_err());
    assert!(interleave(&Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap(), (4, 4)).is_err());
}

/// Whole decoders of every kind, fused (the default) and unfused, on a random VGG-11: the same
/// reconstruction and the same gradient for every weight, at an even and an odd pooling input.
#[test]
fn decoders_give_the_same_pictures_and_gradients_fused_and_unfused() {
    use candle_nn::{VarBuilder, VarMap};
    use layerinv::model::{Arch, Decoder, DecoderSpec, Kind};
    let enc = common::random_encoder(Arch::Vgg11, false);
    for side in [40, 44] {
        let x = Tensor::randn(0f32, 1., (2, 3, side, side), &Device::Cpu).unwrap();
        let f = enc.forward_to(&x, Layer::POOL3).unwrap();
        for kind in Kind::ALL {
            let varmap = VarMap::new();
            let spec = DecoderSpec::new(Arch::Vgg11, Layer::POOL3, kind, 0.5).unwrap();
            let mut dec = Decoder::new(spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
            let mut run = |fused: bool| {
                dec.fused = fused;
                let y = dec.forward(&f).unwrap();
                let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let vars = varmap.data().lock().unwrap();
                let mut g: Vec<(String, Tensor)> =
                    vars.iter().map(|(n, v)| (n.clone(), grads.get(v.as_tensor()).unwrap().clone())).collect();
                g.sort_by(|a, b| a.0.cmp(&b.0));
                (y, g)
            };
            let (yf, gf) = run(true);
            let (yu, gu) = run(false);
            assert_eq!(yf.dims(), &[2, 3, side, side]);
            assert!(rel_diff(&yf, &yu) < 1e-4, "{kind} {side}: {}", rel_diff(&yf, &yu));
            for ((n, a), (_, b)) in gf.iter().zip(&gu) {
                // Float rounding through a dozen layers of another summation order: up to about
                // 1e-3 of the largest value seen in runs; a wrong tap or phase is off by O(1).
                let d = rel_diff(a, b);
                assert!(d < 1e-2, "{kind} {side}: gradient of {n} differs by {d}");
            }
        }
    }
}
