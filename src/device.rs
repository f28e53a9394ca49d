//! Choosing the compute device (`cpu`, `cuda[:N]` or `auto`) and precision (`fp32` or `bf16`).

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// What a device name asks for.
enum Wanted {
    Cpu,
    Auto,
    Cuda(usize),
}

/// A device name's syntax: `cpu`, `auto`, `cuda` or `cuda:N`.
fn wanted(s: &str) -> Result<Wanted> {
    let unknown = || Error::Unavailable(format!("unknown device {s:?}: use cpu, cuda, cuda:N or auto"));
    match s {
        "cpu" => Ok(Wanted::Cpu),
        "auto" => Ok(Wanted::Auto),
        _ => match s.strip_prefix("cuda").ok_or_else(unknown)? {
            "" => Ok(Wanted::Cuda(0)),
            rest => {
                let n = rest.strip_prefix(':').ok_or_else(unknown)?;
                n.parse().map(Wanted::Cuda).map_err(|_| Error::Unavailable(format!("bad CUDA device number in {s:?}")))
            }
        },
    }
}

/// The command line's check of a device name (its syntax; whether the device answers is for
/// [`parse_device`]).
pub fn check_device_name(s: &str) -> std::result::Result<String, String> {
    wanted(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// Parse a device name. `auto` picks CUDA when this build has it and a GPU answers, else CPU.
pub fn parse_device(s: &str) -> Result<Device> {
    match wanted(s)? {
        Wanted::Cpu => Ok(Device::Cpu),
        Wanted::Auto if candle_core::utils::cuda_is_available() => Ok(parse_device("cuda").unwrap_or(Device::Cpu)),
        Wanted::Auto => Ok(Device::Cpu),
        Wanted::Cuda(ordinal) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::Unavailable(format!(
                    "{s}: this layerinv was built without CUDA; rebuild with `cargo build --release --features cudnn` or scripts/build-cuda.sh (README: Building with CUDA)"
                )));
            }
            let dev = Device::new_cuda(ordinal).map_err(|e| {
                // The first line: candle appends a backtrace when RUST_BACKTRACE is set.
                let e = e.to_string();
                Error::Unavailable(format!("{s}: no usable GPU ({})", e.lines().next().unwrap_or_default().trim()))
            })?;
            // One stream per device, shared by every thread: stream order already keeps reads,
            // writes and frees in sequence, so candle's per-use CUDA events are pure overhead.
            #[cfg(feature = "cuda")]
            if let Device::Cuda(d) = &dev {
                // SAFETY: nothing here creates a second stream (see above).
                unsafe { d.disable_event_tracking() };
                keep_freed_memory(d);
            }
            Ok(dev)
        }
    }
}

/// Keep freed GPU memory in the device's pool across synchronisations. CUDA's default hands it
/// back to the driver at every sync, and a training step syncs once (to read its loss), so every
/// step would map all its buffers afresh; PyTorch's caching allocator keeps them likewise.
#[cfg(feature = "cuda")]
fn keep_freed_memory(d: &candle_core::CudaDevice) {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    let ctx = d.cuda_stream().context().clone();
    // SAFETY: the pool of a live device; the attribute takes a u64 byte count.
    unsafe {
        if let Ok(pool) = result::device::get_mem_pool(ctx.cu_device()) {
            let mut threshold = u64::MAX;
            let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
            // Failing leaves CUDA's default: slower, still correct.
            let _ = result::mem_pool::set_attribute(pool, attr, &mut threshold as *mut u64 as *mut std::ffi::c_void);
        }
    }
}

/// A short description for status lines and benchmark output.
pub fn describe(d: &Device) -> String {
    match d {
        Device::Cpu => format!("CPU ({} threads)", rayon::current_num_threads()),
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let ctx = d.cuda_stream().context().clone();
            format!("CUDA {} ({})", ctx.ordinal(), ctx.name().unwrap_or_else(|_| "GPU".into()))
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => "CUDA".to_string(),
        Device::Metal(_) => "Metal".to_string(),
    }
}

/// With `LAYERINV_CUDA_PROFILE` set, [`profiled`] runs its closure once between
/// `cuProfilerStart`/`cuProfilerStop`, for `ncu --profile-from-start off` (scripts/gpu-check.sh).
pub fn profiled(dev: &Device, f: &mut dyn FnMut() -> crate::error::Result<()>) -> crate::error::Result<()> {
    if !dev.is_cuda() || std::env::var_os("LAYERINV_CUDA_PROFILE").is_none() {
        return Ok(());
    }
    dev.synchronize()?;
    #[cfg(feature = "cuda")]
    // SAFETY: plain profiler controls; without a profiler attached they do nothing.
    unsafe {
        candle_core::cuda_backend::cudarc::driver::sys::cuProfilerStart();
    }
    let r = f();
    dev.synchronize()?;
    #[cfg(feature = "cuda")]
    // SAFETY: as above.
    unsafe {
        candle_core::cuda_backend::cudarc::driver::sys::cuProfilerStop();
    }
    r
}

/// The compute precision of training and benchmarks: `fp32`, or `bf16` for mixed precision as
/// PyTorch's autocast (bf16 convolutions and activations; f32 weights, optimizer and loss), as
/// `--dtype` and torch_ref.py spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    pub fn name(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The dtype the encoder, activations and convolutions compute in.
    pub fn dtype(&self) -> DType {
        match self {
            Precision::Fp32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

crate::named::named_enum!(Precision);
