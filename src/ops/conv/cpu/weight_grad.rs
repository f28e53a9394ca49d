//! The weight gradient through `gemm`: per tile, `dY (Cout × T) · Xpad[:, shift + tile]ᵀ` for every
//! kernel offset, summed over tiles into `k²` row-major `Cout × Cin` matrices (`gemm` handles a
//! strided operand 25–35% slower), laid back out as `(Cout, Cin, k, k)` at the end.

use super::{kernel_shifts, pad_batch, Geom};
use gemm::Parallelism;
use rayon::prelude::*;

/// A matrix operand: pointer, column stride, row stride (in elements).
type Operand<P> = (P, isize, isize);

/// `dst (m × n) += lhs (m × k) · rhs (k × n)`, single-threaded (callers parallelise over tiles).
///
/// # Safety
/// Every element addressed through the pointers and strides must be in bounds, and `dst` must not
/// alias `lhs` or `rhs`.
unsafe fn gemm_accumulate(
    m: usize,
    n: usize,
    k: usize,
    dst: Operand<*mut f32>,
    lhs: Operand<*const f32>,
    rhs: Operand<*const f32>,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.1,
        dst.2,
        true,
        lhs.0,
        lhs.1,
        lhs.2,
        rhs.0,
        rhs.1,
        rhs.2,
        1.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// `dw_k += dY_tile (cout × t) · Xpad[:, shift_k + tile]ᵀ` for every kernel offset `k`, for one
/// tile of one image; `dw` holds `k²` row-major `cout × cin` matrices, one per offset.
fn weight_grad_tile(xp: &[f32], dyp: &[f32], g: &Geom, c0: usize, c1: usize, dw: &mut [f32]) {
    let (l, t) = (g.chan_len(), c1 - c0);
    for (ki, shift) in kernel_shifts(g, c0) {
        // SAFETY: dst is the matrix of offset ki (cout × cin, row-major) in `dw`; lhs is the tile
        // of dY on padded rows (cout × t, row stride t); rhs is the transposed shifted input
        // (t × cin: row stride 1, column stride l), in bounds as in `accumulate_tile`.
        unsafe {
            gemm_accumulate(
                g.cout,
                g.cin,
                t,
                (dw.as_mut_ptr().add(ki * g.cout * g.cin), 1, g.cin as isize),
                (dyp.as_ptr(), 1, t as isize),
                (xp.as_ptr().add(shift), l as isize, 1),
            );
        }
    }
}

/// `dW (cout, cin, k, k)` from the input `x` and the output gradient `dy`: one partial dW per
/// worker over its tiles, summed at the end.
pub(in crate::ops::conv) fn weight_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let xp = pad_batch(x, g);
    let (oh, ow, wp, l) = (g.out_h(), g.out_w(), g.wp(), g.chan_len());
    let dw_len = cout * cin * g.k * g.k;
    // About 512 KiB for the wider of the two matrices (measured best of 64 KiB … 2 MiB on a
    // 2-core EPYC with 512 KiB of L2 per core).
    let tiling = g.tiling(cin.max(cout), 131_072);
    let tiles = tiling.count;
    let units = g.batch * tiles;
    let workers = rayon::current_num_threads().clamp(1, units);
    let parts: Vec<Vec<f32>> = (0..workers)
        .into_par_iter()
        .map(|wk| {
            let mut dw = vec![0f32; dw_len];
            for unit in (wk..units).step_by(workers) {
                let (img, t) = (unit / tiles, unit % tiles);
                let (c0, c1) = tiling.span(t);
                let width = c1 - c0;
                // This tile of dY on padded rows, zeros in the extra columns.
                let mut dyp = vec![0f32; cout * width];
                for o in 0..cout {
                    for r in c0 / wp..c1 / wp {
                        dyp[o * width + r * wp - c0..][..ow]
                            .copy_from_slice(&dy[((img * cout + o) * oh + r) * ow..][..ow]);
                    }
                }
                weight_grad_tile(&xp[img * cin * l..][..cin * l], &dyp, g, c0, c1, &mut dw);
            }
            dw
        })
        .collect();
    // Sum the parts and lay the k² matrices (cout × cin) back out as (cout, cin, k, k).
    let (kk, plane) = (g.k * g.k, cout * cin);
    let mut dw = vec![0f32; dw_len];
    dw.par_chunks_exact_mut(cin * kk).enumerate().for_each(|(o, row)| {
        for (i, taps) in row.chunks_exact_mut(kk).enumerate() {
            for (ki, v) in taps.iter_mut().enumerate() {
                *v = parts.iter().map(|p| p[ki * plane + o * cin + i]).sum();
            }
        }
    });
    dw
}
