//! Spreading: each pooled value to every cell of its pooling window, where windows overlap the
//! mean of the values that land on a cell, zero on cells no window covers. For 2×2 stride-2
//! pooling it is nearest-neighbour upsampling by 2. The up-convolutional decoder follows it with
//! a learned convolution: a learned upsampling that reads no pooling switches.
//!
//! Rows and columns spread independently, so `out = A_h · x · A_wᵀ` per plane, with `A[y][i]` =
//! 1 / (how many windows cover `y`) where window `i` covers `y`: the twin [`spread_ref`] computes
//! just that with matrix products; the fast CPU kernel walks the windows.

use super::{f32_values, storage_as};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The windows of a pooling of `n_out` cells with window `k` and stride `s` along one axis of
/// `n_in` cells: per input cell, the first output cell its window covers; per input cell `y`,
/// the weight of each value that lands on it (1 / how many windows cover it; 0 when none do).
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    k: usize,
    s: usize,
    /// Pooled cells (windows).
    pooled: usize,
    /// Per cell of the pooling input.
    weight: Vec<f32>,
}

impl Axis {
    fn new(n_pooled: usize, n_in: usize, k: usize, s: usize) -> Self {
        let mut count = vec![0u32; n_in];
        for i in 0..n_pooled {
            for c in count.iter_mut().skip(i * s).take(k) {
                *c += 1;
            }
        }
        Self {
            k,
            s,
            pooled: n_pooled,
            weight: count.into_iter().map(|c| if c == 0 { 0.0 } else { 1.0 / c as f32 }).collect(),
        }
    }

    /// The cells window `i` covers, each with its weight.
    fn window(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        (i * self.s..(i * self.s + self.k).min(self.weight.len())).map(|y| (y, self.weight[y]))
    }

    /// The dense `(n_in, n_pooled)` matrix of [`spread_ref`].
    fn matrix(&self) -> Vec<f32> {
        let n = self.pooled;
        let mut m = vec![0f32; self.weight.len() * n];
        for i in 0..n {
            for (y, w) in self.window(i) {
                m[y * n + i] = w;
            }
        }
        m
    }
}

/// `x`'s `(h, w)`, when it is what a `k × k` stride-`s` pooling makes of `out_hw`.
fn check(x: &Tensor, k: usize, s: usize, out_hw: (usize, usize)) -> Result<(usize, usize)> {
    let (_, _, h, w) = x.dims4()?;
    let pooled = |n: usize| if k == 0 || s == 0 || n < k { 0 } else { (n - k) / s + 1 };
    if h == 0 || w == 0 || (pooled(out_hw.0), pooled(out_hw.1)) != (h, w) {
        candle_core::bail!("spread: a {k}×{k} stride-{s} pooling of {}×{} does not give {h}×{w}", out_hw.0, out_hw.1)
    }
    Ok((h, w))
}

/// Spread `x` `(B, C, h, w)` over the windows of a `k × k` stride-`s` pooling whose input was
/// `out_hw`, giving `(B, C, H, W)`. Differentiable w.r.t. `x`. The CPU (f32, bf16) has a kernel;
/// elsewhere the twin runs.
pub fn spread(x: &Tensor, k: usize, s: usize, out_hw: (usize, usize)) -> Result<Tensor> {
    let (h, w) = check(x, k, s, out_hw)?;
    if !x.device().is_cpu() || !matches!(x.dtype(), DType::F32 | DType::BF16) {
        return spread_ref(x, k, s, out_hw);
    }
    let op = Spread { rows: Axis::new(h, out_hw.0, k, s), cols: Axis::new(w, out_hw.1, k, s), grad: false };
    x.contiguous()?.apply_op1(op)
}

/// The slow twin of [`spread`]: `A_h · x · A_wᵀ` with candle's matrix products (any device,
/// differentiable by candle).
pub fn spread_ref(x: &Tensor, k: usize, s: usize, out_hw: (usize, usize)) -> Result<Tensor> {
    let (h, w) = check(x, k, s, out_hw)?;
    let dev = x.device();
    let rows = Tensor::from_vec(Axis::new(h, out_hw.0, k, s).matrix(), (out_hw.0, h), dev)?.to_dtype(x.dtype())?;
    let cols = Tensor::from_vec(Axis::new(w, out_hw.1, k, s).matrix(), (out_hw.1, w), dev)?.to_dtype(x.dtype())?;
    rows.broadcast_matmul(&x.contiguous()?.broadcast_matmul(&cols.t()?)?)
}

/// The CPU kernel (`grad`: false) and its gradient (`grad`: true: the input is the spread map's
/// gradient, the output the gradient of the pooled values, `Aᵀ · g · B`).
#[derive(Clone)]
struct Spread {
    rows: Axis,
    cols: Axis,
    grad: bool,
}

impl Spread {
    fn forward(&self, x: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (hh, ww) = (self.rows.weight.len(), self.cols.weight.len());
        let mut out = vec![0f32; x.len() / (h * w) * hh * ww];
        out.par_chunks_exact_mut(hh * ww).zip(x.par_chunks_exact(h * w)).for_each(|(dst, src)| {
            for i in 0..h {
                for (y, wy) in self.rows.window(i) {
                    let row = &mut dst[y * ww..(y + 1) * ww];
                    for j in 0..w {
                        let v = src[i * w + j] * wy;
                        for (x, wx) in self.cols.window(j) {
                            row[x] += v * wx;
                        }
                    }
                }
            }
        });
        out
    }

    fn backward(&self, g: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (hh, ww) = (self.rows.weight.len(), self.cols.weight.len());
        let mut out = vec![0f32; g.len() / (hh * ww) * h * w];
        out.par_chunks_exact_mut(h * w).zip(g.par_chunks_exact(hh * ww)).for_each(|(dst, src)| {
            for i in 0..h {
                for j in 0..w {
                    let mut sum = 0f32;
                    for (y, wy) in self.rows.window(i) {
                        for (x, wx) in self.cols.window(j) {
                            sum += src[y * ww + x] * wy * wx;
                        }
                    }
                    dst[i * w + j] = sum;
                }
            }
        });
        out
    }
}

impl CustomOp1 for Spread {
    fn name(&self) -> &'static str {
        if self.grad {
            "spread-grad"
        } else {
            "spread"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let v = f32_values(s, l)?;
        let (big, small) = ((self.rows.weight.len(), self.cols.weight.len()), (self.rows.pooled, self.cols.pooled));
        let (out, (oh, ow)) = if self.grad {
            if (h, w) != big {
                candle_core::bail!("spread-grad: gradient {h}×{w}, expected {}×{}", big.0, big.1)
            }
            (self.backward(&v, small.0, small.1), small)
        } else {
            (self.forward(&v, h, w), big)
        };
        Ok((storage_as(s.dtype(), out), Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if self.grad {
            candle_core::bail!("spread-grad has no gradient of its own")
        }
        let g = grad.contiguous()?.apply_op1_no_bwd(&Spread { grad: true, ..self.clone() })?;
        Ok(Some(g))
    }
}
