#!/usr/bin/env python3
"""Draws layerinv's icon: a photo (sky, sun, hills) whose right side dissolves into a grid of
feature cells, each the mean colour of the photo under it, brighter cells larger, as a layer's
code sees it. Writes packaging/icons/layerinv-N.png at the hicolor sizes.

    python3 packaging/make_icon.py        # needs Pillow and NumPy
"""
import os
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = [16, 22, 24, 32, 48, 64, 128, 256, 512]
here = os.path.dirname(os.path.abspath(__file__))


def photo(n):
    """The landscape, n×n, float RGB 0–1."""
    y, x = np.mgrid[0:n, 0:n] / n
    img = np.zeros((n, n, 3))
    sky_top, sky_low = np.array([0.16, 0.38, 0.78]), np.array([0.66, 0.84, 0.97])
    img[:] = sky_top + (sky_low - sky_top) * y[..., None]
    sun = ((x - 0.30) ** 2 + (y - 0.30) ** 2) < 0.11 ** 2
    img[sun] = [1.0, 0.84, 0.30]
    far = y > 0.62 + 0.08 * np.sin(x * 5.0 + 0.6)
    img[far] = [0.30, 0.55, 0.40]
    near = y > 0.76 + 0.06 * np.sin(x * 8.0 + 2.0)
    img[near] = [0.16, 0.40, 0.18]
    return img


def icon(n=1024):
    img = photo(n)
    out = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    # The photo as a rounded card.
    card = Image.fromarray((img * 255).astype(np.uint8)).convert("RGBA")
    mask = Image.new("L", (n, n), 0)
    r = n // 9
    ImageDraw.Draw(mask).rounded_rectangle([n * 0.04, n * 0.04, n * 0.96, n * 0.96], radius=r, fill=255)
    # Where the photo dissolves: a diagonal band from left (photo) to right (cells).
    cells = 8
    step = n * 0.92 / cells
    x0 = n * 0.04
    grid = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(grid)
    rng = np.random.default_rng(3)
    for i in range(cells):
        for j in range(cells):
            cx, cy = x0 + (j + 0.5) * step, x0 + (i + 0.5) * step
            t = (j + 0.35 * i / cells) / cells  # how far into the dissolve
            if t < 0.45:
                continue
            ys, xs = int(x0 + i * step), int(x0 + j * step)
            mean = img[ys:ys + int(step), xs:xs + int(step)].reshape(-1, 3).mean(0)
            luma = mean @ [0.3, 0.59, 0.11]
            size = step * (0.42 + 0.5 * luma) * min(1.0, (t - 0.45) / 0.3 + 0.35)
            size *= 0.92 + 0.16 * rng.random()
            c = tuple(int(v * 255) for v in mean) + (255,)
            d.rounded_rectangle([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], radius=size * 0.18, fill=c)
    # The photo fades out to the right under the cells.
    y, x = np.mgrid[0:n, 0:n] / n
    fade = np.clip((0.78 - (x + 0.15 * y)) / 0.35, 0, 1)
    photo_alpha = Image.fromarray((fade * 255).astype(np.uint8))
    photo_alpha = Image.composite(photo_alpha, Image.new("L", (n, n), 0), mask)
    card.putalpha(photo_alpha)
    # A dark backing card so the cells read on any panel.
    back = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    ImageDraw.Draw(back).rounded_rectangle([n * 0.04, n * 0.04, n * 0.96, n * 0.96], radius=r, fill=(30, 34, 44, 255))
    out = Image.alpha_composite(out, back)
    out = Image.alpha_composite(out, grid)
    out = Image.alpha_composite(out, card)
    # A thin light rim.
    rim = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    ImageDraw.Draw(rim).rounded_rectangle([n * 0.04, n * 0.04, n * 0.96, n * 0.96], radius=r, outline=(255, 255, 255, 70), width=max(2, n // 128))
    return Image.alpha_composite(out, rim)


def main():
    big = icon()
    for s in SIZES:
        im = big.resize((s, s), Image.LANCZOS)
        im.save(os.path.join(here, "icons", f"layerinv-{s}.png"), optimize=True)
    print("wrote", ", ".join(f"layerinv-{s}.png" for s in SIZES))


if __name__ == "__main__":
    main()
