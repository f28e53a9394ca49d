//! `load_weights_file`: the first byte picks the reader (safetensors, zip-format .pth, ONNX), the
//! rest is the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let ext = ["safetensors", "pth", "onnx"][which as usize % 3];
    let path = common::as_file(&format!("weights.{ext}"), body);
    let _ = layerinv::model::load_weights_file(&path, &candle_core::Device::Cpu);
});
