//! Max-pooling that records where each maximum came from (its "switch").

use super::{contiguous_slice, fast_path};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, WithDType, D};
use rayon::prelude::*;

/// Where each pooled value came from: for every output cell, the flat index `y * in_w + x` of its
/// source inside its own `in_h × in_w` plane (PyTorch's `max_pool2d(return_indices=True)` layout).
#[derive(Debug, Clone)]
pub struct PoolSwitches {
    /// u32, shape `(B, C, out_h, out_w)`.
    pub indices: Tensor,
    /// The spatial size of the pooling input (= the unpooling output).
    pub in_hw: (usize, usize),
    pub kernel: usize,
    pub stride: usize,
}

impl PoolSwitches {
    /// The SAE switches: every window's value goes to the fixed cell at offset ⌊k/2⌋ in each
    /// dimension, whatever the image. Same shape as recorded switches of `like`.
    pub fn fixed(like: &PoolSwitches) -> Result<Self> {
        let (b, c, oh, ow) = like.indices.dims4()?;
        let (k, s, w) = (like.kernel, like.stride, like.in_hw.1);
        let off = k / 2;
        let plane: Vec<u32> =
            (0..oh).flat_map(|y| (0..ow).map(move |x| ((y * s + off) * w + x * s + off) as u32)).collect();
        let indices = Tensor::from_vec(plane, (1, 1, oh, ow), like.indices.device())?
            .broadcast_as((b, c, oh, ow))?
            .contiguous()?;
        Ok(Self { indices, ..like.clone() })
    }

    /// Several windows can select the same input cell only when they overlap.
    pub fn overlapping(&self) -> bool {
        self.kernel > self.stride
    }
}

fn out_size(n: usize, k: usize, s: usize) -> Result<usize> {
    if n < k || k == 0 || s == 0 {
        candle_core::bail!("cannot max-pool a size-{n} input with a {k}×{k} stride-{s} window")
    }
    Ok((n - k) / s + 1)
}

/// Max-pool `x` `(B, C, H, W)` with a `k × k` window and stride `s` (floor mode, no padding) and
/// return the pooled values and the switches. On ties the first maximum in row-major window order
/// wins, as in PyTorch.
pub fn max_pool_with_switches(x: &Tensor, k: usize, s: usize) -> Result<(Tensor, PoolSwitches)> {
    if !fast_path(x) {
        return max_pool_with_switches_ref(x, k, s);
    }
    let (b, c, h, w) = x.dims4()?;
    let x = x.contiguous()?;
    let indices = x.apply_op1_no_bwd(&ArgmaxPool { k, s })?;
    let (oh, ow) = (out_size(h, k, s)?, out_size(w, k, s)?);
    let values = gather_plane(&x, &indices)?;
    debug_assert_eq!(values.dims4()?, (b, c, oh, ow));
    Ok((values, PoolSwitches { indices, in_hw: (h, w), kernel: k, stride: s }))
}

/// `x[b, c, idx[b, c, i, j]]` with `idx` indexing each flattened plane of `x`.
fn gather_plane(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let (b, c, oh, ow) = idx.dims4()?;
    x.flatten_from(2)?.gather(&idx.flatten_from(2)?, D::Minus1)?.reshape((b, c, oh, ow))
}

/// The slow twin: every window offset as a strided view (via `index_select`), compared in order.
pub fn max_pool_with_switches_ref(x: &Tensor, k: usize, s: usize) -> Result<(Tensor, PoolSwitches)> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (out_size(h, k, s)?, out_size(w, k, s)?);
    let dev = x.device();
    let rows = |dy: usize| arange_u32(dy, s, oh, dev);
    let cols = |dx: usize| arange_u32(dx, s, ow, dev);
    let mut best: Option<(Tensor, Tensor)> = None;
    for dy in 0..k {
        for dx in 0..k {
            let cand = x.index_select(&rows(dy)?, 2)?.index_select(&cols(dx)?, 3)?;
            let ys = rows(dy)?.to_dtype(DType::F64)?.reshape((oh, 1))?;
            let xs = cols(dx)?.to_dtype(DType::F64)?.reshape((1, ow))?;
            let flat = ys.affine(w as f64, 0.)?.broadcast_add(&xs)?.to_dtype(DType::U32)?;
            let flat = flat.broadcast_as((b, c, oh, ow))?.contiguous()?;
            best = Some(match best {
                None => (cand, flat),
                Some((v, i)) => {
                    let better = cand.gt(&v)?;
                    (better.where_cond(&cand, &v)?, better.where_cond(&flat, &i)?)
                }
            });
        }
    }
    let Some((values, indices)) = best else { candle_core::bail!("empty pooling window") };
    Ok((values, PoolSwitches { indices, in_hw: (h, w), kernel: k, stride: s }))
}

fn arange_u32(start: usize, step: usize, n: usize, dev: &Device) -> Result<Tensor> {
    let v: Vec<u32> = (0..n).map(|i| (start + i * step) as u32).collect();
    Tensor::from_vec(v, n, dev)
}

/// Fast CPU kernel: the argmax switch of every pooling window.
struct ArgmaxPool {
    k: usize,
    s: usize,
}

impl ArgmaxPool {
    fn run<T: WithDType + PartialOrd + Sync>(
        &self,
        x: &[T],
        shape: (usize, usize, usize, usize),
    ) -> Result<(Vec<u32>, Shape)> {
        let (b, c, h, w) = shape;
        let (k, s) = (self.k, self.s);
        let (oh, ow) = (out_size(h, k, s)?, out_size(w, k, s)?);
        let mut out = vec![0u32; b * c * oh * ow];
        out.par_chunks_exact_mut(oh * ow).zip(x.par_chunks_exact(h * w)).for_each(|(dst, plane)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, x0) = (oy * s, ox * s);
                    let mut best_i = y0 * w + x0;
                    let mut best = plane[best_i];
                    for yy in y0..y0 + k {
                        for xx in x0..x0 + k {
                            let i = yy * w + xx;
                            if plane[i] > best {
                                best = plane[i];
                                best_i = i;
                            }
                        }
                    }
                    dst[oy * ow + ox] = best_i as u32;
                }
            }
        });
        Ok((out, Shape::from((b, c, oh, ow))))
    }
}

impl CustomOp1 for ArgmaxPool {
    fn name(&self) -> &'static str {
        "argmax-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = l.shape().dims4()?;
        let (v, shape) = match s {
            CpuStorage::F32(_) => self.run(contiguous_slice::<f32>(s, l)?, shape)?,
            CpuStorage::F64(_) => self.run(contiguous_slice::<f64>(s, l)?, shape)?,
            CpuStorage::BF16(_) => self.run(contiguous_slice::<half::bf16>(s, l)?, shape)?,
            _ => candle_core::bail!("argmax-pool: unsupported dtype {:?}", s.dtype()),
        };
        Ok((CpuStorage::U32(v), shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        let (_, _, h, w) = l.shape().dims4()?;
        super::cuda::argmax_pool(s, l, self.k, self.s, (out_size(h, self.k, self.s)?, out_size(w, self.k, self.s)?))
    }
}
