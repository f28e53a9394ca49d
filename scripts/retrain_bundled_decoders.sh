#!/usr/bin/env bash
# The bundled decoders' recipe (weights/README.md): SAE and SWWAE for pool1–pool5 of the bundled
# VGG-16 trunk, both kinds from scratch with the same budget, on the photos that
# scripts/gather_photos.py collects. The bundled decoders predate the data-dependent
# initialisation, so this recipe starts them as they were (--init uniform: ±1/√fan_in);
# drop it for the default start (--init scales; docs/fidelity.md). Usage: scripts/retrain_bundled_decoders.sh [OUT_DIR] [layerinv args…]
# (e.g. `--device cuda`). Copies nothing into weights/: check `layerinv eval` first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-decoders}; shift || true
photos=${LAYERINV_PHOTOS:-$HOME/.cache/layerinv/photos}
[ -d "$photos/train" ] || { echo "no $photos/train: run python3 scripts/gather_photos.py first" >&2; exit 1; }
bin=${LAYERINV:-target/release/layerinv}
[ -x "$bin" ] || cargo build --release
common=(--data "$photos/train" --val "$photos/val" --out "$out" --init uniform "$@")
"$bin" train "${common[@]}" --layers pool1 --width 1    --crop 64 --batch 8 --steps 1500
"$bin" train "${common[@]}" --layers pool2 --width 1    --crop 64 --batch 8 --steps 1500
"$bin" train "${common[@]}" --layers pool3 --width 0.5  --crop 64 --batch 8 --steps 1500
"$bin" train "${common[@]}" --layers pool4 --width 0.25 --crop 96 --batch 4 --steps 1500
"$bin" train "${common[@]}" --layers pool5 --width 0.25 --crop 96 --batch 4 --steps 1500
"$bin" train "${common[@]}" --layers pool4,pool5 --width 0.25 --crop 96 --batch 4 --steps 3000 --resume
echo "decoders in $out; score them with: $bin eval --data $photos/val --decoders $out"
