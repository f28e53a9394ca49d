//! Images in and out: decoding (with limits and one-line errors), per-model preprocessing, image
//! folders and training batches.

mod folder;
mod image_io;
mod preprocess;

pub use folder::{
    crops_tensor, list_images, load_centre_crops, photos_in, random_crop, BatchLoader, CropSpec, Drawn, Loaded,
    PhotoSource, Skipped, IMAGE_EXTENSIONS,
};
pub use image_io::{load_image, MAX_SIDE};
pub use preprocess::{resize_centre_crop, resize_shorter_side, Preprocess};
