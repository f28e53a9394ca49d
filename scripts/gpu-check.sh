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
#   scripts/gpu-check.sh cpubench       # there: the CPU bench beside PyTorch on the host's CPU
#                                       #   (issue 27), at 2 threads and at all, CPU_ROUNDS rounds
#   scripts/gpu-check.sh train [ARGS]   # there: the bundle's recipe on the packs that travelled in
#                                       #   .gpu/packs, for TRAIN_SECONDS (default 420); ARGS go to
#                                       #   every run (--kinds upconv); the decoders come back in $OUT
#
# What travels (the device tool's limit is 64 MiB: tracked files, untracked files git does not
# ignore, and the carried paths) is too much with the bundled decoders and the docs' pictures in
# it. Around a device call, here:
#   scripts/gpu-check.sh slim     # those files leave git's index (they stay on disk) and are
#                                 #   ignored, so they do not travel; prints what will, in MB
#   (the device call, carrying .gpu)
#   scripts/gpu-check.sh unslim   # back into the index; a commit in between is refused
#   scripts/gpu-check.sh size     # what would travel now, with .gpu carried
#
# The tests run with NVIDIA_TF32_OVERRIDE=0 so that cuDNN computes in full f32 and the CPU
# tolerances hold; the benchmarks run with TF32 allowed for convolutions, as PyTorch's default.
# BENCH_ARGS (default "--batch 8 --steps 20") go to both benchmarks; layerinv times only the kinds
# torch_ref.py implements (--kinds sae,swwae).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bench_args=${BENCH_ARGS:---batch 8 --steps 20}

# Tracked files a device trip does not need: the bundled decoders (the checks and the recipe train
# their own) and the pictures in docs/.
slim_paths() {
    git ls-files -- 'weights/*_sae.safetensors' 'weights/*_swwae.safetensors' 'weights/*_upconv.safetensors' \
        'docs/*.png'
}
marker=$(git rev-parse --git-dir 2>/dev/null)/layerinv-slim
travel_mb() { # what the device tool sends: tracked and untracked-not-ignored files, plus .gpu
    { git ls-files -z --cached --others --exclude-standard; [ -d .gpu ] && find .gpu -type f -print0; } |
        xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1e6}'
}

# There, before any mode that runs the binaries: $OUT ready, the binaries unpacked (not when
# LAYERINV names another build, as when `train` is tried here with a CPU build), and the CUDA
# libraries of the machine's PyTorch install on the loader's path.
out=${OUT:-$here/.gpu/out}
device_side() {
    mkdir -p "$out"
    [ -n "${LAYERINV:-}" ] || tar -C .gpu -xJf .gpu/bin.tar.xz
    local site=/opt/torch/.venv/lib/python3.12/site-packages cudnn
    cudnn=$(find "$site/nvidia" -name 'libcudnn.so.9' 2>/dev/null | head -1)
    export LD_LIBRARY_PATH=${cudnn:+$(dirname "$cudnn"):}$site/nvidia/cu13/lib:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

case "${1:-}" in
size)
    echo "travels: $(travel_mb) MB with .gpu carried (the limit: 67.1 MB)"
    if [ -d .gpu ]; then du -sh .gpu/* 2>/dev/null; fi
    ;;
slim)
    set -e
    [ ! -e "$marker" ] || { echo "already slim: scripts/gpu-check.sh unslim first" >&2; exit 1; }
    git diff --cached --quiet || { echo "the index holds staged changes: commit or unstage them first" >&2; exit 1; }
    # First the guard: a commit while slim would delete the files from the repository.
    hook=$(git rev-parse --git-path hooks)/pre-commit
    mkdir -p "$(dirname "$hook")"
    if [ ! -e "$hook" ]; then
        printf '#!/bin/sh\n# scripts/gpu-check.sh slim: its deletions must not be committed\n[ ! -e "%s" ] || { echo "the tree is slim for a device trip: scripts/gpu-check.sh unslim first" >&2; exit 1; }\n' \
            "$marker" >"$hook"
        chmod +x "$hook"
    fi
    grep -q layerinv-slim "$hook" || echo "warning: $hook is not ours: commits are not guarded while slim" >&2
    slim_paths >"$marker"
    [ -s "$marker" ] || { rm -f "$marker"; echo "nothing to leave behind" >&2; exit 1; }
    git rm -q --cached --pathspec-from-file="$marker"
    # ignored while slim, so they do not travel as untracked files either
    { echo "# layerinv-slim (scripts/gpu-check.sh unslim removes this block)"; cat "$marker"; echo "# end layerinv-slim"; } \
        >>"$(git rev-parse --git-dir)/info/exclude"
    echo "left behind (still on disk): $(wc -l <"$marker") files; travels: $(travel_mb) MB with .gpu carried (the limit: 67.1 MB)"
    ;;
unslim)
    set -e
    [ -e "$marker" ] || { echo "not slim" >&2; exit 0; }
    git reset -q HEAD --pathspec-from-file="$marker"
    exclude=$(git rev-parse --git-dir)/info/exclude
    sed -i '/^# layerinv-slim /,/^# end layerinv-slim$/d' "$exclude"
    rm -f "$marker"
    git status --short | head
    echo "the index is whole again"
    ;;
cpubench)
    # there: issue 27's CPU measurement on the GPU machine's host (a 16-core Xeon with AVX-512):
    # layerinv beside PyTorch, alternating rounds (CPU_ROUNDS, default 3), at 2 threads and at all.
    device_side
    lscpu | grep -E "^(Model name|Flags|CPU\(s\))" | tee "$out/cpu.txt"
    status=0
    for threads in 2 "$(nproc)"; do
        python3 scripts/bench_vs_torch.py --rounds "${CPU_ROUNDS:-3}" --layerinv .gpu/bin/layerinv -- \
            --device cpu --threads "$threads" --batch 4 --steps 3 --layers pool2,pool5 2>&1 | tee -a "$out/cpubench.txt" || status=1
    done
    exit $status
    ;;
train)
    shift
    [ -d .gpu/packs ] || { echo "no .gpu/packs: scripts/gpu-check.sh pack with the corpus gathered" >&2; exit 1; }
    device_side
    export LAYERINV_DEADLINE=$(($(date +%s) + ${TRAIN_SECONDS:-420}))
    decoders=${TMPDIR:-/tmp}/layerinv-decoders
    # Decoders brought along (.gpu/decoders) are continued (--resume needs their checkpoints).
    mkdir -p "$decoders" && { [ ! -d .gpu/decoders ] || cp -r .gpu/decoders/. "$decoders/"; }
    # LAYERINV and TRAIN_DEVICE: to try this mode with a CPU build (LAYERINV=target/release/layerinv TRAIN_DEVICE=cpu)
    LAYERINV=${LAYERINV:-.gpu/bin/layerinv} LAYERINV_PHOTOS=${TMPDIR:-/tmp}/layerinv-photos \
        scripts/retrain_bundled_decoders.sh --packs .gpu/packs "$decoders" --device "${TRAIN_DEVICE:-cuda}" "$@" 2>&1 | tee "$out/train.log"
    status=${PIPESTATUS[0]}
    # Back through the device tool: files of at most 16 MiB. Join and unpack here with
    #   cat decoders.tar.* | tar -x -C DIR
    (cd "$decoders" && tar -cf - -- *.safetensors run*.json 2>/dev/null) | split -b 15M - "$out/decoders.tar."
    ls -la "$out"
    exit "$status"
    ;;
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
    # The corpus, for `train` there: JPEG quality PACK_QUALITY (default 85: 20.7 MB of packs for the
    # 898 photos, 38 dB from the lossless shrunk photo; 90 does not fit beside the binaries).
    photos=${LAYERINV_PHOTOS:-$HOME/.cache/layerinv/photos}
    if [ -e "$photos/manifest.tsv" ]; then
        python3 scripts/shrink_photos.py "$photos" .gpu/packs --quality "${PACK_QUALITY:-85}"
    else
        echo "no corpus in $photos (python3 scripts/gather_photos.py): no packs, so no training there" >&2
    fi
    du -sh .gpu/*
    echo "travels: $(travel_mb) MB with .gpu carried, of 67.1 MB; scripts/gpu-check.sh slim leaves the decoders and pictures behind"
    ;;
run)
    # Four files come back from the device tool at most: gpu.txt, tests.log, bench.txt, profile.txt.
    device_side
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
    status=0
    # TEST_ROUNDS (default 1): issue 24 asks for three green rounds in a row (about 30 s more).
    for round in $(seq "${TEST_ROUNDS:-1}"); do
        for t in ops conv model; do
            echo "== test $t (CUDA, TF32 off), round $round" | tee -a "$out/tests.log"
            NVIDIA_TF32_OVERRIDE=0 .gpu/bin/$t --test-threads 4 >>"$out/tests.log" 2>&1 || status=1
        done
    done
    # A failing conv test again, alone on one thread and with cuDNN's algorithm choices logged:
    # says whether it is a race between test threads (each has its own stream) and which
    # algorithm gave the wrong numbers.
    if grep -q "^test .* FAILED" "$out/tests.log"; then
        for t in ops conv model; do
            for name in $(sed -n "/^== test $t /,/^== test /s/^test \([^ ]*\) \.\.\. FAILED$/\1/p" "$out/tests.log" | sort -u); do
                echo "== again alone: $t $name (one thread, LAYERINV_CUDNN_LOG=1)" | tee -a "$out/tests.log"
                NVIDIA_TF32_OVERRIDE=0 LAYERINV_CUDNN_LOG=1 .gpu/bin/$t "$name" --exact --test-threads 1 >>"$out/tests.log" 2>&1
            done
        done
    fi
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
    echo "usage: scripts/gpu-check.sh pack|size|slim|unslim (here), run|cpubench|train (there)" >&2
    exit 2
    ;;
esac
