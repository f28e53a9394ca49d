//! Zip-format PyTorch files (`torch.save` since 1.6), read by candle after checking what they
//! declare: candle's unpickler allocates a string's declared length and a tensor's declared size
//! before reading them, so a 3 KB file could ask for gigabytes (found by `fuzz/`, target
//! `weights`). Every such size is checked against the bytes that are really there first.

use crate::error::{Error, Result};
use candle_core::Tensor;
use std::io::Read;
use std::path::Path;

/// Largest pickle (`data.pkl`) accepted: a state dict's pickle holds names and shapes only.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// The tensors of a .pth file (under `key`, a dict inside it, when given), as
/// `candle_core::pickle::read_all_with_key` reads them, once the file is checked.
pub fn read_pth(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let bad = |msg: String| Error::bad_file(path, msg);
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let open = || -> Result<zip::ZipArchive<std::io::BufReader<std::fs::File>>> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| {
            bad(format!("not a zip-format PyTorch file ({e}); only torch.save since 1.6 is supported: re-save it or convert it to .safetensors"))
        })
    };
    let mut zip = open()?;
    let names = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<Vec<String>, _>>()
        .map_err(|e| bad(format!("unreadable zip entry name: {e}")))?;
    for name in names.iter().filter(|n| n.ends_with("data.pkl")) {
        let entry = zip.by_name(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if entry.size() > MAX_PICKLE_BYTES.min(file_len.saturating_mul(64)) {
            return Err(bad(format!("{name} declares {} bytes, more than a state dict's pickle holds", entry.size())));
        }
        let mut pickle = Vec::new();
        entry.take(MAX_PICKLE_BYTES).read_to_end(&mut pickle).map_err(|e| bad(format!("{name}: {e}")))?;
        check_pickle(&pickle).map_err(|m| bad(format!("{name}: {m}")))?;
    }
    let c = |e: candle_core::Error| {
        bad(format!(
            "cannot read this PyTorch file ({}); only zip-format state dicts (torch.save since 1.6) are supported: re-save it or convert it to .safetensors",
            crate::error::one_line(&e.to_string())
        ))
    };
    // One parse of the (now checked) pickle: the tensors' records, checked, then their data.
    let pth = candle_core::pickle::PthTensors::new(path, key).map_err(c)?;
    for info in pth.tensor_infos().values() {
        let entry = zip.by_name(&info.path).map_err(|e| bad(format!("tensor {}: {}: {e}", info.name, info.path)))?;
        let need = (info.layout.start_offset() + info.layout.shape().elem_count()) as u128
            * info.dtype.size_in_bytes() as u128;
        if need > entry.size() as u128 || entry.size() > file_len {
            return Err(bad(format!(
                "tensor {} declares shape {:?} ({need} bytes) but its storage {} holds {} bytes",
                info.name,
                info.layout.dims(),
                info.path,
                entry.size()
            )));
        }
    }
    drop(zip);
    let mut tensors = Vec::with_capacity(pth.tensor_infos().len());
    for name in pth.tensor_infos().keys() {
        if let Some(t) = pth.get(name).map_err(c)? {
            tensors.push((name.clone(), t));
        }
    }
    Ok(tensors)
}

/// Walk a pickle's opcodes as candle's unpickler reads them (the opcodes it knows; it refuses any
/// other before reading past it) and check every declared length against the bytes left.
fn check_pickle(p: &[u8]) -> std::result::Result<(), String> {
    let mut i = 0usize;
    let need = |i: usize, n: usize, what: &str| {
        if p.len().saturating_sub(i) < n {
            Err(format!("a {what} at byte {i} runs past the end of the pickle"))
        } else {
            Ok(())
        }
    };
    while i < p.len() {
        let op = p[i];
        i += 1;
        let arg = match op {
            b'.' => return Ok(()),
            0x80 | b'q' | b'h' | b'K' => 1,
            b'r' | b'j' | b'J' => 4,
            b'M' => 2,
            b'G' => 8,
            b'X' => {
                need(i, 4, "string length")?;
                let len = u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]) as usize;
                need(i + 4, len, "string")?;
                4 + len
            }
            0x8a => {
                need(i, 1, "long")?;
                1 + p[i] as usize
            }
            b'c' => {
                // Two newline-terminated names.
                let mut end = i;
                for _ in 0..2 {
                    end +=
                        p[end.min(p.len())..].iter().position(|&b| b == b'\n').ok_or("an unterminated global name")?
                            + 1;
                }
                end - i
            }
            b')'
            | b'R'
            | b'('
            | b't'
            | b'Q'
            | 0x85..=0x89
            | b'N'
            | b's'
            | b'u'
            | b'}'
            | b'd'
            | b'b'
            | 0x81
            | b']'
            | b'a'
            | b'e' => 0,
            // candle stops here with "unknown op-code" before reading further.
            _ => return Ok(()),
        };
        need(i, arg, "value")?;
        i += arg;
    }
    Ok(())
}
