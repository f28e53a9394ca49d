#!/usr/bin/env python3
"""Regenerate the odd and broken image fixtures in tests/data/odd from assets/chelsea.png.
Needs pillow and numpy. The 20000x20000 image is made by the test itself (tests/bad_input.rs)."""
import os
import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "tests", "data", "odd")
os.makedirs(out, exist_ok=True)
src = Image.open(os.path.join(here, "..", "assets", "chelsea.png")).convert("RGB").resize((150, 100))

src.convert("L").save(f"{out}/grey.png")
grey16 = (np.asarray(src.convert("L"), dtype=np.uint16) * 257)  # full 16-bit range
Image.fromarray(grey16).save(f"{out}/grey16.png")
rgba = src.convert("RGBA"); rgba.putalpha(128); rgba.save(f"{out}/rgba.png")
src.convert("CMYK").save(f"{out}/cmyk.jpg", quality=90)
src.save(f"{out}/photo.jpg", quality=90)
src.save(f"{out}/photo.png")
for name in ("photo.jpg", "photo.png"):
    data = open(f"{out}/{name}", "rb").read()
    open(f"{out}/truncated_{name}", "wb").write(data[: len(data) // 2])
open(f"{out}/empty.png", "wb").close()
open(f"{out}/not_an_image.jpg", "w").write("these are notes, not a picture\n")
