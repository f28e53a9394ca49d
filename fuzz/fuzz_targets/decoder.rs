//! Decoder files and training checkpoints, against the bundled encoder: the first byte picks
//! which reader and which layer/kind, the rest is the file.
#![no_main]
use layerinv::model::{load_decoder, DecoderSpec, Encoder, Kind, ModelSource, Objective};
use layerinv::train::DecoderTrainer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
mod common;

fn encoder() -> &'static Encoder {
    static ENC: OnceLock<Encoder> = OnceLock::new();
    ENC.get_or_init(|| ModelSource::parse("bundled").load(&candle_core::Device::Cpu).expect("the bundled trunk"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let enc = encoder();
    let layer = ["pool1", "pool2", "pool5"][(which >> 2) as usize % 3];
    let kind = if which & 2 == 0 { Kind::Sae } else { Kind::Swwae };
    if which & 1 == 0 {
        let path = common::as_file("decoder.safetensors", body);
        let _ = load_decoder(&path, enc, layer, kind);
    } else if let Ok(spec) = DecoderSpec::new(enc.arch, layer, kind, 0.25) {
        let path = common::as_file("checkpoint.ckpt", body);
        let _ = DecoderTrainer::resume(&path, spec, &enc.fingerprint, Objective::First, &candle_core::Device::Cpu);
    }
});
