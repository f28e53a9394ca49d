//! The reconstruction loss, mean squared error, as one op with its gradient: one pass forward and
//! one backward (on CUDA one kernel each), where the same formula from tensor ops costs about
//! twenty small kernels plus candle's gradient bookkeeping for each intermediate.

use super::{contiguous_slice, f32_values, fast_path, storage_as};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `scale² · mean((y − x)²)` as an f32 scalar, for a reconstruction `y` (f32 or bf16; its gradient
/// comes back in its dtype) and the f32 target `x` of the same shape. Fast on the CPU and on CUDA;
/// elsewhere the twin.
pub fn mse_loss(y: &Tensor, x: &Tensor, scale: f64) -> Result<Tensor> {
    if y.dims() != x.dims() {
        candle_core::bail!("mse loss: reconstruction {:?} and target {:?} differ in shape", y.dims(), x.dims())
    }
    let fast = fast_path(y)
        && matches!(y.dtype(), DType::F32 | DType::BF16)
        && x.dtype() == DType::F32
        && y.device().same_device(x.device());
    if !fast || y.elem_count() == 0 {
        return mse_loss_ref(y, x, scale);
    }
    y.contiguous()?.apply_op2(&x.contiguous()?, MseLoss { scale2: scale * scale })
}

/// The twin: the same formula from tensor ops, in f32.
pub fn mse_loss_ref(y: &Tensor, x: &Tensor, scale: f64) -> Result<Tensor> {
    y.to_dtype(DType::F32)?.sub(x)?.affine(scale, 0.)?.sqr()?.mean_all()
}

struct MseLoss {
    scale2: f64,
}

impl CustomOp2 for MseLoss {
    fn name(&self) -> &'static str {
        "mse-loss"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, x) = (f32_values(s1, l1)?, contiguous_slice::<f32>(s2, l2)?);
        // Partial sums in f64 over chunks, so the result does not depend on the thread count.
        let sum: f64 = y
            .par_chunks(4096)
            .zip(x.par_chunks(4096))
            .map(|(a, b)| a.iter().zip(b).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>())
            .sum();
        Ok((CpuStorage::F32(vec![(self.scale2 * sum / y.len() as f64) as f32]), Shape::from(())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::mse_loss(s1, l1, s2, l2, (self.scale2 / l1.shape().elem_count() as f64) as f32)
    }

    fn bwd(&self, y: &Tensor, x: &Tensor, _loss: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Only the reconstruction is learnt; the target needs no gradient.
        let factor = 2.0 * self.scale2 / y.elem_count() as f64;
        Ok((Some(y.apply_op3_no_bwd(x, &grad.to_dtype(DType::F32)?.contiguous()?, &MseGrad { factor })?), None))
    }
}

/// `dY = g · factor · (y − x)` for the loss gradient `g` (a scalar on the device, read there).
struct MseGrad {
    factor: f64,
}

impl CustomOp3 for MseGrad {
    fn name(&self) -> &'static str {
        "mse-loss-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, x, g) = (f32_values(s1, l1)?, contiguous_slice::<f32>(s2, l2)?, contiguous_slice::<f32>(s3, l3)?);
        let k = g.first().copied().unwrap_or(0.0) * self.factor as f32;
        let dy: Vec<f32> = y.par_iter().zip(x.par_iter()).map(|(a, b)| k * (a - b)).collect();
        Ok((storage_as(s1.dtype(), dy), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::mse_grad(s1, l1, s2, l2, s3, l3, self.factor as f32)
    }
}
