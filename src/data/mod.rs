//! Images in and out: decoding (with limits and one-line errors), per-model preprocessing.

mod image_io;
mod preprocess;

pub use image_io::{load_image, MAX_SIDE};
pub use preprocess::{resize_centre_crop, resize_shorter_side, Preprocess};
