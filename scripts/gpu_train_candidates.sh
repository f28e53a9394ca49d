#!/usr/bin/env bash
# On the GPU machine: train candidate decoder sets concurrently, each for as many steps as fit
# the time budget (a probe measures each run's rate, then the runs resume with a total that ends
# by the deadline, so the cosine schedule completes), score every set on the held-out photos, and
# bring back the best decoder per (layer, kind) plus every score and log. This made the bundled
# decoders (docs/fidelity.md, "On a GPU"). Prepared here, run there:
#   here:  scripts/build-cuda.sh --no-default-features; mkdir -p .gpu/bin;
#          cp target/cuda/release/layerinv .gpu/bin/; strip .gpu/bin/layerinv;
#          tar -C .gpu -cf - bin | xz -T1 >.gpu/bin.tar.xz; rm -r .gpu/bin
#          python3 scripts/shrink_photos.py ~/.cache/layerinv/photos .gpu/photos   # the photos, small
#   there: BUDGET=400 bash scripts/gpu_train_candidates.sh      # results in $OUT
# Try it here first: BUDGET=100 TEST=1 DEVICE=cpu BIN=target/release/layerinv OUT=/tmp/o bash …
set -u
set -m
start=$(date +%s)
budget=${BUDGET:-420}        # seconds from start by which training should end
out=${OUT:-.gpu/out}; mkdir -p "$out"
dev=${DEVICE:-cuda}
if [ -z "${BIN:-}" ]; then tar -C .gpu -xJf .gpu/bin.tar.xz; fi
bin=${BIN:-.gpu/bin/layerinv}
site=/opt/torch/.venv/lib/python3.12/site-packages
cudnn=$(find "$site/nvidia" -name 'libcudnn.so.9' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=${cudnn:+$(dirname "$cudnn"):}$site/nvidia/cu13/lib:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
P=.gpu/photos
runs=${RUNS:-/tmp/runs}; rm -rf $runs; mkdir -p $runs
# name | layers | width | crop | args
variants=(
  "p12_uniform|pool1,pool2|1|128|--init uniform"
  "p12_scales|pool1,pool2|1|128|--init scales"
  "p3_uniform|pool3|0.5|128|--init uniform"
  "p3_scales|pool3|0.5|128|--init scales"
  "p3_calibrated|pool3|0.5|128|--init calibrated"
  "p3_all_scales|pool3|0.5|128|--init scales --objective all"
  "p3_layerwise_scales|pool3|0.5|128|--init scales --objective layerwise"
  "p45_uniform|pool4,pool5|0.25|192|--init uniform"
  "p45_scales|pool4,pool5|0.25|192|--init scales"
  "p45_calibrated|pool4,pool5|0.25|192|--init calibrated"
  "p45_all_calibrated|pool4,pool5|0.25|192|--init calibrated --objective all"
  "p45w05_calibrated|pool4,pool5|0.5|192|--init calibrated"
)
if [ -n "${TEST:-}" ]; then variants=("t_uniform|pool1|0.25|32|--init uniform" "t_cal|pool1|0.25|32|--init calibrated"); fi
declare -A pid
launch() { # name layers width crop steps extra...
  local n=$1 l=$2 w=$3 c=$4 s=$5; shift 5
  $bin train --data $P/train --val $P/val --out $runs/$n --layers $l --width $w --crop $c --batch 16 \
    --steps $s --val-every 500 --val-images 44 --checkpoint-every 100000 --device $dev $* \
    ${RESUME:+--resume} >>$runs/$n.log 2>&1 &
  pid[$n]=$!
}
laststep() { grep -o '^step [0-9]*/' $runs/$1.log | tail -1 | tr -dc 0-9; }
for v in "${variants[@]}"; do IFS='|' read n l w c a <<<"$v"; launch $n $l $w $c 1000000 $a; done
sleep 30
declare -A s1; for v in "${variants[@]}"; do n=${v%%|*}; s1[$n]=$(laststep $n); done
t1=$(date +%s); sleep 20; t2=$(date +%s)
declare -A rate
for v in "${variants[@]}"; do n=${v%%|*}; s2=$(laststep $n); rate[$n]=$(( (${s2:-0} - ${s1[$n]:-0}) * 100 / (t2 - t1) )); kill -INT ${pid[$n]}; done
wait
now=$(date +%s); left=$(( start + budget - now - 15 ))
for v in "${variants[@]}"; do
  IFS='|' read n l w c a <<<"$v"
  at=$(grep -o 'interrupted at step [0-9]*' $runs/$n.log | tail -1 | tr -dc 0-9)
  total=$(( ${at:-0} + rate[$n] * left * 90 / 10000 ))
  echo "$n: probe rate $((rate[$n]))/100 steps/s, interrupted at ${at:-?}, resuming to $total" | tee -a "$out/plan.txt"
  RESUME=1 launch $n $l $w $c $total $a
done
( w=$(( start + budget + 40 - $(date +%s) )); sleep $(( w > 1 ? w : 1 )); for p in "${pid[@]}"; do kill -INT $p 2>/dev/null; done ) &
guard=$!
for n in "${!pid[@]}"; do wait ${pid[$n]}; echo "$n exit $?" >>"$out/plan.txt"; done
kill $guard 2>/dev/null
echo "training done at $(( $(date +%s) - start )) s" | tee -a "$out/plan.txt"
for v in "${variants[@]}"; do
  n=${v%%|*}
  $bin eval --data $P/val --decoders $runs/$n --device $dev --json >$runs/eval_$n.json 2>>$runs/$n.log &
done
wait
echo "eval done at $(( $(date +%s) - start )) s" | tee -a "$out/plan.txt"
python3 - $runs <<'PY' | tee "$out/best.txt"
import json, os, sys, shutil
runs = sys.argv[1]; best = {}
for f in sorted(os.listdir(runs)):
    if f.startswith("eval_"):
        n = f[5:-5]
        try: rows = json.load(open(os.path.join(runs, f)))["results"]
        except Exception as e: print(n, "no eval", e); continue
        for r in rows:
            if r["kind"] in ("sae", "swwae") and r["psnr"] is not None:
                k = (r["layer"], r["kind"])
                print(f'{n:20} {r["layer"]} {r["kind"]:6} {r["psnr"]:.2f}')
                if "w05" in n: continue  # measured, not bundled (weights/ size)
                if k not in best or r["psnr"] > best[k][1]: best[k] = (n, r["psnr"])
os.makedirs(os.path.join(runs, "best"), exist_ok=True)
for (l, k), (n, p) in sorted(best.items()):
    print("best", l, k, n, f"{p:.2f}")
    shutil.copy(os.path.join(runs, n, f"vgg16_{l}_{k}.safetensors"), os.path.join(runs, "best"))
PY
[ -d $runs/best ] || exit 1
tar -C $runs -cf - best | split -b 15M - "$out/best.tar."
tar -C $runs -czf "$out/logs.tgz" --exclude='*.safetensors' --exclude='*.ckpt' --exclude=best .
ls -la "$out"
echo "all done at $(( $(date +%s) - start )) s"
