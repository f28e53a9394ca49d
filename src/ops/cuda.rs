//! Launching layerinv's CUDA kernels (their source: `cuda/source.rs`): pooling switches,
//! unpooling, the convolution's bias/ReLU (and their gradients) and the reconstruction loss, for
//! f32 and bf16 tensors, and the Adam update (f32). Same results as the CPU kernels; the twins in
//! `pool.rs` and `unpool.rs` (and the Adam formula in the tests) are what they are compared with.

mod source;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaStream, CudaView, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Shape};
use source::{ptx, MODULE};
use std::sync::Arc;

/// The contiguous data of a storage (from its layout's offset), or an error for strided input.
pub(super) fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout, what: &str) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<T>()?.slice(a..b)),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what}: tensor too large for the CUDA kernel")))
}

/// Element types the kernels are compiled for, with their kernel-name suffix.
pub(super) trait Elem: CudaDType + DeviceRepr + ValidAsZeroBits {
    const SUFFIX: &'static str;
}

impl Elem for f32 {
    const SUFFIX: &'static str = "_f32";
}

impl Elem for half::bf16 {
    const SUFFIX: &'static str = "_bf16";
}

/// Call `$f::<T>(args)` with `T` the element type of `$dtype` (f32 or bf16).
macro_rules! by_dtype {
    ($dtype:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dtype {
            candle_core::DType::F32 => $f::<f32>($($arg),*),
            candle_core::DType::BF16 => $f::<half::bf16>($($arg),*),
            d => candle_core::bail!("layerinv's CUDA kernels take f32 or bf16, not {d:?}"),
        }
    };
}
pub(super) use by_dtype;

/// The kernel `name` compiled for `T`, and the device's stream to launch it on.
fn func<T: Elem>(dev: &CudaDevice, name: &str) -> Result<(CudaFunction, Arc<CudaStream>)> {
    kernel(dev, &format!("{name}{}", T::SUFFIX))
}

/// The kernel `name` (as the source spells it), and the device's stream to launch it on.
fn kernel(dev: &CudaDevice, name: &str) -> Result<(CudaFunction, Arc<CudaStream>)> {
    Ok((dev.get_or_load_custom_func(name, MODULE, ptx()?)?.into_cuda_function(), dev.cuda_stream()))
}

/// The argmax switch of every `k × k` / stride `s` window of `x (B, C, H, W)`.
pub fn argmax_pool(
    s: &CudaStorage,
    l: &Layout,
    k: usize,
    stride: usize,
    out_hw: (usize, usize),
) -> Result<(CudaStorage, Shape)> {
    by_dtype!(s.dtype(), argmax_pool_t(s, l, k, stride, out_hw))
}

fn argmax_pool_t<T: Elem>(
    s: &CudaStorage,
    l: &Layout,
    k: usize,
    stride: usize,
    out_hw: (usize, usize),
) -> Result<(CudaStorage, Shape)> {
    let (b, c, h, w) = l.shape().dims4()?;
    let (oh, ow) = out_hw;
    let n = u32_of(b * c * oh * ow, "argmax-pool")?;
    let dev = s.device().clone();
    let x = view::<T>(s, l, "argmax-pool")?;
    // SAFETY: every element is written by the kernel (one thread per output cell).
    let mut idx = unsafe { dev.alloc::<u32>(n as usize)? };
    let (f, stream) = func::<T>(&dev, "argmax_pool")?;
    let mut a = stream.launch_builder(&f);
    let dims = [h as i32, w as i32, oh as i32, ow as i32, k as i32, stride as i32];
    a.arg(&x).arg(&mut idx).arg(&n);
    for d in &dims {
        a.arg(d);
    }
    // SAFETY: argument types match the kernel's signature; indices stay inside each plane.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok((CudaStorage::wrap_cuda_slice(idx, dev), Shape::from((b, c, oh, ow))))
}

/// Unpool `x (B, C, h, w)` to `(B, C, H, W)` at non-overlapping switches (`grad`: false), or
/// gather the gradient `x (B, C, H, W)` back to `(B, C, h, w)` (`grad`: true).
pub fn unpool(
    s: &CudaStorage,
    l: &Layout,
    si: &CudaStorage,
    li: &Layout,
    pooled_hw: (usize, usize),
    plane_hw: (usize, usize),
    grad: bool,
) -> Result<(CudaStorage, Shape)> {
    by_dtype!(s.dtype(), unpool_t(s, l, si, li, pooled_hw, plane_hw, grad))
}

fn unpool_t<T: Elem>(
    s: &CudaStorage,
    l: &Layout,
    si: &CudaStorage,
    li: &Layout,
    pooled_hw: (usize, usize),
    plane_hw: (usize, usize),
    grad: bool,
) -> Result<(CudaStorage, Shape)> {
    let (b, c, _, _) = l.shape().dims4()?;
    let (pooled, plane) = (pooled_hw.0 * pooled_hw.1, plane_hw.0 * plane_hw.1);
    let n = u32_of(b * c * pooled, "unpool")?;
    let dev = s.device().clone();
    let x = view::<T>(s, l, "unpool")?;
    let idx = view::<u32>(si, li, "unpool")?;
    if idx.len() != n as usize {
        candle_core::bail!("unpool: {} switches for {} values", idx.len(), n)
    }
    let (name, out_len, out_hw) =
        if grad { ("unpool_bwd", n as usize, pooled_hw) } else { ("unpool_fwd", b * c * plane, plane_hw) };
    // Forward: the cells no switch names stay 0. Backward: every element is written.
    // SAFETY (backward): uninitialised memory, but the kernel writes each of the out_len = n cells.
    let mut out = if grad { unsafe { dev.alloc::<T>(out_len)? } } else { dev.alloc_zeros::<T>(out_len)? };
    let (f, stream) = func::<T>(&dev, name)?;
    let mut a = stream.launch_builder(&f);
    let (pooled, plane) = (u32_of(pooled, "unpool")?, u32_of(plane, "unpool")?);
    a.arg(&x).arg(&idx).arg(&mut out).arg(&n).arg(&pooled).arg(&plane);
    // SAFETY: argument types match the kernel's signature; out-of-plane switches are skipped.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((b, c, out_hw.0, out_hw.1))))
}

/// The contiguous f32 data of a storage the op writes in place.
fn view_mut<'a>(s: &'a mut CudaStorage, l: &Layout, what: &str) -> Result<CudaViewMut<'a, f32>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(a..b)),
        None => candle_core::bail!("{what}: output must be contiguous"),
    }
}

/// Adam's moment update in place on `mv = [m; v]` from the gradient `g`; `k` = β₁, 1−β₁, β₂, 1−β₂.
pub fn adam_moments(mv: &mut CudaStorage, lm: &Layout, g: &CudaStorage, lg: &Layout, k: [f32; 4]) -> Result<()> {
    adam_launch("adam_moments", mv, lm, g, lg, &k)
}

/// Adam's weight update in place on `w` from `mv = [m; v]`; `k` = lr/bc₁, 1/bc₂, ε.
pub fn adam_apply(w: &mut CudaStorage, lw: &Layout, mv: &CudaStorage, lm: &Layout, k: [f32; 3]) -> Result<()> {
    adam_launch("adam_apply", w, lw, mv, lm, &k)
}

/// Launch an Adam kernel `(dst, src, n, k...)` where one of the two holds `2n` values (the moments).
fn adam_launch(
    name: &str,
    dst: &mut CudaStorage,
    ld: &Layout,
    src: &CudaStorage,
    ls: &Layout,
    k: &[f32],
) -> Result<()> {
    let dev = dst.device().clone();
    let s = view::<f32>(src, ls, name)?;
    let mut d = view_mut(dst, ld, name)?;
    let (nd, ns) = (d.len(), s.len());
    let n = nd.min(ns);
    if nd.max(ns) != 2 * n {
        candle_core::bail!("{name}: {nd} and {ns} values do not pair parameters with their moments")
    }
    let n = u32_of(n, name)?;
    let (f, stream) = kernel(&dev, name)?;
    let mut a = stream.launch_builder(&f);
    a.arg(&mut d).arg(&s).arg(&n);
    for v in k {
        a.arg(v);
    }
    // SAFETY: argument types match the kernel's signature; sizes were checked above.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}

/// `y (N, C, H, W) += b[c]`, then ReLU when `relu`, in place on a fresh convolution output.
pub fn bias_act(y: &mut CudaStorage, shape: &Shape, b: &CudaStorage, lb: &Layout, relu: bool) -> Result<()> {
    by_dtype!(y.dtype(), bias_act_t(y, shape, b, lb, relu))
}

fn bias_act_t<T: Elem>(y: &mut CudaStorage, shape: &Shape, b: &CudaStorage, lb: &Layout, relu: bool) -> Result<()> {
    let (_, c, h, w) = shape.dims4()?;
    let dev = y.device().clone();
    let bias = view::<T>(b, lb, "conv bias")?;
    if bias.len() != c {
        candle_core::bail!("conv bias: {} values for {c} channels", bias.len())
    }
    let y = y.as_cuda_slice_mut::<T>()?;
    if y.len() != shape.elem_count() {
        candle_core::bail!("conv: {} outputs for shape {shape:?}", y.len())
    }
    let n = u32_of(shape.elem_count(), "conv")?;
    let (hw, c, relu) = (u32_of(h * w, "conv")?, c as u32, relu as i32);
    let (f, stream) = func::<T>(&dev, "bias_act")?;
    let mut a = stream.launch_builder(&f);
    a.arg(y).arg(&bias).arg(&n).arg(&hw).arg(&c).arg(&relu);
    // SAFETY: argument types match the kernel's signature; `y` holds `n` values.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}

/// `dy` where the ReLU output `y` is positive, else 0.
pub fn relu_grad(dy: &CudaStorage, ldy: &Layout, y: &CudaStorage, ly: &Layout) -> Result<(CudaStorage, Shape)> {
    by_dtype!(dy.dtype(), relu_grad_t(dy, ldy, y, ly))
}

fn relu_grad_t<T: Elem>(dy: &CudaStorage, ldy: &Layout, y: &CudaStorage, ly: &Layout) -> Result<(CudaStorage, Shape)> {
    let dev = dy.device().clone();
    let (g, yv) = (view::<T>(dy, ldy, "relu-grad")?, view::<T>(y, ly, "relu-grad")?);
    if g.len() != yv.len() {
        candle_core::bail!("relu-grad: {} gradients for {} outputs", g.len(), yv.len())
    }
    let n = u32_of(g.len(), "relu-grad")?;
    // SAFETY: every element is written by the kernel.
    let mut out = unsafe { dev.alloc::<T>(n as usize)? };
    let (f, stream) = func::<T>(&dev, "relu_grad")?;
    let mut a = stream.launch_builder(&f);
    a.arg(&g).arg(&yv).arg(&mut out).arg(&n);
    // SAFETY: argument types match the kernel's signature; all three hold `n` values.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), ldy.shape().clone()))
}

/// The bias gradient: `dy (N, C, H, W)` summed over everything but the channel, in f32, returned
/// in `dy`'s dtype.
pub fn bias_grad(dy: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
    by_dtype!(dy.dtype(), bias_grad_t(dy, l))
}

fn bias_grad_t<T: Elem>(dy: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
    let (n, c, h, w) = l.shape().dims4()?;
    let dev = dy.device().clone();
    let g = view::<T>(dy, l, "bias-grad")?;
    let mut db = dev.alloc_zeros::<f32>(c)?;
    let per_channel = n * h * w;
    // Enough blocks per channel to fill the GPU, each summing at least a few thousand values.
    let slices = (per_channel / 4096).clamp(1, 256) as u32;
    let (f, stream) = func::<T>(&dev, "bias_grad")?;
    let mut a = stream.launch_builder(&f);
    let (n, cu, hw) = (u32_of(n, "bias-grad")?, u32_of(c, "bias-grad")?, u32_of(h * w, "bias-grad")?);
    a.arg(&g).arg(&mut db).arg(&n).arg(&cu).arg(&hw);
    let cfg = LaunchConfig { grid_dim: (cu.max(1), slices, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: argument types match the kernel's signature; 256 threads match its shared array.
    unsafe { a.launch(cfg) }.map_err(candle_core::Error::wrap)?;
    let db = CudaStorage::wrap_cuda_slice(db, dev);
    let db = if dy.dtype() == DType::F32 { db } else { db.to_dtype(&Layout::contiguous(c), dy.dtype())? };
    Ok((db, Shape::from(c)))
}

/// SAE unpooling (`grad`: false: `(B, C, h, w)` → zeros of `(B, C, H, W)` with each value at
/// offset ⌊k/2⌋ of its window) or its gradient (`grad`: true: `(B, C, H, W)` → `(B, C, h, w)`).
pub fn unpool_fixed(
    src: &CudaStorage,
    l: &Layout,
    k: usize,
    stride: usize,
    in_hw: (usize, usize),
    grad: bool,
) -> Result<(CudaStorage, Shape)> {
    by_dtype!(src.dtype(), unpool_fixed_t(src, l, k, stride, in_hw, grad))
}

fn unpool_fixed_t<T: Elem>(
    src: &CudaStorage,
    l: &Layout,
    k: usize,
    stride: usize,
    in_hw: (usize, usize),
    grad: bool,
) -> Result<(CudaStorage, Shape)> {
    let (b, c, h, w) = l.shape().dims4()?;
    let (ih, iw) = in_hw;
    let pooled = if grad { ((ih - k) / stride + 1, (iw - k) / stride + 1) } else { (h, w) };
    if grad && (h, w) != in_hw {
        candle_core::bail!("unpool-fixed: gradient of size {h}×{w} for a {ih}×{iw} map")
    }
    let n = u32_of(b * c * pooled.0 * pooled.1, "unpool-fixed")?;
    let dev = src.device().clone();
    let x = view::<T>(src, l, "unpool-fixed")?;
    let (out_len, out_hw) = if grad { (n as usize, pooled) } else { (b * c * ih * iw, in_hw) };
    // Forward: cells off the fixed positions stay 0. Backward: every element is written.
    // SAFETY (backward): uninitialised memory, but the kernel writes each of the out_len = n cells.
    let mut out = if grad { unsafe { dev.alloc::<T>(out_len)? } } else { dev.alloc_zeros::<T>(out_len)? };
    let (f, stream) = func::<T>(&dev, "unpool_fixed")?;
    let mut a = stream.launch_builder(&f);
    let dims = [pooled.0 as i32, pooled.1 as i32, iw as i32];
    let plane = u32_of(ih * iw, "unpool-fixed")?;
    let (s, off, g) = (stride as i32, (k / 2) as i32, grad as i32);
    a.arg(&x).arg(&mut out).arg(&n);
    for d in &dims {
        a.arg(d);
    }
    a.arg(&plane).arg(&s).arg(&off).arg(&g);
    // SAFETY: argument types match the kernel's signature; positions stay inside each plane
    // (floor-mode pooling: oy·s + ⌊k/2⌋ < H).
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((b, c, out_hw.0, out_hw.1))))
}

/// `factor · Σ (y − x)²` as an f32 scalar (`factor` = scale² / n gives the mean squared error).
pub fn mse_loss(
    y: &CudaStorage,
    ly: &Layout,
    x: &CudaStorage,
    lx: &Layout,
    factor: f32,
) -> Result<(CudaStorage, Shape)> {
    by_dtype!(y.dtype(), mse_loss_t(y, ly, x, lx, factor))
}

fn mse_loss_t<T: Elem>(
    y: &CudaStorage,
    ly: &Layout,
    x: &CudaStorage,
    lx: &Layout,
    factor: f32,
) -> Result<(CudaStorage, Shape)> {
    let dev = y.device().clone();
    let (yv, xv) = (view::<T>(y, ly, "mse loss")?, view::<f32>(x, lx, "mse loss")?);
    if yv.len() != xv.len() {
        candle_core::bail!("mse loss: {} values against {} targets", yv.len(), xv.len())
    }
    let n = u32_of(yv.len(), "mse loss")?;
    let mut out = dev.alloc_zeros::<f32>(1)?;
    let (f, stream) = func::<T>(&dev, "mse")?;
    let mut a = stream.launch_builder(&f);
    a.arg(&yv).arg(&xv).arg(&mut out).arg(&n).arg(&factor);
    // A grid-stride loop: enough blocks to fill the GPU, each summing many values.
    let blocks = n.div_ceil(256).clamp(1, 1024);
    let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: argument types match the kernel's signature; 256 threads match its shared array.
    unsafe { a.launch(cfg) }.map_err(candle_core::Error::wrap)?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(())))
}

/// `g · factor · (y − x)` in `y`'s dtype, for the scalar loss gradient `g` (f32, on the device).
pub fn mse_grad(
    y: &CudaStorage,
    ly: &Layout,
    x: &CudaStorage,
    lx: &Layout,
    g: &CudaStorage,
    lg: &Layout,
    factor: f32,
) -> Result<(CudaStorage, Shape)> {
    by_dtype!(y.dtype(), mse_grad_t(y, ly, x, lx, g, lg, factor))
}

fn mse_grad_t<T: Elem>(
    y: &CudaStorage,
    ly: &Layout,
    x: &CudaStorage,
    lx: &Layout,
    g: &CudaStorage,
    lg: &Layout,
    factor: f32,
) -> Result<(CudaStorage, Shape)> {
    let dev = y.device().clone();
    let (yv, xv, gv) = (
        view::<T>(y, ly, "mse loss grad")?,
        view::<f32>(x, lx, "mse loss grad")?,
        view::<f32>(g, lg, "mse loss grad")?,
    );
    if yv.len() != xv.len() || gv.len() != 1 {
        candle_core::bail!("mse loss grad: {} values, {} targets, {} loss gradients", yv.len(), xv.len(), gv.len())
    }
    let n = u32_of(yv.len(), "mse loss grad")?;
    // SAFETY: every element is written by the kernel.
    let mut dy = unsafe { dev.alloc::<T>(n as usize)? };
    let (f, stream) = func::<T>(&dev, "mse_grad")?;
    let mut a = stream.launch_builder(&f);
    a.arg(&yv).arg(&xv).arg(&gv).arg(&mut dy).arg(&n).arg(&factor);
    // SAFETY: argument types match the kernel's signature; `y`, `x` and `dy` hold `n` values.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok((CudaStorage::wrap_cuda_slice(dy, dev), ly.shape().clone()))
}
