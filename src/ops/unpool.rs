//! Unpooling: put each pooled value back at its switch position in a zero map of the pre-pooling
//! size. Where overlapping windows send several values to one cell, the cell gets their average
//! (as the official code, which divides by the count).

use super::{contiguous_slice, fast_path, PoolSwitches};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Unpool `x` `(B, C, h, w)` with switches of the same shape into `(B, C, H, W)`. SWWAE passes the
/// switches the encoder recorded; SAE passes [`PoolSwitches::fixed`]. Differentiable w.r.t. `x`.
pub fn unpool(x: &Tensor, sw: &PoolSwitches) -> Result<Tensor> {
    check_shapes(x, sw)?;
    // The CUDA kernel stores without averaging: overlapping windows (AlexNet) take the twin there,
    // which averages in f64 as the CPU kernel does.
    if !fast_path(x) || (!x.device().is_cpu() && sw.overlapping()) {
        return unpool_ref(x, sw);
    }
    let op = Unpool { in_hw: sw.in_hw, average: sw.overlapping() };
    x.contiguous()?.apply_op2(&sw.indices.contiguous()?, op)
}

/// SAE unpooling: every value to the fixed cell of its window ([`PoolSwitches::fixed`]) of the
/// pooling that recorded `like`. On CUDA (f32, non-overlapping windows) a kernel computes the cell
/// itself, with no switch tensor to build and upload; elsewhere [`unpool`] with the fixed switches.
pub fn unpool_fixed(x: &Tensor, like: &PoolSwitches) -> Result<Tensor> {
    check_shapes(x, like)?;
    if x.device().is_cuda() && fast_path(x) && !like.overlapping() {
        return x.contiguous()?.apply_op1(UnpoolFixed {
            k: like.kernel,
            s: like.stride,
            in_hw: like.in_hw,
            grad: false,
        });
    }
    unpool(x, &PoolSwitches::fixed(like)?)
}

/// [`unpool_fixed`]'s CUDA kernel (`grad`: false) and its gradient (`grad`: true, the input
/// being the unpooled map's gradient and `in_hw` its size).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
struct UnpoolFixed {
    k: usize,
    s: usize,
    in_hw: (usize, usize),
    grad: bool,
}

impl CustomOp1 for UnpoolFixed {
    fn name(&self) -> &'static str {
        "unpool-fixed"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("unpool-fixed runs on CUDA only (the CPU uses unpool with fixed switches)")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::unpool_fixed(s, l, self.k, self.s, self.in_hw, self.grad)
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&UnpoolFixed { grad: true, ..*self })?))
    }
}

fn check_shapes(x: &Tensor, sw: &PoolSwitches) -> Result<()> {
    if x.dims() != sw.indices.dims() {
        candle_core::bail!("unpool: input {:?} does not match switches {:?}", x.dims(), sw.indices.dims())
    }
    Ok(())
}

/// The slow twin of [`unpool`]: `index_add` into the flattened maps, divided by the count.
/// (`index_add` rather than `scatter_add`, whose backward in candle 0.11 fails on these shapes.)
/// With overlapping windows the sums and the division are in f64, rounded once, as the CPU kernel
/// does: a cell that three windows' maxima share then keeps its value exactly (3v/3 in f32 can be
/// an ulp off). CUDA runs this twin for overlapping windows, so its round trip must be exact too.
pub fn unpool_ref(x: &Tensor, sw: &PoolSwitches) -> Result<Tensor> {
    check_shapes(x, sw)?;
    if sw.overlapping() && x.dtype() != DType::F64 {
        return unpool_ref(&x.to_dtype(DType::F64)?, sw)?.to_dtype(x.dtype());
    }
    let (b, c, oh, ow) = x.dims4()?;
    let (h, w) = sw.in_hw;
    let dev = x.device();
    // Global flat index of each switch: plane * (h * w) + index within the plane.
    let planes = Tensor::arange(0u32, (b * c) as u32, dev)?.affine((h * w) as f64, 0.)?.reshape((b, c, 1))?;
    let idx = sw.indices.flatten_from(2)?.broadcast_add(&planes)?.flatten_all()?;
    let zeros = Tensor::zeros(b * c * h * w, x.dtype(), dev)?;
    let mut out = zeros.index_add(&idx, &x.flatten_all()?, 0)?;
    if sw.overlapping() {
        let ones = Tensor::ones(b * c * oh * ow, x.dtype(), dev)?;
        let count = zeros.index_add(&idx, &ones, 0)?.maximum(1.0)?;
        out = out.div(&count)?;
    }
    out.reshape((b, c, h, w))
}

/// An independent twin of SAE unpooling, built by zero-interleaving: each value lands at offset
/// ⌊k/2⌋ of its stride cell, then the map is zero-padded to `in_hw`. Valid when ⌊k/2⌋ < s.
pub fn unpool_fixed_ref(x: &Tensor, kernel: usize, stride: usize, in_hw: (usize, usize)) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let off = kernel / 2;
    if off >= stride || h * stride > in_hw.0 + stride || w * stride > in_hw.1 + stride {
        candle_core::bail!("unpool_fixed_ref: unsupported geometry k={kernel} s={stride}")
    }
    let y = x
        .reshape((b, c, h, 1, w, 1))?
        .pad_with_zeros(3, off, stride - 1 - off)?
        .pad_with_zeros(5, off, stride - 1 - off)?
        .reshape((b, c, h * stride, w * stride))?;
    let fit = |t: Tensor, dim: usize, have: usize, want: usize| -> Result<Tensor> {
        if have < want {
            t.pad_with_zeros(dim, 0, want - have)
        } else {
            t.narrow(dim, 0, want)
        }
    };
    let y = fit(y, 2, h * stride, in_hw.0)?;
    fit(y, 3, w * stride, in_hw.1)
}

/// Fast CPU unpooling; backward is [`UnpoolGrad`].
struct Unpool {
    in_hw: (usize, usize),
    average: bool,
}

/// For each input cell, how many switches point at it (only needed with overlapping windows).
fn counts(idx: &[u32], plane: usize) -> Vec<u32> {
    let mut n = vec![0u32; plane];
    for &i in idx {
        n[i as usize] += 1;
    }
    n
}

fn check_index(i: u32, plane: usize) -> Result<usize> {
    let i = i as usize;
    if i >= plane {
        candle_core::bail!("unpool: switch {i} outside a plane of {plane} cells")
    }
    Ok(i)
}

fn unpool_fwd<T: WithDType>(x: &[T], idx: &[u32], pooled: usize, plane: usize, average: bool) -> Result<Vec<T>> {
    let mut out = vec![T::zero(); x.len() / pooled * plane];
    let planes = x.par_chunks_exact(pooled).zip(idx.par_chunks_exact(pooled)).zip(out.par_chunks_exact_mut(plane));
    planes.try_for_each(|((src, sw), dst)| {
        if average {
            // Summed in f64 and rounded once, so bf16 gets f32's average to its own rounding.
            let mut sum = vec![0f64; plane];
            for (&v, &i) in src.iter().zip(sw) {
                sum[check_index(i, plane)?] += v.to_f64();
            }
            for ((d, s), n) in dst.iter_mut().zip(sum).zip(counts(sw, plane)) {
                *d = T::from_f64(s / n.max(1) as f64);
            }
        } else {
            for (&v, &i) in src.iter().zip(sw) {
                dst[check_index(i, plane)?] += v;
            }
        }
        Ok::<(), candle_core::Error>(())
    })?;
    Ok(out)
}

fn unpool_bwd<T: WithDType>(g: &[T], idx: &[u32], pooled: usize, plane: usize, average: bool) -> Result<Vec<T>> {
    let mut out = vec![T::zero(); idx.len()];
    let planes = g.par_chunks_exact(plane).zip(idx.par_chunks_exact(pooled)).zip(out.par_chunks_exact_mut(pooled));
    planes.try_for_each(|((gp, sw), dst)| {
        let n = if average { counts(sw, plane) } else { Vec::new() };
        for (d, &i) in dst.iter_mut().zip(sw) {
            let i = check_index(i, plane)?;
            *d = if average { gp[i] / T::from_f64(n[i] as f64) } else { gp[i] };
        }
        Ok::<(), candle_core::Error>(())
    })?;
    Ok(out)
}

impl CustomOp2 for Unpool {
    fn name(&self) -> &'static str {
        "unpool"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, oh, ow) = l1.shape().dims4()?;
        let (h, w) = self.in_hw;
        let idx = contiguous_slice::<u32>(s2, l2)?;
        let out = match s1 {
            CpuStorage::F32(_) => {
                CpuStorage::F32(unpool_fwd(contiguous_slice(s1, l1)?, idx, oh * ow, h * w, self.average)?)
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(unpool_fwd(contiguous_slice(s1, l1)?, idx, oh * ow, h * w, self.average)?)
            }
            CpuStorage::BF16(_) => {
                CpuStorage::BF16(unpool_fwd(contiguous_slice(s1, l1)?, idx, oh * ow, h * w, self.average)?)
            }
            _ => candle_core::bail!("unpool: unsupported dtype {:?}", s1.dtype()),
        };
        Ok((out, Shape::from((b, c, h, w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if self.average {
            candle_core::bail!("unpool: overlapping windows are not supported on CUDA (use unpool_ref)")
        }
        let (_, _, oh, ow) = l1.shape().dims4()?;
        super::cuda::unpool(s1, l1, s2, l2, (oh, ow), self.in_hw, false)
    }

    fn bwd(&self, _x: &Tensor, idx: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = UnpoolGrad { pooled_hw: idx.dims4().map(|(_, _, h, w)| (h, w))?, average: self.average };
        let gx = grad.contiguous()?.apply_op2_no_bwd(idx, &op)?;
        Ok((Some(gx), None))
    }
}

/// Gradient of [`Unpool`] w.r.t. its input: gather the output gradient at the switches.
struct UnpoolGrad {
    pooled_hw: (usize, usize),
    average: bool,
}

impl CustomOp2 for UnpoolGrad {
    fn name(&self) -> &'static str {
        "unpool-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let (oh, ow) = self.pooled_hw;
        let idx = contiguous_slice::<u32>(s2, l2)?;
        let out = match s1 {
            CpuStorage::F32(_) => {
                CpuStorage::F32(unpool_bwd(contiguous_slice(s1, l1)?, idx, oh * ow, h * w, self.average)?)
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(unpool_bwd(contiguous_slice(s1, l1)?, idx, oh * ow, h * w, self.average)?)
            }
            CpuStorage::BF16(_) => {
                CpuStorage::BF16(unpool_bwd(contiguous_slice(s1, l1)?, idx, oh * ow, h * w, self.average)?)
            }
            _ => candle_core::bail!("unpool-grad: unsupported dtype {:?}", s1.dtype()),
        };
        Ok((out, Shape::from((b, c, oh, ow))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if self.average {
            candle_core::bail!("unpool-grad: overlapping windows are not supported on CUDA")
        }
        let (_, _, h, w) = l1.shape().dims4()?;
        super::cuda::unpool(s1, l1, s2, l2, self.pooled_hw, (h, w), true)
    }
}
