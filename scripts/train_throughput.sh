#!/usr/bin/env bash
# Training throughput of `layerinv train` for two builds, alternating rounds, medians: the
# measure of issue 38 ("several times cheaper on the CPU"). Each case is the bundle's settings
# for its layer (batch 16; pool1 crop 128 width 1, pool3 crop 128 width 0.5, pool5 crop 192 width
# 0.25) with the kinds it names; the figure is the images/s `train` reports after STEPS steps.
#
#   scripts/train_throughput.sh OLD_BINARY NEW_BINARY [ROUNDS] [STEPS]
#
# Photos from ~/.cache/layerinv/photos (scripts/gather_photos.py); LAYERINV_PHOTOS overrides.
# Prints one line per run and a Markdown table of medians (and their ratio, new over old).
set -euo pipefail
old=${1:?old binary}; new=${2:?new binary}; rounds=${3:-3}; steps=${4:-10}
photos=${LAYERINV_PHOTOS:-$HOME/.cache/layerinv/photos}
[ -d "$photos/train" ] || { echo "no $photos/train: run python3 scripts/gather_photos.py first" >&2; exit 1; }
threads=${THREADS:-$(nproc)}
cases=(
  "pool1 all:--layers pool1 --crop 128 --width 1"
  "pool3 all:--layers pool3 --crop 128 --width 0.5"
  "pool5 all:--layers pool5 --crop 192 --width 0.25"
  "pool1 upconv:--layers pool1 --crop 128 --width 1 --kinds upconv"
  "pool1 sae:--layers pool1 --crop 128 --width 1 --kinds sae"
  "pool3 swwae:--layers pool3 --crop 128 --width 0.5 --kinds swwae"
)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A got
for r in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    name=${c%%:*}; args=${c#*:}
    for which in old new; do
      bin=${!which}; rm -rf "$tmp/out"
      # shellcheck disable=SC2086
      "$bin" --threads "$threads" train --data "$photos/train" --val "$photos/val" --val-images 1 \
        --steps "$steps" --batch 16 --val-every 0 --checkpoint-every 0 --out "$tmp/out" $args \
        > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
      rate=$(grep -o "step $steps/$steps: .* \([0-9.]*\) img/s" "$tmp/log" | grep -o "[0-9.]* img/s" | cut -d' ' -f1)
      echo "round $r  $name  $which  $rate img/s"
      got["$name/$which"]+="$rate "
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "| case | old img/s (rounds) | new img/s (rounds) | median new / old |"
echo "|---|---|---|---|"
for c in "${cases[@]}"; do
  name=${c%%:*}
  o=$(echo "${got[$name/old]}" | median); n=$(echo "${got[$name/new]}" | median)
  echo "| $name | $o (${got[$name/old]% }) | $n (${got[$name/new]% }) | $(awk -v a="$n" -v b="$o" 'BEGIN {printf "%.2f", a / b}') |"
done
