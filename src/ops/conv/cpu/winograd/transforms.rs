//! The transforms of Winograd F(2×2, 3×3): the kernel's (`U = G g Gᵀ`), the input patches'
//! (`V = Bᵀ d B`) and the products' back to outputs (`Y = Aᵀ M A`), each compiled for AVX2 and FMA
//! where the CPU has them ([`Transforms`]) and vectorised along the values the GEMMs read side by
//! side (output channels, or a row of tiles).

use super::super::{Geom, MR};
use super::POS;
use std::mem::MaybeUninit;

/// Block `blk` of [`transform_kernel`](super::transform_kernel): its [`MR`] output channels, vectorised across them (the
/// values the micro-kernel reads side by side): per input channel, the 9 taps of each as MR-wide
/// rows, then `G g Gᵀ` on rows.
#[inline(always)]
fn kernel_block(w: &[f32], g: &Geom, flip: bool, blk: usize, dst: &mut [MaybeUninit<f32>]) {
    let (ci, co) = (g.cin, g.cout);
    // G applied to a column (a, b, d) of 3, MR lanes wide: G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
    #[inline(always)]
    fn gt(a: [f32; MR], b: [f32; MR], d: [f32; MR]) -> [[f32; MR]; 4] {
        let mut out = [a, [0f32; MR], [0f32; MR], d];
        for l in 0..MR {
            out[1][l] = 0.5 * (a[l] + b[l] + d[l]);
            out[2][l] = 0.5 * (a[l] - b[l] + d[l]);
        }
        out
    }
    let outs = blk * MR..(blk * MR + MR).min(co);
    for i in 0..ci {
        let mut k = [[0f32; MR]; 9];
        for (col, o) in outs.clone().enumerate() {
            let taps = if flip { &w[(i * co + o) * 9..][..9] } else { &w[(o * ci + i) * 9..][..9] };
            for (t, &v) in taps.iter().enumerate() {
                k[if flip { 8 - t } else { t }][col] = v;
            }
        }
        // G g (4×3), then (G g) Gᵀ (4×4).
        let cols: [[[f32; MR]; 4]; 3] = std::array::from_fn(|c| gt(k[c], k[3 + c], k[6 + c]));
        for r in 0..4 {
            for (c, v) in gt(cols[0][r], cols[1][r], cols[2][r]).iter().enumerate() {
                for (d, &v) in dst[((r * 4 + c) * ci + i) * MR..][..MR].iter_mut().zip(v) {
                    d.write(v);
                }
            }
        }
    }
}

/// `V = Bᵀ d B` for a run of `n` tiles of one tile row, from the 4 padded rows `rows` under it
/// (from the run's first patch column on), into `v` (one row of `n` tiles per position) through
/// the scratch `t` (4 rows of `n + 1` pairs). `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`,
/// applied to rows, then to columns; both loops run along the row of tiles, so they vectorise.
#[inline(always)]
fn transform_input(rows: [&[f32]; 4], n: usize, t: &mut [f32], v: &mut [&mut [f32]; POS]) {
    let cols = 2 * n + 2;
    let [r0, r1, r2, r3] = rows.map(|r| &r[..cols]);
    let (t0, rest) = t.split_at_mut(cols);
    let (t1, rest) = rest.split_at_mut(cols);
    let (t2, t3) = rest.split_at_mut(cols);
    let t3 = &mut t3[..cols];
    for x in 0..cols {
        t0[x] = r0[x] - r2[x];
        t1[x] = r1[x] + r2[x];
        t2[x] = r2[x] - r1[x];
        t3[x] = r1[x] - r3[x];
    }
    for (t, v) in [&*t0, &*t1, &*t2, &*t3].into_iter().zip(v.chunks_exact_mut(4)) {
        let [v0, v1, v2, v3] = v else { unreachable!("chunks of 4") };
        let (v0, v1, v2, v3) = (&mut v0[..n], &mut v1[..n], &mut v2[..n], &mut v3[..n]);
        // Patch columns 2j..2j + 4 of tile j: the pairs (e, o) of tiles j and j + 1.
        for (j, (p, q)) in t.chunks_exact(2).zip(t[2..].chunks_exact(2)).enumerate() {
            let (e, o, e2, o2) = (p[0], p[1], q[0], q[1]);
            v0[j] = e - e2;
            v1[j] = o + e2;
            v2[j] = e2 - o;
            v3[j] = o - o2;
        }
    }
}

/// `Y = Aᵀ M A` for a run of `n` tiles, `Aᵀ = [1 1 1 0; 0 1 −1 −1]`, plus `bias`, then ReLU when
/// `relu`: from the 16 rows `q` (position, tile) into `y` (4 rows of `n`: the outputs (0, 0),
/// (0, 1), (1, 0), (1, 1) of each tile), vectorised along the run.
#[inline(always)]
fn transform_output(q: [&[f32]; POS], n: usize, bias: f32, relu: bool, y: &mut [f32]) {
    let q = q.map(|r| &r[..n]);
    let (y00, rest) = y.split_at_mut(n);
    let (y01, rest) = rest.split_at_mut(n);
    let (y10, y11) = rest.split_at_mut(n);
    let y11 = &mut y11[..n];
    let act = |v: f32| if relu { (v + bias).max(0.0) } else { v + bias };
    for j in 0..n {
        let s0: [f32; 4] = std::array::from_fn(|c| q[c][j] + q[4 + c][j] + q[8 + c][j]);
        let s1: [f32; 4] = std::array::from_fn(|c| q[4 + c][j] - q[8 + c][j] - q[12 + c][j]);
        y00[j] = act(s0[0] + s0[1] + s0[2]);
        y01[j] = act(s0[1] - s0[2] - s0[3]);
        y10[j] = act(s1[0] + s1[1] + s1[2]);
        y11[j] = act(s1[1] - s1[2] - s1[3]);
    }
}

/// An output row from the left and right outputs of its tiles: `dst[2j] = left[j]`,
/// `dst[2j + 1] = right[j]` (an odd width ends on a left one).
#[inline(always)]
fn interleave(left: &[f32], right: &[f32], dst: &mut [MaybeUninit<f32>]) {
    let pairs = dst.len() / 2;
    for (d, (&a, &b)) in dst.chunks_exact_mut(2).zip(left[..pairs].iter().zip(&right[..pairs])) {
        d[0].write(a);
        d[1].write(b);
    }
    if let Some(last) = dst.chunks_exact_mut(2).into_remainder().first_mut() {
        last.write(left[pairs]);
    }
}

/// [`transform_output`], then [`interleave`] into the output rows `dst` (`dst[r]` for output
/// row `r` of the tiles; one when the map's last tile row has one).
#[inline(always)]
fn output_rows(q: [&[f32]; POS], n: usize, bias: f32, relu: bool, y: &mut [f32], dst: &mut [&mut [MaybeUninit<f32>]]) {
    transform_output(q, n, bias, relu, y);
    for (pair, row) in y[..4 * n].chunks_exact(2 * n).zip(dst) {
        let (left, right) = pair.split_at(n);
        interleave(left, right, row);
    }
}

/// A method of [`Transforms`] that runs `body` (an `#[inline(always)]` function) compiled for
/// AVX2 and FMA where the CPU has them, else for the target's baseline.
macro_rules! dispatch {
    ($name:ident($($arg:ident: $ty:ty),*) => $body:ident) => {
        pub(super) fn $name(self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                // SAFETY: the CPU has AVX2 and FMA (detect).
                return unsafe { avx2($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

/// The transforms built for AVX2 (8-wide) where the CPU has it, else for the target's baseline.
#[derive(Clone, Copy)]
pub(super) struct Transforms {
    avx2: bool,
}

impl Transforms {
    pub(super) fn detect() -> Transforms {
        #[cfg(target_arch = "x86_64")]
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        Transforms { avx2 }
    }

    dispatch!(kernel(w: &[f32], g: &Geom, flip: bool, blk: usize, dst: &mut [MaybeUninit<f32>]) => kernel_block);
    dispatch!(input(rows: [&[f32]; 4], n: usize, t: &mut [f32], v: &mut [&mut [f32]; POS]) => transform_input);
    dispatch!(output(q: [&[f32]; POS], n: usize, bias: f32, relu: bool, y: &mut [f32], dst: &mut [&mut [MaybeUninit<f32>]]) => output_rows);
}
