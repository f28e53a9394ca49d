//! cuDNN convolution for f32 and bf16 tensors on CUDA (bf16 data, f32 arithmetic): the forward pass (called from the `Conv` op in
//! `conv.rs`, which adds bias and ReLU in one more kernel), and the input and weight gradients as
//! candle custom ops, so a decoder's whole backward pass runs in cuDNN (candle's own CUDA backward
//! goes through a naive transposed-convolution kernel).
//!
//! As PyTorch with `cudnn.benchmark = True`: the first call of each geometry times every cuDNN
//! algorithm for it (`cudnnFind*`) and keeps the fastest; tensor-core math is allowed, so f32
//! convolutions use TF32 on Ampere and later (set `NVIDIA_TF32_OVERRIDE=0` to forbid it, as the
//! CUDA tests do to compare exactly). Descriptors and choices are kept per thread, since cuDNN
//! handles must not be shared between threads.

#[macro_use]
mod plan;

use super::cuda::{by_dtype, Elem};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DevicePtrMut};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};
use plan::{choose, ck, launch, ptr, scale, view, Geom, Plan, ONE, ZERO};

/// `(dX, dW)` of `conv2d(x, w)` (stride 1, zero padding `pad`) for the output gradient `dy`; dX only
/// when `need_dx`.
pub fn backward(x: &Tensor, w: &Tensor, dy: &Tensor, pad: usize, need_dx: bool) -> Result<(Option<Tensor>, Tensor)> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, k, _) = w.dims4()?;
    let dy = dy.contiguous()?;
    let dx = if need_dx {
        Some(dy.apply_op2_no_bwd(&w.contiguous()?, &ConvBackwardData { pad, hw: (h, wd) })?)
    } else {
        None
    };
    let dw = x.contiguous()?.apply_op2_no_bwd(&dy, &ConvBackwardFilter { pad, k })?;
    Ok((dx, dw))
}

/// `conv2d(x, w)` (stride 1, zero padding `pad`, no bias) on contiguous storages of one dtype:
/// the output and its shape `(N, Cout, H', W')`.
pub fn forward(
    xs: &CudaStorage,
    xl: &Layout,
    ws: &CudaStorage,
    wl: &Layout,
    pad: usize,
) -> Result<(CudaStorage, Shape)> {
    by_dtype!(xs.dtype(), forward_t(xs, xl, ws, wl, pad))
}

fn forward_t<T: Elem>(
    xs: &CudaStorage,
    xl: &Layout,
    ws: &CudaStorage,
    wl: &Layout,
    pad: usize,
) -> Result<(CudaStorage, Shape)> {
    let (n, cin, h, w) = xl.shape().dims4()?;
    let (cout, _, k, _) = wl.shape().dims4()?;
    let g = Geom { n, cin, h, w, cout, k, pad, dtype: xs.dtype() };
    let dev = xs.device().clone();
    let stream = dev.cuda_stream();
    let (x, wt) = (view::<T>(xs, xl, g.x_len(), "input")?, view::<T>(ws, wl, g.w_len(), "kernel")?);
    // SAFETY: fully written (beta = 0) by the convolution below.
    let mut y = unsafe { dev.alloc::<T>(g.y_len())? };
    {
        let ((xp, _g1), (wp, _g2), (yp, _g3)) =
            (x.device_ptr(&stream), wt.device_ptr(&stream), y.device_ptr_mut(&stream));
        let pick = |handle, p: &mut Plan| match p.fwd {
            Some(c) => Ok(c),
            None => {
                let c = choose(
                    "forward",
                    &g,
                    p.conv,
                    || {
                        Ok(find!(sys::cudnnConvolutionFwdAlgoPerf_t, 8, |res, got| {
                            sys::cudnnFindConvolutionForwardAlgorithm(
                                handle,
                                p.x,
                                p.w,
                                p.conv,
                                p.y,
                                8,
                                &mut got,
                                res.as_mut_ptr(),
                            )
                        }))
                    },
                    || {
                        Ok(find!(sys::cudnnConvolutionFwdAlgoPerf_t, 8, |res, got| {
                            sys::cudnnGetConvolutionForwardAlgorithm_v7(
                                handle,
                                p.x,
                                p.w,
                                p.conv,
                                p.y,
                                8,
                                &mut got,
                                res.as_mut_ptr(),
                            )
                        }))
                    },
                )?;
                Ok(*p.fwd.insert(c))
            }
        };
        // SAFETY: x, w and y are live device buffers of this geometry's sizes on dev's stream (x and w
        // read through guards above, y allocated for y_len); y is written only, and aliases neither.
        unsafe {
            launch(&dev, g, pick, |handle, p, algo, sp, sn| {
                sys::cudnnConvolutionForward(
                    handle,
                    scale(&ONE),
                    p.x,
                    ptr(xp),
                    p.w,
                    ptr(wp),
                    p.conv,
                    algo,
                    sp,
                    sn,
                    scale(&ZERO),
                    p.y,
                    ptr(yp),
                )
            })?;
        }
    }
    let (oh, ow) = g.out_hw();
    Ok((CudaStorage::wrap_cuda_slice(y, dev), Shape::from((n, cout, oh, ow))))
}

/// `dX` from `(dY, W)`.
struct ConvBackwardData {
    pad: usize,
    hw: (usize, usize),
}

impl CustomOp2 for ConvBackwardData {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-data-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("cudnn-conv2d-data-grad runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, dys: &CudaStorage, dyl: &Layout, ws: &CudaStorage, wl: &Layout) -> Result<(CudaStorage, Shape)> {
        by_dtype!(dys.dtype(), backward_data(self, dys, dyl, ws, wl))
    }
}

fn backward_data<T: Elem>(
    op: &ConvBackwardData,
    dys: &CudaStorage,
    dyl: &Layout,
    ws: &CudaStorage,
    wl: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (n, cout, _, _) = dyl.shape().dims4()?;
    let (_, cin, k, _) = wl.shape().dims4()?;
    let g = Geom { n, cin, h: op.hw.0, w: op.hw.1, cout, k, pad: op.pad, dtype: dys.dtype() };
    let dev = dys.device().clone();
    let stream = dev.cuda_stream();
    let (dy, wt) = (view::<T>(dys, dyl, g.y_len(), "output gradient")?, view::<T>(ws, wl, g.w_len(), "kernel")?);
    // SAFETY: fully written (beta = 0) by the call below.
    let mut dx = unsafe { dev.alloc::<T>(g.x_len())? };
    {
        let ((dyp, _g1), (wp, _g2), (dxp, _g3)) =
            (dy.device_ptr(&stream), wt.device_ptr(&stream), dx.device_ptr_mut(&stream));
        let pick = |handle, p: &mut Plan| match p.bwd_data {
            Some(c) => Ok(c),
            None => {
                let c = choose(
                    "backward-data",
                    &g,
                    p.conv,
                    || {
                        Ok(find!(sys::cudnnConvolutionBwdDataAlgoPerf_t, 6, |res, got| {
                            sys::cudnnFindConvolutionBackwardDataAlgorithm(
                                handle,
                                p.w,
                                p.y,
                                p.conv,
                                p.x,
                                6,
                                &mut got,
                                res.as_mut_ptr(),
                            )
                        }))
                    },
                    || {
                        Ok(find!(sys::cudnnConvolutionBwdDataAlgoPerf_t, 6, |res, got| {
                            sys::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                handle,
                                p.w,
                                p.y,
                                p.conv,
                                p.x,
                                6,
                                &mut got,
                                res.as_mut_ptr(),
                            )
                        }))
                    },
                )?;
                Ok(*p.bwd_data.insert(c))
            }
        };
        // SAFETY: dy, w and dx are live device buffers of this geometry's sizes on dev's stream (dx
        // allocated for x_len and written only); dx aliases neither input.
        unsafe {
            launch(&dev, g, pick, |handle, p, algo, sp, sn| {
                sys::cudnnConvolutionBackwardData(
                    handle,
                    scale(&ONE),
                    p.w,
                    ptr(wp),
                    p.y,
                    ptr(dyp),
                    p.conv,
                    algo,
                    sp,
                    sn,
                    scale(&ZERO),
                    p.x,
                    ptr(dxp),
                )
            })?;
        }
    }
    Ok((CudaStorage::wrap_cuda_slice(dx, dev), Shape::from((n, cin, g.h, g.w))))
}

/// `dW` from `(X, dY)`.
struct ConvBackwardFilter {
    pad: usize,
    k: usize,
}

impl CustomOp2 for ConvBackwardFilter {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-filter-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("cudnn-conv2d-filter-grad runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, dys: &CudaStorage, dyl: &Layout) -> Result<(CudaStorage, Shape)> {
        by_dtype!(xs.dtype(), backward_filter(self, xs, xl, dys, dyl))
    }
}

fn backward_filter<T: Elem>(
    op: &ConvBackwardFilter,
    xs: &CudaStorage,
    xl: &Layout,
    dys: &CudaStorage,
    dyl: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (n, cin, h, w) = xl.shape().dims4()?;
    let (_, cout, _, _) = dyl.shape().dims4()?;
    let g = Geom { n, cin, h, w, cout, k: op.k, pad: op.pad, dtype: xs.dtype() };
    let dev = xs.device().clone();
    let stream = dev.cuda_stream();
    let (x, dy) = (view::<T>(xs, xl, g.x_len(), "input")?, view::<T>(dys, dyl, g.y_len(), "output gradient")?);
    // SAFETY: fully written (beta = 0) by the call below.
    let mut dw = unsafe { dev.alloc::<T>(g.w_len())? };
    {
        let ((xp, _g1), (dyp, _g2), (dwp, _g3)) =
            (x.device_ptr(&stream), dy.device_ptr(&stream), dw.device_ptr_mut(&stream));
        let pick = |handle, p: &mut Plan| match p.bwd_filter {
            Some(c) => Ok(c),
            None => {
                let c = choose(
                    "backward-filter",
                    &g,
                    p.conv,
                    || {
                        Ok(find!(sys::cudnnConvolutionBwdFilterAlgoPerf_t, 7, |res, got| {
                            sys::cudnnFindConvolutionBackwardFilterAlgorithm(
                                handle,
                                p.x,
                                p.y,
                                p.conv,
                                p.w,
                                7,
                                &mut got,
                                res.as_mut_ptr(),
                            )
                        }))
                    },
                    || {
                        Ok(find!(sys::cudnnConvolutionBwdFilterAlgoPerf_t, 7, |res, got| {
                            sys::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                handle,
                                p.x,
                                p.y,
                                p.conv,
                                p.w,
                                7,
                                &mut got,
                                res.as_mut_ptr(),
                            )
                        }))
                    },
                )?;
                Ok(*p.bwd_filter.insert(c))
            }
        };
        // SAFETY: x, dy and dw are live device buffers of this geometry's sizes on dev's stream (dw
        // allocated for w_len and written only); dw aliases neither input.
        unsafe {
            launch(&dev, g, pick, |handle, p, algo, sp, sn| {
                sys::cudnnConvolutionBackwardFilter(
                    handle,
                    scale(&ONE),
                    p.x,
                    ptr(xp),
                    p.y,
                    ptr(dyp),
                    p.conv,
                    algo,
                    sp,
                    sn,
                    scale(&ZERO),
                    p.w,
                    ptr(dwp),
                )
            })?;
        }
    }
    Ok((CudaStorage::wrap_cuda_slice(dw, dev), Shape::from((cout, cin, op.k, op.k))))
}
