#!/usr/bin/env bash
# The CUDA checks, built here and run on a machine with a GPU and no Rust toolchain.
#
#   scripts/gpu-check.sh pack   # here: build (scripts/build-cuda.sh), pack .gpu/ (git-ignored)
#   scripts/gpu-check.sh run    # there, from the repo root with .gpu/ copied along:
#                               #   op + decoder tests on CUDA, then `layerinv bench --device cuda`
#                               #   and torch_ref.py on the same card, results in $OUT (or .gpu/out)
#
# The tests run with NVIDIA_TF32_OVERRIDE=0 so that cuDNN computes in full f32 and the CPU
# tolerances hold; the benchmarks run with TF32 allowed for convolutions, as PyTorch's default.
# BENCH_ARGS (default "--batch 8 --steps 20") go to both benchmarks.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bench_args=${BENCH_ARGS:---batch 8 --steps 20}

case "${1:-}" in
pack)
    set -e
    scripts/build-cuda.sh --no-default-features --tests
    rm -rf .gpu && mkdir -p .gpu/bin
    cp target/cuda/release/layerinv .gpu/bin/
    for t in ops conv model; do
        exe=$(grep -o "target/cuda/release/deps/${t}-[0-9a-f]*" target/cuda/test-binaries.txt | tail -1)
        cp "$exe" ".gpu/bin/$t"
    done
    strip .gpu/bin/*
    cp ../shared/reference/torch_ref.py .gpu/ 2>/dev/null || cp "${TORCH_REF:?set TORCH_REF to torch_ref.py}" .gpu/
    tar -C .gpu -cf - bin | xz -9e -T2 >.gpu/bin.tar.xz
    rm -rf .gpu/bin
    du -sh .gpu/*
    ;;
run)
    out=${OUT:-$here/.gpu/out}
    mkdir -p "$out"
    tar -C .gpu -xJf .gpu/bin.tar.xz
    site=/opt/torch/.venv/lib/python3.12/site-packages
    cudnn=$(find "$site/nvidia" -name 'libcudnn.so.9' 2>/dev/null | head -1)
    export LD_LIBRARY_PATH=${cudnn:+$(dirname "$cudnn"):}$site/nvidia/cu13/lib:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
    status=0
    for t in ops conv model; do
        echo "== test $t (CUDA, TF32 off)"
        NVIDIA_TF32_OVERRIDE=0 .gpu/bin/$t --test-threads 4 >"$out/test-$t.log" 2>&1 || status=1
        grep -E "^test |test result|panicked" "$out/test-$t.log"
    done
    echo "== bench: layerinv, torch_ref.py, layerinv again ($bench_args)"
    .gpu/bin/layerinv bench --device cuda $bench_args --json 2>"$out/bench-err.log" | tee "$out/bench-layerinv.json" || { status=1; tail -5 "$out/bench-err.log"; }
    python3 .gpu/torch_ref.py --device cuda $bench_args | tee "$out/bench-torch.json" || status=1
    .gpu/bin/layerinv bench --device cuda $bench_args --json 2>>"$out/bench-err.log" | tee "$out/bench-layerinv-2.json" || status=1
    exit $status
    ;;
*)
    echo "usage: scripts/gpu-check.sh pack|run" >&2
    exit 2
    ;;
esac
