#!/usr/bin/env bash
# Build layerinv with CUDA + cuDNN on a machine that has no CUDA toolkit installed.
#
#   scripts/build-cuda.sh                       # the app: target/cuda/release/layerinv
#   scripts/build-cuda.sh --no-default-features # the CLI only (what scripts/gpu-check.sh carries)
#   scripts/build-cuda.sh --tests               # also the test binaries (for scripts/gpu-check.sh)
#
# It fetches NVIDIA's CUDA 13.0 compiler and runtime wheels from PyPI into a cache
# ($LAYERINV_CUDA_CACHE, default ~/.cache/layerinv/cuda13), assembles them into one CUDA root, adds
# link stubs for the libraries no wheel here provides (the driver, cuBLAS, cuBLASLt, cuDNN: they are
# resolved at run time from the machine's driver and its PyTorch or CUDA install), and builds with
# `--features cudnn` into target/cuda. 13.0 exactly: a newer nvcc writes PTX that driver 580 rejects.
#
# With a normal CUDA toolkit and cuDNN installed you need none of this:
#   cargo build --release --features cudnn
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${LAYERINV_CUDA_CACHE:-$HOME/.cache/layerinv/cuda13}
root=$cache/root
# Where the GPU machines keep the real libraries (PyTorch's wheels, the driver); searched at run time.
site=${LAYERINV_CUDA_SITE:-/opt/torch/.venv/lib/python3.12/site-packages}
rpaths=("$site/nvidia/cu13/lib" "$site/nvidia/cudnn/lib" /usr/local/nvidia/lib64 /usr/local/cuda/lib64)

wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
        nvidia-curand==10.4.0.35)

build_tests=0
cargo_args=()
for a in "$@"; do
    if [ "$a" = --tests ]; then build_tests=1; else cargo_args+=("$a"); fi
done

if [ ! -e "$root/.complete" ]; then
    echo "== fetching CUDA 13.0 wheels into $cache/wheels"
    mkdir -p "$cache/wheels"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 -d "$cache/wheels" "${wheels[@]}"
    echo "== assembling the CUDA root in $root"
    rm -rf "$cache/unpacked" "$root"
    mkdir -p "$cache/unpacked" "$root/lib" "$root/targets/x86_64-linux"
    for w in "$cache"/wheels/*.whl; do
        python3 -m zipfile -e "$w" "$cache/unpacked"
    done
    cu=$cache/unpacked/nvidia/cu13
    chmod +x "$cu"/bin/* "$cu"/nvvm/bin/* 2>/dev/null || true
    ln -s "$cu/bin" "$root/bin"
    ln -s "$cu/include" "$root/include"
    ln -s "$cu/nvvm" "$root/nvvm"
    ln -s ../../include "$root/targets/x86_64-linux/include"
    ln -s ../../lib "$root/targets/x86_64-linux/lib"
    for f in "$cu"/lib/*; do
        ln -s "$f" "$root/lib/$(basename "$f")"
        case $f in *.so.*) ln -sf "$f" "$root/lib/$(basename "$f" | sed 's/\.so\..*/.so/')" ;; esac
    done
    # Link stubs: every function cudarc declares, with the real library's soname. Each returns 100
    # (CUDA_ERROR_NO_DEVICE; an error status for the other libraries too), so a binary run against
    # the stubs on a machine without a GPU finds no device instead of misbehaving.
    src=$(cargo metadata --format-version 1 --features cudnn --manifest-path "$here/Cargo.toml" |
        python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc").rsplit("/",1)[0])')
    stub() { # name soname sys-module
        grep -ho 'pub unsafe fn [A-Za-z0-9_]*' "$src/src/$3/sys/mod.rs" | awk '{print "int " $4 "(void) { return 100; }"}' | sort -u >"$cache/$1.c"
        cc -shared -fPIC -Wl,-soname,"$2" -o "$root/lib/lib$1.so" "$cache/$1.c"
    }
    stub cuda libcuda.so.1 driver
    stub cublas libcublas.so.13 cublas
    stub cublasLt libcublasLt.so.13 cublaslt
    stub cudnn libcudnn.so.9 cudnn
    touch "$root/.complete"
fi

export CUDA_ROOT=$root CUDA_HOME=$root CUDA_PATH=$root NVCC=$root/bin/nvcc PATH=$root/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$root/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
rustflags=""
for p in "${rpaths[@]}"; do rustflags+=" -C link-arg=-Wl,-rpath,$p"; done
export RUSTFLAGS="${RUSTFLAGS:-}$rustflags"
# Its own target folder: other RUSTFLAGS would otherwise rebuild the CPU build's dependencies.
export CARGO_TARGET_DIR=$here/target/cuda
cd "$here"
nvcc --version | tail -2
echo "== cargo build --release --features cudnn ${cargo_args[*]:-}"
cargo build --release --features cudnn "${cargo_args[@]}"
if [ $build_tests = 1 ]; then
    # With the default features: the test-only dependencies (egui_kittest) expect the app's.
    mkdir -p "$CARGO_TARGET_DIR"
    cargo test --release --features cudnn --no-run --test ops --test conv --test model 2>&1 |
        tee "$CARGO_TARGET_DIR/test-binaries.txt"
fi
echo "== built $CARGO_TARGET_DIR/release/layerinv"
