#!/usr/bin/env bash
# The bundled decoders' recipe (weights/README.md): SAE and SWWAE for pool1–pool5 of the bundled
# VGG-16 trunk, both kinds from scratch with the same budget, on the photos that
# scripts/gather_photos.py collects. Made for a GPU (`--device cuda`, a build from
# scripts/build-cuda.sh): about 8 minutes of an H200 for the runs the bundle had; on two CPU cores
# it would take days. Usage: scripts/retrain_bundled_decoders.sh [OUT_DIR] [layerinv args…]
# Copies nothing into weights/: check `layerinv eval` first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-decoders}; shift || true
photos=${LAYERINV_PHOTOS:-$HOME/.cache/layerinv/photos}
[ -d "$photos/train" ] || { echo "no $photos/train: run python3 scripts/gather_photos.py first" >&2; exit 1; }
bin=${LAYERINV:-target/release/layerinv}
[ -x "$bin" ] || cargo build --release
common=(--data "$photos/train" --val "$photos/val" --out "$out" --batch 16 --init uniform "$@")
"$bin" train "${common[@]}" --layers pool1,pool2 --width 1    --crop 128 --steps 4384
"$bin" train "${common[@]}" --layers pool3       --width 0.5  --crop 128 --steps 5402
"$bin" train "${common[@]}" --layers pool4,pool5 --width 0.25 --crop 192 --steps 1478
# Warm restarts of the schedule, longer (pool1/pool2 and pool4/pool5 were still improving).
"$bin" train "${common[@]}" --layers pool1,pool2 --width 1    --crop 128 --steps 10000 --resume
"$bin" train "${common[@]}" --layers pool4,pool5 --width 0.25 --crop 192 --steps 4500 --resume
echo "decoders in $out; score them with: $bin eval --data $photos/val --decoders $out"
