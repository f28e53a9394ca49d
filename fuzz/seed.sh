#!/usr/bin/env bash
# Seed corpora for the fuzz targets from the repository's own valid files.
#   fuzz/seed.sh && cargo +nightly fuzz run image -- -max_total_time=600
set -euo pipefail
cd "$(dirname "$0")"
root=..
mkdir -p corpus/image corpus/weights corpus/decoder
cp $root/assets/*.png $root/assets/*.jpg corpus/image/ 2>/dev/null || true
cp $root/tests/data/odd/* corpus/image/ 2>/dev/null || true
# weights (first byte: 0 safetensors, 1 pth, 2 onnx) and checkpoints: the valid files the
# mutation test builds, kept by it.
(cd $root && LAYERINV_FUZZ_SEEDS=$PWD/fuzz/corpus cargo test -q --test mutations -- mutated_weights mutated_decoders)
# decoder: first byte bit 0 = checkpoint, bit 1 = SWWAE, bits 2.. = layer (0 pool1).
{ printf '\x00'; cat $root/weights/vgg16_pool1_sae.safetensors; } >corpus/decoder/pool1_sae
{ printf '\x02'; cat $root/weights/vgg16_pool1_swwae.safetensors; } >corpus/decoder/pool1_swwae
ls corpus/*
