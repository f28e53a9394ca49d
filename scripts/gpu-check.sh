#!/usr/bin/env bash
# The CUDA checks, built here and run on a machine with a GPU and no Rust toolchain.
#
#   scripts/gpu-check.sh pack   # here: build (scripts/build-cuda.sh), pack .gpu/ (git-ignored)
#   scripts/gpu-check.sh run    # there, from the repo root with .gpu/ copied along:
#                               #   op + decoder tests on CUDA, then `layerinv bench --device cuda`
#                               #   and torch_ref.py on the same card (f32, then bf16), results in
#                               #   $OUT (or .gpu/out)
#   PROFILE=1 scripts/gpu-check.sh run   # also per-kernel GPU times: ours (ncu), PyTorch's (profiler),
#                                        # and CUDA API host time for both (nsys, where installed)
#
# The tests run with NVIDIA_TF32_OVERRIDE=0 so that cuDNN computes in full f32 and the CPU
# tolerances hold; the benchmarks run with TF32 allowed for convolutions, as PyTorch's default.
# BENCH_ARGS (default "--batch 8 --steps 20") go to both benchmarks; layerinv times only the kinds
# torch_ref.py implements (--kinds sae,swwae).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bench_args=${BENCH_ARGS:---batch 8 --steps 20}

case "${1:-}" in
pack)
    set -e
    scripts/build-cuda.sh --tests   # the app build: its test binaries need the default features anyway
    rm -rf .gpu && mkdir -p .gpu/bin
    cp target/cuda/release/layerinv .gpu/bin/
    for t in ops conv model; do
        exe=$(grep -o "target/cuda/release/deps/${t}-[0-9a-f]*" target/cuda/test-binaries.txt | tail -1)
        cp "$exe" ".gpu/bin/$t"
    done
    strip .gpu/bin/*
    cp scripts/torch_ref.py .gpu/
    cp scripts/torch_prof.py scripts/ncu_summary.py .gpu/
    # One stream with a dictionary larger than a binary: the kernels all four embed compress once.
    tar -C .gpu -cf - bin | xz --lzma2=preset=6,dict=192MiB -T1 >.gpu/bin.tar.xz
    rm -rf .gpu/bin
    du -sh .gpu/*
    ;;
run)
    # Four files come back from the device tool at most: gpu.txt, tests.log, bench.txt, profile.txt.
    out=${OUT:-$here/.gpu/out}
    mkdir -p "$out"
    tar -C .gpu -xJf .gpu/bin.tar.xz
    site=/opt/torch/.venv/lib/python3.12/site-packages
    cudnn=$(find "$site/nvidia" -name 'libcudnn.so.9' 2>/dev/null | head -1)
    export LD_LIBRARY_PATH=${cudnn:+$(dirname "$cudnn"):}$site/nvidia/cu13/lib:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
    status=0
    for t in ops conv model; do
        echo "== test $t (CUDA, TF32 off)" | tee -a "$out/tests.log"
        NVIDIA_TF32_OVERRIDE=0 .gpu/bin/$t --test-threads 4 >>"$out/tests.log" 2>&1 || status=1
    done
    grep -E "^== |^test |test result|panicked|Err" "$out/tests.log"
    echo "== cuDNN's algorithm choices (bench --layers pool5 --batch 8)" | tee -a "$out/profile.txt"
    LAYERINV_CUDNN_LOG=1 .gpu/bin/layerinv bench --kinds sae,swwae --device cuda --batch 8 --steps 1 --layers pool5 --json 2>&1 >/dev/null |
        grep cudnn >>"$out/profile.txt"
    # The README's configuration (BENCH_ARGS) twice around PyTorch's, then a large batch, where
    # per-kernel launch costs matter less.
    bench() { # label args...
        local label=$1; shift
        echo "== bench $label: $*" | tee -a "$out/bench.txt"
        .gpu/bin/layerinv bench --kinds sae,swwae --device cuda "$@" --json 2>&1 | tee -a "$out/bench.txt" || status=1
        python3 .gpu/torch_ref.py --device cuda "$@" 2>&1 | tee -a "$out/bench.txt" || status=1
    }
    bench main $bench_args
    .gpu/bin/layerinv bench --kinds sae,swwae --device cuda $bench_args --json 2>&1 | tee -a "$out/bench.txt" || status=1
    bench big --batch 32 --steps 10 --layers pool2,pool5
    # Mixed precision, both sides (PyTorch: autocast to bf16).
    bench bf16 $bench_args --dtype bf16
    # Where the GPU time goes: ours per kernel (ncu, one repetition of each bench phase), PyTorch's
    # for one training step (its profiler).
    if [ -n "${PROFILE:-}" ] && command -v ncu >/dev/null; then
        for l in pool5 pool1; do
            echo "== layerinv kernels, bench --layers $l --batch 8: encoder, sae step, swwae step, inference" | tee -a "$out/profile.txt"
            LAYERINV_CUDA_PROFILE=1 timeout 150 ncu --profile-from-start off --metrics gpu__time_duration.sum --csv \
                --log-file "$out/ncu.csv" .gpu/bin/layerinv bench --kinds sae,swwae --device cuda --batch 8 --steps 2 --layers $l --json >/dev/null 2>&1
            python3 .gpu/ncu_summary.py "$out/ncu.csv" 2>&1 | tee -a "$out/profile.txt"
            rm -f "$out/ncu.csv"
            echo "== PyTorch kernels, one $l swwae step, batch 8" | tee -a "$out/profile.txt"
            python3 .gpu/torch_prof.py $l swwae 8 2>&1 | tee -a "$out/profile.txt"
        done
    fi
    # Host side (batch-1 latency is bound by per-launch costs): CUDA API time per call, ours and
    # PyTorch's, from Nsight Systems where the machine has it.
    if [ -n "${PROFILE:-}" ] && command -v nsys >/dev/null; then
        for who in layerinv torch; do
            echo "== $who: CUDA API and kernel summary (nsys), bench --layers pool1,pool5 --batch 8 --steps 5" | tee -a "$out/profile.txt"
            if [ $who = layerinv ]; then cmd=(.gpu/bin/layerinv bench --kinds sae,swwae --device cuda --json); else cmd=(python3 .gpu/torch_ref.py --device cuda); fi
            timeout 150 nsys profile -o "$out/$who" --force-overwrite true --trace cuda "${cmd[@]}" --batch 8 --steps 5 --layers pool1,pool5 >/dev/null 2>&1
            nsys stats --report cuda_api_sum,cuda_gpu_kern_sum --format csv "$out/$who.nsys-rep" 2>/dev/null | head -60 >>"$out/profile.txt"
            rm -f "$out/$who.nsys-rep" "$out/$who.sqlite"
        done
    fi
    exit $status
    ;;
*)
    echo "usage: scripts/gpu-check.sh pack|run" >&2
    exit 2
    ;;
esac
