//! Choosing the compute device: `cpu`, `cuda[:N]` or `auto`.

use crate::error::{Error, Result};
use candle_core::Device;

/// Parse a device name. `auto` picks CUDA when this build has it and a GPU answers, else CPU.
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" if candle_core::utils::cuda_is_available() => Ok(parse_device("cuda").unwrap_or(Device::Cpu)),
        "auto" => Ok(Device::Cpu),
        _ => {
            let Some(rest) = s.strip_prefix("cuda") else {
                return Err(Error::Unavailable(format!("unknown device {s:?}: use cpu, cuda, cuda:N or auto")));
            };
            let ordinal = match rest.strip_prefix(':') {
                Some(n) => n.parse().map_err(|_| Error::Unavailable(format!("bad CUDA device number in {s:?}")))?,
                None if rest.is_empty() => 0,
                None => return Err(Error::Unavailable(format!("unknown device {s:?}: use cpu, cuda, cuda:N or auto"))),
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::Unavailable(format!(
                    "{s}: this layerinv was built without CUDA; rebuild with `cargo build --release --features cuda`"
                )));
            }
            let dev = Device::new_cuda(ordinal).map_err(|e| Error::Unavailable(format!("{s}: no usable GPU ({e})")))?;
            // One stream per device, shared by every thread: stream order already keeps reads,
            // writes and frees in sequence, so candle's per-use CUDA events are pure overhead.
            #[cfg(feature = "cuda")]
            if let Device::Cuda(d) = &dev {
                // SAFETY: nothing here creates a second stream (see above).
                unsafe { d.disable_event_tracking() };
            }
            Ok(dev)
        }
    }
}

/// A short description for status lines and benchmark output.
pub fn describe(d: &Device) -> String {
    match d {
        Device::Cpu => format!("CPU ({} threads)", candle_core::utils::get_num_threads()),
        Device::Cuda(_) => "CUDA".to_string(),
        Device::Metal(_) => "Metal".to_string(),
    }
}
