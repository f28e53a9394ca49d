//! Pooling with switches, the two unpooling flavours (SAE: fixed switch, SWWAE: recorded
//! switches), spreading over pooling windows (the up-convolutional decoder's upsampling), and a
//! fast CPU convolution.
//!
//! Every fast op has a slow twin built from plain tensor ops (`*_ref`), and the tests compare them.
//! The fast versions run on CPU for f32/f64/bf16 and, in CUDA builds, on CUDA for f32/bf16 (own
//! kernels for pooling and unpooling, cuDNN for the convolution with the `cudnn` feature); on other
//! devices and dtypes the public functions use the twin, which runs anywhere candle does.

mod conv;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(feature = "cudnn")]
mod cudnn;
mod loss;
mod pool;
mod spread;
mod unpool;
mod upsample_conv;

pub use conv::{candle_conv2d, conv2d, conv2d_packed, conv2d_ref, conv2d_with, ConvAlgo, PackedKernel, PACKED_BUDGET};
pub use loss::{mse_loss, mse_loss_ref};

pub use pool::{max_pool_with_switches, max_pool_with_switches_ref, PoolSwitches};
pub use spread::{spread, spread_ref};
pub use unpool::{unpool, unpool_fixed, unpool_fixed_ref, unpool_ref};
pub use upsample_conv::{
    interleave, interleave_ref, upsample_conv, upsample_conv_ref, upsample_conv_with, Plan as UpsamplePlan, Upsample,
};

use candle_core::{CpuStorage, DType, Layout, Tensor};

/// True when the fast kernels (CPU, or CUDA in a CUDA build) can take this tensor.
fn fast_path(t: &Tensor) -> bool {
    match t.device() {
        candle_core::Device::Cpu => matches!(t.dtype(), DType::F32 | DType::F64 | DType::BF16),
        candle_core::Device::Cuda(_) => cfg!(feature = "cuda") && matches!(t.dtype(), DType::F32 | DType::BF16),
        _ => false,
    }
}

/// The contiguous slice behind a CPU storage, or an error for strided input.
pub(crate) fn contiguous_slice<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("layerinv op: input must be contiguous"),
    }
}

/// The values of a contiguous f32 or bf16 CPU storage as f32: borrowed, or converted from bf16
/// (the CPU kernels compute in f32 either way).
pub(crate) fn f32_values<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<std::borrow::Cow<'a, [f32]>> {
    match s {
        CpuStorage::BF16(_) => {
            Ok(std::borrow::Cow::Owned(contiguous_slice::<half::bf16>(s, l)?.iter().map(|v| v.to_f32()).collect()))
        }
        _ => Ok(std::borrow::Cow::Borrowed(contiguous_slice::<f32>(s, l)?)),
    }
}

/// A kernel's f32 result as a storage of the inputs' dtype (rounded for bf16).
pub(crate) fn storage_as(dtype: DType, v: Vec<f32>) -> CpuStorage {
    match dtype {
        DType::BF16 => CpuStorage::BF16(v.into_iter().map(half::bf16::from_f32).collect()),
        _ => CpuStorage::F32(v),
    }
}
