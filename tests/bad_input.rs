//! Bad and odd input: each fails with one line naming the file and the problem (exit 1, no
//! panic), or, for odd but valid images, loads correctly.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{assert_clean_failure, layerinv, random_tensors, repo_path};
use layerinv::data::load_image;
use layerinv::model::Arch;
use std::path::Path;

fn odd(name: &str) -> String {
    repo_path(&format!("tests/data/odd/{name}")).to_string_lossy().into_owned()
}

fn features_of(image: &str, out: &Path) -> std::process::Output {
    layerinv(&["features", image, "--layer", "pool1", "--out", out.to_str().unwrap()])
}

#[test]
fn broken_images_fail_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    let cases = [
        ("not_an_image.jpg", "not an image"),
        ("empty.png", "empty file"),
        ("truncated_photo.jpg", "truncated or corrupt JPEG"),
        ("truncated_photo.png", "truncated or corrupt PNG"),
        ("does_not_exist.png", "No such file"),
    ];
    for (name, problem) in cases {
        let o = features_of(&odd(name), &out);
        assert_clean_failure(&o, &[name, problem]);
        assert!(!out.exists(), "{name}: no output may be written");
    }
}

/// What is not a regular file, and a file over the size limit, are refused before they are read:
/// `/dev/zero` once grew the process to 14.8 GB, a 4 GB video to 4.3 GB. The 4 GB file here is
/// sparse (no disk used).
#[test]
fn devices_and_huge_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    let video = dir.path().join("holiday.mp4");
    std::fs::File::create(&video).unwrap().set_len(4 << 30).unwrap();
    for (path, problem) in [("/dev/zero", "not a regular file"), (video.to_str().unwrap(), "over the 256 MB limit")] {
        assert_clean_failure(&features_of(path, &out), &[path, problem]);
        let err = load_image(Path::new(path)).err().unwrap().to_string();
        assert!(err.contains(problem), "{err}");
    }
    // A folder, and a file whose first bytes are no image format's (read no further).
    assert_clean_failure(&features_of(dir.path().to_str().unwrap(), &out), &["not a regular file"]);
    let text = dir.path().join("notes.png");
    std::fs::write(&text, vec![b'x'; 1 << 20]).unwrap();
    assert_clean_failure(&features_of(text.to_str().unwrap(), &out), &["notes.png", "not an image"]);
}

/// A failed write names the file the user asked for, not the temporary file beside it.
#[test]
fn a_failed_write_names_the_users_path() {
    let o = features_of(&repo_path("assets/coffee.png").to_string_lossy(), Path::new("/proc/nope.npy"));
    assert_clean_failure(&o, &["/proc/nope.npy"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains(".tmp"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_20000_pixel_image_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    // A real 20000×20000 greyscale PNG (400 MB of pixels, a few hundred KB compressed).
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut enc = png::Encoder::new(f, 20_000, 20_000);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_compression(png::Compression::Fastest);
        let mut w = enc.write_header().unwrap().into_stream_writer().unwrap();
        let row = vec![0u8; 20_000];
        for _ in 0..20_000 {
            std::io::Write::write_all(&mut w, &row).unwrap();
        }
        w.finish().unwrap();
    }
    let err = load_image(&path).err().unwrap().to_string();
    assert!(err.contains("huge.png") && err.contains("20000×20000") && err.contains("limit"), "{err}");
    let o = features_of(path.to_str().unwrap(), &dir.path().join("f.npy"));
    assert_clean_failure(&o, &["huge.png", "20000×20000"]);
}

#[test]
fn odd_but_valid_images_load_as_rgb() {
    let photo = load_image(Path::new(&odd("photo.png"))).unwrap();
    let mean_abs_diff = |a: &image::RgbImage, b: &image::RgbImage| {
        a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>()
            / a.as_raw().len() as f64
    };
    for name in ["grey.png", "grey16.png", "rgba.png", "cmyk.jpg"] {
        let img = load_image(Path::new(&odd(name))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.dimensions(), (150, 100), "{name}");
        if name.starts_with("grey") {
            assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]), "{name} should be grey");
        }
    }
    // 16-bit grey is the 8-bit grey scaled, not garbage.
    let g8 = load_image(Path::new(&odd("grey.png"))).unwrap();
    let g16 = load_image(Path::new(&odd("grey16.png"))).unwrap();
    assert!(mean_abs_diff(&g8, &g16) < 2.0);
    // Half-transparent over white: brighter than the photo, and half way to white.
    let rgba = load_image(Path::new(&odd("rgba.png"))).unwrap();
    let expected: Vec<u8> =
        photo.as_raw().iter().map(|&v| ((v as f64 * 128. / 255.) + 255. * (1. - 128. / 255.)).round() as u8).collect();
    let expected = image::RgbImage::from_raw(150, 100, expected).unwrap();
    assert!(mean_abs_diff(&rgba, &expected) < 1.0);
    // CMYK JPEG converts back to roughly the photo's colours.
    let cmyk = load_image(Path::new(&odd("cmyk.jpg"))).unwrap();
    assert!(mean_abs_diff(&cmyk, &photo) < 12.0, "cmyk off by {}", mean_abs_diff(&cmyk, &photo));
}

/// Write random VGG-11 trunk weights (f16) to `path` after `edit` changes the tensor map.
fn write_weights(path: &Path, edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>)) {
    let mut t = random_tensors(Arch::Vgg11, false, 1.0);
    edit(&mut t);
    let t: Vec<(String, Tensor)> = t.into_iter().map(|(k, v)| (k, v.to_dtype(DType::F16).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(t, None).unwrap()).unwrap();
}

#[test]
fn bad_weights_fail_with_one_line_naming_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    write_weights(&p("good.safetensors"), |_| {});
    let o = layerinv(&["info", "--model", p("good.safetensors").to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    write_weights(&p("missing.safetensors"), |t| {
        t.remove("features.18.weight");
    });
    // Metadata-free file whose convs match no arch: the closest arch names the first bad tensor.
    let o = layerinv(&["info", "--model", p("missing.safetensors").to_str().unwrap()]);
    assert_clean_failure(&o, &["missing.safetensors", "features.18.weight"]);

    write_weights(&p("misshaped.safetensors"), |t| {
        t.insert("features.3.weight".into(), Tensor::zeros((128, 64, 5, 5), DType::F32, &Device::Cpu).unwrap());
    });
    let o = layerinv(&["info", "--model", p("misshaped.safetensors").to_str().unwrap()]);
    assert_clean_failure(&o, &["misshaped.safetensors", "features.3.weight", "128×64×5×5", "128×64×3×3"]);

    write_weights(&p("badfc.safetensors"), |t| {
        t.insert("classifier.0.weight".into(), Tensor::zeros((4096, 100), DType::F32, &Device::Cpu).unwrap());
        t.insert("classifier.0.bias".into(), Tensor::zeros(4096, DType::F32, &Device::Cpu).unwrap());
    });
    let o = layerinv(&["info", "--model", p("badfc.safetensors").to_str().unwrap()]);
    assert_clean_failure(&o, &["badfc.safetensors", "fc6.weight", "4096×100"]);

    let bytes = std::fs::read(p("good.safetensors")).unwrap();
    std::fs::write(p("truncated.safetensors"), &bytes[..bytes.len() / 3]).unwrap();
    let o = layerinv(&["info", "--model", p("truncated.safetensors").to_str().unwrap()]);
    assert_clean_failure(&o, &["truncated.safetensors", "truncated or corrupt"]);

    std::fs::write(p("empty.safetensors"), b"").unwrap();
    assert_clean_failure(
        &layerinv(&["info", "--model", p("empty.safetensors").to_str().unwrap()]),
        &["empty.safetensors", "empty file"],
    );

    std::fs::write(p("old.pth"), b"\x80\x02not a zip archive at all").unwrap();
    assert_clean_failure(&layerinv(&["info", "--model", p("old.pth").to_str().unwrap()]), &["old.pth", "zip-format"]);

    std::fs::write(p("junk.onnx"), [0xffu8; 64]).unwrap();
    assert_clean_failure(&layerinv(&["info", "--model", p("junk.onnx").to_str().unwrap()]), &["junk.onnx", "ONNX"]);

    assert_clean_failure(
        &layerinv(&["info", "--model", p("nope.safetensors").to_str().unwrap()]),
        &["nope.safetensors", "No such file"],
    );
    assert_clean_failure(
        &layerinv(&["info", "--model", p("weights.txt").to_str().unwrap()]),
        &["weights.txt", "unknown weights format"],
    );
}

/// A mistyped model name is not taken for a file path: the command line refuses it before
/// anything runs, one line naming the choices, for every command that takes `--model`.
#[test]
fn a_mistyped_model_name_names_the_choices() {
    for args in [
        &["info", "--model", "vgg61"][..],
        &["reconstruct", "x.png", "--layer", "pool1", "--out", "y.png", "--model", "vgg61"],
        &["eval", "--data", ".", "--model", "vgg61"],
        &["--model", "vgg61"],
    ] {
        let out = common::layerinv(args);
        common::assert_usage_error(&out, &["unknown model \"vgg61\"", "bundled, vgg16, vgg19", "weights file"]);
    }
    // A path that is missing is still named as a path.
    let out = common::layerinv(&["info", "--model", "nowhere/vgg16.safetensors"]);
    common::assert_clean_failure(&out, &["nowhere/vgg16.safetensors"]);
}

/// The command line checks its other named choices before anything runs: one line each.
#[test]
fn devices_views_and_downloads_are_checked_by_the_command_line() {
    let out = common::layerinv(&["eval", "--data", ".", "--device", "gpu"]);
    common::assert_usage_error(&out, &["'gpu'", "--device", "cpu, cuda, cuda:N or auto"]);
    let out = common::layerinv(&["reconstruct", "x.png", "--layer", "pool1", "--out", "y.png", "--device", "cuda:x"]);
    common::assert_usage_error(&out, &["'cuda:x'", "bad CUDA device number"]);
    let out = common::layerinv(&["--view", "comapre"]);
    common::assert_usage_error(&out, &["'comapre'", "--view", "compare, diff, channels, all-layers"]);
    let out = common::layerinv(&["fetch", "vgg61"]);
    common::assert_usage_error(&out, &["'vgg61'", "vgg16, vgg19"]);
}
