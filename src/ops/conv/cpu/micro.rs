//! The forward convolution's micro-kernels: `MR × NR` outputs kept in registers over a pass of
//! steps, with AVX2/FMA where the CPU has it and a portable twin elsewhere.

use super::{MR, NR};

/// `c (MR × NR, row stride ldc) += Σ_t a[t] ⊗ b[at[t] ..][..NR]` over the steps `t < at.len()`,
/// `a[t]` being [`MR`] kernel values (one per output channel, read one step after the other) and
/// `b[at[t]..]` [`NR`] input values (one per column); with `fresh`, `c =` that sum (its old
/// values are not read: no zeroing pass first).
pub(super) type MicroKernel =
    unsafe fn(a: *const f32, b: *const f32, at: &[usize], c: *mut f32, ldc: usize, fresh: bool);

/// The micro-kernel in plain Rust (the compiler vectorises it for the target's baseline): the
/// twin of [`micro_avx2`], and the kernel on CPUs without AVX2 and FMA.
///
/// # Safety
/// `a` holds `at.len() · MR` values, `b + at[t] + NR` is in bounds for every step, and `c`
/// addresses `MR` rows of `NR` values.
pub(super) unsafe fn micro_portable(a: *const f32, b: *const f32, at: &[usize], c: *mut f32, ldc: usize, fresh: bool) {
    let mut acc = [[0f32; NR]; MR];
    if !fresh {
        for (r, row) in acc.iter_mut().enumerate() {
            row.copy_from_slice(std::slice::from_raw_parts(c.add(r * ldc), NR));
        }
    }
    for (a, &at) in std::slice::from_raw_parts(a, at.len() * MR).chunks_exact(MR).zip(at) {
        let x = std::slice::from_raw_parts(b.add(at), NR);
        for (row, &v) in acc.iter_mut().zip(a) {
            row.iter_mut().zip(x).for_each(|(o, &x)| *o += v * x);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        std::slice::from_raw_parts_mut(c.add(r * ldc), NR).copy_from_slice(row);
    }
}

/// The micro-kernel with AVX2 and FMA: twelve accumulators (`MR` channels × two vectors).
///
/// # Safety
/// As [`micro_portable`], and the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2(a: *const f32, b: *const f32, at: &[usize], c: *mut f32, ldc: usize, fresh: bool) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    if !fresh {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(c.add(r * ldc + v * 8));
            }
        }
    }
    for (t, &at) in at.iter().enumerate() {
        let (a, p) = (a.add(t * MR), b.add(at));
        let x = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))];
        for (r, row) in acc.iter_mut().enumerate() {
            let v = _mm256_broadcast_ss(&*a.add(r));
            for (acc, &x) in row.iter_mut().zip(&x) {
                *acc = _mm256_fmadd_ps(v, x, *acc);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &a) in row.iter().enumerate() {
            _mm256_storeu_ps(c.add(r * ldc + v * 8), a);
        }
    }
}

/// The fastest micro-kernel this CPU runs.
pub(super) fn micro_kernel() -> MicroKernel {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return micro_avx2;
    }
    micro_portable
}
