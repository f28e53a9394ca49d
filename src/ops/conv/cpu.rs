//! The CPU kernels of the fast convolution, its gradients and the ReLU/bias gradients.
//!
//! No im2col buffer: the input is zero-padded once into rows of width `Wp = W + 2p`, so for every
//! kernel offset `(ky, kx)` the input pixels it meets form one contiguous slice of each padded
//! channel, shifted by `ky * Wp + kx`. Output columns (positions on the padded rows) are cut into
//! tiles small enough for the L2 cache; each tile is `k²` GEMMs
//! `W[:, :, ky, kx] (Cout × Cin) · Xpad[:, shift + tile] (Cin × T)` accumulated in a local buffer,
//! then its valid columns (the `Wp − W` extra ones per row are dropped) are written out. Tiles of
//! all images run in parallel. The kernel is first laid out as `k²` contiguous row-major
//! `Cout × Cin` matrices (GEMM packs a strided left operand 25–35% slower). The input gradient is
//! the same convolution of the output gradient with the flipped, transposed kernel; the weight
//! gradient is, per tile, `dY (Cout × T) · Xpad[:, shift + tile]ᵀ`, summed over tiles into the
//! same `k²` matrices and laid back out as `(Cout, Cin, k, k)` at the end.

use gemm::Parallelism;
use rayon::prelude::*;

/// Geometry of one padded image.
#[derive(Clone, Copy)]
pub(super) struct Geom {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub h: usize,
    pub w: usize,
    pub pad: usize,
    /// Images in the batch: with fewer images than threads, each image is cut into more tiles.
    pub batch: usize,
}

impl Geom {
    fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }
    pub(super) fn out_h(&self) -> usize {
        self.h + 2 * self.pad + 1 - self.k
    }
    pub(super) fn out_w(&self) -> usize {
        self.wp() + 1 - self.k
    }
    /// Length of one padded channel, with a tail so the last shifted slice stays in bounds.
    fn chan_len(&self) -> usize {
        (self.h + 2 * self.pad) * self.wp() + self.k - 1
    }
    /// Output rows per tile: about 512 KiB of f32 for the wider of the two matrices (measured
    /// best of 64 KiB … 2 MiB on a 2-core EPYC with 512 KiB of L2 per core).
    fn tile_rows(&self) -> usize {
        let for_cache = 131_072 / (self.cin.max(self.cout) * self.wp());
        let for_threads = self.out_h().div_ceil(rayon::current_num_threads().div_ceil(self.batch.max(1)));
        for_cache.min(for_threads).clamp(1, self.out_h())
    }
    fn tiles(&self) -> usize {
        self.out_h().div_ceil(self.tile_rows())
    }
    /// Padded-row columns `[start, end)` of tile `t`.
    fn tile(&self, t: usize) -> (usize, usize) {
        let r = self.tile_rows();
        (t * r * self.wp(), ((t + 1) * r).min(self.out_h()) * self.wp())
    }
}

/// A matrix operand: pointer, column stride, row stride (in elements).
type Operand<P> = (P, isize, isize);

/// `dst (m × n) += lhs (m × k) · rhs (k × n)`, single-threaded (callers parallelise over tiles).
///
/// # Safety
/// Every element addressed through the pointers and strides must be in bounds, and `dst` must not
/// alias `lhs` or `rhs`.
unsafe fn gemm_accumulate(m: usize, n: usize, k: usize, dst: Operand<*mut f32>, lhs: Operand<*const f32>, rhs: Operand<*const f32>) {
    gemm::gemm(m, n, k, dst.0, dst.1, dst.2, true, lhs.0, lhs.1, lhs.2, rhs.0, rhs.1, rhs.2, 1.0, 1.0, false, false, false, Parallelism::None);
}

/// For every kernel offset `(ky, kx)`: its index `ky·k + kx` in a kernel plane, and where the
/// input it meets starts for output column `c0` of the padded rows.
fn kernel_shifts(g: &Geom, c0: usize) -> impl Iterator<Item = (usize, usize)> {
    let (k, wp) = (g.k, g.wp());
    (0..k * k).map(move |i| (i, (i / k) * wp + i % k + c0))
}

/// Debug builds (the tests) fill a buffer that is about to be written in full with NaN first, so
/// that an element left unwritten shows in the results.
fn poison(v: &mut Vec<f32>, len: usize) {
    if cfg!(debug_assertions) {
        v.spare_capacity_mut()[..len].iter_mut().for_each(|x| {
            x.write(f32::NAN);
        });
    }
}

/// Zero-pad a batch `(B, cin, h, w)` into `(B, cin, chan_len)` rows of width `wp`. Every element
/// is written once (no zeroing pass first: that was a whole extra pass over every
/// activation, for each convolution and each of its gradients).
fn pad_batch(x: &[f32], g: &Geom) -> Vec<f32> {
    let (wp, l, pad, w) = (g.wp(), g.chan_len(), g.pad, g.w);
    let len = x.len() / (g.h * w) * l;
    let mut out = Vec::with_capacity(len);
    poison(&mut out, len);
    let zero = |d: &mut [std::mem::MaybeUninit<f32>]| d.iter_mut().for_each(|v| {
        v.write(0.0);
    });
    out.spare_capacity_mut()[..len].par_chunks_exact_mut(l).zip(x.par_chunks_exact(g.h * w)).for_each(|(dst, src)| {
        zero(&mut dst[..pad * wp + pad]);
        for (y, row) in src.chunks_exact(w).enumerate() {
            let start = (y + pad) * wp + pad;
            dst[start..start + w].iter_mut().zip(row).for_each(|(d, &s)| {
                d.write(s);
            });
            // The right padding of this row and the left padding of the next.
            zero(&mut dst[start + w..(start + wp).min(l)]);
        }
        zero(&mut dst[(g.h + pad) * wp + pad..]);
    });
    // SAFETY: the chunks cover [0, len) (one per channel of x) and each was written in full above:
    // [0, pad·wp + pad), then per row y its w values from (y + pad)·wp + pad and the 2·pad zeros
    // after them up to the next row's values, then the rest from (h + pad)·wp + pad.
    unsafe { out.set_len(len) };
    out
}

/// A raw output pointer shared by tiles that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every work unit writes a disjoint set of indices (each use says which).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

/// The kernel as `k²` row-major `cout × cin` matrices, one per kernel offset `ky·k + kx`: from
/// `w (cout, cin, k, k)`, or for the input gradient (`flip`) from `w (cin, cout, k, k)` flipped
/// and transposed, so that `dX = conv(dY, packed)`.
pub(super) fn pack_kernel(w: &[f32], g: &Geom, flip: bool) -> Vec<f32> {
    let (kk, plane) = (g.k * g.k, g.cout * g.cin);
    let mut packed = vec![0f32; kk * plane];
    let out = SharedOut(packed.as_mut_ptr());
    // One packed row `o` per work unit: it reads the k² taps of each (o, i) (or, flipped, of each
    // (i, o)) together, so every cache line of `w` is read once.
    (0..g.cout).into_par_iter().for_each(|o| {
        for i in 0..g.cin {
            let taps = if flip { &w[(i * g.cout + o) * kk..][..kk] } else { &w[(o * g.cin + i) * kk..][..kk] };
            for (ki, &v) in taps.iter().enumerate() {
                let ki = if flip { kk - 1 - ki } else { ki };
                // SAFETY: unit o alone writes row o of every packed matrix; the index is below
                // kk·plane.
                unsafe { *out.ptr().add(ki * plane + o * g.cin + i) = v };
            }
        }
    });
    packed
}

/// `acc (cout × (c1 − c0)) += Σ_k W_k · Xpad_b[:, shift_k + c0 .. shift_k + c1]`, with `packed`
/// from [`pack_kernel`].
fn accumulate_tile(xp: &[f32], packed: &[f32], g: &Geom, c0: usize, c1: usize, acc: &mut [f32]) {
    let (l, t) = (g.chan_len(), c1 - c0);
    for (ki, shift) in kernel_shifts(g, c0) {
        debug_assert!((g.cin - 1) * l + shift + t <= xp.len());
        // SAFETY: dst is cout × t (row stride t) inside `acc`; lhs is the packed kernel matrix of
        // offset ki (cout × cin, row-major); rhs is cin rows of t values starting at `shift` of
        // each padded channel, and shift + t ≤ out_h·wp + (k−1)·wp + k−1 = chan_len.
        unsafe {
            gemm_accumulate(
                g.cout,
                t,
                g.cin,
                (acc.as_mut_ptr(), 1, t as isize),
                (packed.as_ptr().add(ki * g.cout * g.cin), 1, g.cin as isize),
                (xp.as_ptr().add(shift), 1, l as isize),
            );
        }
    }
}

/// The forward convolution of a whole batch with a [`pack_kernel`]ed kernel and a bias (`None`:
/// zero).
pub(super) fn conv_forward(x: &[f32], packed: &[f32], b: Option<&[f32]>, g: &Geom, relu: bool) -> Vec<f32> {
    let batch = x.len() / (g.cin * g.h * g.w);
    let xp = pad_batch(x, g);
    let (oh, ow, wp, l) = (g.out_h(), g.out_w(), g.wp(), g.chan_len());
    let len = batch * g.cout * oh * ow;
    let mut y = Vec::with_capacity(len);
    poison(&mut y, len);
    let out = SharedOut(y.as_mut_ptr());
    let tiles = g.tiles();
    (0..batch * tiles).into_par_iter().for_each(|unit| {
        let (img, t) = (unit / tiles, unit % tiles);
        let (c0, c1) = g.tile(t);
        let width = c1 - c0;
        let mut acc = vec![0f32; g.cout * width];
        if let Some(b) = b {
            for (row, &bias) in acc.chunks_exact_mut(width).zip(b) {
                row.fill(bias);
            }
        }
        accumulate_tile(&xp[img * g.cin * l..][..g.cin * l], packed, g, c0, c1, &mut acc);
        for o in 0..g.cout {
            for r in c0 / wp..c1 / wp {
                let src = &acc[o * width + (r * wp - c0)..][..ow];
                let dst = ((img * g.cout + o) * oh + r) * ow;
                // SAFETY: unit (img, t) alone writes rows [c0/wp, c1/wp) of image img, inside the
                // capacity `len`; raw writes, as the buffer is not initialised yet.
                unsafe {
                    let dst = out.ptr().add(dst);
                    if relu {
                        src.iter().enumerate().for_each(|(j, &s)| dst.add(j).write(s.max(0.0)));
                    } else {
                        std::ptr::copy_nonoverlapping(src.as_ptr(), dst, ow);
                    }
                }
            }
        }
    });
    // SAFETY: the units cover every image, channel and row (tiles cover [0, out_h)), so all `len`
    // elements were written above.
    unsafe { y.set_len(len) };
    y
}

/// `dw_k += dY_tile (cout × t) · Xpad[:, shift_k + tile]ᵀ` for every kernel offset `k`, for one
/// tile of one image; `dw` holds the `k²` row-major `cout × cin` matrices of [`pack_kernel`].
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
pub(super) fn weight_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let xp = pad_batch(x, g);
    let (oh, ow, wp, l) = (g.out_h(), g.out_w(), g.wp(), g.chan_len());
    let dw_len = cout * cin * g.k * g.k;
    let tiles = g.tiles();
    let units = g.batch * tiles;
    let workers = rayon::current_num_threads().clamp(1, units);
    let parts: Vec<Vec<f32>> = (0..workers)
        .into_par_iter()
        .map(|wk| {
            let mut dw = vec![0f32; dw_len];
            for unit in (wk..units).step_by(workers) {
                let (img, t) = (unit / tiles, unit % tiles);
                let (c0, c1) = g.tile(t);
                let width = c1 - c0;
                // This tile of dY on padded rows, zeros in the extra columns.
                let mut dyp = vec![0f32; cout * width];
                for o in 0..cout {
                    for r in c0 / wp..c1 / wp {
                        dyp[o * width + r * wp - c0..][..ow].copy_from_slice(&dy[((img * cout + o) * oh + r) * ow..][..ow]);
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

/// `dy` where the ReLU output `y` is positive, else 0: one pass instead of compare, cast, multiply.
pub(super) fn relu_grad(dy: &[f32], y: &[f32]) -> candle_core::Result<Vec<f32>> {
    if dy.len() != y.len() {
        candle_core::bail!("relu-grad: {} gradients for {} outputs", dy.len(), y.len())
    }
    let mut out = Vec::with_capacity(dy.len());
    poison(&mut out, dy.len());
    out.spare_capacity_mut()[..dy.len()].par_chunks_mut(1 << 16).zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16))).for_each(|(o, (d, y))| {
        for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
            o.write(if y > 0.0 { d } else { 0.0 });
        }
    });
    // SAFETY: dy and y have the same length, so the chunks cover all dy.len() elements, each
    // written once above.
    unsafe { out.set_len(dy.len()) };
    Ok(out)
}

/// `dy (b, c, h, w)` summed over everything but the channel.
pub(super) fn bias_grad(dy: &[f32], (b, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let hw = h * w;
    (0..c).into_par_iter().map(|ch| (0..b).map(|img| dy[(img * c + ch) * hw..][..hw].iter().sum::<f32>()).sum()).collect()
}
