#!/usr/bin/env python3
"""layerinv against PyTorch on the same workload, rounds alternating in one run.

Each round runs `layerinv bench --json ARGS` and then `python3 scripts/torch_ref.py ARGS` (the same
workload and JSON keys); the table gives every round's time ratio (layerinv time / PyTorch time:
below 1 is faster than PyTorch) and the median over rounds, as README's speed tables.

  python3 scripts/bench_vs_torch.py [--rounds 3] [--layerinv target/release/layerinv] -- --device cpu --batch 4 --steps 3 --layers pool2,pool5

Needs PyTorch (`pip install torch`). The machine's name goes into the table's header: say which
machine it was when you quote it.
"""
import argparse, json, os, platform, statistics, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    # The last line that parses as JSON (tools may print a progress line before it).
    for line in reversed(out.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise SystemExit(f"no JSON from {' '.join(cmd)}:\n{out}")


def times(r):
    """Every measure as a time (lower is better): ms per image, or seconds per image for training."""
    t = {"encoder forward, ms/image": r["encoder_fwd_ms_per_img"]}
    for layer, kinds in r["train_img_per_s"].items():
        for kind, ips in kinds.items():
            t[f"train {layer} {kind.upper()}, s/image"] = 1.0 / ips
    t["all decoders + encoder, batch 1, ms"] = r["infer_all_ms"]
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layerinv", default=os.path.join(here, "..", "target", "release", "layerinv"))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="after --: the workload, passed to both")
    a = ap.parse_args()
    args = [x for x in a.args if x != "--"]
    rounds = []
    for i in range(a.rounds):
        # Both time every kind (SAE, SWWAE, up-conv) unless ARGS name some with --kinds.
        ours = times(run_json([a.layerinv, "bench", "--json", *args]))
        theirs = times(run_json([sys.executable, os.path.join(here, "torch_ref.py"), *args]))
        rounds.append((ours, theirs))
        print(f"round {i + 1}/{a.rounds} done", file=sys.stderr)
    print(f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs), `{' '.join(args)}`, {a.rounds} rounds\n")
    print("| | layerinv, per round | PyTorch, per round | time ratio per round | median |")
    print("|---|---|---|---|---|")
    for key in rounds[0][0]:
        ours = [r[0][key] for r in rounds]
        theirs = [r[1][key] for r in rounds]
        ratios = [o / t for o, t in zip(ours, theirs)]
        fmt = lambda xs: " / ".join(f"{x:.4g}" for x in xs)
        print(f"| {key} | {fmt(ours)} | {fmt(theirs)} | {' / '.join(f'{r:.2f}' for r in ratios)} | **{statistics.median(ratios):.2f}** |")


if __name__ == "__main__":
    main()
