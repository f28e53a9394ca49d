//! `load_image` (JPEG, PNG, WebP, BMP, GIF, TIFF; size checks, limits, composition to RGB).
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::as_file("image", data);
    let _ = layerinv::data::load_image(&path);
});
