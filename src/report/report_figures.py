"""The figures of `moe report`, drawn with matplotlib (Agg, no display) and returned
as PNG bytes. Each function draws one figure."""
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

AXES = [("step", "optimizer steps (from the start of the first run)"), ("tokens", "training tokens"),
        ("flops", "training FLOPs"), ("elapsed", "training wall-clock (s)")]
ARM_COLORS = {"a": "#1f77b4", "b": "#d62728", "c": "#2ca02c", "s": "#9467bd", "dense": "#555555"}


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def err(std):
    """An error bar: none for one seed (std null or NaN)."""
    return 0 if std is None or math.isnan(std) else std


def smooth(ys, window):
    """Trailing mean over `window` points (the train loss of single steps is noisy)."""
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= window:
            acc -= ys[i - window]
        out.append(acc / min(i + 1, window))
    return out


def x_of(rec, key, start):
    """A log record's position on axis `key`, counted from the start of the first run
    (a continued run is shifted by what its source had spent)."""
    if key not in rec:
        return None
    return rec[key] + start.get(key, 0)


def loss_curves(runs, key, label):
    """Train loss (smoothed, thin) and validation loss (markers) of every run against one axis."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = []
    for i, r in enumerate(runs):
        c = colors[i % len(colors)]
        pts = [(x_of(t, key, r["start"]), t["loss"]) for t in r["train"]]
        pts = [p for p in pts if p[0] is not None and math.isfinite(p[1])]
        if pts:
            ys = smooth([p[1] for p in pts], max(1, len(pts) // 50))
            shown += ys
            ax.plot([p[0] for p in pts], ys, color=c, lw=1, alpha=0.6, marker="." if len(pts) == 1 else None,
                    label=f"{r['name']} train")
        vpts = [(x_of(v, key, r["start"]), v["val_loss"]) for v in r["val"]]
        vpts = [p for p in vpts if p[0] is not None]
        if vpts:
            shown += [p[1] for p in vpts]
            ax.plot([p[0] for p in vpts], [p[1] for p in vpts], "o-", color=c, ms=4, lw=1.5, label=f"{r['name']} val")
    if len(shown) > 10:  # the first steps' loss (ln V) would flatten where the runs differ
        lo, mid = min(shown), sorted(shown)[len(shown) // 2]
        ax.set_ylim(lo - 0.1 * (mid - lo) - 1e-3, min(max(shown), lo + 3 * (mid - lo)) + 1e-3)
    ax.set_xlabel(label)
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return png(fig)


def bins(steps, n):
    """Split indices 0..len(steps)-1 into at most n consecutive groups."""
    k = max(1, math.ceil(len(steps) / n))
    return [list(range(i, min(i + k, len(steps)))) for i in range(0, len(steps), k)]


def expert_load(run, layer):
    """Heatmap: experts x steps, the fraction of (token, choice) pairs each expert took."""
    recs = run["moe"][layer]
    steps = [r[0] + run["start"]["step"] for r in recs]
    E = max(len(r[1]) for r in recs)
    groups = bins(steps, 300)
    grid = [[sum(recs[i][1][e] if e < len(recs[i][1]) else 0 for i in g) / len(g) for g in groups] for e in range(E)]
    fig, ax = plt.subplots(figsize=(9, 0.35 * E + 1.6))
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0,
                   extent=(steps[groups[0][0]], steps[groups[-1][-1]] + 1, E - 0.5, -0.5))
    ax.set_xlabel("step")
    ax.set_ylabel("expert")
    ax.set_yticks(range(E))
    ax.set_title(f"{run['name']}: expert load, layer {layer} (uniform = {1 / E:.3f})", fontsize=10)
    fig.colorbar(im, ax=ax, label="fraction of pairs")
    return png(fig)


def drop_and_entropy(run):
    """Drop fraction and router entropy of every MoE layer over training."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for layer, recs in sorted(run["moe"].items()):
        steps = [r[0] + run["start"]["step"] for r in recs]
        w = max(1, len(recs) // 50)
        mk = "o" if len(recs) == 1 else None
        a1.plot(steps, smooth([100 * r[2] for r in recs], w), lw=1.2, marker=mk, label=f"layer {layer}")
        a2.plot(steps, smooth([r[3] for r in recs], w), lw=1.2, marker=mk, label=f"layer {layer}")
    E = run["experts"]
    a2.axhline(math.log(E), color="k", ls=":", lw=1, label=f"ln {E} (uniform)")
    a1.set_title("dropped (token, choice) pairs (%)", fontsize=10)
    a2.set_title("router entropy (nats)", fontsize=10)
    for ax in (a1, a2):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return png(fig)


def step0(up):
    """Per layer: how far the upcycled model's block and hidden state are from the dense model's at step 0."""
    layers = up["step0"]["layers"]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    xs = [L["layer"] for L in layers]
    floor = 1e-12
    ax.bar([x - 0.2 for x in xs], [max(L.get("block_max_diff", 0), floor) if L["moe"] else floor for L in layers],
           width=0.4, color="#d62728", label="MoE block output, max |upcycled - dense|")
    ax.bar([x + 0.2 for x in xs], [max(L["hidden_max_diff"], floor) for L in layers], width=0.4, color="#1f77b4",
           label="hidden state after the layer, max |upcycled - dense|")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xlabel("layer")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    ax.set_title(f"step 0: loss dense {up['step0']['dense_loss']:.5f}, upcycled {up['step0']['moe_loss']:.5f}",
                 fontsize=10)
    return png(fig)


def protocol_losses(table, arms, names):
    """Validation loss of every arm against the extra budget f, one panel per dense budget, +- std over seeds."""
    dense = sorted({r["dense_steps"] for r in table})
    fig, axes = plt.subplots(1, len(dense), figsize=(min(4 * len(dense), 16), 3.6), squeeze=False)
    for ax, n in zip(axes[0], dense):
        rows = [r for r in table if r["dense_steps"] == n]
        for arm in arms:
            ax.errorbar([r["f"] for r in rows], [r[arm]["mean"] for r in rows],
                        yerr=[err(r[arm]["std"]) for r in rows],
                        marker="o", ms=4, capsize=3, color=ARM_COLORS[arm], label=names[arm])
        ax.set_title(f"N = {n} steps ({rows[0]['tokens_per_param']:.2g} tokens/param)", fontsize=9)
        ax.set_xlabel("extra budget f (x dense FLOPs)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("val loss (nats)")
    axes[0][0].legend(fontsize=7)
    return png(fig)


def sunk_cost(table, gaps):
    """The gaps (b - a, b - c, s - a) against the dense model's budget: where upcycling starts to pay."""
    fig, axes = plt.subplots(1, len(gaps), figsize=(5 * len(gaps), 3.8), squeeze=False)
    fs = sorted({r["f"] for r in table})
    cmap = plt.get_cmap("viridis")
    for ax, (x, y) in zip(axes[0], gaps):
        key = f"{x}_minus_{y}"
        for i, f in enumerate(fs):
            rows = sorted((r for r in table if r["f"] == f), key=lambda r: r["tokens_per_param"])
            ax.errorbar([r["tokens_per_param"] for r in rows], [r[key]["mean"] for r in rows],
                        yerr=[err(r[key]["std"]) for r in rows], marker="o", ms=4,
                        capsize=3, color=cmap(0.85 * i / max(1, len(fs) - 1)), label=f"f = {f:g}")
        ax.axhline(0, color="k", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("dense budget (tokens per parameter)")
        ax.set_title(f"val loss {x} - {y} (nats; below 0: ({x}) is better)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return png(fig)
