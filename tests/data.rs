//! Preprocessing: image ↔ tensor for both conventions, resize + centre crop.

use candle_core::Device;
use image::{Rgb, RgbImage};
use layerinv::data::Preprocess;

fn photo() -> RgbImage {
    image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chelsea_224.png")).unwrap().to_rgb8()
}

#[test]
fn a_224_image_passes_through_unchanged_both_ways() {
    let img = photo();
    for p in [Preprocess::Caffe, Preprocess::Torch] {
        let t = p.to_tensor(&img, 224, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 224, 224]);
        assert_eq!(p.to_image(&t).unwrap(), img, "{p:?}");
    }
}

#[test]
fn caffe_is_bgr_minus_mean_and_torch_is_normalised_rgb() {
    let img = RgbImage::from_pixel(224, 224, Rgb([255, 128, 0]));
    let at = |p: Preprocess| -> Vec<f32> {
        let t = p.to_tensor(&img, 224, &Device::Cpu).unwrap();
        (0..3).map(|c| t.get(c).unwrap().get(0).unwrap().get(0).unwrap().to_scalar::<f32>().unwrap()).collect()
    };
    let c = at(Preprocess::Caffe);
    let want = [0.0 - 103.939, 128.0 - 116.779, 255.0 - 123.68];
    for (a, b) in c.iter().zip(want) {
        assert!((a - b).abs() < 1e-3, "{c:?}");
    }
    let t = at(Preprocess::Torch);
    let want = [(1.0 - 0.485) / 0.229, (128. / 255. - 0.456) / 0.224, (0.0 - 0.406) / 0.225];
    for (a, b) in t.iter().zip(want) {
        assert!((a - b).abs() < 1e-4, "{t:?}");
    }
}

#[test]
fn non_square_images_are_resized_by_the_shorter_side_and_centre_cropped() {
    // Wide: black | white | black thirds; tall: the same rotated. The centre crop is the white part.
    let wide = RgbImage::from_fn(300, 100, |x, _| if (100..200).contains(&x) { Rgb([255; 3]) } else { Rgb([0; 3]) });
    let tall = RgbImage::from_fn(100, 300, |_, y| if (100..200).contains(&y) { Rgb([255; 3]) } else { Rgb([0; 3]) });
    for img in [wide, tall] {
        let p = Preprocess::Caffe;
        let t = p.to_tensor(&img, 224, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 224, 224]);
        let back = p.to_image(&t).unwrap();
        let white = back.pixels().filter(|px| px[0] > 200).count();
        assert!(white as f64 > 0.97 * 224. * 224., "only {white} white pixels");
    }
    // A small image is upscaled to fill the square, never padded.
    let small = RgbImage::from_pixel(40, 30, Rgb([10, 200, 30]));
    let back = Preprocess::Torch.to_image(&Preprocess::Torch.to_tensor(&small, 224, &Device::Cpu).unwrap()).unwrap();
    assert!(back.pixels().all(|px| px.0.iter().zip([10u8, 200, 30]).all(|(a, b)| a.abs_diff(b) <= 1)));
}
