#!/usr/bin/env python3
"""moe report RUN_DIR... --out DIR: one self-contained HTML page about training runs.

Each argument is one of
  a run directory (`moe train --out`): loss against steps, tokens, FLOPs and wall-clock
      (a continued run is drawn from where its source stood, on the total compute); for an
      MoE run, a heatmap per MoE layer of expert load over training, drop fraction and
      router entropy; if it started from an upcycled checkpoint, that checkpoint's step 0;
  an upcycled checkpoint (`moe upcycle --out`): its step-0 report;
  a protocol output (experiments/protocol.py --out): the comparison table with error
      bars, the losses against the extra budget and the gaps against the dense budget.
Writes DIR/index.html (atomically) and prints its path. Needs python3-matplotlib.
"""
import signal
import sys


def stop(sig, _frame):
    """Ctrl-C, SIGTERM, SIGHUP: one line and exit 128 + N (write_page removes its temp)."""
    print(f"moe report: stopped by {signal.Signals(sig).name}", file=sys.stderr)
    raise SystemExit(128 + sig)


for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # first: the imports below take a while
    signal.signal(_sig, stop)

import argparse  # noqa: E402
import datetime  # noqa: E402
import os  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_page import Page, pm  # noqa: E402
from report_runs import ReportError, classify, load_protocol, load_run, load_upcycled  # noqa: E402

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
    moe_runs = [r for r in runs if r["moe"]]
    if moe_runs:
        page.h2("Experts")
    for r in moe_runs:
        for layer in sorted(r["moe"]):
            page.figure(figs.expert_load(r, layer), f"{r['name']}: the share of (token, choice) pairs each expert "
                                                    f"of layer {layer} processed, over training (after dropping).")
        page.figure(figs.drop_and_entropy(r), f"{r['name']}: dropped pairs and router entropy per MoE layer.")


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

