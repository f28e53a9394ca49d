//! The weight gradient by Winograd F(2×2, 3×3), transposed: with `V = Bᵀ d B` the forward's
//! transformed input patches and `dM = A dY Aᵀ` each tile's 2×2 output gradient spread over the
//! 16 positions, `dU = Σ_tiles dM ⊙ V` per (output, input) channel pair and `dW = Gᵀ dU G`. The
//! sum over tiles is 16 GEMMs `dM (cout × tiles) · Vᵀ (tiles × cin)`, on the forward's
//! micro-kernel: 16 products per tile and channel pair where the direct sum has 36.

use super::super::micro::micro_kernel;
use super::super::{Geom, MR, NR};
use super::{pad_planes, Tiles, Transforms, POS};
use rayon::prelude::*;

/// `dM = A dY Aᵀ` for one tile's 2×2 gradient `d = [d00, d01, d10, d11]` of [`MR`] output
/// channels side by side, `A = [1 0; 1 1; 1 −1; 0 −1]`: the 16 positions, row-major.
#[inline(always)]
fn spread(d: [[f32; MR]; 4]) -> [[f32; MR]; POS] {
    let mut m = [[0f32; MR]; POS];
    for l in 0..MR {
        let [d00, d01, d10, d11] = d.map(|v| v[l]);
        let rows = [(d00, d01), (d00 + d10, d01 + d11), (d00 - d10, d01 - d11), (-d10, -d11)];
        for (r, (a, b)) in rows.into_iter().enumerate() {
            for (c, v) in [a, a + b, a - b, -b].into_iter().enumerate() {
                m[r * 4 + c][l] = v;
            }
        }
    }
    m
}

/// `Gᵀ s G` for the 16 summed products `s` of one channel pair: its 3×3 kernel gradient,
/// `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`.
#[inline(always)]
fn gather(s: [f32; POS]) -> [f32; 9] {
    let g = |a: f32, b: f32, c: f32, d: f32| [a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + d];
    let rows: [[f32; 3]; 4] = std::array::from_fn(|r| g(s[r * 4], s[r * 4 + 1], s[r * 4 + 2], s[r * 4 + 3]));
    let mut out = [0f32; 9];
    for v in 0..3 {
        let col = g(rows[0][v], rows[1][v], rows[2][v], rows[3][v]);
        for u in 0..3 {
            out[u * 3 + v] = col[u];
        }
    }
    out
}

/// `dW (cout, cin, 3, 3)` of the 3×3, padding-1 convolution from its input `x` and output
/// gradient `dy`: each worker sums its blocks of tiles into its own `dU`, the parts are added and
/// transformed back at the end.
pub(crate) fn weight_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (ci, co, h, wd) = (g.cin, g.cout, g.h, g.w);
    let (cop, cip) = (co.next_multiple_of(MR), ci.next_multiple_of(NR));
    let batch = x.len() / (ci * h * wd);
    let tl = Tiles::new(g);
    let xp = pad_planes(x, g, &tl);
    let tiles = batch * tl.th * tl.tw;
    // Tiles per block: one position's transformed input (n × cin) in about 128 KiB.
    let n = (32_768 / ci.max(co)).clamp(NR, 256);
    let blocks = tiles.div_ceil(n);
    let workers = rayon::current_num_threads().clamp(1, blocks);
    let (micro, simd) = (micro_kernel(), Transforms::detect());
    let parts: Vec<Vec<f32>> = (0..workers)
        .into_par_iter()
        .map(|wk| {
            // dU: 16 matrices cout × cin (rows and columns padded to MR and NR).
            let mut du = vec![0f32; POS * cop * cip];
            // Vᵀ: 16 matrices of n tiles × cin, padding channels zero.
            let mut vt = vec![0f32; POS * n * cip];
            // dM: per position, per block of MR output channels, n steps of MR values; the
            // padding channels stay zero.
            let mut dm = vec![0f32; POS * cop * n];
            // One group of NR channels transformed as V is (channel, position, tile).
            let mut group = vec![0f32; NR * POS * n];
            let mut t = vec![0f32; 4 * (2 * tl.tw + 2)];
            for blk in (wk..blocks).step_by(workers) {
                let (t0, t1) = (blk * n, ((blk + 1) * n).min(tiles));
                let nt = t1 - t0;
                for c0 in (0..ci).step_by(NR) {
                    for (cc, rows) in group.chunks_exact_mut(POS * n).enumerate() {
                        let c = c0 + cc;
                        if c >= ci {
                            rows.fill(0.0);
                            continue;
                        }
                        let mut v: [&mut [f32]; POS] = {
                            let mut rest = &mut rows[..];
                            std::array::from_fn(|_| {
                                let (row, tail) = std::mem::take(&mut rest).split_at_mut(n);
                                rest = tail;
                                row
                            })
                        };
                        for (img, ty, tx, len, j0) in tl.runs(t0, t1) {
                            let plane = &xp[(img * ci + c) * tl.hp * tl.wp..][..tl.hp * tl.wp];
                            let rows = std::array::from_fn(|r| &plane[(2 * ty + r) * tl.wp + 2 * tx..]);
                            let mut run = v.each_mut().map(|row| &mut row[j0..]);
                            simd.input(rows, len, &mut t, &mut run);
                        }
                    }
                    for xi in 0..POS {
                        for j in 0..nt {
                            let dst = &mut vt[(xi * n + j) * cip + c0..][..NR];
                            for (cc, d) in dst.iter_mut().enumerate() {
                                *d = group[(cc * POS + xi) * n + j];
                            }
                        }
                    }
                }
                // dM, MR output channels at a time: each tile's 16 × MR values are written
                // side by side, as the micro-kernel reads them.
                for ob in 0..cop / MR {
                    let outs = ob * MR..(ob * MR + MR).min(co);
                    for (img, ty, tx, len, j0) in tl.runs(t0, t1) {
                        for j in 0..len {
                            let (y, x) = (2 * ty, 2 * (tx + j));
                            let mut d = [[0f32; MR]; 4];
                            for (l, o) in outs.clone().enumerate() {
                                let plane = &dy[(img * co + o) * h * wd..][..h * wd];
                                for (k, (dy_, dx_)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
                                    if y + dy_ < h && x + dx_ < wd {
                                        d[k][l] = plane[(y + dy_) * wd + x + dx_];
                                    }
                                }
                            }
                            for (xi, m) in spread(d).iter().enumerate() {
                                dm[((xi * cop / MR + ob) * n + j0 + j) * MR..][..MR].copy_from_slice(m);
                            }
                        }
                    }
                }
                let at: Vec<usize> = (0..nt).map(|t| t * cip).collect();
                for xi in 0..POS {
                    for ob in 0..cop / MR {
                        let a = &dm[(xi * cop / MR + ob) * n * MR..][..nt * MR];
                        for ib in 0..cip / NR {
                            // SAFETY: `a` holds nt steps of MR values; step t reads NR values of
                            // Vᵀ at row t < nt, columns ib·NR.. < cip, of position xi; the
                            // micro-kernel adds into MR rows of NR values of dU (row stride cip)
                            // from row ob·MR, column ib·NR of position xi.
                            unsafe {
                                micro(
                                    a.as_ptr(),
                                    vt.as_ptr().add(xi * n * cip + ib * NR),
                                    &at,
                                    du.as_mut_ptr().add((xi * cop + ob * MR) * cip + ib * NR),
                                    cip,
                                    false,
                                );
                            }
                        }
                    }
                }
            }
            du
        })
        .collect();
    let mut dw = vec![0f32; co * ci * 9];
    dw.par_chunks_exact_mut(ci * 9).enumerate().for_each(|(o, row)| {
        for (i, taps) in row.chunks_exact_mut(9).enumerate() {
            let s = std::array::from_fn(|xi| parts.iter().map(|p| p[(xi * cop + o) * cip + i]).sum());
            taps.copy_from_slice(&gather(s));
        }
    });
    dw
}
