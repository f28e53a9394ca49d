//! Winograd F(2×2, 3×3) for the 3×3, padding-1 convolutions: each 2×2 block of outputs (a tile)
//! comes from a 4×4 patch of input through 16 products per (input, output) channel pair instead
//! of 36, so the multiply-adds fall by 2.25× (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", 2016).
//!
//! Per block of tiles: the input patches are transformed (`V = Bᵀ d B`, vectorised along a row of
//! tiles), multiplied with the transformed kernel (`U = G g Gᵀ`) as 16 independent GEMMs over
//! channels by the direct kernel's own micro-kernel, and transformed back (`Y = Aᵀ M A`), with
//! bias and ReLU on the way out. The weight gradient is the same algorithm transposed
//! (`winograd/weight_grad.rs`). The direct kernel stays the reference (`cpu.rs` tests compare
//! them), and [`worth_it`] and [`worth_it_for_weight_grad`] pick per shape.

mod weight_grad;

use super::micro::micro_kernel;
use super::scratch::Scratch;
use super::{poison, Geom, SharedOut, MR, NR};
use rayon::prelude::*;
use std::mem::MaybeUninit;
pub(crate) use weight_grad::weight_grad;

/// Whether this kernel computes the shape at all: 3×3 with padding 1.
pub(crate) fn applies(g: &Geom) -> bool {
    g.k == 3 && g.pad == 1
}

/// Whether Winograd beats the direct kernel for this shape. Its transforms cost a few dozen adds
/// per input and output value, spread over the GEMM's `cin · cout` products, so both channel
/// counts must be large. Measured (examples/convshape, 2-core EPYC, alternating, best of 6): 0.61
/// to 0.78 of the direct kernel's time on VGG-16's shapes from 64 channels on, 14×14 at batch 1
/// included; 1.2–2× with 3 input or output channels.
pub(crate) fn worth_it(g: &Geom) -> bool {
    applies(g) && g.cin >= 64 && g.cout >= 64
}

/// Whether the Winograd weight gradient beats the direct one (`gemm` over shifted slices): from
/// 128 input and 64 output channels. Measured (examples/convshape `train`, batch 4, 2-core EPYC,
/// three runs, a training step's forward and both gradients, Winograd's weight gradient against
/// the direct one): 512 channels at 28×28 13–20% faster; 128 → 64, 128 → 128, 128 → 256 and
/// 256 → 128 at 56–112 5–20% faster; 64 → 64 and 64 → 128 at 112–224 level or 1–5% slower.
pub(crate) fn worth_it_for_weight_grad(g: &Geom) -> bool {
    applies(g) && g.cin >= 128 && g.cout >= 64
}

/// The 16 transformed positions of a 4×4 tile.
const POS: usize = 16;

/// The length of [`transform_kernel`]'s result.
pub(crate) fn kernel_len(g: &Geom) -> usize {
    g.cout.next_multiple_of(MR) * POS * g.cin
}

/// `U = G g Gᵀ` for every (output, input) channel pair, in the micro-kernel's order: for each
/// block of [`MR`] output channels (the last padded with zeros) and each position, `cin` steps of
/// `MR` values. From `w (cout, cin, 3, 3)`, or for the input gradient (`flip`) from
/// `w (cin, cout, 3, 3)` flipped and transposed, as `pack_kernel`.
pub(crate) fn transform_kernel(w: &[f32], g: &Geom, flip: bool) -> Vec<f32> {
    let ci = g.cin;
    let len = kernel_len(g);
    let mut u = Vec::with_capacity(len);
    poison(&mut u, len);
    let simd = Transforms::detect();
    u.spare_capacity_mut()[..len]
        .par_chunks_exact_mut(MR * POS * ci)
        .enumerate()
        .for_each(|(blk, dst)| simd.kernel(w, g, flip, blk, dst));
    // SAFETY: the blocks cover [0, len), and `kernel_block` writes every value of its block: each
    // input channel's MR values at each position, the padding channels of the last block as zeros.
    unsafe { u.set_len(len) };
    u
}

/// Block `blk` of [`transform_kernel`]: its [`MR`] output channels, vectorised across them (the
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

/// The tiles of a batch: `th × tw` per image, each 2×2 outputs; the input zero-padded into planes
/// of `hp × wp` so that every tile's 4×4 patch lies inside.
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
    hp: usize,
    wp: usize,
}

impl Tiles {
    fn new(g: &Geom) -> Tiles {
        let (th, tw) = (g.h.div_ceil(2), g.w.div_ceil(2));
        Tiles { th, tw, hp: 2 * th + 2, wp: 2 * tw + 2 }
    }

    /// The runs of tiles in one tile row that make up tiles `[t0, t1)`: (image, tile row, first
    /// tile column, tiles, index of the first in the block).
    fn runs(&self, t0: usize, t1: usize) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> + '_ {
        let mut t = t0;
        std::iter::from_fn(move || {
            (t < t1).then(|| {
                let (row, tx) = (t / self.tw, t % self.tw);
                let len = (self.tw - tx).min(t1 - t);
                let run = (row / self.th, row % self.th, tx, len, t - t0);
                t += len;
                run
            })
        })
    }
}

/// `(B, cin, h, w)` zero-padded by one on the top and left into `(B, cin, hp, wp)` planes.
fn pad_planes(x: &[f32], g: &Geom, t: &Tiles) -> Vec<f32> {
    let plane = t.hp * t.wp;
    let len = x.len() / (g.h * g.w) * plane;
    let mut out = Vec::with_capacity(len);
    let zero = |d: &mut [MaybeUninit<f32>]| {
        d.iter_mut().for_each(|v| {
            v.write(0.0);
        })
    };
    out.spare_capacity_mut()[..len].par_chunks_exact_mut(plane).zip(x.par_chunks_exact(g.h * g.w)).for_each(
        |(dst, src)| {
            zero(&mut dst[..t.wp + 1]);
            for (y, row) in src.chunks_exact(g.w).enumerate() {
                let start = (y + 1) * t.wp + 1;
                dst[start..start + g.w].iter_mut().zip(row).for_each(|(d, &s)| {
                    d.write(s);
                });
                // The right padding of this row and the left padding of the next.
                zero(&mut dst[start + g.w..(start + t.wp).min(plane)]);
            }
            zero(&mut dst[(g.h + 1) * t.wp + 1..]);
        },
    );
    // SAFETY: the chunks cover [0, len), one per plane, each written in full above: the top row
    // and the next one's left padding, then per row y its w values from (y + 1)·wp + 1 and the
    // padding after them up to the next row's values, then the rest from (h + 1)·wp + 1.
    unsafe { out.set_len(len) };
    out
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
        fn $name(self, $($arg: $ty),*) {
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
struct Transforms {
    avx2: bool,
}

impl Transforms {
    fn detect() -> Transforms {
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

/// Run `f` over `0..n`, on every thread when `par`.
fn for_each(n: usize, par: bool, f: impl Fn(usize) + Sync + Send) {
    if par {
        (0..n).into_par_iter().for_each(f)
    } else {
        (0..n).for_each(f)
    }
}

/// `(B, cin, h, w)` convolved with the kernel `u` from [`transform_kernel`], padding 1, plus `b`,
/// then ReLU when `relu`: `(B, cout, h, w)`.
pub(crate) fn conv3x3(x: &[f32], u: &[f32], b: Option<&[f32]>, g: &Geom, relu: bool) -> Vec<f32> {
    let (ci, co, h, wd) = (g.cin, g.cout, g.h, g.w);
    let cop = co.next_multiple_of(MR);
    let batch = x.len() / (ci * h * wd);
    let tl = Tiles::new(g);
    let xp = pad_planes(x, g, &tl);
    let tiles = batch * tl.th * tl.tw;
    // The tiles in groups of the micro-tile's NR columns (the last group padded with zero tiles),
    // and the groups in blocks of at most one position's transformed input (cin × n) in about
    // 128 KiB of L2.
    let groups = tiles.div_ceil(NR);
    let threads = rayon::current_num_threads();
    let mut blocks = groups.div_ceil((32_768 / ci).clamp(NR, 256) / NR);
    // Enough blocks: one per thread at a time, as many per thread, of (nearly) equal size (a
    // 28×28 map at batch 1 is 13 groups: blocks of 3, 3, 3 and 4, not three of 4 and one of 1).
    // Few (small maps at batch 1): every stage of each block on all threads.
    let blocks_par = blocks >= 2 * threads;
    if blocks_par {
        blocks = blocks.next_multiple_of(threads);
    }
    // Block blk: groups [first(blk), first(blk + 1)), at most n tiles.
    let first = |blk: usize| blk * groups / blocks;
    let n = groups.div_ceil(blocks) * NR;
    let len = batch * co * h * wd;
    let mut y = Vec::with_capacity(len);
    poison(&mut y, len);
    let out = SharedOut(y.as_mut_ptr());
    let (micro, simd) = (micro_kernel(), Transforms::detect());
    let at: Vec<usize> = (0..ci).map(|c| c * n).collect();
    // Position strides of V and M: one cache line more than their matrices, so that the 16 rows
    // a transform reads or writes for one channel do not share an L1 set (a power-of-two stride
    // would map them all to one).
    let (vs, ms) = (ci * n + NR, cop * n + NR);
    let run_block = |scratch: &mut Scratch, blk: usize| {
        let (v, m) = scratch.split_at_mut(POS * vs);
        let par = !blocks_par;
        let (g0, g1) = (first(blk), first(blk + 1));
        let (t0, t1, width) = (g0 * NR, (g1 * NR).min(tiles), (g1 - g0) * NR);
        // V: 16 matrices of cin × n (position, channel, tile); the padding tiles up to width zero.
        let vp = SharedOut(v.as_mut_ptr());
        for_each(ci, par, |c| {
            let mut t = vec![0f32; 4 * (2 * tl.tw + 2)];
            // SAFETY: channel c alone writes rows (xi, c) of V, n values each.
            let mut v: [&mut [f32]; POS] =
                std::array::from_fn(|xi| unsafe { std::slice::from_raw_parts_mut(vp.ptr().add(xi * vs + c * n), n) });
            for (img, ty, tx, len, j0) in tl.runs(t0, t1) {
                let plane = &xp[(img * ci + c) * tl.hp * tl.wp..][..tl.hp * tl.wp];
                let rows = std::array::from_fn(|r| &plane[(2 * ty + r) * tl.wp + 2 * tx..]);
                let mut run = v.each_mut().map(|row| &mut row[j0..]);
                simd.input(rows, len, &mut t, &mut run);
            }
            for row in v {
                row[t1 - t0..width].fill(0.0);
            }
        });
        // M = U V for each position: 16 GEMMs of (cout × cin)·(cin × width), by MR-row blocks.
        let mp = SharedOut(m.as_mut_ptr());
        for_each(POS, par, |xi| {
            let vx = &v[xi * vs..][..ci * n];
            for ob in 0..cop / MR {
                let a = &u[(ob * POS + xi) * ci * MR..][..ci * MR];
                // SAFETY: position xi alone writes rows ob·MR..ob·MR + MR of its matrix in M; the
                // micro-kernel reads ci steps of MR values from `a`, and NR values at c·n + j·NR
                // (j·NR < width ≤ n) from `vx`, and writes MR rows of NR values with stride n.
                unsafe {
                    let c = mp.ptr().add(xi * ms + ob * MR * n);
                    for j in 0..width / NR {
                        micro(a.as_ptr(), vx.as_ptr().add(j * NR), &at, c.add(j * NR), n, true);
                    }
                }
            }
        });
        // Y = Aᵀ M A plus bias, then ReLU: the 2×2 outputs of each tile.
        let m = &*m;
        for_each(co, par, |o| {
            let bias = b.map_or(0.0, |b| b[o]);
            let mut yt = vec![0f32; 4 * tl.tw];
            for (img, ty, tx, len, j0) in tl.runs(t0, t1) {
                let (x0, cols) = (2 * tx, (2 * len).min(wd - 2 * tx));
                let mut rows: Vec<&mut [MaybeUninit<f32>]> = (2 * ty..(2 * ty + 2).min(h))
                    .map(|oy| {
                        // SAFETY: the outputs (img, o, oy, x0 .. x0 + cols) belong to this run of
                        // tiles of this block alone, and lie inside the `len` elements of y.
                        unsafe {
                            std::slice::from_raw_parts_mut(
                                out.ptr().add(((img * co + o) * h + oy) * wd + x0).cast::<MaybeUninit<f32>>(),
                                cols,
                            )
                        }
                    })
                    .collect();
                let q = std::array::from_fn(|xi| &m[xi * ms + o * n + j0..]);
                simd.output(q, len, bias, relu, &mut yt, &mut rows);
            }
        });
    };
    // V and M in the thread's scratch: each block writes all it reads of them (the micro-kernel
    // runs `fresh`).
    let buffers = || Scratch::take(POS * (vs + ms));
    if blocks_par {
        (0..blocks).into_par_iter().for_each_init(buffers, run_block);
    } else {
        let mut buf = buffers();
        (0..blocks).for_each(|blk| run_block(&mut buf, blk));
    }
    // SAFETY: the blocks cover every tile, and the tiles every output (2·th ≥ h, 2·tw ≥ w) of
    // every image and output channel, each written once above.
    unsafe { y.set_len(len) };
    y
}
