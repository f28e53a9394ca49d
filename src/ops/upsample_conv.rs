//! Undo a 2×2 stride-2 pooling and convolve, in one op computed from the coarse map.
//!
//! Every decoder stage starts by putting the coarse code back on the fine grid and convolving it
//! (stride 1, `k × k`, padding `k / 2`). SAE puts each value in the fixed cell (1, 1) of its
//! window and zeros elsewhere; up-conv spreads it over the window (nearest-neighbour ×2). Either
//! way the fine map holds nothing but the coarse values, so the convolution can read them from
//! the coarse map directly: an output cell `(2a + py, 2b + px)` of phase `(py, px)` sums the kernel
//! taps that land on coarse cell `(a + oy, b + ox)`, for a few offsets `o`. Stacking the four
//! phases as output channels makes that one convolution on the coarse map, with a `K × K` kernel
//! of `4·cout` outputs whose entries are sums of the fine kernel's taps, followed by a
//! depth-to-space interleave of the phases:
//!
//! | upsampling, fine kernel | coarse kernel | multiply-adds per fine output and channel pair |
//! |---|---|---|
//! | fixed cell (SAE), 3×3 | 2×2 (9 of its 16 entries per phase stack non-zero) | 4 instead of 9 |
//! | spread (up-conv), 5×5 | 3×3 | 9 instead of 25 (fewer with Winograd, which the 3×3 takes) |
//!
//! It is exact: the same sums in another order (float rounding aside). Gradients flow through
//! the coarse convolution (our op, with its backward), the kernel map (a matrix product) and the
//! interleave (its own op, whose backward gathers). SWWAE's switches differ per channel, so its
//! unpooled map has no common phase structure: it keeps the unfused path, as do overlapping
//! windows (AlexNet's 3×3/2) and devices other than the CPU (CUDA's fused op waits for a card).
//! [`upsample_conv_ref`] is the unfused twin the tests compare against.

use super::{f32_values, storage_as, PoolSwitches};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// How a stage puts the coarse code back on the fine grid before its convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upsample {
    /// Each value in the fixed cell (⌊k/2⌋, ⌊k/2⌋) of its window ([`super::unpool_fixed`]).
    FixedCell,
    /// Each value over its whole window ([`super::spread`]).
    Spread,
}

/// Along one axis: which coarse offset each fine kernel tap of each output phase reads.
/// `taps[p][t]` is `Some(o)`: tap `t` of an output of phase `p` at coarse position `a` reads
/// coarse cell `a + o`; `None`: it reads a zero of the fine map.
#[derive(Debug, Clone, PartialEq)]
struct AxisMap {
    taps: [Vec<Option<isize>>; 2],
    /// Smallest and largest offset read.
    lo: isize,
    hi: isize,
}

impl AxisMap {
    /// For a fine kernel of `k` taps with padding `k / 2` after a 2×2 stride-2 `up`sampling.
    fn new(up: Upsample, k: usize) -> Self {
        let pad = (k / 2) as isize;
        let cell = 1isize; // ⌊2/2⌋: SAE's fixed cell of a 2-wide window
        let mut taps = [Vec::new(), Vec::new()];
        let (mut lo, mut hi) = (isize::MAX, isize::MIN);
        for (p, row) in taps.iter_mut().enumerate() {
            for t in 0..k as isize {
                // Fine input index read by tap t of the output at fine 2·0 + p, relative to a = 0.
                let u = p as isize + t - pad;
                let m = match up {
                    Upsample::Spread => Some(u.div_euclid(2)),
                    Upsample::FixedCell => ((u - cell).rem_euclid(2) == 0).then(|| (u - cell).div_euclid(2)),
                };
                if let Some(o) = m {
                    lo = lo.min(o);
                    hi = hi.max(o);
                }
                row.push(m);
            }
        }
        Self { taps, lo, hi }
    }

    /// Coarse kernel size.
    fn size(&self) -> usize {
        (self.hi - self.lo + 1) as usize
    }

    /// The `(size, 2, k)` matrix: entry `[o − lo][p][t]` is 1 where tap `t` of phase `p` reads
    /// offset `o`.
    fn matrix(&self) -> Vec<[Vec<f32>; 2]> {
        let (k, n) = (self.taps[0].len(), self.size());
        let mut m = vec![[vec![0f32; k], vec![0f32; k]]; n];
        for (p, taps) in self.taps.iter().enumerate() {
            for (t, o) in taps.iter().enumerate() {
                if let Some(o) = o {
                    m[(o - self.lo) as usize][p][t] = 1.0;
                }
            }
        }
        m
    }
}

/// The coarse convolution that stands for `up` followed by a `k × k` convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    axis: AxisMap,
    k: usize,
}

impl Plan {
    /// The plan for `up` then a `k × k` kernel (padding `k / 2`) after the pooling `sw`, or
    /// `None` where the fused op does not apply (overlapping or non-2×2 windows, even `k`).
    pub fn new(up: Upsample, k: usize, sw: &PoolSwitches) -> Option<Self> {
        (sw.kernel == 2 && sw.stride == 2 && k % 2 == 1).then(|| Self { axis: AxisMap::new(up, k), k })
    }

    /// The padding of the coarse convolution.
    pub fn coarse_pad(&self) -> usize {
        self.coarse().1
    }

    /// The coarse kernel size and its (symmetric) padding.
    fn coarse(&self) -> (usize, usize) {
        (self.axis.size(), (-self.axis.lo) as usize)
    }

    /// The `(k², 4·K²)` matrix taking a fine kernel's taps (row-major) to the coarse kernels of
    /// the four phases, laid out `(py, px, oy, ox)`.
    fn kernel_map(&self, device: &candle_core::Device) -> Result<Tensor> {
        let (k, n) = (self.k, self.axis.size());
        let m = self.axis.matrix();
        let mut out = vec![0f32; k * k * 4 * n * n];
        for (ty, tx) in (0..k).flat_map(|ty| (0..k).map(move |tx| (ty, tx))) {
            for (py, px, oy, ox) in (0..2).flat_map(|py| {
                (0..2).flat_map(move |px| (0..n).flat_map(move |oy| (0..n).map(move |ox| (py, px, oy, ox))))
            }) {
                let v = m[oy][py][ty] * m[ox][px][tx];
                if v != 0.0 {
                    out[(ty * k + tx) * 4 * n * n + ((py * 2 + px) * n + oy) * n + ox] = v;
                }
            }
        }
        Tensor::from_vec(out, (k * k, 4 * n * n), device)
    }

    /// The coarse kernel `(4·cout, cin, K, K)` (phases outermost) and bias `(4·cout)` from the fine
    /// kernel `w (cout, cin, k, k)` and bias `b`, in `dtype`; differentiable.
    pub fn coarse_kernel(&self, w: &Tensor, b: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let (cout, cin, k, k2) = w.dims4()?;
        if (k, k2) != (self.k, self.k) {
            candle_core::bail!("upsample_conv: a {k}×{k2} kernel for a plan of {}×{}", self.k, self.k)
        }
        let n = self.axis.size();
        let map = self.kernel_map(w.device())?.to_dtype(w.dtype())?;
        let wc = w
            .reshape((cout * cin, k * k))?
            .matmul(&map)?
            .reshape((cout, cin, 4, n, n))?
            .permute((2, 0, 1, 3, 4))?
            .contiguous()?
            .reshape((4 * cout, cin, n, n))?;
        let bc = Tensor::cat(&[b, b, b, b], 0)?;
        Ok((wc.to_dtype(dtype)?, bc.to_dtype(dtype)?))
    }

    /// Rows (or columns) of coarse input the convolution needs for a fine size `fine`: the
    /// coarse size `c` plus zeros so that its output covers every fine cell.
    fn padded(&self, c: usize, fine: usize) -> usize {
        let (kk, p) = self.coarse();
        let need = fine.div_ceil(2);
        let out = c + 2 * p + 1 - kk;
        c + need.saturating_sub(out)
    }
}

/// `conv2d(up(x), w, b, k / 2)` (then ReLU) for the coarse `x (B, cin, h, w)` that the pooling
/// `sw` made of a `sw.in_hw` map, computed on the coarse map with `plan` (from [`Plan::new`]):
/// `conv(x, pad)` runs the coarse convolution with the kernel [`Plan::coarse_kernel`] made of
/// `w` and `b` (the caller's: a frozen layer keeps it packed).
pub fn upsample_conv_with(
    x: &Tensor,
    plan: &Plan,
    sw: &PoolSwitches,
    conv: impl FnOnce(&Tensor, usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (fh, fw) = sw.in_hw;
    if (fh / 2, fw / 2) != (h, w) {
        candle_core::bail!("upsample_conv: a 2×2 pooling of {fh}×{fw} does not give {h}×{w}")
    }
    let (ph, pw) = (plan.padded(h, fh), plan.padded(w, fw));
    let x = if (ph, pw) != (h, w) { x.pad_with_zeros(2, 0, ph - h)?.pad_with_zeros(3, 0, pw - w)? } else { x.clone() };
    let (_, p) = plan.coarse();
    let y = conv(&x, p)?;
    interleave(&y, (fh, fw))
}

/// [`upsample_conv_with`] with our convolution and the coarse kernel made here: what a training
/// step runs (its weights change every step).
pub fn upsample_conv(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
    up: Upsample,
    sw: &PoolSwitches,
) -> Result<Tensor> {
    let (_, _, k, _) = w.dims4()?;
    let Some(plan) = Plan::new(up, k, sw) else { return upsample_conv_ref(x, w, b, relu, up, sw) };
    let (wc, bc) = plan.coarse_kernel(w, b, x.dtype())?;
    upsample_conv_with(x, &plan, sw, |x, pad| super::conv2d(x, &wc, &bc, pad, relu))
}

/// The unfused twin: the upsampling on the fine grid, then the convolution.
pub fn upsample_conv_ref(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
    up: Upsample,
    sw: &PoolSwitches,
) -> Result<Tensor> {
    let (_, _, k, _) = w.dims4()?;
    let fine = match up {
        Upsample::FixedCell => super::unpool_fixed(x, sw)?,
        Upsample::Spread => super::spread(x, sw.kernel, sw.stride, sw.in_hw)?,
    };
    super::conv2d(&fine, &w.to_dtype(x.dtype())?, &b.to_dtype(x.dtype())?, k / 2, relu)
}

/// The phases of `y (B, 4·C, h, w)` (phase `(py, px)` in channels `(2py + px)·C …`) interleaved
/// into `(B, C, H, W)`: `out[.., c, 2a + py, 2b + px] = y[.., (2py + px)·C + c, a, b]`, for the
/// fine size `(H, W)` (at most `2h × 2w`). Fast on the CPU (f32, bf16), the twin elsewhere.
pub fn interleave(y: &Tensor, fine: (usize, usize)) -> Result<Tensor> {
    let (_, c4, h, w) = y.dims4()?;
    if c4 % 4 != 0 || fine.0 > 2 * h || fine.1 > 2 * w {
        candle_core::bail!("interleave: {:?} cannot make {}×{} phases", y.dims(), fine.0, fine.1)
    }
    if y.device().is_cpu() && matches!(y.dtype(), DType::F32 | DType::BF16) {
        y.contiguous()?.apply_op1(Interleave { fine, phases: (h, w), split: false })
    } else {
        interleave_ref(y, fine)
    }
}

/// [`interleave`] from plain tensor ops.
pub fn interleave_ref(y: &Tensor, fine: (usize, usize)) -> Result<Tensor> {
    let (b, c4, h, w) = y.dims4()?;
    let c = c4 / 4;
    y.reshape((b, 2, 2, c, h, w))?
        .permute((0, 3, 4, 1, 5, 2))?
        .contiguous()?
        .reshape((b, c, 2 * h, 2 * w))?
        .narrow(2, 0, fine.0)?
        .narrow(3, 0, fine.1)
}

/// The interleave (`split: false`: phases of size `phases` → the fine map of size `fine`) and its
/// adjoint (`split: true`: fine map → phases, zeros where a phase cell has no fine cell).
struct Interleave {
    fine: (usize, usize),
    phases: (usize, usize),
    split: bool,
}

impl Interleave {
    /// `(B, 4C, h, w)` of the phases for this op's input dims, checked against the sizes it holds.
    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let (b, c4, hw) = if self.split { (b, 4 * c, self.fine) } else { (b, c, self.phases) };
        if (h, w) != hw {
            candle_core::bail!("{}: input {:?} does not fit {:?} / {:?}", self.name(), l.dims(), self.fine, self.phases)
        }
        Ok((b, c4, self.phases.0, self.phases.1))
    }
}

impl CustomOp1 for Interleave {
    fn name(&self) -> &'static str {
        if self.split {
            "phase-split"
        } else {
            "phase-interleave"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = f32_values(s, l)?;
        let (b, c4, h, w) = self.dims(l)?;
        let (fh, fw) = self.fine;
        let c = c4 / 4;
        let phase_len = h * w;
        let fine_len = fh * fw;
        let (out, shape) = if self.split {
            // src: fine (B, C, H, W) → phases (B, 4C, h, w).
            let mut out = vec![0f32; b * c4 * phase_len];
            out.par_chunks_mut(c4 * phase_len).enumerate().for_each(|(bi, ob)| {
                for p in 0..4 {
                    let (py, px) = (p / 2, p % 2);
                    for ci in 0..c {
                        let plane = &src[(bi * c + ci) * fine_len..][..fine_len];
                        let o = &mut ob[(p * c + ci) * phase_len..][..phase_len];
                        for a in 0..h {
                            let y = 2 * a + py;
                            if y >= fh {
                                continue;
                            }
                            for bb in 0..w {
                                let x = 2 * bb + px;
                                if x < fw {
                                    o[a * w + bb] = plane[y * fw + x];
                                }
                            }
                        }
                    }
                }
            });
            (out, Shape::from((b, c4, h, w)))
        } else {
            // src: phases (B, 4C, h, w) → fine (B, C, H, W).
            let mut out = vec![0f32; b * c * fine_len];
            out.par_chunks_mut(fine_len).enumerate().for_each(|(i, o)| {
                let (bi, ci) = (i / c, i % c);
                for y in 0..fh {
                    let (a, py) = (y / 2, y % 2);
                    for x in 0..fw {
                        let p = py * 2 + x % 2;
                        o[y * fw + x] = src[((bi * c4 + p * c + ci) * h + a) * w + x / 2];
                    }
                }
            });
            (out, Shape::from((b, c, fh, fw)))
        };
        Ok((storage_as(s.dtype(), out), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let adjoint = Interleave { fine: self.fine, phases: self.phases, split: !self.split };
        Ok(Some(grad.contiguous()?.apply_op1(adjoint)?))
    }
}
