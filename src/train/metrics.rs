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
