//! The CUDA C source of layerinv's kernels, and its compilation with NVRTC (once per process):
//! element-wise kernels written once for f32 and bf16, and the Adam update (f32 only).

use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::Result;
use std::sync::OnceLock;

/// Element access for f32 and bf16 (raw bits: no CUDA header needed under NVRTC). Loads widen
/// to f32; stores round to nearest even, as PyTorch's bf16 conversions do.
const SRC_COMMON: &str = r#"
typedef unsigned short bf16_t;
__device__ __forceinline__ float ld(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16_t* p, size_t i) { return __uint_as_float(((unsigned int)p[i]) << 16); }
__device__ __forceinline__ void st(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16_t* p, size_t i, float v) {
    unsigned int u = __float_as_uint(v);
    p[i] = (v != v) ? (bf16_t)0x7fc0 : (bf16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
"#;

/// The kernels over tensor elements, written once with `$T` (element type) and `$S` (name
/// suffix) and compiled for `float`/`_f32` and `bf16_t`/`_bf16`. Arithmetic is in f32.
const SRC_TYPED: &str = r#"
extern "C" __global__ void argmax_pool$S(const $T* x, unsigned int* idx, unsigned int n,
                                       int h, int w, int oh, int ow, int k, int s) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int plane = i / (oh * ow);
    int r = i % (oh * ow), y0 = (r / ow) * s, x0 = (r % ow) * s;
    const $T* p = x + (size_t)plane * h * w;
    int best_i = y0 * w + x0;
    float best = ld(p, best_i);
    for (int y = y0; y < y0 + k; ++y)
        for (int xx = x0; xx < x0 + k; ++xx) {
            int j = y * w + xx;
            float v = ld(p, j);
            if (v > best) { best = v; best_i = j; }
        }
    idx[i] = best_i;
}

// Non-overlapping windows: every switch names a different cell, so plain stores suffice.
extern "C" __global__ void unpool_fwd$S(const $T* x, const unsigned int* idx, $T* out,
                                      unsigned int n, unsigned int pooled, unsigned int plane) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int j = idx[i];
    if (j < plane) out[(size_t)(i / pooled) * plane + j] = x[i];
}

extern "C" __global__ void unpool_bwd$S(const $T* g, const unsigned int* idx, $T* dx,
                                      unsigned int n, unsigned int pooled, unsigned int plane) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int j = idx[i];
    if (j < plane) dx[i] = g[(size_t)(i / pooled) * plane + j]; else st(dx, i, 0.0f);
}

// SAE unpooling without switches: pooled cell (oy, ox) goes to (oy*s + off, ox*s + off) of its
// plane (forward), and its gradient comes back from there (backward, grad != 0).
extern "C" __global__ void unpool_fixed$S(const $T* src, $T* dst, unsigned int n, int oh, int ow,
                                        int w, unsigned int plane, int s, int off, int grad) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int p = i / (oh * ow);
    int r = i % (oh * ow);
    size_t j = (size_t)p * plane + ((r / ow) * s + off) * w + (r % ow) * s + off;
    if (grad) dst[i] = src[j]; else dst[j] = src[i];
}

// y (N, C, hw) += b[c], then ReLU when relu != 0, in place.
extern "C" __global__ void bias_act$S($T* y, const $T* b, unsigned int n, unsigned int hw,
                                    unsigned int c, int relu) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = ld(y, i) + ld(b, (i / hw) % c);
    st(y, i, (relu && !(v > 0.0f)) ? 0.0f : v);
}

extern "C" __global__ void relu_grad$S(const $T* dy, const $T* y, $T* out, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (ld(y, i) > 0.0f) out[i] = dy[i]; else st(out, i, 0.0f);
}

// db[c] = sum over images and pixels of dy (N, C, hw), in f32: blockIdx.x is the channel,
// blockIdx.y a slice of its N * hw values; block sums are added atomically into the zeroed db.
extern "C" __global__ void bias_grad$S(const $T* dy, float* db, unsigned int nimg,
                                     unsigned int c, unsigned int hw) {
    __shared__ float part[256];
    unsigned int ch = blockIdx.x;
    unsigned long long total = (unsigned long long)nimg * hw;
    float s = 0.0f;
    for (unsigned long long k = (unsigned long long)blockIdx.y * blockDim.x + threadIdx.x; k < total;
         k += (unsigned long long)gridDim.y * blockDim.x) {
        unsigned long long img = k / hw, j = k % hw;
        s += ld(dy, (img * c + ch) * hw + j);
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(&db[ch], part[0]);
}

// out[0] += factor * sum of (y - x)^2 (out zeroed; factor = scale^2 / n gives the mean), in f32.
extern "C" __global__ void mse$S(const $T* y, const float* x, float* out, unsigned int n, float factor) {
    __shared__ float part[256];
    float s = 0.0f;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float d = ld(y, i) - x[i];
        s += d * d;
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(out, part[0] * factor);
}

// dy = g[0] * factor * (y - x), with the loss gradient g read on the device (no host sync).
extern "C" __global__ void mse_grad$S(const $T* y, const float* x, const float* g, $T* dy,
                                    unsigned int n, float factor) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    st(dy, i, g[0] * factor * (ld(y, i) - x[i]));
}
"#;

/// The Adam update: on the f32 master weights and moments only.
const SRC_ADAM: &str = r#"
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

/// The module name the kernels are loaded under in candle's device.
pub(super) const MODULE: &str = "layerinv_ops";

/// The PTX of every kernel, compiled on first use.
pub(super) fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let compiled = PTX.get_or_init(|| {
        let typed = |t: &str, suffix: &str| SRC_TYPED.replace("$T", t).replace("$S", suffix);
        let src =
            [SRC_COMMON.to_string(), typed("float", "_f32"), typed("bf16_t", "_bf16"), SRC_ADAM.to_string()].concat();
        nvrtc::compile_ptx(src).map(|p| p.to_src()).map_err(|e| e.to_string())
    });
    compiled
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(format!("compiling layerinv's CUDA kernels with NVRTC: {e}")))
}
