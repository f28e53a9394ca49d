//! Winograd against the direct kernel, its reference (`tests/conv.rs` checks both against candle).

use super::super::tests::{input_values, kernel_values};
use super::super::{conv_forward, pack_kernel, weight_grad as direct_weight_grad, Geom};
use super::{conv3x3, transform_kernel, weight_grad};

/// `fast` within `1e-4` of `direct`'s largest magnitude, element by element (`direct` must not be
/// trivially small, so that the bound means something).
fn assert_close(fast: &[f32], direct: &[f32], what: &str) {
    assert_eq!(fast.len(), direct.len(), "{what}");
    let scale = direct.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 1.0, "{what}: scale {scale}");
    for (i, (a, d)) in fast.iter().zip(direct).enumerate() {
        assert!((a - d).abs() <= 1e-4 * scale, "{what}: element {i}: {a} vs {d}");
    }
}

/// Winograd F(2×2, 3×3) gives the direct kernel's outputs within f32 rounding: its transforms
/// add and subtract up to 16 products per output where the direct sum has 9·cin, so the
/// error grows like the direct sum's, a few ulps of the largest partial sums (here bounded by
/// 1e-4 of the output scale). Odd sizes leave partial tiles and partial runs of tiles; batch
/// 2 and 3 cross images inside a block; the last two shapes have several blocks (on 2 threads: 2,
/// each block on all threads; 5, blocks side by side), the first ones one.
#[test]
fn winograd_matches_the_direct_kernel() {
    for (batch, cin, cout, h, w) in [
        (1, 3, 5, 4, 4),
        (2, 17, 9, 7, 9),
        (1, 64, 70, 14, 14),
        (2, 96, 64, 11, 6),
        (3, 130, 20, 19, 23),
        (2, 200, 13, 40, 33),
        // 13 groups of NR tiles in 4 blocks of 3, 3, 3 and 4 (28×28 at batch 1).
        (1, 512, 7, 28, 28),
    ] {
        let g = Geom { cin, cout, k: 3, h, w, pad: 1, batch };
        let (x, wt) = (input_values(batch * cin * h * w), kernel_values(cout * cin * 9));
        let b: Vec<f32> = (0..cout).map(|i| i as f32 / 7.0 - 0.5).collect();
        for relu in [false, true] {
            let direct = conv_forward(&x, &pack_kernel(&wt, &g, false), Some(&b), &g, relu);
            let fast = conv3x3(&x, &transform_kernel(&wt, &g, false), Some(&b), &g, relu);
            assert_close(&fast, &direct, &format!("{batch}×{cin}->{cout} {h}x{w} relu={relu}"));
        }
    }
}

/// The Winograd weight gradient gives the direct one's (`gemm` over shifted slices) within
/// f32 rounding: both sum h·w·batch products per tap, in another order (bounded by 1e-4 of
/// the gradient's scale). Odd sizes leave partial tiles; the larger shapes have several
/// blocks of tiles, summed per worker, and channel counts off the NR and MR multiples.
#[test]
fn winograd_weight_grad_matches_the_direct_one() {
    for (batch, cin, cout, h, w) in [(1, 3, 5, 4, 4), (2, 17, 9, 7, 9), (3, 130, 20, 19, 23), (2, 70, 200, 13, 10)] {
        let g = Geom { cin, cout, k: 3, h, w, pad: 1, batch };
        let (x, dy) = (input_values(batch * cin * h * w), kernel_values(batch * cout * h * w));
        let what = format!("{batch}×{cin}->{cout} {h}x{w}");
        assert_close(&weight_grad(&x, &dy, &g), &direct_weight_grad(&x, &dy, &g), &what);
    }
}
