#!/usr/bin/env python3
"""Validation curves of training runs, for docs/: an SVG (a panel per layer, a line per kind) and
a Markdown table, from the `curve` that every run keeps in its run.json.

    python3 scripts/curves.py RUN.json|RUN_DIR ... --svg docs/curves/NAME.svg [--title TEXT]
    python3 scripts/curves.py RUN_DIR --target 21.5     # time to quality

With --target DB it also says, per decoder, the minutes of training (wall clock, over every part
of a resumed run; records kept since validation points carry `secs`) until its validation PSNR
first reached DB, or that it did not, with the PSNR against minutes at each validation.

Several records (the bundle recipe's runs, resumed parts, runs of other trips) are joined in the
order given: a run that continues another (--resume) repeats its points up to the checkpoint it
started from, and the later record's points win at equal steps. The table (stdout) gives each
decoder's PSNR at the first, middle and last validation, its best, and the step of the last.
Standard library only.
"""
import argparse
import json
import os
import sys

KIND_COLOURS = {"sae": "#1f77b4", "swwae": "#d62728", "upconv": "#2ca02c"}
LAYER_ORDER = ["pool1", "pool2", "pool3", "pool4", "pool5", "conv3", "conv4", "fc6", "fc7", "fc8"]


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "run.json")
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 20)
        rec = json.loads(data)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: not a readable run record: {e}")
    if not isinstance(rec, dict) or not str(rec.get("format", "")).startswith("layerinv-run/"):
        sys.exit(f"{path}: not a layerinv run record (no layerinv-run format)")
    return rec


def join(records):
    """{(layer, kind): [(step, psnr, loss, secs or None)]}, later records winning at equal steps."""
    curves = {}
    for rec in records:
        for p in rec.get("curve", []):
            pts = curves.setdefault((p["layer"], p["kind"]), {})
            secs = p.get("secs")
            pts[int(p["step"])] = (float(p["psnr"]), float(p["loss"]), None if secs is None else float(secs))
    return {k: sorted((s,) + v for s, v in pts.items()) for k, pts in curves.items()}


def time_to_quality(curves, target):
    """Per decoder: minutes to the first validation at or above `target` dB, and the curve."""
    lines = [f"| layer | kind | minutes to {target:.2f} dB | PSNR by minute |", "|---|---|---|---|"]
    for (layer, kind), pts in sorted(curves.items(), key=lambda kv: (layer_key(kv[0][0]), kv[0][1])):
        timed = [p for p in pts if p[3] is not None]
        if not timed:
            lines.append(f"| {layer} | {kind} | (no times in this record) | |")
            continue
        hit = next((p for p in timed if p[1] >= target), None)
        reached = f"{hit[3] / 60:.1f} (step {hit[0]})" if hit else f"not reached (best {max(p[1] for p in timed):.2f})"
        curve = ", ".join(f"{p[3] / 60:.1f}: {p[1]:.2f}" for p in timed)
        lines.append(f"| {layer} | {kind} | {reached} | {curve} |")
    return "\n".join(lines)


def layer_key(layer):
    return (LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER), layer)


def table(curves):
    lines = ["| layer | kind | first | middle | last | best | steps |", "|---|---|---|---|---|---|---|"]
    for (layer, kind), pts in sorted(curves.items(), key=lambda kv: (layer_key(kv[0][0]), kv[0][1])):
        first, mid, last = pts[0], pts[len(pts) // 2], pts[-1]
        best = max(pts, key=lambda p: p[1])
        cell = lambda p: f"{p[1]:.2f} dB @{p[0]}"
        lines.append(f"| {layer} | {kind} | {cell(first)} | {cell(mid)} | {cell(last)} | {cell(best)} | {last[0]} |")
    return "\n".join(lines)


def svg(curves, title):
    layers = sorted({l for l, _ in curves}, key=layer_key)
    pw, ph, m = 300, 200, 46  # panel size and margin
    width = m + len(layers) * (pw + m)
    height = ph + 2 * m + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{m}" y="18" font-size="14">{escape(title)}</text>']
    for i, layer in enumerate(layers):
        x0, y0 = m + i * (pw + m), m
        pts_all = [p for (l, _), pts in curves.items() if l == layer for p in pts]
        smax = max(p[0] for p in pts_all) or 1
        lo, hi = min(p[1] for p in pts_all), max(p[1] for p in pts_all)
        lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1 else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        fx = lambda s: x0 + pw * s / smax
        fy = lambda v: y0 + ph - ph * (v - lo) / (hi - lo)
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 - 6}" text-anchor="middle" font-size="13">{escape(layer)}</text>')
        for t in range(5):
            v = lo + (hi - lo) * t / 4
            out.append(f'<text x="{x0 - 4}" y="{fy(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{fy(v):.1f}" y2="{fy(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 + pw}" y="{y0 + ph + 14}" text-anchor="end">step {smax}</text>')
        out.append(f'<text x="{x0}" y="{y0 + ph + 14}">0</text>')
        for (l, kind), pts in sorted(curves.items()):
            if l != layer:
                continue
            colour = KIND_COLOURS.get(kind, "#555")
            path = " ".join(f"{fx(s):.1f},{fy(v):.1f}" for s, v, _ in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
    legend_y = m + ph + 36
    for j, kind in enumerate(sorted({k for _, k in curves})):
        x = m + j * 110
        out.append(f'<line x1="{x}" x2="{x + 24}" y1="{legend_y}" y2="{legend_y}" '
                   f'stroke="{KIND_COLOURS.get(kind, "#555")}" stroke-width="2"/>')
        out.append(f'<text x="{x + 30}" y="{legend_y + 4}">{escape(kind)}</text>')
    kinds = len({k for _, k in curves})
    out.append(f'<text x="{m + kinds * 110}" y="{legend_y + 4}" fill="#555">validation PSNR (dB) by step</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def escape(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("records", nargs="+", help="run.json files or run folders, oldest first")
    ap.add_argument("--svg", help="write the plot here (atomically)")
    ap.add_argument("--title", default="validation PSNR by step")
    ap.add_argument("--target", type=float, help="also the minutes until each decoder first reached this PSNR (dB)")
    args = ap.parse_args()
    curves = join(load(p) for p in args.records)
    if not curves:
        sys.exit("no validation points in " + ", ".join(args.records) + " (runs shorter than --val-every have none)")
    print(table(curves))
    if args.target is not None:
        print()
        print(time_to_quality(curves, args.target))
    if args.svg:
        os.makedirs(os.path.dirname(args.svg) or ".", exist_ok=True)
        tmp = args.svg + ".tmp"
        with open(tmp, "w") as f:
            f.write(svg(curves, args.title))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.svg)
        print(f"wrote {args.svg}", file=sys.stderr)


if __name__ == "__main__":
    main()
