#!/usr/bin/env bash
# The bundled decoders' recipe (weights/README.md): SAE and SWWAE for pool1–pool5 of the bundled
# VGG-16 trunk, both kinds from scratch with the same budget, on the photos that
# scripts/gather_photos.py collects. Made for a GPU (`--device cuda`, a build from
# scripts/build-cuda.sh): about 8 minutes of an H200 for the runs the bundle had; on two CPU cores
# it would take days. Copies nothing into weights/: check `layerinv eval` first.
#
#   scripts/retrain_bundled_decoders.sh [--packs DIR] [OUT_DIR] [layerinv args…]
#
# Photos: $LAYERINV_PHOTOS/{train,val} (default ~/.cache/layerinv/photos, what gather_photos.py
# writes). With --packs DIR (on a machine without the corpus, Rust or internet): the packs that
# scripts/shrink_photos.py wrote (DIR/photos-*.tar, checked against DIR/SHA256SUMS when it is
# there) are unpacked into $LAYERINV_PHOTOS (default ${TMPDIR:-/tmp}/layerinv-photos; its train/
# and val/ are replaced) and trained from. Binary: $LAYERINV, else target/release/layerinv, built
# with cargo if missing and cargo is there. Example on the GPU machine:
#   LAYERINV=.gpu/bin/layerinv scripts/retrain_bundled_decoders.sh --packs .gpu/packs decoders --device cuda
# (`scripts/gpu-check.sh train` does this within a time budget and brings the decoders back).
#
# LAYERINV_DEADLINE (seconds since the epoch, `date +%s`): each run gets the time left and is then
# interrupted as by Ctrl-C (its checkpoint saved: the same command with --resume continues it);
# the runs after it are skipped. Extra arguments go to every run, e.g. `--kinds upconv`.
set -euo pipefail
cd "$(dirname "$0")/.."
packs=
if [ "${1:-}" = --packs ]; then
  [ $# -ge 2 ] || { echo "--packs needs a folder" >&2; exit 1; }
  packs=$2; shift 2
fi
out=${1:-decoders}; shift || true
if [ -n "$packs" ]; then
  [ -d "$packs" ] || { echo "no folder $packs (--packs)" >&2; exit 1; }
  tars=("$packs"/photos-*.tar)
  [ -e "${tars[0]}" ] || { echo "no photos-*.tar in $packs: run python3 scripts/shrink_photos.py first" >&2; exit 1; }
  [ -e "$packs/photos-val.tar" ] || echo "warning: no photos-val.tar in $packs; training without held-out photos fails" >&2
  if [ -f "$packs/SHA256SUMS" ]; then
    # only the packs that travelled are checked (a trip may carry some of them)
    (cd "$packs" && grep -F -f <(printf '  %s\n' "${tars[@]##*/}") SHA256SUMS | sha256sum --quiet -c -) \
      || { echo "packs in $packs do not match their SHA256SUMS" >&2; exit 1; }
  fi
  photos=${LAYERINV_PHOTOS:-${TMPDIR:-/tmp}/layerinv-photos}
  [ ! -e "$photos/manifest.tsv" ] || { echo "$photos holds a gathered corpus (manifest.tsv): give LAYERINV_PHOTOS another folder for the packs" >&2; exit 1; }
  mkdir -p "$photos"; rm -rf "$photos/train" "$photos/val"
  for t in "${tars[@]}"; do tar -xf "$t" -C "$photos" --no-same-owner; done
  echo "unpacked ${#tars[@]} packs into $photos: $(find "$photos/train" -type f 2>/dev/null | wc -l) training, $(find "$photos/val" -type f 2>/dev/null | wc -l) held-out photos" >&2
else
  photos=${LAYERINV_PHOTOS:-$HOME/.cache/layerinv/photos}
fi
[ -d "$photos/train" ] || { echo "no $photos/train: run python3 scripts/gather_photos.py first (or give --packs)" >&2; exit 1; }
bin=${LAYERINV:-target/release/layerinv}
if [ ! -x "$bin" ]; then
  [ -z "${LAYERINV:-}" ] || { echo "LAYERINV=$bin is not an executable" >&2; exit 1; }
  command -v cargo >/dev/null || { echo "no $bin and no cargo here: set LAYERINV=path/to/layerinv" >&2; exit 1; }
  cargo build --release
fi
common=(--data "$photos/train" --val "$photos/val" --out "$out" --batch 16 --init uniform "$@")
# Each run's record (run.json, with its validation curve) is kept as OUT/run-N.json, since the next
# run in the folder writes its own: `python3 scripts/curves.py OUT/run-*.json --svg docs/…` plots them.
n=0
train() {
    n=$((n + 1))
    local rc=0
    if [ -z "${LAYERINV_DEADLINE:-}" ]; then
        "$bin" train "${common[@]}" "$@" || rc=$?
    else
        local left=$((LAYERINV_DEADLINE - $(date +%s)))
        if [ "$left" -lt 60 ]; then
            echo "skipped, the deadline is near: train $*" >&2
            return 0
        fi
        timeout -s INT -k 120 "$left" "$bin" train "${common[@]}" "$@" || rc=$?
        if [ "$rc" -eq 124 ]; then
            echo "stopped at the deadline: train $* (checkpoint saved; run it again with --resume)" >&2
            rc=0
        fi
    fi
    [ ! -f "$out/run.json" ] || cp "$out/run.json" "$out/run-$n.json"
    return "$rc"
}
train --layers pool1,pool2 --width 1    --crop 128 --steps 4384
train --layers pool3       --width 0.5  --crop 128 --steps 5402
train --layers pool4,pool5 --width 0.25 --crop 192 --steps 1478
# Warm restarts of the schedule, longer (pool1/pool2 and pool4/pool5 were still improving).
train --layers pool1,pool2 --width 1    --crop 128 --steps 10000 --resume
train --layers pool4,pool5 --width 0.25 --crop 192 --steps 4500 --resume
echo "decoders in $out; score them with: $bin eval --data $photos/val --decoders $out"
