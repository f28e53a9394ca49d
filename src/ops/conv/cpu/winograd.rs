//! Winograd F(2×2, 3×3) for the 3×3, padding-1 convolutions: each 2×2 block of outputs (a tile)
//! comes from a 4×4 patch of input through 16 products per (input, output) channel pair instead
//! of 36, so the multiply-adds fall by 2.25× (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", 2016).
//!
//! Per block of tiles: the input patches are transformed (`V = Bᵀ d B`, vectorised along a row of
//! tiles), multiplied with the transformed kernel (`U = G g Gᵀ`) as 16 independent GEMMs over
//! channels by the direct kernel's own micro-kernel, and transformed back (`Y = Aᵀ M A`), with
//! bias and ReLU on the way out; the three transforms are in `winograd/transforms.rs`. The weight
//! gradient is the same algorithm transposed (`winograd/weight_grad.rs`). The direct kernel stays
//! the reference (`winograd/tests.rs` compares them), and [`worth_it`] and
//! [`worth_it_for_weight_grad`] pick per shape.

#[cfg(test)]
mod tests;
mod transforms;
mod weight_grad;

use super::micro::micro_kernel;
use super::scratch::Scratch;
use super::{poison, Geom, SharedOut, MR, NR};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use transforms::Transforms;
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
