#!/usr/bin/env python3
# Usage: python3 scripts/shrink_photos.py SRC DST (needs Pillow).
# Shrink the gathered photos to the trainer's own size (shorter side 224, the triangle filter the
# loader uses) so that they travel to the GPU machine; JPEG q95 without chroma subsampling.
import os, sys
from PIL import Image
src, dst = sys.argv[1], sys.argv[2]
for split in ("train", "val"):
    os.makedirs(os.path.join(dst, split), exist_ok=True)
    for root, _, files in os.walk(os.path.join(src, split)):
        for f in sorted(files):
            p = os.path.join(root, f)
            try:
                im = Image.open(p).convert("RGB")
            except Exception as e:
                print("skip", p, e); continue
            w, h = im.size; s = min(w, h)
            if s != 224:
                nw, nh = max(224, round(w * 224 / s)), max(224, round(h * 224 / s))
                im = im.resize((nw, nh), Image.BILINEAR)
            rel = os.path.relpath(p, os.path.join(src, split)).replace(os.sep, "_")
            im.save(os.path.join(dst, split, os.path.splitext(rel)[0] + ".jpg"), quality=95, subsampling=0)
