//! Decoding image files robustly: any format the `image` crate knows, guessed from the content;
//! 16-bit, grey, alpha and CMYK inputs converted to 8-bit RGB; huge images refused before decoding.

use crate::error::{Error, Result};
use image::{DynamicImage, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Largest accepted width or height. A larger image is refused before any pixel is decoded.
pub const MAX_SIDE: u32 = 12_000;

/// Largest accepted image file, in bytes. A larger file is refused before it is read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Read and decode an image file into 8-bit RGB. Transparent pixels are composited over white.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes =
        crate::fsutil::read_bounded(path, "an image", MAX_FILE_BYTES, |head| image::guess_format(head).is_ok())?;
    let reader = ImageReader::new(Cursor::new(&bytes)).with_guessed_format().map_err(|e| Error::io(path, e))?;
    let Some(format) = reader.format() else {
        return Err(Error::bad_file(path, "not an image (unrecognised file format)"));
    };
    let fmt = format!("{format:?}").to_uppercase();
    let mut reader = reader;
    let (w, h) =
        reader.into_dimensions().map_err(|e| Error::bad_file(path, format!("cannot read {fmt} header: {e}")))?;
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::bad_file(
            path,
            format!("image is {w}×{h}, larger than the {MAX_SIDE}×{MAX_SIDE} limit; downscale it first"),
        ));
    }
    if w == 0 || h == 0 {
        return Err(Error::bad_file(path, format!("image is {w}×{h}, it has no pixels")));
    }
    if format == image::ImageFormat::Jpeg && !jpeg_has_end_marker(&bytes) {
        return Err(Error::bad_file(
            path,
            "truncated or corrupt JPEG image: the data ends before the end-of-image marker",
        ));
    }
    reader = ImageReader::with_format(Cursor::new(&bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(2 << 30);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| Error::bad_file(path, format!("truncated or corrupt {fmt} image: {e}")))?;
    Ok(to_rgb8(img))
}

/// JPEG decoders fill a truncated scan with grey and carry on; a complete file has an EOI marker
/// (FF D9) after its last start-of-scan (FF DA).
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let last = |m: [u8; 2]| bytes.windows(2).rposition(|w| w == m);
    match (last([0xFF, 0xDA]), last([0xFF, 0xD9])) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

fn to_rgb8(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba32f();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = src[3].clamp(0.0, 1.0);
        for c in 0..3 {
            let v = src[c].clamp(0.0, 1.0) * a + (1.0 - a);
            dst[c] = (v * 255.0).round() as u8;
        }
    }
    out
}
