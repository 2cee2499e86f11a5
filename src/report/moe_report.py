#!/usr/bin/env python3
"""moe report RUN_DIR... --out DIR: one self-contained HTML page about training runs.

Each argument is one of
  a run directory (`moe train --out`): loss against steps, tokens, FLOPs and wall-clock
      (a continued run is drawn from where its source stood, on the total compute); where
      runs share a start (continue the same checkpoint, or one continues another's), the
      loss from there zoomed and each run's loss minus the first such run's; for an MoE
      run, a heatmap per MoE layer of expert load over training, drop fraction and router
      entropy; if it started from an upcycled checkpoint, that checkpoint's step 0;
  an upcycled checkpoint (`moe upcycle --out`): its step-0 report;
  a protocol output (experiments/protocol.py --out): the comparison table with error
      bars, the losses against the extra budget and the gaps against the dense budget.
Writes DIR/index.html (atomically) and prints its path. Needs python3-matplotlib.
"""
import os
import signal
import sys

_TEMP = []  # the page's temp file while write_page writes it


def stop(sig, _frame):
    """Ctrl-C, SIGTERM, SIGHUP: one line, the page's temp file removed, exit 128 + N.
    os._exit, not SystemExit: an exception raised here can land inside a library's broad
    `except` (matplotlib's style parser swallowed one and the report went on to exit 0)."""
    print(f"moe report: stopped by {signal.Signals(sig).name}", file=sys.stderr)
    sys.stderr.flush()
    for t in _TEMP:
        try:
            os.remove(t)
        except OSError:
            pass
    os._exit(128 + sig)


for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # first: the imports below take a while
    signal.signal(_sig, stop)

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_page import Page, pm  # noqa: E402
from report_runs import ReportError, classify, load_protocol, load_run, load_upcycled, locate, read_json  # noqa: E402

NAMES = {"a": "(a) dense continued", "b": "(b) upcycled", "c": "(c) MoE from scratch", "s": "(s) Switch upcycled"}


def seconds(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def fmt(x, spec=".4f"):
    return "" if x is None else format(x, spec)


def run_section(page, figs, runs):
    page.h2("Runs")
    rows = []
    for r in runs:
        last = r["train"][-1] if r["train"] else {}
        val = r["val"][-1]["val_loss"] if r["val"] else None
        kind = f"MoE, {len(r['moe'])} MoE layers x {r['experts']} experts" if r["moe"] else "dense"
        src = r["state"].get("init_from") or ""
        rows.append([r["name"], kind, last.get("step", ""), fmt(last.get("tokens"), ",d") if last else "",
                     fmt(last.get("flops"), ".3g") if last else "", fmt(last.get("loss")), fmt(val),
                     seconds(last["elapsed"]) if "elapsed" in last else "", src])
    page.table(["run", "model", "steps", "tokens", "FLOPs", "last train loss", "last val loss", "seconds",
                "started from"], rows)
    page.p("A run started from another checkpoint (--init) is drawn from where its source stood: its steps, "
           "tokens, FLOPs and seconds are added to the source's.", "note")
    for r in runs:
        if r["start"]["missing"]:
            page.p(f"{r['name']}: its source {r['start']['missing']} was not found from here, so it is drawn from 0.",
                   "note")
    page.h2("Loss")
    for key, label in figs.AXES:
        if any(key in t for r in runs for t in r["train"] + r["val"]):
            page.figure(figs.loss_curves(runs, key, label), f"Train (thin, smoothed) and validation (markers) loss "
                                                             f"against {label}.")
    shared_start_section(page, figs, runs)
    moe_runs = [r for r in runs if r["moe"]]
    if moe_runs:
        page.h2("Experts")
    for r in moe_runs:
        for layer in sorted(r["moe"]):
            page.figure(figs.expert_load(r, layer), f"{r['name']}: the share of (token, choice) pairs each expert "
                                                    f"of layer {layer} processed, over training (after dropping).")
        page.figure(figs.drop_and_entropy(r), f"{r['name']}: dropped pairs and router entropy per MoE layer.")


# Runs that share a start: the same point (weights, step) that two or more runs continue
# from, so that their curves overlap there and differ by little. Each such group gets the
# loss from that point zoomed, and each run's loss minus the group's first run's (the
# reference: the first given on the command line), and a row per run in a table.

def source_point(run):
    """The checkpoint a run started from (--init), through upcycled checkpoints to the
    one they were made from (an upcycled step 0 is that model's function), as a real
    path; None for a run from scratch or a source not found from here."""
    init = run["state"].get("init_from")
    for _ in range(9):
        if not init:
            return None
        found = locate(init)
        if not found:
            return None
        up = os.path.join(found, "upcycling.json")
        if not os.path.isfile(up):
            return os.path.realpath(found)
        prov = read_json(up, "the upcycling provenance")
        if not isinstance(prov, dict):
            raise ReportError(f"{up}: expected a JSON object (the upcycling provenance)")
        init = prov.get("from")
    return None


def train_points(r):
    """(step from the start of the first run, loss) of every logged training step."""
    return [(t["step"] + r["start"]["step"], t["loss"]) for t in r["train"]]


def val_points(r):
    return [(v["step"] + r["start"]["step"], v["val_loss"]) for v in r["val"]]


def shared_starts(runs):
    """Groups of runs (indices into runs, in the order given) that share a start, as dicts
    with the start's step and a description. Runs share a start when
      - they were initialised from the same checkpoint (directly or through an upcycled
        checkpoint made from it), with a run given whose directory holds that checkpoint
        and whose log goes past it counted in (it continued from the same point);
      - or they started from scratch and logged the same first step with the same loss
        (to 1e-6: the same initial weights on the same first batch)."""
    groups, by_src = [], {}
    for i, r in enumerate(runs):
        src = source_point(r)
        if src:
            if src not in by_src:
                shown = os.path.relpath(src)  # as the user would type it, when under here
                by_src[src] = {"step": r["start"]["step"], "what": src if shown.startswith("..") else shown,
                               "src": src, "runs": []}
                groups.append(by_src[src])
            by_src[src]["runs"].append(i)
        elif not r["state"].get("init_from") and r["train"]:
            step, loss = r["train"][0]["step"], r["train"][0]["loss"]
            for g in groups:
                if g.get("first") and g["first"][0] == step and abs(g["first"][1] - loss) <= 1e-6 * max(1.0, abs(loss)):
                    g["runs"].append(i)
                    break
            else:
                groups.append({"step": 0, "what": None, "first": (step, loss), "runs": [i]})
    for g in groups:
        if g.get("src"):
            g["what"] = f"{g['what']} (step {g['step']})"
            for i, q in enumerate(runs):  # a run that went on from this checkpoint of its own
                if i not in g["runs"] and os.path.realpath(q["path"]) == os.path.dirname(g["src"]) and \
                        any(s > g["step"] for s, _ in train_points(q)):
                    g["runs"] = sorted(g["runs"] + [i])
                    g["what"] += f", which {q['name']} went on from"
        else:
            g["what"] = f"from scratch with the same first loss ({g['first'][1]:.6f} at step {g['first'][0]})"
    return [g for g in groups if len(g["runs"]) > 1]


def interpolate(pts, x):
    """The piecewise-linear curve through pts (sorted by x) at x; None outside its range."""
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[0][1] if len(pts) == 1 and pts[0][0] == x else None


def difference(ref, r, start):
    """r's loss minus ref's after their shared start: training loss at the steps both
    logged (intersected), validation loss at r's validation steps with ref's linearly
    interpolated between its own (never extrapolated)."""
    a = dict(p for p in train_points(ref) if math.isfinite(p[1]))
    train = [(s, y - a[s]) for s, y in train_points(r) if s > start and s in a and math.isfinite(y)]
    rv = [p for p in val_points(ref) if p[0] >= start]
    val = []
    for s, y in val_points(r):
        y0 = interpolate(rv, s) if rv and s >= start else None
        if y0 is not None:
            val.append((s, y - y0))
    return {"train": train, "val": val}


def window(r):
    """The smoothing window of r's training curve in the loss figures."""
    return max(1, sum(1 for _, y in train_points(r) if math.isfinite(y)) // 50)


def shared_start_figure(figs, runs, g, diffs):
    """Left: the group's loss from its start, zoomed; right: each run's loss minus the reference's."""
    plt = figs.plt
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]  # each run keeps its colour of the loss figures
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    start, ref, shown = g["step"], runs[g["runs"][0]], []
    for i in g["runs"]:
        r, c = runs[i], colors[i % len(colors)]
        pts = [p for p in train_points(r) if math.isfinite(p[1])]
        ys = figs.smooth([p[1] for p in pts], window(r))
        keep = [(p[0], y) for p, y in zip(pts, ys) if p[0] >= start]
        if keep:
            shown += [y for _, y in keep]
            a1.plot([p[0] for p in keep], [p[1] for p in keep], color=c, lw=1, alpha=0.6,
                    marker="." if len(keep) == 1 else None, label=f"{r['name']} train")
        vpts = [p for p in val_points(r) if p[0] >= start]
        if vpts:
            shown += [p[1] for p in vpts]
            a1.plot([p[0] for p in vpts], [p[1] for p in vpts], "o-", color=c, ms=4, lw=1.5, label=f"{r['name']} val")
        if i in diffs:
            d = diffs[i]
            if d["train"]:
                a2.plot([p[0] for p in d["train"]], figs.smooth([p[1] for p in d["train"]], window(r)), color=c, lw=1,
                        alpha=0.6, marker="." if len(d["train"]) == 1 else None, label=f"{r['name']} train")
            if d["val"]:
                a2.plot([p[0] for p in d["val"]], [p[1] for p in d["val"]], "o-", color=c, ms=4, lw=1.5,
                        label=f"{r['name']} val")
    if len(shown) > 10:  # as the loss figures: the first steps' loss would flatten where the runs differ
        lo, mid = min(shown), sorted(shown)[len(shown) // 2]
        a1.set_ylim(lo - 0.1 * (mid - lo) - 1e-3, min(max(shown), lo + 3 * (mid - lo)) + 1e-3)
    a2.axhline(0, color=colors[g["runs"][0] % len(colors)], lw=1, label=f"{ref['name']} (reference)")
    a1.set_title(f"loss from step {start} (zoomed)", fontsize=10)
    a2.set_title(f"loss - {ref['name']}'s at the same step (below 0: lower)", fontsize=10)
    a1.set_ylabel("loss (nats/token)")
    a2.set_ylabel("difference (nats/token)")
    for ax in (a1, a2):
        ax.set_xlabel("optimizer steps (from the start of the first run)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figs.png(fig)


def shared_start_section(page, figs, runs):
    """A table and a figure per group of runs that share a start; nothing when none do."""
    groups, rows, figures = shared_starts(runs), [], []
    for g in groups:
        ref = runs[g["runs"][0]]
        diffs = {i: difference(ref, runs[i], g["step"]) for i in g["runs"][1:]}
        diffs = {i: d for i, d in diffs.items() if d["train"] or d["val"]}
        if not diffs:
            continue
        for i, d in diffs.items():
            tr, va = d["train"], d["val"]
            last = tr[-max(1, len(tr) // 10):]
            rows.append([runs[i]["name"], ref["name"], g["what"],
                         f"{tr[0][0]}-{tr[-1][0]} ({len(tr)})" if tr else "",
                         fmt(sum(y for _, y in last) / len(last), "+.4f") if tr else "",
                         fmt(va[-1][1], "+.4f") if va else "", va[-1][0] if va else ""])
        figures.append((g, diffs, ref))
    if not figures:
        return
    page.h2("Runs that share a start")
    page.p("Runs that continue the same checkpoint (directly or through an upcycled checkpoint made from it), or "
           "start from scratch with the same first loss, start from the same point, so their curves above overlap. "
           "Each run's loss minus the reference's (the first of them given) at the same step: training loss at the "
           "steps both logged (with --continue-data the same batches, so the difference is paired), its mean over "
           "the last tenth of them; validation loss at the run's last validation step, the reference's "
           "interpolated linearly between its own validation steps (never extrapolated). Below 0: lower than the "
           "reference.", "note")
    page.table(["run", "minus", "shared start", "steps compared", "train loss difference (last tenth)",
                "val loss difference", "at step"], rows, cls="shared", left=3)
    for g, diffs, ref in figures:
        names = ", ".join(runs[i]["name"] for i in g["runs"])
        page.figure(shared_start_figure(figs, runs, g, diffs),
                    f"{names} share a start: {g['what']}. Left: their loss from there, zoomed (train thin, smoothed "
                    f"as above; validation markers). Right: each run's loss minus {ref['name']}'s at the same step "
                    f"(train: the steps both logged, intersected, the difference smoothed over the run's window "
                    f"above; validation: at the run's validation steps, {ref['name']}'s interpolated linearly "
                    f"between its own, never extrapolated).")


def step0_section(page, figs, up):
    prov, s0 = up["prov"], up["step0"]
    page.h2(f"Step 0 of {up['path']}")
    keys = ["from", "experts", "top_k", "combine", "strategy", "granularity", "weight_scale", "moe_layers",
            "params_total", "params_active_per_token", "seed", "step0"]
    page.table(["field", "value"], [[k, str(prov[k])] for k in keys if k in prov], left=2)
    if not s0:
        page.p("No step0.json beside the checkpoint (written by `moe upcycle` since its step-0 check was kept; "
               "rerun `moe upcycle --check-only` to write it).", "note")
        return
    page.figure(figs.step0(up), "How far the upcycled model is from the dense one at step 0, per layer "
                                "(1e-12 stands for exactly 0).")
    rows = [[L["layer"], "MoE" if L["moe"] else "dense", fmt(L.get("block_max_diff"), ".3g"),
             fmt(L.get("scale"), ".3f"), fmt(L.get("gate_mass"), ".3f"),
             fmt(100 * L["drop_fraction"], ".1f") if "drop_fraction" in L else "", fmt(L["hidden_max_diff"], ".3g")]
            for L in s0["layers"]]
    page.table(["layer", "kind", "block max |diff|", "scale", "gate mass", "dropped %", "hidden max |diff|"], rows)
    page.p(f"On {s0['B']} x {s0['T']} tokens ({s0['batch']}): loss dense {s0['dense_loss']:.6f}, upcycled "
           f"{s0['moe_loss']:.6f}, difference {s0['loss_diff']:+.3g}.")


def protocol_section(page, figs, pr):
    s = pr["summary"]
    table, seeds = s["table"], s["seeds"]
    arms = [a for a in "abcs" if table and a in table[0]]
    gaps = [(x, y) for x, y in (("b", "a"), ("b", "c"), ("s", "a")) if table and f"{x}_minus_{y}" in table[0]]
    page.h2(f"Comparison: {pr['path']}")
    st = s["settings"]
    page.p(f"Validation loss (nats), mean ± std over seeds {', '.join(map(str, seeds))}. f = extra training FLOPs "
           f"/ the dense run's FLOPs; (c) gets the dense FLOPs plus f. Optimizer of (a), (b): {st.get('optimizer')}; "
           f"{st.get('experts')} experts, top-{st.get('top_k')}; batch {st.get('batch')} x {st.get('seq')}, lr "
           f"{st.get('lr')} constant then a final decay over {st.get('decay')} of (b)'s steps. * = the paired "
           f"gap is beyond its noise (t test, 95%).")
    rows = []
    for r in table:
        cells = [r["dense_steps"], f"{r['tokens_per_param']:.3g}", f"{r['f']:g}"]
        cells += [pm(r[a]["mean"], r[a]["std"]) for a in arms]
        for x, y in gaps:
            g = r[f"{x}_minus_{y}"]
            text = pm(g["mean"], g["std"]) + (" *" if g["beyond_noise"] else "")
            cells.append((text, "star") if g["beyond_noise"] else text)
        rows.append(cells)
    page.table(["dense steps", "tokens/param", "f"] + [NAMES[a] for a in arms] + [f"{x} - {y}" for x, y in gaps],
               rows, cls="comparison", left=0)
    page.p("Wall-clock (s, mean over seeds) each arm took for its FLOP-matched budget, the dense run's seconds "
           "included for the continued arms:", "note")
    page.table(["dense steps", "f"] + [NAMES[a] for a in arms],
               [[r["dense_steps"], f"{r['f']:g}"] + [seconds(r["wall_" + a]) for a in arms] for r in table],
               cls="wall", left=0)
    page.figure(figs.protocol_losses(table, arms, NAMES), "Validation loss of every arm against the extra budget, "
                                                           "one panel per dense budget (error bars: std over seeds).")
    page.figure(figs.sunk_cost(table, gaps), "The gaps against the dense model's budget (the sunk-cost axis), one "
                                             "line per extra budget f; below 0 the upcycled model is better "
                                             "(error bars: std of the paired gap over seeds).")


# What a type-confused input raises somewhere in reading or drawing it (a string where a
# number belongs, a list where an object does): one line naming the input, not a traceback.
CONFUSED = (TypeError, KeyError, ValueError, AttributeError, IndexError, RecursionError)


def confused(where, e):
    return ReportError(f"{where}: unexpected content ({e.__class__.__name__}: {e}); expected what moe train, "
                       f"moe upcycle or experiments/protocol.py write (docs/logs.md)")


def write_page(out_dir, html):
    """DIR/index.html atomically: a temp file beside it, fsynced, renamed; removed on any failure."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "index.html")
    tmp = path + f".tmp{os.getpid()}"
    _TEMP.append(tmp)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ReportError(f"{path}: cannot write ({e.strerror or e})") from None
        raise
    return path


def main(argv):
    p = argparse.ArgumentParser(prog="moe report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run directories, upcycled checkpoints, protocol outputs")
    p.add_argument("--out", required=True, help="directory to write index.html to")
    p.add_argument("--title", default="moe training report")
    a = p.parse_args(argv)
    runs, ups, protos, seen_up = [], [], [], set()
    for d in a.dirs:
        kind = classify(d)
        try:
            if kind == "run":
                runs.append(load_run(d, os.path.normpath(d)))
            elif kind == "protocol":
                protos.append(load_protocol(d))
            else:
                ups.append(load_upcycled(d))
                seen_up.add(os.path.realpath(d))
        except CONFUSED as e:
            raise confused(d, e) from None
    for r in runs:  # the step 0 of an upcycled checkpoint a run started from
        up = r["start"]["upcycled"]
        if up and os.path.realpath(up) not in seen_up:
            try:
                ups.append(load_upcycled(up))
            except CONFUSED as e:
                raise confused(up, e) from None
            seen_up.add(os.path.realpath(up))
    try:  # after the inputs are read: a bad input is one line, whatever matplotlib prints when it starts
        import report_figures as figs
    except ImportError as e:
        raise ReportError(f"matplotlib is needed to draw the figures ({e}); install python3-matplotlib") from None
    page = Page(a.title)
    page.p(f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by moe report from: "
           + ", ".join(a.dirs) + ".", "note")
    try:
        if runs:
            run_section(page, figs, runs)
    except CONFUSED as e:
        raise confused(", ".join(r["path"] for r in runs), e) from None
    for up in ups:
        try:
            step0_section(page, figs, up)
        except CONFUSED as e:
            raise confused(up["path"], e) from None
    for pr in protos:
        try:
            protocol_section(page, figs, pr)
        except CONFUSED as e:
            raise confused(os.path.join(pr["path"], "summary.json"), e) from None
    path = write_page(a.out, page.html())
    print(f"{path} ({page.figures} figures)")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ReportError as e:
        print(f"moe report: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"moe report: {e.filename or e.filename2 or 'an output'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)

