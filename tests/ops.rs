//! Fast pooling/unpooling/spreading ops against their slow twins, and their gradients against finite
//! differences.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::devices;
use layerinv::ops::{
    max_pool_with_switches, max_pool_with_switches_ref, spread, spread_ref, unpool, unpool_fixed, unpool_fixed_ref,
    unpool_ref, PoolSwitches,
};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.to_dtype(DType::F64)
        .unwrap()
        .sub(&b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Geometries: VGG 2×2/2 (even and odd sizes), AlexNet 3×3/2 overlapping.
const CASES: [(usize, usize, usize, usize); 4] = [(2, 2, 8, 8), (2, 2, 7, 9), (3, 2, 13, 13), (3, 2, 55, 27)];

#[test]
fn pool_fast_matches_reference() {
    for dev in devices() {
        for (k, s, h, w) in CASES {
            let x = Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap();
            let (v1, s1) = max_pool_with_switches(&x, k, s).unwrap();
            let (v2, s2) = max_pool_with_switches_ref(&x, k, s).unwrap();
            assert_eq!(max_abs_diff(&v1, &v2), 0.0, "values k={k} {h}x{w}");
            assert_eq!(s1.indices.dims(), v1.dims());
            assert_eq!(
                s1.indices.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
                s2.indices.flatten_all().unwrap().to_vec1::<u32>().unwrap()
            );
            // Values agree with candle's own max-pool.
            let mp = x.max_pool2d_with_stride(k, s).unwrap();
            assert_eq!(max_abs_diff(&v1, &mp), 0.0);
        }
    }
}

#[test]
fn pool_ties_pick_first_maximum_in_row_major_order() {
    // One 4×4 plane of zeros with equal maxima: window (0,0) has 1s at (0,1) and (1,0).
    let mut v = vec![0f32; 16];
    v[1] = 1.0;
    v[4] = 1.0;
    // window (0,1) all equal: first cell (0,2) wins.
    let x = Tensor::from_vec(v, (1, 1, 4, 4), &Device::Cpu).unwrap();
    for f in [max_pool_with_switches, max_pool_with_switches_ref] {
        let (_, sw) = f(&x, 2, 2).unwrap();
        let idx = sw.indices.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(idx, vec![1, 2, 8, 10]);
    }
}

#[test]
fn unpool_fast_matches_reference_and_places_values_at_switches() {
    for dev in devices() {
        for (k, s, h, w) in CASES {
            // Non-negative, as after a ReLU, so the zeros of the unpooled map never win a max.
            let x = Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap().abs().unwrap();
            let (p, sw) = max_pool_with_switches(&x, k, s).unwrap();
            let a = unpool(&p, &sw).unwrap();
            let b = unpool_ref(&p, &sw).unwrap();
            assert_eq!(a.dims(), &[2, 3, h, w]);
            assert!(max_abs_diff(&a, &b) < 1e-6, "k={k} {h}x{w}");
            // Pooling the unpooled map gives the pooled values back exactly, overlapping windows
            // too: windows whose maxima share a cell share its value, so their average is that
            // value, and a neighbour's maximum inside a window is never above the window's own.
            let again = a.max_pool2d_with_stride(k, s).unwrap();
            assert_eq!(max_abs_diff(&again, &p), 0.0, "k={k} s={s} {h}x{w}");
            // SAE: fixed switches agree with the zero-interleaving twin.
            let fixed = PoolSwitches::fixed(&sw).unwrap();
            let c = unpool(&p, &fixed).unwrap();
            let d = unpool_fixed_ref(&p, k, s, (h, w)).unwrap();
            assert_eq!(max_abs_diff(&c, &d), 0.0, "fixed k={k} {h}x{w}");
            assert_eq!(max_abs_diff(&unpool_fixed(&p, &sw).unwrap(), &d), 0.0, "unpool_fixed k={k} {h}x{w}");
        }
    }
}

/// The twin is what CUDA runs for overlapping windows (no kernel averages there), so it must
/// keep the round trip exact too: a cell that three windows' maxima share holds 3v/3, which in
/// f32 can land an ulp off v (the H200 saw 1.19e-7 on k=3 s=2 13×13). Many random maps on the
/// CPU, where the twin's arithmetic is the same as on the card.
#[test]
fn overlapping_twin_gives_the_pooled_values_back_exactly() {
    let dev = Device::Cpu;
    let mut shared_by_three = 0;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for seed in 0..40 {
        // Non-negative values (as after a ReLU) from a fixed generator, so a failure repeats.
        let values: Vec<f32> = (0..4 * 8 * 13 * 13)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 3.0
            })
            .collect();
        let x = Tensor::from_vec(values, (4, 8, 13, 13), &dev).unwrap();
        let (p, sw) = max_pool_with_switches(&x, 3, 2).unwrap();
        let idx: Vec<u32> = sw.indices.flatten_all().unwrap().to_vec1().unwrap();
        for plane in idx.chunks(36) {
            let mut n = std::collections::HashMap::new();
            for i in plane {
                *n.entry(i).or_insert(0) += 1;
            }
            shared_by_three += n.values().filter(|&&c| c == 3).count();
        }
        let again = unpool_ref(&p, &sw).unwrap().max_pool2d_with_stride(3, 2).unwrap();
        assert_eq!(max_abs_diff(&again, &p), 0.0, "seed {seed}");
    }
    assert!(shared_by_three > 0, "no cell was shared by three windows: the case is not exercised");
}

#[test]
fn overlapping_unpool_averages_cells_written_twice() {
    // A 1×5 row max-pooled 3/2: both windows pick the centre cell (index 2).
    let x = Tensor::new(&[[[[0f32, 1., 9., 1., 0.]; 3]]], &Device::Cpu).unwrap();
    let (p, sw) = max_pool_with_switches(&x, 3, 2).unwrap();
    let p = (p * Tensor::new(&[[[[1f32, 3.]]]], &Device::Cpu).unwrap().broadcast_as((1, 1, 1, 2)).unwrap()).unwrap(); // 9 and 27
    let y = unpool(&p, &sw).unwrap();
    let row: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(&row[..5], &[0., 0., 18., 0., 0.]); // (9 + 27) / 2
    assert_eq!(row, unpool_ref(&p, &sw).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

/// d/dx sum(w ⊙ unpool(x)) by autodiff vs central differences, for the fast op and the twin.
#[test]
fn unpool_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    for (k, s, h, w) in CASES {
        let xin = Tensor::randn(0f64, 1., (1, 2, h, w), &dev).unwrap();
        let (p, sw) = max_pool_with_switches(&xin, k, s).unwrap();
        let weights = Tensor::randn(0f64, 1., (1, 2, h, w), &dev).unwrap();
        for (name, f) in
            [("fast", unpool as fn(&Tensor, &PoolSwitches) -> candle_core::Result<Tensor>), ("ref", unpool_ref)]
        {
            for sw in [sw.clone(), PoolSwitches::fixed(&sw).unwrap()] {
                let var = Var::from_tensor(&p).unwrap();
                let loss = f(var.as_tensor(), &sw).unwrap().mul(&weights).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let base = p.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let eps = 1e-4;
                for i in (0..base.len()).step_by(7) {
                    let at = |d: f64| {
                        let mut v = base.clone();
                        v[i] += d;
                        let t = Tensor::from_vec(v, p.shape(), &dev).unwrap();
                        f(&t, &sw).unwrap().mul(&weights).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
                    };
                    let fd = (at(eps) - at(-eps)) / (2. * eps);
                    assert!((fd - g[i]).abs() < 1e-6, "{name} k={k} {h}x{w} i={i}: fd {fd} vs autodiff {}", g[i]);
                }
            }
        }
    }
}

#[test]
fn fast_and_reference_gradients_agree_in_f32() {
    for dev in devices() {
        for (k, s) in [(3, 2), (2, 2)] {
            let x = Tensor::randn(0f32, 1., (2, 4, 13, 13), &dev).unwrap();
            let (p, sw) = max_pool_with_switches(&x, k, s).unwrap();
            let weights = Tensor::randn(0f32, 1., (2, 4, 13, 13), &dev).unwrap();
            for sw in [sw.clone(), PoolSwitches::fixed(&sw).unwrap()] {
                let grad = |f: fn(&Tensor, &PoolSwitches) -> candle_core::Result<Tensor>| {
                    let var = Var::from_tensor(&p).unwrap();
                    let loss = f(var.as_tensor(), &sw).unwrap().mul(&weights).unwrap().sum_all().unwrap();
                    loss.backward().unwrap().get(var.as_tensor()).unwrap().clone()
                };
                assert!(max_abs_diff(&grad(unpool), &grad(unpool_ref)) < 1e-6, "{dev:?} k={k}");
            }
            let var = Var::from_tensor(&p).unwrap();
            let loss = unpool_fixed(var.as_tensor(), &sw).unwrap().mul(&weights).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap().get(var.as_tensor()).unwrap().clone();
            let var2 = Var::from_tensor(&p).unwrap();
            let loss2 = unpool_ref(var2.as_tensor(), &PoolSwitches::fixed(&sw).unwrap())
                .unwrap()
                .mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap();
            let g2 = loss2.backward().unwrap().get(var2.as_tensor()).unwrap().clone();
            assert!(max_abs_diff(&g, &g2) < 1e-6, "{dev:?} unpool_fixed k={k}");
        }
    }
}

/// bf16 pooling and unpooling (forward and backward) move values without arithmetic, so on values
/// that bf16 holds exactly they give f32's results exactly, switches included. Overlapping windows
/// average the cells several switches share: there within bf16's rounding.
#[test]
fn bf16_pooling_and_unpooling_match_f32_exactly() {
    let bf16 = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    for dev in devices() {
        for (k, s, h, w) in CASES {
            // Values bf16 holds exactly, non-negative as after a ReLU.
            let x = bf16(&Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap().abs().unwrap())
                .to_dtype(DType::F32)
                .unwrap();
            let (p32, sw32) = max_pool_with_switches(&x, k, s).unwrap();
            let (p16, sw16) = max_pool_with_switches(&bf16(&x), k, s).unwrap();
            assert_eq!(p16.dtype(), DType::BF16);
            assert_eq!(max_abs_diff(&p16, &p32), 0.0, "{dev:?} pooled values k={k} {h}x{w}");
            let idx = |sw: &PoolSwitches| sw.indices.flatten_all().unwrap().to_vec1::<u32>().unwrap();
            assert_eq!(idx(&sw16), idx(&sw32), "{dev:?} switches k={k} {h}x{w}");
            let g = bf16(&Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap());
            for f in [unpool, unpool_fixed] {
                let (v32, v16) = (Var::from_tensor(&p32).unwrap(), Var::from_tensor(&p16).unwrap());
                let (u32_, u16_) = (f(v32.as_tensor(), &sw32).unwrap(), f(v16.as_tensor(), &sw16).unwrap());
                assert_eq!(u16_.dtype(), DType::BF16);
                // bf16 keeps 8 significant bits: averaged cells round to within 2^-8 relative.
                let tolerance = |t: &Tensor| {
                    if k == s {
                        0.0
                    } else {
                        t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() as f64 / 256.0
                    }
                };
                assert!(max_abs_diff(&u16_, &u32_) <= tolerance(&u32_), "{dev:?} unpooled k={k} {h}x{w}");
                let grad = |v: &Var, u: &Tensor| {
                    let loss = u.mul(&g.to_dtype(u.dtype()).unwrap()).unwrap().sum_all().unwrap();
                    loss.backward().unwrap().get(v.as_tensor()).unwrap().clone()
                };
                let (g32, g16) = (grad(&v32, &u32_), grad(&v16, &u16_));
                assert_eq!(g16.dtype(), DType::BF16);
                assert!(max_abs_diff(&g16, &g32) <= tolerance(&g32), "{dev:?} unpooling gradient k={k} {h}x{w}");
            }
        }
    }
}

/// The fused reconstruction loss against the same formula from tensor ops: value and gradient,
/// with a scale (Caffe's 1/255) and an upstream gradient other than 1, for f32 and bf16
/// reconstructions (the gradient in the reconstruction's dtype).
#[test]
fn mse_loss_matches_its_twin() {
    use layerinv::ops::{mse_loss, mse_loss_ref};
    for dev in devices() {
        let x = Tensor::randn(0f32, 1., (2, 3, 17, 19), &dev).unwrap();
        let y = Tensor::randn(0f32, 1., (2, 3, 17, 19), &dev).unwrap();
        for (dtype, tol) in [(DType::F32, 1e-6), (DType::BF16, 1e-2)] {
            for scale in [1.0, 1.0 / 255.0] {
                let run = |f: fn(&Tensor, &Tensor, f64) -> candle_core::Result<Tensor>| {
                    let v = Var::from_tensor(&y.to_dtype(dtype).unwrap()).unwrap();
                    let loss = f(v.as_tensor(), &x, scale).unwrap();
                    assert_eq!(loss.dtype(), DType::F32);
                    let g = loss.affine(3.0, 0.0).unwrap().backward().unwrap().get(v.as_tensor()).unwrap().clone();
                    assert_eq!(g.dtype(), dtype);
                    (loss.to_scalar::<f32>().unwrap() as f64, g)
                };
                let ((l1, g1), (l2, g2)) = (run(mse_loss), run(mse_loss_ref));
                assert!((l1 - l2).abs() <= 1e-6 * l2.abs(), "{dev:?} {dtype:?} scale {scale}: loss {l1} vs {l2}");
                let gmax =
                    g2.abs().unwrap().to_dtype(DType::F64).unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
                assert!(
                    max_abs_diff(&g1, &g2) <= tol * gmax,
                    "{dev:?} {dtype:?} scale {scale}: gradient {}",
                    max_abs_diff(&g1, &g2)
                );
            }
        }
        assert!(mse_loss(&y, &x.narrow(3, 0, 5).unwrap(), 1.0).is_err());
    }
}

#[test]
fn mismatched_switches_are_an_error_not_a_panic() {
    let x = Tensor::randn(0f32, 1., (1, 2, 8, 8), &Device::Cpu).unwrap();
    let (p, sw) = max_pool_with_switches(&x, 2, 2).unwrap();
    let wrong = p.narrow(1, 0, 1).unwrap();
    assert!(unpool(&wrong, &sw).is_err());
    assert!(unpool_ref(&wrong, &sw).is_err());
    assert!(max_pool_with_switches(&x, 9, 2).is_err());
}

/// The fused Adam update (in-place ops, CUDA kernels on the GPU) against Adam's formula in f64.
#[test]
fn adam_update_matches_the_formula() {
    use layerinv::train::Adam;
    for dev in devices() {
        let var = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 5), &dev).unwrap()).unwrap();
        let mut adam = Adam::new(vec![("w".into(), var.clone())]).unwrap();
        let read = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        let mut w = read(var.as_tensor());
        let (mut m, mut v) = (vec![0f64; 15], vec![0f64; 15]);
        let lr = 0.01;
        for t in 1..=4 {
            let target = Tensor::randn(0f32, 1., (3, 5), &dev).unwrap();
            let loss = var.as_tensor().sub(&target).unwrap().sqr().unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap(), lr).unwrap();
            let tg = read(&target);
            for i in 0..15 {
                let g = 2.0 * (w[i] - tg[i]);
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let (mh, vh) = (m[i] / (1.0 - 0.9f64.powi(t)), v[i] / (1.0 - 0.999f64.powi(t)));
                w[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
            let got = read(var.as_tensor());
            for i in 0..15 {
                assert!(
                    (got[i] - w[i]).abs() < 1e-5 * (1.0 + w[i].abs()),
                    "{dev:?} step {t} w[{i}]: {} vs {}",
                    got[i],
                    w[i]
                );
            }
            w = got;
        }
        // The moments come back out for checkpoints in parameter shape.
        let (_, _, m1, v1) = adam.state().next().unwrap().unwrap();
        assert_eq!((m1.dims(), v1.dims()), (&[3usize, 5][..], &[3usize, 5][..]));
    }
}

/// Pooled size of `n` cells with window `k`, stride `s`.
fn pooled(n: usize, k: usize, s: usize) -> usize {
    (n - k) / s + 1
}

/// Spreading (the up-convolutional decoder's upsampling) against its twin on every device, in
/// f32 and bf16; for 2×2 stride-2 windows it is candle's nearest-neighbour upsampling (a third,
/// independent implementation), and overlapping windows average what lands on a cell.
#[test]
fn spread_matches_its_twin_and_nearest_upsampling() {
    for dev in devices() {
        for (k, s, h, w) in CASES {
            let (ph, pw) = (pooled(h, k, s), pooled(w, k, s));
            let x = Tensor::randn(0f32, 1., (2, 3, ph, pw), &dev).unwrap();
            let fast = spread(&x, k, s, (h, w)).unwrap();
            assert_eq!(fast.dims(), &[2, 3, h, w]);
            let slow = spread_ref(&x, k, s, (h, w)).unwrap();
            assert!(max_abs_diff(&fast, &slow) < 1e-6, "{dev:?} k={k} {h}x{w}");
            if (k, s) == (2, 2) && h % 2 == 0 && w % 2 == 0 {
                let nearest = x.upsample_nearest2d(h, w).unwrap();
                assert_eq!(max_abs_diff(&fast, &nearest), 0.0, "{dev:?} {h}x{w}");
            }
            let half = spread(&x.to_dtype(DType::BF16).unwrap(), k, s, (h, w)).unwrap();
            let of_half =
                spread(&x.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap(), k, s, (h, w)).unwrap();
            assert!(max_abs_diff(&half, &of_half) <= 0.02, "{dev:?} bf16 k={k}: within bf16's rounding of ±4");
        }
    }
    // 3×3 stride 2 over 5 cells: cells 0, 1 from window 0; cell 2 shared by windows 0 and 1.
    let x = Tensor::new(&[[[[2f32, 4.], [6., 8.]]]], &Device::Cpu).unwrap();
    let y = spread(&x, 3, 2, (5, 5)).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(y[0], [2., 2., 3., 4., 4.]);
    assert_eq!(y[2], [4., 4., 5., 6., 6.]);
    assert_eq!(y[4], [6., 6., 7., 8., 8.]);
    // A map it cannot fill is an error, not a panic.
    assert!(spread(&x, 2, 2, (9, 9)).is_err());
}

/// d/dx sum(w ⊙ spread(x)): the fast kernel's gradient (f32) and the twin's (f64, by candle's
/// autodiff) against central differences of the twin.
#[test]
fn spread_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    for (k, s, h, w) in CASES {
        let (ph, pw) = (pooled(h, k, s), pooled(w, k, s));
        let x = Tensor::randn(0f64, 1., (1, 2, ph, pw), &dev).unwrap();
        let weights = Tensor::randn(0f64, 1., (1, 2, h, w), &dev).unwrap();
        let loss = |t: &Tensor| spread_ref(t, k, s, (h, w)).unwrap().mul(&weights).unwrap().sum_all().unwrap();
        let var = Var::from_tensor(&x).unwrap();
        let g_ref = loss(var.as_tensor()).backward().unwrap().get(var.as_tensor()).unwrap().clone();
        let var32 = Var::from_tensor(&x.to_dtype(DType::F32).unwrap()).unwrap();
        let w32 = weights.to_dtype(DType::F32).unwrap();
        let loss32 = spread(var32.as_tensor(), k, s, (h, w)).unwrap().mul(&w32).unwrap().sum_all().unwrap();
        let g_fast = loss32.backward().unwrap().get(var32.as_tensor()).unwrap().clone();
        assert!(max_abs_diff(&g_fast, &g_ref) < 1e-5, "k={k} {h}x{w}: fast vs twin");
        let base = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let g = g_ref.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let eps = 1e-4;
        for i in (0..base.len()).step_by(5) {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                loss(&Tensor::from_vec(v, x.shape(), &dev).unwrap()).to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2. * eps);
            assert!((fd - g[i]).abs() < 1e-6, "k={k} {h}x{w} i={i}: fd {fd} vs autodiff {}", g[i]);
        }
    }
}
