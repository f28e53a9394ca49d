//! Image fidelity: MSE, PSNR and SSIM between 8-bit RGB images of the same size.

use image::RgbImage;

/// Mean squared error in 0–1 pixel units over all pixels and channels.
pub fn mse(a: &RgbImage, b: &RgbImage) -> f64 {
    let n = a.as_raw().len().max(1) as f64;
    a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| ((x as f64 - y as f64) / 255.0).powi(2)).sum::<f64>() / n
}

/// PSNR in dB for an MSE in 0–1 units; infinite for identical images.
pub fn psnr(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// Gaussian window of SSIM (Wang et al. 2004): 11 taps, σ = 1.5, normalised.
fn window() -> [f64; 11] {
    let mut w = [0.0; 11];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f64 = w.iter().sum();
    w.map(|v| v / s)
}

/// Separable Gaussian filter over the positions where the whole window fits ("valid").
fn filter(img: &[f64], w: usize, h: usize) -> (Vec<f64>, usize, usize) {
    let k = window();
    let (ow, oh) = (w - 10, h - 10);
    let mut rows = vec![0.0; ow * h];
    for y in 0..h {
        for x in 0..ow {
            rows[y * ow + x] = (0..11).map(|i| k[i] * img[y * w + x + i]).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..11).map(|i| k[i] * rows[(y + i) * ow + x]).sum();
        }
    }
    (out, ow, oh)
}

/// Mean SSIM over the three channels (Gaussian 11×11 window, σ 1.5, K1 0.01, K2 0.03, L 255),
/// averaged over the positions where the window fits. 1.0 for identical images. Images smaller
/// than the window are compared as one window over the whole image.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    for c in 0..3 {
        let x: Vec<f64> = a.pixels().map(|p| p[c] as f64).collect();
        let y: Vec<f64> = b.pixels().map(|p| p[c] as f64).collect();
        if w < 11 || h < 11 {
            let n = x.len() as f64;
            let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
            let vx = x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / n;
            let vy = y.iter().map(|v| (v - my).powi(2)).sum::<f64>() / n;
            let cxy = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>() / n;
            total += ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            continue;
        }
        let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(a, b)| a * b).collect::<Vec<f64>>();
        let (mx, ow, oh) = filter(&x, w, h);
        let (my, _, _) = filter(&y, w, h);
        let (sxx, _, _) = filter(&prod(&x, &x), w, h);
        let (syy, _, _) = filter(&prod(&y, &y), w, h);
        let (sxy, _, _) = filter(&prod(&x, &y), w, h);
        let mut sum = 0.0;
        for i in 0..ow * oh {
            let (ux, uy) = (mx[i], my[i]);
            let (vx, vy, cxy) = (sxx[i] - ux * ux, syy[i] - uy * uy, sxy[i] - ux * uy);
            sum += ((2.0 * ux * uy + c1) * (2.0 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
        }
        total += sum / (ow * oh) as f64;
    }
    total / 3.0
}

/// Where a photo is flat: local 7×7 luma standard deviation under this, in 0–255 units.
pub const FLAT_STD: f64 = 4.0;

/// Speckle: colour noise a decoder paints where the photo is smooth (skies, walls). Over the
/// pixels where `input` is flat (7×7 luma std < [`FLAT_STD`]), the mean |x − blur(x)| (Gaussian
/// σ 1.5, every channel, 0–255 units) of `rec` minus the input's own. About 0 for a faithful
/// copy, below 0 for a blurrier one; `None` when the photo has no flat pixel.
pub fn speckle(rec: &RgbImage, input: &RgbImage) -> Option<f64> {
    let (w, h) = (input.width() as usize, input.height() as usize);
    if rec.dimensions() != input.dimensions() || w == 0 || h == 0 {
        return None;
    }
    let flat = flat_mask(input);
    let n = flat.iter().filter(|&&f| f).count();
    if n == 0 {
        return None;
    }
    let detail = |img: &RgbImage| -> f64 {
        let mut sum = 0.0;
        for c in 0..3 {
            let x: Vec<f64> = img.pixels().map(|p| p[c] as f64).collect();
            let b = blur(&x, w, h);
            sum += x.iter().zip(&b).zip(&flat).filter(|(_, &f)| f).map(|((v, s), _)| (v - s).abs()).sum::<f64>();
        }
        sum / (3 * n) as f64
    };
    Some(detail(rec) - detail(input))
}

/// Where [`speckle`] looks: the pixels (row-major) whose 7×7 neighbourhood (clipped at the
/// borders) has a luma standard deviation under [`FLAT_STD`].
pub fn flat_mask(img: &RgbImage) -> Vec<bool> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let luma: Vec<f64> =
        img.pixels().map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect();
    // Integral images of the luma and its square.
    let (mut s, mut s2) = (vec![0.0; (w + 1) * (h + 1)], vec![0.0; (w + 1) * (h + 1)]);
    for y in 0..h {
        for x in 0..w {
            let v = luma[y * w + x];
            let i = (y + 1) * (w + 1) + x + 1;
            s[i] = v + s[i - 1] + s[i - w - 1] - s[i - w - 2];
            s2[i] = v * v + s2[i - 1] + s2[i - w - 1] - s2[i - w - 2];
        }
    }
    let rect = |t: &[f64], x0: usize, y0: usize, x1: usize, y1: usize| {
        t[y1 * (w + 1) + x1] - t[y0 * (w + 1) + x1] - t[y1 * (w + 1) + x0] + t[y0 * (w + 1) + x0]
    };
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let (x0, y0, x1, y1) = (x.saturating_sub(3), y.saturating_sub(3), (x + 4).min(w), (y + 4).min(h));
            let n = ((x1 - x0) * (y1 - y0)) as f64;
            let mean = rect(&s, x0, y0, x1, y1) / n;
            let var = (rect(&s2, x0, y0, x1, y1) / n - mean * mean).max(0.0);
            out[y * w + x] = var.sqrt() < FLAT_STD;
        }
    }
    out
}

/// Gaussian blur, σ 1.5 (radius 5), separable, the border repeated.
fn blur(x: &[f64], w: usize, h: usize) -> Vec<f64> {
    let k = window();
    let at = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut rows = vec![0.0; w * h];
    for y in 0..h {
        for xx in 0..w {
            rows[y * w + xx] = (0..11).map(|i| k[i] * x[y * w + at(xx as isize + i as isize - 5, w)]).sum();
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for xx in 0..w {
            out[y * w + xx] = (0..11).map(|i| k[i] * rows[at(y as isize + i as isize - 5, h) * w + xx]).sum();
        }
    }
    out
}
