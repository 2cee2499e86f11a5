#!/usr/bin/env python3
"""Report for the sparse-upcycling experiment (standard library only).

Reads the log.jsonl of four runs -- dense pretraining, (a) dense continued,
(b) upcycled MoE, (c) MoE from scratch -- and writes to OUTDIR:
table.md (also printed), summary.json, curves.svg (val loss vs total training
FLOPs) and curves_tokens.svg (val loss vs total training tokens).

  upcycle_report.py --dense DIR --a DIR --b DIR --c DIR --out OUTDIR [--title TEXT]

P = cumulative flops/tokens at the end of the dense run. Runs a and b start
from the dense checkpoint, so their total = P + own cumulative; dense and c
count from 0. "Extra" = total - P. The comparisons interpolate linearly on the
validation curves and are taken at the smaller of the two curves' last x.
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

RUNS = [("dense", "dense pretraining", "#555555"), ("a", "(a) dense continued", "#1f77b4"),
        ("b", "(b) upcycled MoE", "#d62728"), ("c", "(c) MoE from scratch", "#2ca02c")]


class ReportError(Exception):
    """A user-facing error: printed as one line to stderr, exit code 1."""


def read_log(run_dir):
    """Parse RUN_DIR/log.jsonl into (path, train, val): dicts step -> record, last line per step wins."""
    path = os.path.join(run_dir, "log.jsonl")
    if not os.path.isfile(path):
        raise ReportError(f"{path}: not found (expected the run's JSONL training log)")
    train, val = {}, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise ReportError(f"{path}:{lineno}: malformed JSON line ({e})") from None
            if not isinstance(rec, dict):
                raise ReportError(f"{path}:{lineno}: expected a JSON object")
            if "step" not in rec:
                continue
            if "val_loss" in rec:
                val[rec["step"]] = rec
            elif "loss" in rec:
                train[rec["step"]] = rec
    return path, train, val


def load_run(run_dir):
    """Return {"points": [(step, tokens, flops, val_loss)], "step", "tokens", "flops"} for one run.

    Val lines lacking tokens/flops take them from the training line of the same step, else are
    skipped. The run's end (step, tokens, flops) is the latest training line or val point that
    has both tokens and flops.
    """
    path, train, val = read_log(run_dir)
    try:
        return _collect(train, val, path)
    except (TypeError, ValueError) as e:
        raise ReportError(f"{path}: non-numeric step/tokens/flops/val_loss value ({e})") from None


def _collect(train, val, path):
    """Worker of load_run: build the val points and the run's end from parsed records."""
    points = []
    for step in sorted(val):
        v, t = val[step], train.get(step, {})
        tok, fl = v.get("tokens", t.get("tokens")), v.get("flops", t.get("flops"))
        loss = v["val_loss"]
        if tok is None or fl is None or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            continue
        points.append((step, float(tok), float(fl), float(loss)))
    if not points:
        raise ReportError(f'{path}: no validation points (expected lines with "val_loss" '
                          f'and "tokens"/"flops", or a training line of the same step that has them)')
    ends = [(s, float(r["tokens"]), float(r["flops"])) for s, r in train.items()
            if r.get("tokens") is not None and r.get("flops") is not None]
    step, tokens, flops = max(ends + [p[:3] for p in points], key=lambda e: e[0])
    return {"points": points, "step": step, "tokens": tokens, "flops": flops}


def interp(curve, x):
    """Linearly interpolate a list of (x, y) (ascending x) at x; None if x is outside the curve."""
    if len(curve) == 1 and curve[0][0] == x:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def compare(name1, curve1, name2, curve2, xkey):
    """Compare two (x, loss) curves at x = min of their last x; lower loss wins."""
    x = min(curve1[-1][0], curve2[-1][0])
    l1, l2 = interp(curve1, x), interp(curve2, x)
    res = {xkey: x, "loss_" + name1: l1, "loss_" + name2: l2, "diff": None, "winner": None}
    if l1 is not None and l2 is not None:
        res["diff"] = l1 - l2
        res["winner"] = name1 if l1 < l2 else name2 if l2 < l1 else "tie"
    res["verdict"] = ("n/a (curves do not overlap)" if res["winner"] is None else "tie"
                      if res["winner"] == "tie" else f"{res['winner']} beats "
                      f"{name2 if res['winner'] == name1 else name1}")
    return res


def analyse(runs):
    """Build curves, per-run numbers and the two comparisons from the loaded runs."""
    d = runs["dense"]
    p_tok, p_fl = d["tokens"], d["flops"]
    last = d["points"][-1]
    joint = [(p_tok, p_fl, last[3])] if last[0] == d["step"] else []  # dense end, prepended to a, b
    offset = {"dense": (0.0, 0.0), "a": (p_tok, p_fl), "b": (p_tok, p_fl), "c": (0.0, 0.0)}
    curves, table = {}, {}
    for name, _, _ in RUNS:
        r, (ot, of) = runs[name], offset[name]
        pts = [(ot + t, of + f, l) for _, t, f, l in r["points"]]
        curves[name] = (joint if name in "ab" else []) + pts
        table[name] = {"steps": r["step"], "val_points": len(r["points"]),
                       "final_val_loss": r["points"][-1][3],
                       "own_tokens": r["tokens"], "own_flops": r["flops"],
                       "total_tokens": ot + r["tokens"], "total_flops": of + r["flops"],
                       "extra_tokens": ot + r["tokens"] - p_tok, "extra_flops": of + r["flops"] - p_fl}
    zero = [(0.0, last[3])] if joint else []
    extra = {n: zero + [(f, l) for _, _, f, l in runs[n]["points"]] for n in "ab"}
    ba = compare("b", extra["b"], "a", extra["a"], "x_extra_flops")
    b_total = [(f, l) for _, f, l in curves["dense"] + curves["b"][len(joint):]]
    bc = compare("b", b_total, "c", [(f, l) for _, f, l in curves["c"]], "x_total_flops")
    bc.update(final_val_loss_b=table["b"]["final_val_loss"], final_val_loss_c=table["c"]["final_val_loss"])
    summary = {"P_flops": p_fl, "P_tokens": p_tok, "runs": table,
               "b_vs_a_equal_extra_flops": ba, "b_vs_c_equal_total_flops": bc}
    return curves, summary


def fmt_sci(v):
    """Format like 1.23e15 / 2e14 / -4.5e13 (3 significant digits); 0 -> '0'."""
    if v == 0:
        return "0"
    m, e = f"{v:.2e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"


def fmt_loss(v):
    """Format a loss (or None) with 4 decimals."""
    return "n/a" if v is None else f"{v:.4f}"


def markdown(s):
    """Render the summary as a markdown table plus the two comparison lines."""
    rows = ["| run | steps | extra tokens | extra FLOPs | total FLOPs | final val loss |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, label, _ in RUNS[1:] + RUNS[:1]:
        r = s["runs"][name]
        rows.append(f"| {label} | {r['steps']} | {int(round(r['extra_tokens'])):,} | {fmt_sci(r['extra_flops'])} "
                    f"| {fmt_sci(r['total_flops'])} | {fmt_loss(r['final_val_loss'])} |")
    ba, bc = s["b_vs_a_equal_extra_flops"], s["b_vs_c_equal_total_flops"]
    diff = lambda v: "n/a" if v is None else f"{v:+.4f}"
    rows += ["", f"Dense pretraining cost P = {fmt_sci(s['P_flops'])} FLOPs, {int(round(s['P_tokens'])):,} tokens.",
             "", f"1. (b) vs (a) at equal extra compute X = {fmt_sci(ba['x_extra_flops'])} FLOPs: "
             f"a {fmt_loss(ba['loss_a'])}, b {fmt_loss(ba['loss_b'])}, b - a = {diff(ba['diff'])} -> {ba['verdict']}",
             f"2. (b) vs (c) at equal total compute Y = {fmt_sci(bc['x_total_flops'])} FLOPs: "
             f"b {fmt_loss(bc['loss_b'])}, c {fmt_loss(bc['loss_c'])}, b - c = {diff(bc['diff'])} -> {bc['verdict']}; "
             f"final val loss b {fmt_loss(bc['final_val_loss_b'])}, c {fmt_loss(bc['final_val_loss_c'])}"]
    return "\n".join(rows) + "\n"


def nice_ticks(lo, hi, n=6):
    """Round tick values covering [lo, hi] with about n intervals."""
    span = (hi - lo) or abs(hi) or 1.0
    mag = 10 ** math.floor(math.log10(span / n))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= span / n)
    return [k * step for k in range(math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9) + 1)]


def svg_plot(series, vline, xlabel, title, w=800, h=500):
    """SVG line plot; series = [(label, colour, [(x, y)])], vline = x of the dashed 'upcycle' line."""
    L, R, T, B = 75, 20, 40, 55
    xs = [x for _, _, pts in series for x, _ in pts] + [0.0, vline]
    ys = [y for _, _, pts in series for _, y in pts]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    sx = lambda x: L + (x - xt[0]) / ((xt[-1] - xt[0]) or 1) * (w - L - R)
    sy = lambda y: h - B - (y - yt[0]) / ((yt[-1] - yt[0]) or 1) * (h - T - B)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
         'font-family="sans-serif" font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for x in xt:
        o.append(f'<line x1="{sx(x):.1f}" y1="{T}" x2="{sx(x):.1f}" y2="{h - B}" stroke="#e5e5e5"/>'
                 f'<text x="{sx(x):.1f}" y="{h - B + 16}" text-anchor="middle">{fmt_sci(x)}</text>')
    for y in yt:
        o.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{w - R}" y2="{sy(y):.1f}" stroke="#e5e5e5"/>'
                 f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{round(y, 10):g}</text>')
    o += [f'<rect x="{L}" y="{T}" width="{w - L - R}" height="{h - T - B}" fill="none" stroke="#333"/>',
          f'<text x="{L + (w - L - R) / 2}" y="{h - 15}" text-anchor="middle">{escape(xlabel)}</text>',
          f'<text transform="translate(20 {T + (h - T - B) / 2}) rotate(-90)" text-anchor="middle">'
          'validation loss</text>',
          f'<line x1="{sx(vline):.1f}" y1="{T}" x2="{sx(vline):.1f}" y2="{h - B}" stroke="#888" '
          'stroke-dasharray="6 4"/>', f'<text x="{sx(vline) + 4:.1f}" y="{T + 14}" fill="#666">upcycle</text>']
    for label, colour, pts in series:
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        o.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        o += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in pts]
    lx, ly = w - R - 185, T + 10
    o.append(f'<rect x="{lx}" y="{ly}" width="175" height="{18 * len(series) + 8}" fill="white" '
             'fill-opacity="0.85" stroke="#ccc"/>')
    for i, (label, colour, _) in enumerate(series):
        yy = ly + 16 + 18 * i
        o.append(f'<line x1="{lx + 8}" y1="{yy - 4}" x2="{lx + 30}" y2="{yy - 4}" stroke="{colour}" '
                 f'stroke-width="2"/><text x="{lx + 36}" y="{yy}">{escape(label)}</text>')
    return "\n".join(o + ["</svg>"]) + "\n"


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("dense", "a", "b", "c"):
        ap.add_argument("--" + name, required=True, metavar="DIR", help=f"run directory of '{name}'")
    ap.add_argument("--out", required=True, metavar="OUTDIR")
    ap.add_argument("--title", default="Sparse upcycling: validation loss vs training compute")
    args = ap.parse_args(argv)
    try:
        runs = {name: load_run(getattr(args, name)) for name, _, _ in RUNS}
        curves, summary = analyse(runs)
        os.makedirs(args.out, exist_ok=True)
        table = markdown(summary)
        files = {"table.md": table, "summary.json": json.dumps(summary, indent=2) + "\n"}
        for fname, idx, unit in (("curves.svg", 1, "FLOPs"), ("curves_tokens.svg", 0, "tokens")):
            series = [(label, colour, [(p[idx], p[2]) for p in curves[name]]) for name, label, colour in RUNS]
            vline = summary["P_flops" if idx else "P_tokens"]
            files[fname] = svg_plot(series, vline, f"total training {unit}", args.title)
        for fname, text in files.items():
            with open(os.path.join(args.out, fname), "w", encoding="utf-8") as f:
                f.write(text)
    except (ReportError, OSError) as e:
        print(f"upcycle_report.py: error: {e}", file=sys.stderr)
        return 1
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
