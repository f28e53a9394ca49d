//! The CPU kernels of the fast convolution, its gradients and the ReLU/bias gradients.
//!
//! No im2col buffer: the input is zero-padded once into rows of width `Wp = W + 2p`, so for every
//! kernel offset `(ky, kx)` the input pixels it meets form one contiguous slice of each padded
//! channel, shifted by `ky * Wp + kx`. Output columns (positions on the padded rows) are cut into
//! tiles; tiles of all images run in parallel, and each tile's valid columns (the `Wp − W` extra
//! ones per row are dropped) are written out at the end.
//!
//! The forward convolution is an implicit GEMM with its own register-blocked micro-kernel: the
//! kernel is packed once per call into blocks of [`MR`] output channels, ordered (input channel,
//! kernel offset, channel in block); the micro-kernel keeps an `MR × NR` block of outputs in
//! registers while it runs over a pass of input channels and all `k²` offsets, broadcasting the
//! kernel values against two 8-wide vectors of input, read from panels copied per pass (small
//! maps) or straight from the padded image (large ones: see [`Plan`]). Every output is loaded and
//! stored once per pass instead of once per offset and `gemm` call, and the kernel is never
//! repacked per tile (the micro-kernels are in `cpu/micro.rs`). The input gradient is the same
//! convolution of the output gradient with the flipped, transposed kernel. The weight gradient
//! runs through `gemm` (`cpu/weight_grad.rs`).

mod micro;
mod scratch;
mod weight_grad;
pub(super) mod winograd;

use micro::{micro_kernel, MicroKernel};
use rayon::prelude::*;
pub(super) use weight_grad::weight_grad;

/// Output channels per micro-tile: each is one kernel value broadcast per step.
const MR: usize = 6;
/// Output columns per micro-tile: two 8-wide vectors. With `MR` this makes twelve accumulators,
/// two input vectors and one broadcast: 15 of the 16 AVX2 registers.
const NR: usize = 16;

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
    /// Length of one padded channel, with a tail so that the last shifted slice, rounded up to
    /// whole micro-tiles of `NR` columns, stays in bounds.
    fn chan_len(&self) -> usize {
        (self.h + 2 * self.pad) * self.wp() + self.k - 1 + NR - 1
    }
    /// Tiles of whole output rows holding at most `budget` f32 for `per_col` values per padded-row
    /// column, and at least one tile per thread.
    fn tiling(&self, per_col: usize, budget: usize) -> Tiling {
        let for_cache = budget / (per_col * self.wp());
        let for_threads = self.out_h().div_ceil(rayon::current_num_threads().div_ceil(self.batch.max(1)));
        let rows = for_cache.min(for_threads).clamp(1, self.out_h());
        Tiling { rows, count: self.out_h().div_ceil(rows), out_h: self.out_h(), wp: self.wp() }
    }
}

/// How the forward convolution runs: the micro-kernel, whether each pass copies its input into
/// panels first (see [`accumulate_tile`]), how many input channels a pass covers, and the tiles.
#[derive(Clone, Copy)]
struct Plan {
    micro: MicroKernel,
    panels: bool,
    /// Input channels per pass of the micro-kernel (with all `k²` offsets of each).
    kc: usize,
    tiling: Tiling,
}

impl Plan {
    /// Panels for maps of 56×56 and below (a padded channel under 32 KiB) with more than one block
    /// of output channels to read them back; the larger maps read the padded input directly, 8
    /// channels a pass. Measured on the VGG shapes (2-core EPYC, min of 6 interleaved runs):
    /// panels 7–12% faster at 56, 28 and 14, direct reads 5–15% faster at 112 and 224; 8 channels
    /// the best of 8 / 16 / 32 / 64 for direct reads (32: 5% slower, 64: 40%: each channel of a
    /// large map lies on its own memory pages, and a few dozen pages per pass overflow the TLB).
    fn new(g: &Geom) -> Plan {
        let (panels, kc, tiling) = if g.chan_len() < 8192 && g.cout > MR {
            // The panels of one pass (kc·k² values per column) in about 256 KiB, half the L2 of a
            // core.
            let kc = 32.min(g.cin);
            (true, kc, g.tiling(kc * g.k * g.k, 65_536))
        } else {
            (false, 8, g.tiling(g.cin.max(g.cout), 131_072))
        };
        Plan { micro: micro_kernel(), panels, kc, tiling }
    }
}

/// Output rows cut into tiles of `rows` rows (the last may be shorter).
#[derive(Clone, Copy)]
struct Tiling {
    rows: usize,
    count: usize,
    out_h: usize,
    wp: usize,
}

impl Tiling {
    /// Padded-row columns `[start, end)` of tile `t`.
    fn span(&self, t: usize) -> (usize, usize) {
        (t * self.rows * self.wp, ((t + 1) * self.rows).min(self.out_h) * self.wp)
    }
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
    let zero = |d: &mut [std::mem::MaybeUninit<f32>]| {
        d.iter_mut().for_each(|v| {
            v.write(0.0);
        })
    };
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

/// The length of [`pack_kernel`]'s result.
pub(super) fn packed_len(g: &Geom) -> usize {
    g.cout.next_multiple_of(MR) * g.cin * g.k * g.k
}

/// The kernel in the micro-kernel's order: blocks of [`MR`] output channels (the last one padded
/// with zeros), each ordered (input channel, kernel offset `ky·k + kx`, channel in the block);
/// from `w (cout, cin, k, k)`, or for the input gradient (`flip`) from `w (cin, cout, k, k)`
/// flipped and transposed, so that `dX = conv(dY, packed)`.
pub(super) fn pack_kernel(w: &[f32], g: &Geom, flip: bool) -> Vec<f32> {
    let kk = g.k * g.k;
    let mut packed = vec![0f32; packed_len(g)];
    packed.par_chunks_exact_mut(MR * g.cin * kk).enumerate().for_each(|(blk, dst)| {
        for o in blk * MR..(blk * MR + MR).min(g.cout) {
            for i in 0..g.cin {
                let taps = if flip { &w[(i * g.cout + o) * kk..][..kk] } else { &w[(o * g.cin + i) * kk..][..kk] };
                for (ki, &v) in taps.iter().enumerate() {
                    let ki = if flip { kk - 1 - ki } else { ki };
                    dst[(i * kk + ki) * MR + o % MR] = v;
                }
            }
        }
    });
    packed
}

/// `acc (cout rounded up to MR × tr) += Σ_k W_k · Xpad_b[:, shift_k + c0 .. shift_k + c0 + tr]`
/// for `tr` a multiple of [`NR`], with `packed` from [`pack_kernel`].
///
/// With `plan.panels`, each pass over `plan.kc` input channels first copies the input it needs
/// into panels of [`NR`] columns, ordered (channel, kernel offset, column) as the micro-kernel
/// reads them: one contiguous stream instead of `kc · k` rows on as many memory pages. The copy
/// is `k²` times the pass's input, read back by every block of output channels.
fn accumulate_tile(plan: &Plan, xp: &[f32], packed: &[f32], g: &Geom, c0: usize, tr: usize, acc: &mut [f32]) {
    let (l, kk) = (g.chan_len(), g.k * g.k);
    let offs: Vec<usize> = kernel_shifts(g, c0).map(|(_, shift)| shift).collect();
    debug_assert!(acc.len() == g.cout.next_multiple_of(MR) * tr && tr.is_multiple_of(NR));
    debug_assert!((g.cin - 1) * l + offs[kk - 1] + tr <= xp.len());
    let mut panels = if plan.panels { vec![0f32; plan.kc * kk * tr] } else { Vec::new() };
    for i0 in (0..g.cin).step_by(plan.kc) {
        let kc = plan.kc.min(g.cin - i0);
        let steps = kc * kk;
        // Where step (i, s) of micro-tile j reads: panel j's row i·k² + s, or the padded input.
        let (src, at, stride): (&[f32], Vec<usize>, usize) = if plan.panels {
            for (j, panel) in panels.chunks_exact_mut(steps * NR).take(tr / NR).enumerate() {
                for (i, chan) in panel.chunks_exact_mut(kk * NR).enumerate() {
                    // Channel i0 + i < cin: offs[s] + j·NR + NR ≤ shift + tr ≤ chan_len (room
                    // for the tr − (c1 − c0) < NR columns past the tile).
                    let x = &xp[(i0 + i) * l + j * NR..];
                    for (dst, &off) in chan.chunks_exact_mut(NR).zip(&offs) {
                        dst.copy_from_slice(&x[off..off + NR]);
                    }
                }
            }
            (&panels, (0..steps).map(|t| t * NR).collect(), steps * NR)
        } else {
            (&xp[i0 * l..], (0..kc).flat_map(|i| offs.iter().map(move |&off| i * l + off)).collect(), NR)
        };
        for (blk, rows) in acc.chunks_exact_mut(MR * tr).enumerate() {
            let a = &packed[(blk * g.cin + i0) * kk * MR..][..steps * MR];
            for j in 0..tr / NR {
                debug_assert!(j * stride + at[steps - 1] + NR <= src.len());
                // SAFETY: `a` holds steps · MR values (this block's kernel for channels
                // i0..i0 + kc); every step reads NR values inside `src` (a panel, or a padded
                // channel: see above); `rows` holds MR rows of tr values from column j·NR + NR ≤
                // tr on.
                unsafe {
                    (plan.micro)(
                        a.as_ptr(),
                        src.as_ptr().add(j * stride),
                        &at,
                        rows.as_mut_ptr().add(j * NR),
                        tr,
                        false,
                    )
                };
            }
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
    let plan = Plan::new(g);
    let tiling = plan.tiling;
    let tiles = tiling.count;
    (0..batch * tiles).into_par_iter().for_each(|unit| {
        let (img, t) = (unit / tiles, unit % tiles);
        let (c0, c1) = tiling.span(t);
        let tr = (c1 - c0).next_multiple_of(NR);
        let mut acc = vec![0f32; g.cout.next_multiple_of(MR) * tr];
        if let Some(b) = b {
            for (row, &bias) in acc.chunks_exact_mut(tr).zip(b) {
                row.fill(bias);
            }
        }
        accumulate_tile(&plan, &xp[img * g.cin * l..][..g.cin * l], packed, g, c0, tr, &mut acc);
        for o in 0..g.cout {
            for r in c0 / wp..c1 / wp {
                let src = &acc[o * tr + (r * wp - c0)..][..ow];
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

/// `dy` where the ReLU output `y` is positive, else 0: one pass instead of compare, cast, multiply.
pub(super) fn relu_grad(dy: &[f32], y: &[f32]) -> candle_core::Result<Vec<f32>> {
    if dy.len() != y.len() {
        candle_core::bail!("relu-grad: {} gradients for {} outputs", dy.len(), y.len())
    }
    let mut out = Vec::with_capacity(dy.len());
    poison(&mut out, dy.len());
    out.spare_capacity_mut()[..dy.len()]
        .par_chunks_mut(1 << 16)
        .zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16)))
        .for_each(|(o, (d, y))| {
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
    (0..c)
        .into_par_iter()
        .map(|ch| (0..b).map(|img| dy[(img * c + ch) * hw..][..hw].iter().sum::<f32>()).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::micro::micro_portable;
    use super::*;

    /// A deterministic input in [−1, 1] (of `len` values), for comparing kernels.
    pub(super) fn input_values(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 37 % 101) as f32 - 50.) / 50.).collect()
    }

    /// Deterministic kernel values in [−1, 1], another pattern than [`input_values`].
    pub(super) fn kernel_values(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 53 % 97) as f32 - 48.) / 48.).collect()
    }

    /// The micro-kernel this CPU runs (AVX2 here) and its portable twin, reading panels or the
    /// padded input, give the same tiles, for channel counts that leave partial `MR` blocks and
    /// partial passes, and widths that leave partial `NR` micro-tiles (tests/conv.rs checks the
    /// whole convolution against candle).
    #[test]
    fn micro_kernels_and_plans_agree() {
        for (cin, cout, h, w, k, pad) in
            [(3, 7, 9, 11, 3, 1), (20, 13, 6, 5, 5, 2), (9, 6, 4, 4, 1, 0), (17, 12, 7, 30, 3, 1)]
        {
            let g = Geom { cin, cout, k, h, w, pad, batch: 1 };
            let (x, wt) = (input_values(cin * h * w), kernel_values(cout * cin * k * k));
            let (xp, packed) = (pad_batch(&x, &g), pack_kernel(&wt, &g, false));
            let tiling = g.tiling(8 * k * k, 1024);
            for t in 0..tiling.count {
                let (c0, c1) = tiling.span(t);
                let tr = (c1 - c0).next_multiple_of(NR);
                let run = |micro: MicroKernel, panels: bool| {
                    let mut acc = vec![0f32; cout.next_multiple_of(MR) * tr];
                    accumulate_tile(&Plan { micro, panels, kc: 8, tiling }, &xp, &packed, &g, c0, tr, &mut acc);
                    acc
                };
                let slow = run(micro_portable, false);
                assert!(slow.iter().any(|&v| v != 0.0));
                for (fast, what) in [
                    (run(micro_kernel(), false), "direct"),
                    (run(micro_kernel(), true), "panels"),
                    (run(micro_portable, true), "portable panels"),
                ] {
                    for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                            "{what}: {cin}->{cout} {h}x{w} k{k}: element {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
