//! Per-model preprocessing: image → input tensor and back for display.

use candle_core::{Device, Result, Tensor};
use image::imageops::FilterType;
use image::RgbImage;

/// How a model wants its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// Caffe / Keras VGG: BGR channel order, 0–255, minus the ImageNet mean.
    Caffe,
    /// torchvision / timm: RGB in 0–1, minus mean, divided by std.
    Torch,
}

const CAFFE_MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];
const TORCH_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const TORCH_STD: [f32; 3] = [0.229, 0.224, 0.225];

crate::named::named_enum!(Preprocess);

impl Preprocess {
    pub const ALL: [Preprocess; 2] = [Preprocess::Caffe, Preprocess::Torch];

    pub fn name(&self) -> &'static str {
        match self {
            Preprocess::Caffe => "caffe",
            Preprocess::Torch => "torch",
        }
    }

    /// Multiply the reconstruction error by this before squaring, so the loss is in 0–1 pixel
    /// units for Caffe inputs (which are in 0–255 units).
    pub fn loss_scale(&self) -> f64 {
        match self {
            Preprocess::Caffe => 1.0 / 255.0,
            Preprocess::Torch => 1.0,
        }
    }

    /// For input channel `c` (in the model's channel order): the RGB channel it holds, and
    /// `value = (pixel / 255 - shift) * scale` in terms of a pixel in 0–255.
    fn channel(&self, c: usize) -> (usize, f32, f32) {
        match self {
            Preprocess::Caffe => (2 - c, CAFFE_MEAN_BGR[c] / 255.0, 255.0),
            Preprocess::Torch => (c, TORCH_MEAN[c], 1.0 / TORCH_STD[c]),
        }
    }

    /// Resize the shorter side to `size` and centre-crop to `size × size`; then a `(3, size, size)`
    /// f32 tensor. A `size × size` image is used as is.
    pub fn to_tensor(&self, img: &RgbImage, size: usize, device: &Device) -> Result<Tensor> {
        self.image_tensor(&resize_centre_crop(img, size as u32), device)
    }

    /// The image as it is, `(3, H, W)`.
    pub fn image_tensor(&self, img: &RgbImage, device: &Device) -> Result<Tensor> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let n = h * w;
        let mut data = vec![0f32; 3 * n];
        for c in 0..3 {
            let (src, shift, scale) = self.channel(c);
            for (dst, p) in data[c * n..(c + 1) * n].iter_mut().zip(img.pixels()) {
                *dst = (p[src] as f32 / 255.0 - shift) * scale;
            }
        }
        Tensor::from_vec(data, (3, h, w), device)
    }

    /// Undo the preprocessing of a `(3, H, W)` tensor, clamp to 0–255 and round.
    pub fn to_image(&self, t: &Tensor) -> Result<RgbImage> {
        let (c, h, w) = t.dims3()?;
        if c != 3 {
            candle_core::bail!("expected a 3-channel image tensor, got {c} channels")
        }
        let v = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let n = h * w;
        let mut img = RgbImage::new(w as u32, h as u32);
        for c in 0..3 {
            let (dst, shift, scale) = self.channel(c);
            for (p, &x) in img.pixels_mut().zip(&v[c * n..(c + 1) * n]) {
                p[dst] = ((x / scale + shift) * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
        Ok(img)
    }
}

/// Resize so the shorter side is `size`, then crop the centre square. Identity for `size × size`.
pub fn resize_centre_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == size && h == size {
        return img.clone();
    }
    let resized = resize_shorter_side(img, size);
    let (nw, nh) = resized.dimensions();
    image::imageops::crop_imm(&resized, (nw - size) / 2, (nh - size) / 2, size, size).to_image()
}

/// Resize (keeping the aspect ratio) so the shorter side is `size`; both sides end up ≥ `size`.
pub fn resize_shorter_side(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.min(h) == size {
        return img.clone();
    }
    let short = w.min(h).max(1) as f64;
    let (nw, nh) = (
        ((w as f64 * size as f64 / short).round() as u32).max(size),
        ((h as f64 * size as f64 / short).round() as u32).max(size),
    );
    image::imageops::resize(img, nw, nh, FilterType::Triangle)
}
