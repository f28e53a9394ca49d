#!/usr/bin/env python3
"""Pack the gathered photo corpus for a GPU machine: compact, pre-resized, deterministic tars.

Reads what scripts/gather_photos.py wrote (SRC/train/*.png, SRC/val/*.png, SRC/manifest.tsv),
shrinks every photo to the trainer's own size (shorter side 224, the size `layerinv train` scales
to for crops up to 224, so the loader takes the files as they are; the same rounding as the
loader's resize_shorter_side and a triangle filter like its FilterType::Triangle) and writes

  DST/photos-train-NN.tar   training photos as train/<name>.jpg, at most --max-mb each, packs of
                            about equal size; photos are ordered by the sha256 of their source PNG,
                            so every pack is a random mix of all sources
  DST/photos-val.tar        the held-out photos as val/<name>.jpg
  DST/packs.tsv             file in the pack, split, pack, sha256 of the source PNG (as in
                            manifest.tsv), source package, licence, sha256 of the JPEG, width, height
  DST/SHA256SUMS            of the packs and packs.tsv (`sha256sum -c SHA256SUMS` after a trip)

Unpacking every pack into one folder gives FOLDER/train and FOLDER/val, what `layerinv train
--data FOLDER/train --val FOLDER/val` reads (scripts/retrain_bundled_decoders.sh --packs DST does
it). JPEGs are baseline, Huffman-optimised, without chroma subsampling and without ICC profiles
(the trainer reads pixel values as they are). The output is deterministic: tar entries in a fixed
order with fixed mtime, owner and mode, so the same corpus and Pillow give the same bytes.
Old photos-*.tar in DST are removed first.

    python3 scripts/shrink_photos.py [SRC] [DST]          # defaults below, about 40 s
    python3 scripts/shrink_photos.py --survey 80,90,95    # size and PSNR per quality, writes nothing
    python3 scripts/shrink_photos.py --unpacked SRC .gpu/photos   # folders of JPEGs, no packs

Needs Pillow; without it in this Python the script re-runs itself in SRC/../gather-venv, which
gather_photos.py makes (pinned Pillow, so the JPEG bytes are reproducible).
"""
import argparse
import hashlib
import io
import math
import os
import sys
import tarfile

DEFAULT_SRC = "~/.cache/layerinv/photos"
DEFAULT_DST = "~/.cache/layerinv/packs"
SIZE = 224
QUALITY = 90
MAX_MB = 30.0
TAR_MTIME = 1767225600  # 2026-01-01 00:00:00 UTC, the same for every entry
PACK_PREFIX = "photos-"


def fail(msg):
    sys.exit(f"shrink_photos.py: {msg}")


def parse_args():
    ap = argparse.ArgumentParser(
        description="Shrink the gathered photos (scripts/gather_photos.py) to shorter side 224 and "
                    "write deterministic tar packs photos-train-NN.tar / photos-val.tar with a "
                    "manifest packs.tsv, for training on a machine without the corpus.")
    ap.add_argument("src", nargs="?", default=DEFAULT_SRC,
                    help=f"the gathered corpus: SRC/train, SRC/val, SRC/manifest.tsv (default {DEFAULT_SRC})")
    ap.add_argument("dst", nargs="?", default=DEFAULT_DST,
                    help=f"where the packs go (default {DEFAULT_DST})")
    ap.add_argument("--quality", type=int, default=QUALITY,
                    help=f"JPEG quality, 4:4:4 (default {QUALITY})")
    ap.add_argument("--max-mb", type=float, default=MAX_MB,
                    help=f"largest training pack in MB of 10^6 bytes (default {MAX_MB:g})")
    ap.add_argument("--size", type=int, default=SIZE,
                    help=f"shorter side in pixels (default {SIZE}, what the trainer scales to)")
    ap.add_argument("--unpacked", action="store_true",
                    help="write the JPEGs as DST/train/*.jpg and DST/val/*.jpg instead of packs "
                         "(the layout scripts/gpu_train_candidates.sh reads from .gpu/photos)")
    ap.add_argument("--survey", metavar="Q,Q,…",
                    help="only measure: total JPEG size and PSNR against the lossless shrunk photo "
                         "for each quality listed; writes nothing")
    a = ap.parse_args()
    a.src = os.path.abspath(os.path.expanduser(a.src))
    a.dst = os.path.abspath(os.path.expanduser(a.dst))
    if not 1 <= a.quality <= 100:
        fail(f"--quality {a.quality}: must be 1..100")
    if a.max_mb <= 0:
        fail(f"--max-mb {a.max_mb:g}: must be positive")
    if a.size < 16:
        fail(f"--size {a.size}: too small")
    if a.survey:
        try:
            a.survey = [int(q) for q in a.survey.split(",") if q.strip()]
        except ValueError:
            fail(f"--survey {a.survey}: give qualities as numbers, e.g. 85,90,95")
        if not a.survey or not all(1 <= q <= 100 for q in a.survey):
            fail("--survey: qualities must be 1..100")
    return a


def import_pillow(src):
    """Pillow from this Python, else re-run in gather_photos.py's venv, else a one-line error."""
    try:
        from PIL import Image  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(os.path.dirname(src), "gather-venv")
    py = os.path.join(venv, "bin", "python")
    if os.path.abspath(sys.prefix) != os.path.abspath(venv) and os.access(py, os.X_OK):
        os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])
    fail(f"needs Pillow: run python3 scripts/gather_photos.py first (it makes {venv}) "
         f"or pip install pillow")


def read_manifest(src):
    path = os.path.join(src, "manifest.tsv")
    if not os.path.isdir(src):
        fail(f"no folder {src}: run python3 scripts/gather_photos.py first")
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(src, split)):
            fail(f"no folder {os.path.join(src, split)}: run python3 scripts/gather_photos.py first")
    if not os.path.isfile(path):
        fail(f"no {path}: run python3 scripts/gather_photos.py first")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    head = lines[0].split("\t") if lines else []
    need = ("file", "split", "source", "licence", "sha256")
    if not all(k in head for k in need):
        fail(f"{path}: not a gather_photos.py manifest (needs columns {', '.join(need)})")
    rows = [dict(zip(head, l.split("\t"))) for l in lines[1:] if l]
    for r in rows:
        if r["split"] not in ("train", "val") or not r["file"].startswith(r["split"] + "/"):
            fail(f"{path}: unexpected row for {r['file']} (split {r['split']})")
    return rows


def shrink(path, size, sha256=None):
    """The photo at shorter side `size`, as the trainer's resize_shorter_side would make it;
    fails when the file's sha256 is not the manifest's."""
    from PIL import Image
    with open(path, "rb") as f:
        raw = f.read()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        fail(f"{path}: sha256 differs from manifest.tsv: rerun python3 scripts/gather_photos.py")
    with Image.open(io.BytesIO(raw)) as im:
        im = im.convert("RGB")
    w, h = im.size
    s = min(w, h)
    if s == size:
        return im
    nw = max(size, round(w * size / s))
    nh = max(size, round(h * size / s))
    return im.resize((nw, nh), Image.BILINEAR)  # triangle filter, widened when shrinking


def jpeg(im, quality):
    from PIL import ImageFile
    # optimize=True needs the whole JPEG in one buffer, which Pillow sizes at w*h bytes below
    # q95: too small for noisy photos in 4:4:4 ("Suspension not allowed here"). No effect on bytes.
    ImageFile.MAXBLOCK = max(ImageFile.MAXBLOCK, 4 * 3 * im.size[0] * im.size[1])
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, subsampling=0, optimize=True, progressive=False)
    return buf.getvalue()


def psnr(a, b):
    """PSNR in dB over all pixels and channels of two RGB images of one size."""
    from PIL import ImageChops, ImageStat
    diff = ImageChops.difference(a, b)
    st = ImageStat.Stat(diff)
    n = a.size[0] * a.size[1]
    mse = sum(st.sum2) / (3 * n)
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def decode(data):
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def mean_psnr(values):
    """Mean over photos of their PSNR in dB."""
    return sum(values) / len(values)


def survey(args, rows):
    shrunk = [shrink(os.path.join(args.src, r["file"]), args.size, r["sha256"]) for r in rows]
    print(f"{len(rows)} photos at shorter side {args.size}; JPEG 4:4:4, optimised Huffman")
    print(f"{'quality':>7} {'total MB':>9} {'train MB':>9} {'val MB':>7} "
          f"{'mean PSNR':>10} {'min PSNR':>9}")
    for q in args.survey:
        sizes, ps = {"train": 0, "val": 0}, []
        for r, im in zip(rows, shrunk):
            data = jpeg(im, q)
            sizes[r["split"]] += len(data)
            ps.append(psnr(im, decode(data)))
        tot = sizes["train"] + sizes["val"]
        print(f"{q:>7} {tot / 1e6:>9.1f} {sizes['train'] / 1e6:>9.1f} {sizes['val'] / 1e6:>7.1f} "
              f"{mean_psnr(ps):>8.2f} dB {min(ps):>6.2f} dB")


def tar_bytes(entries):
    """A deterministic ustar archive of (name, bytes) in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = TAR_MTIME
            ti.mode = 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.type = tarfile.REGTYPE
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def tar_size(sizes):
    """Bytes of a ustar archive holding files of these sizes (header + data to 512, 2 end blocks,
    padded to the 10240-byte record as tarfile writes it)."""
    n = sum(512 + -(-s // 512) * 512 for s in sizes) + 1024
    return -(-n // 10240) * 10240


def split_packs(items, max_bytes):
    """Cut the ordered (name, bytes) list into the fewest packs of at most max_bytes, of about
    equal size: a pack is closed when the next photo would take it past total / packs."""
    sizes = [len(d) for _, d in items]
    if not items:
        return []
    if tar_size([max(sizes)]) > max_bytes:
        fail(f"--max-mb {max_bytes / 1e6:g}: one photo alone is larger")
    n = max(1, math.ceil(tar_size(sizes) / max_bytes))
    while True:
        target = tar_size(sizes) / n
        packs, cur = [], []
        for it in items:
            if cur and len(packs) < n - 1 and tar_size([len(d) for _, d in cur + [it]]) > target:
                packs.append(cur)
                cur = []
            cur.append(it)
        packs.append(cur)
        if all(tar_size([len(d) for _, d in p]) <= max_bytes for p in packs):
            return packs
        n += 1


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def pack(args, rows):
    os.makedirs(args.dst, exist_ok=True)
    out = {"train": [], "val": []}
    ps = []
    for r in sorted(rows, key=lambda r: (r["split"], r["sha256"], r["file"])):
        im = shrink(os.path.join(args.src, r["file"]), args.size, r["sha256"])
        data = jpeg(im, args.quality)
        ps.append(psnr(im, decode(data)))
        name = os.path.splitext(r["file"])[0] + ".jpg"
        if len(name) > 99:
            fail(f"{name}: name too long for a ustar entry")
        out[r["split"]].append((name, data, r, im.size))
    if args.unpacked:
        for split in ("train", "val"):
            d = os.path.join(args.dst, split)
            os.makedirs(d, exist_ok=True)
            names = {os.path.basename(n) for n, _, _, _ in out[split]}
            for f in sorted(os.listdir(d)):
                if f.endswith(".jpg") and f not in names:
                    os.remove(os.path.join(d, f))
            for n, data, _, _ in out[split]:
                write_atomic(os.path.join(args.dst, n), data)
        print(f"{len(out['train'])} training and {len(out['val'])} held-out photos as JPEGs in "
              f"{args.dst}/{{train,val}}; JPEG q{args.quality} 4:4:4 at shorter side {args.size}: "
              f"mean PSNR {mean_psnr(ps):.2f} dB (min {min(ps):.2f}) against the lossless shrunk photo")
        return
    for f in sorted(os.listdir(args.dst)):
        if f.startswith(PACK_PREFIX) and f.endswith(".tar"):
            os.remove(os.path.join(args.dst, f))
    max_bytes = int(args.max_mb * 1e6)
    train = split_packs([(n, d) for n, d, _, _ in out["train"]], max_bytes)
    if len(train) > 100:
        fail(f"--max-mb {args.max_mb:g}: would make {len(train)} packs (at most 100)")
    packs = [(f"{PACK_PREFIX}train-{i:02d}.tar", p) for i, p in enumerate(train)]
    packs.append((f"{PACK_PREFIX}val.tar", [(n, d) for n, d, _, _ in out["val"]]))
    where = {}
    sums = []
    for fname, entries in packs:
        data = tar_bytes(entries)
        write_atomic(os.path.join(args.dst, fname), data)
        sums.append((hashlib.sha256(data).hexdigest(), fname))
        for n, _ in entries:
            where[n] = fname
        print(f"{fname}: {len(entries)} photos, {len(data) / 1e6:.1f} MB")
        if len(data) > max_bytes:
            print(f"warning: {fname} is over --max-mb {args.max_mb:g} (the held-out photos stay "
                  f"one pack)", file=sys.stderr)
    lines = ["file\tsplit\tpack\tsource_png_sha256\tsource\tlicence\tjpeg_sha256\twidth\theight"]
    for split in ("train", "val"):
        for n, d, r, (w, h) in out[split]:
            lines.append("\t".join([n, split, where[n], r["sha256"], r["source"], r["licence"],
                                    hashlib.sha256(d).hexdigest(), str(w), str(h)]))
    tsv = ("\n".join(lines) + "\n").encode()
    write_atomic(os.path.join(args.dst, "packs.tsv"), tsv)
    sums.append((hashlib.sha256(tsv).hexdigest(), "packs.tsv"))
    write_atomic(os.path.join(args.dst, "SHA256SUMS"),
                 "".join(f"{h}  {f}\n" for h, f in sums).encode())
    total = sum(os.path.getsize(os.path.join(args.dst, f)) for _, f in sums)
    print(f"{len(out['train'])} training and {len(out['val'])} held-out photos in {len(packs)} packs "
          f"({total / 1e6:.1f} MB) in {args.dst}; JPEG q{args.quality} 4:4:4 at shorter side "
          f"{args.size}: mean PSNR {mean_psnr(ps):.2f} dB (min {min(ps):.2f}) against the lossless "
          f"shrunk photo; packs.tsv sha256 {sums[-1][0]}")


def main():
    args = parse_args()
    rows = read_manifest(args.src)
    import_pillow(args.src)
    for r in rows:
        if not os.path.isfile(os.path.join(args.src, r["file"])):
            fail(f"{os.path.join(args.src, r['file'])} is in manifest.tsv but missing: "
                 f"rerun python3 scripts/gather_photos.py")
    if args.survey:
        survey(args, rows)
    else:
        pack(args, rows)


if __name__ == "__main__":
    main()
