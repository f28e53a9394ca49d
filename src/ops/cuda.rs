//! CUDA kernels for the pooling switches, unpooling and the Adam update (f32), compiled once per
//! process with NVRTC and loaded into candle's device. Same results as the CPU kernels; the twins
//! in `pool.rs` and `unpool.rs` (and the Adam formula in the tests) are what they are compared with.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::{CudaStorage, Layout, Result, Shape};
use std::sync::OnceLock;

const SRC: &str = r#"
extern "C" __global__ void argmax_pool(const float* x, unsigned int* idx, unsigned int n,
                                       int h, int w, int oh, int ow, int k, int s) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int plane = i / (oh * ow);
    int r = i % (oh * ow), y0 = (r / ow) * s, x0 = (r % ow) * s;
    const float* p = x + (size_t)plane * h * w;
    int best_i = y0 * w + x0;
    float best = p[best_i];
    for (int y = y0; y < y0 + k; ++y)
        for (int xx = x0; xx < x0 + k; ++xx) {
            int j = y * w + xx;
            if (p[j] > best) { best = p[j]; best_i = j; }
        }
    idx[i] = best_i;
}

// Non-overlapping windows: every switch names a different cell, so plain stores suffice.
extern "C" __global__ void unpool_fwd(const float* x, const unsigned int* idx, float* out,
                                      unsigned int n, unsigned int pooled, unsigned int plane) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int j = idx[i];
    if (j < plane) out[(size_t)(i / pooled) * plane + j] = x[i];
}

extern "C" __global__ void unpool_bwd(const float* g, const unsigned int* idx, float* dx,
                                      unsigned int n, unsigned int pooled, unsigned int plane) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int j = idx[i];
    dx[i] = j < plane ? g[(size_t)(i / pooled) * plane + j] : 0.0f;
}

// mv = [m; v] (2n values), updated in place from the gradient.
extern "C" __global__ void adam_moments(float* mv, const float* g, unsigned int n,
                                        float b1, float c1, float b2, float c2) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    mv[i] = b1 * mv[i] + c1 * gi;
    mv[n + i] = b2 * mv[n + i] + c2 * (gi * gi);
}

extern "C" __global__ void adam_apply(float* w, const float* mv, unsigned int n,
                                      float lr_bc1, float inv_bc2, float eps) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    w[i] -= lr_bc1 * mv[i] / (sqrtf(mv[n + i] * inv_bc2) + eps);
}
"#;

const MODULE: &str = "layerinv_ops";

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| nvrtc::compile_ptx(SRC).map(|p| p.to_src()).map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(format!("compiling the pooling kernels with NVRTC: {e}")))
}

fn view<'a>(s: &'a CudaStorage, l: &Layout, what: &str) -> Result<CudaView<'a, f32>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<f32>()?.slice(a..b)),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

fn view_u32<'a>(s: &'a CudaStorage, l: &Layout, what: &str) -> Result<CudaView<'a, u32>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<u32>()?.slice(a..b)),
        None => candle_core::bail!("{what}: switches must be contiguous"),
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what}: tensor too large for the CUDA kernel")))
}

/// The argmax switch of every `k × k` / stride `s` window of `x (B, C, H, W)`.
pub fn argmax_pool(s: &CudaStorage, l: &Layout, k: usize, stride: usize, out_hw: (usize, usize)) -> Result<(CudaStorage, Shape)> {
    let (b, c, h, w) = l.shape().dims4()?;
    let (oh, ow) = out_hw;
    let n = u32_of(b * c * oh * ow, "argmax-pool")?;
    let dev = s.device().clone();
    let x = view(s, l, "argmax-pool")?;
    // SAFETY: every element is written by the kernel (one thread per output cell).
    let mut idx = unsafe { dev.alloc::<u32>(n as usize)? };
    let f = dev.get_or_load_custom_func("argmax_pool", MODULE, ptx()?)?;
    let mut a = f.builder();
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
    let (b, c, _, _) = l.shape().dims4()?;
    let (pooled, plane) = (pooled_hw.0 * pooled_hw.1, plane_hw.0 * plane_hw.1);
    let n = u32_of(b * c * pooled, "unpool")?;
    let dev = s.device().clone();
    let x = view(s, l, "unpool")?;
    let idx = view_u32(si, li, "unpool")?;
    if idx.len() != n as usize {
        candle_core::bail!("unpool: {} switches for {} values", idx.len(), n)
    }
    let (name, out_len, out_hw) = if grad { ("unpool_bwd", n as usize, pooled_hw) } else { ("unpool_fwd", b * c * plane, plane_hw) };
    // Forward: the cells no switch names stay 0. Backward: every element is written.
    let mut out = if grad { unsafe { dev.alloc::<f32>(out_len)? } } else { dev.alloc_zeros::<f32>(out_len)? };
    let f = dev.get_or_load_custom_func(name, MODULE, ptx()?)?;
    let mut a = f.builder();
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
fn adam_launch(name: &str, dst: &mut CudaStorage, ld: &Layout, src: &CudaStorage, ls: &Layout, k: &[f32]) -> Result<()> {
    let dev = dst.device().clone();
    let s = view(src, ls, name)?;
    let mut d = view_mut(dst, ld, name)?;
    let (nd, ns) = (d.len(), s.len());
    let n = nd.min(ns);
    if nd.max(ns) != 2 * n {
        candle_core::bail!("{name}: {nd} and {ns} values do not pair parameters with their moments")
    }
    let n = u32_of(n, name)?;
    let f = dev.get_or_load_custom_func(name, MODULE, ptx()?)?;
    let mut a = f.builder();
    a.arg(&mut d).arg(&s).arg(&n);
    for v in k {
        a.arg(v);
    }
    // SAFETY: argument types match the kernel's signature; sizes were checked above.
    unsafe { a.launch(LaunchConfig::for_num_elems(n.max(1))) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}
