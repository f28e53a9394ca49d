#!/usr/bin/env bash
# The bundled decoders' recipe (weights/README.md): SAE and SWWAE for pool1–pool5 of the bundled
# VGG-16 trunk, both kinds from scratch with the same budget (the data-dependent initialisation,
# objective `first`), on the photos that scripts/gather_photos.py collects.
# Usage: scripts/retrain_bundled_decoders.sh [OUT_DIR] [layerinv args…] (e.g. `--device cuda`).
# LAYERS=pool5,pool4 scripts/retrain_bundled_decoders.sh trains only those groups.
# Copies nothing into weights/: check `layerinv eval` first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-decoders}; shift || true
photos=${LAYERINV_PHOTOS:-$HOME/.cache/layerinv/photos}
[ -d "$photos/train" ] || { echo "no $photos/train: run python3 scripts/gather_photos.py first" >&2; exit 1; }
bin=${LAYERINV:-target/release/layerinv}
[ -x "$bin" ] || cargo build --release
want=${LAYERS:-pool1,pool2,pool3,pool4,pool5}
common=(--data "$photos/train" --val "$photos/val" --out "$out" "$@")
group() { # group LAYERS ARGS…: train when any of LAYERS is wanted
  local layers=$1; shift
  for l in ${layers//,/ }; do
    if [[ ",$want," == *",$l,"* ]]; then "$bin" train "${common[@]}" --layers "$layers" "$@"; return; fi
  done
}
group pool4,pool5 --width 0.25 --crop 96 --batch 4 --steps 2000
group pool3       --width 0.5  --crop 64 --batch 8 --steps 1500
group pool1       --width 1    --crop 64 --batch 8 --steps 1500
group pool2       --width 1    --crop 64 --batch 8 --steps 1500
echo "decoders in $out; score them with: $bin eval --data $photos/val --decoders $out"
