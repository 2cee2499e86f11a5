#!/usr/bin/env python3
"""The sparse-upcycling protocol (issue 10): the paper's comparison done with a
warmup-stable-decay schedule, several dense budgets, several extra budgets and
several seeds. Standard library only; drives the moe binary.

For each seed s and dense budget N (steps of the dense run):
  dense  one run per seed: warmup, then a constant learning rate (wsd without decay);
         its checkpoint at step N is a stable-phase checkpoint (no annealing).
  (a)    dense continued from checkpoint-N with the schedule continued (no re-warmup),
  (b)    checkpoint-N upcycled (E experts, every other layer, top-k renormalised: step 0
         is the dense model; router seed s), then trained the same way,
  (s)    with --switch: checkpoint-N upcycled the Switch way (top-1, raw gates, expert
         outputs scaled so step 0 is the dense model: --combine raw --scale-to-dense),
  (c)    the same MoE from scratch (seed s), same warmup and constant learning rate:
         one run per seed, shared by every N (from scratch, nothing in it depends on N).
  Each arm runs at the constant rate; for an extra budget f (a fraction of the dense
  run's training FLOPs P) the arm branches at the step where a final decay of D steps
  ends exactly on budget: (a), (b), (s) spend f P beyond the dense run, (c) spends
  P + f P in all. D = max(1, round(decay x (b)'s steps at f)), the same for all arms,
  so every arm ends with the same decay. The branch continues the arm's data order,
  optimizer and schedule (--continue-data --continue-schedule --init-optimizer).
  The optimizer of (a) and (b) at the start of their continuation is either fresh in
  both or carried in both (--optimizer).
Every branch is evaluated on the same validation batches (moe eval). Written to OUT:
  summary.json   every run: losses, FLOPs, wall-clock, steps; the aggregate per (N, f)
  table.md       mean +- std over seeds of every arm and the paired gaps b-a, b-c (s-a),
                 marked when larger than their noise (paired t test, 95%); wall-clock
  OUT/seedS/commands.log: every moe command of that seed and its output

  protocol.py [--toy] [--out DIR] [--data DIR] [--seeds 1,2,3] [--dense 200,400,800]
              [--budgets 0.1,0.2,0.4,0.6,1.0] [--decay 0.2] [--optimizer fresh|carried]
              [--config CONFIG.json | --preset small [--family llama|gpt2|t5]] [--switch] [--jobs 3] ...

T5 (--family t5, or a t5 --config; the dataset made by moe data --t5): the same arms on
span corruption, (b) upcycled the paper's way (expert choice in the encoder, top-2 in
the decoder: moe upcycle's T5 defaults), --seq the encoder length, and the tokens of a
step (the FLOP budgets' unit) the encoder's and the decoder's, read from the dense log.
"""
import argparse
import concurrent.futures
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading

# Two-sided 95% critical values of Student's t, by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


class ProtocolError(Exception):
    """A failure: printed as one line, exit 1 (with parallel seeds, as soon as one fails)."""


# Parallel seeds: the first failure stops the others (their running moe is terminated).
STOP = threading.Event()
LIVE, LIVE_LOCK = set(), threading.Lock()


class Moe:
    """Runs the moe binary; every command and its output go to OUT/commands.log."""

    def __init__(self, binary, threads, log_path):
        self.binary, self.threads, self.log_path = binary, threads, log_path

    def __call__(self, *args):
        cmd = [self.binary, "--threads", str(self.threads)] + [str(a) for a in args]
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            with LIVE_LOCK:
                if STOP.is_set():
                    raise ProtocolError("stopped: another seed failed")
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
                LIVE.add(proc)
            out, _ = proc.communicate()
            with LIVE_LOCK:
                LIVE.discard(proc)
            log.write(out)
        if proc.returncode != 0:
            raise ProtocolError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}); see {self.log_path}")
        return out


def log_lines(run):
    with open(os.path.join(run, "log.jsonl"), encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def flops_per_token(run):
    """Training FLOPs per token of a run, from its log (cumulative flops / tokens)."""
    steps = [j for j in log_lines(run) if "flops" in j and "loss" in j]
    if not steps:
        raise ProtocolError(f"{run}/log.jsonl has no step with flops")
    return steps[-1]["flops"] / steps[-1]["tokens"]


def tokens_per_step_of(run):
    """Tokens one step of a run reads, from its log (T5: encoder and decoder tokens)."""
    first = [j for j in log_lines(run) if "tokens" in j and "loss" in j and j.get("step") == 1]
    if not first:
        raise ProtocolError(f"{run}/log.jsonl has no step 1 with tokens")
    return first[0]["tokens"]


def trainer_state(ckpt):
    with open(os.path.join(ckpt, "trainer_state.json"), encoding="utf-8") as f:
        return json.load(f)


def ckpt(run, step):
    return os.path.join(run, f"checkpoint-{step}")


def stable_run(moe, out, first_args, stops, total):
    """A constant-rate run with a checkpoint at every step in stops (each --stop-at,
    then --resume: bit-exact), to `total` steps."""
    points = sorted(set(k for k in stops if 0 < k < total))
    args = list(first_args) + ["--out", out, "--steps", total, "--keep", 100000]
    for i, k in enumerate(points + [None]):
        stop = ["--stop-at", k] if k is not None else []
        if i == 0:
            moe("train", *args, *stop)
        else:
            moe("train", "--out", out, "--resume", *stop)


def paired(xs, ys):
    """Mean and std of the paired differences y - x, and whether |mean| beats the noise
    (paired t test, two-sided 95%; needs 2+ seeds)."""
    d = [y - x for x, y in zip(xs, ys)]
    m = statistics.fmean(d)
    if len(d) < 2:
        return m, float("nan"), False
    s = statistics.stdev(d)
    t = abs(m) / (s / math.sqrt(len(d))) if s > 0 else math.inf
    return m, s, t > T95.get(len(d) - 1, 1.96)


def mean_std(xs):
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--toy", action="store_true", help="tiny sizes: a test of the protocol in seconds")
    p.add_argument("--moe", default=os.environ.get("MOE", "build/moe"))
    p.add_argument("--out", default="runs/protocol")
    p.add_argument("--data", default="runs/demo/data")
    p.add_argument("--preset", default="small")
    p.add_argument("--config", default="", help="a model config.json for the dense model instead of --preset")
    p.add_argument("--family", default="llama", help="the family of --preset (t5: span corruption; its dataset "
                   "needs moe data --t5)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--dense", default="200,400,800", help="dense budgets N (steps), comma-separated")
    p.add_argument("--budgets", default="0.1,0.2,0.4,0.6,1.0", help="extra budgets f (fractions of the dense FLOPs)")
    p.add_argument("--decay", type=float, default=0.2, help="decay steps as a fraction of (b)'s steps at a budget")
    p.add_argument("--optimizer", choices=["fresh", "carried"], default="fresh")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--upcycle-args", default="", help="more `moe upcycle` flags for (b) only, e.g. '--strategy drop' ((s) is always "
                        "--top-k 1 --combine raw --scale-to-dense)")
    p.add_argument("--switch", action="store_true",
                   help="also arm (s): Switch upcycling, top-1 raw gates with the dense output scale restored "
                        "(--combine raw --scale-to-dense), at the extra FLOPs of (a)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--compute", choices=["f32", "bf16", "auto"],
                   help="moe train --compute: f32 | bf16 | auto (default; --toy: f32): auto is the machine's fastest, "
                        "bf16 with a native bf16 GEMM, f32 otherwise")
    p.add_argument("--eval-batches", type=int, default=16)
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel (each with --threads / jobs)")
    p.add_argument("--threads", type=int, default=0, help="moe --threads of each job (0: the cores / jobs)")
    a = p.parse_args()
    if a.toy:
        a.preset, a.batch, a.seq, a.warmup, a.eval_batches = "tiny", 4, 32, 2, 2
        a.experts = 4
    a.compute = a.compute or ("f32" if a.toy else "auto")
    seeds = [int(s) for s in a.seeds.split(",")]
    dense_budgets = sorted(int(n) for n in a.dense.split(","))
    budgets = sorted(float(f) for f in a.budgets.split(","))
    if min(dense_budgets) <= a.warmup:
        raise ProtocolError(f"every dense budget must be past the warmup ({a.warmup} steps)")
    os.makedirs(a.out, exist_ok=True)
    jobs = max(1, min(a.jobs, len(seeds)))
    threads = a.threads or max(1, (os.cpu_count() or 1) // jobs)
    moe = Moe(a.moe, threads, os.path.join(a.out, "commands.log"))
    if not os.path.isfile(os.path.join(a.data, "meta.json")):
        moe("data", "--out", a.data, *(["--t5"] if a.family in ("t5", "switch_transformers") else []))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_seed, a, seed, threads, dense_budgets, budgets): seed for seed in seeds}
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:  # stop the other seeds now, not when they finish
            STOP.set()
            with LIVE_LOCK:
                for proc in LIVE:
                    proc.terminate()
            err = failed[0].exception()
            raise ProtocolError(f"seed {futures[failed[0]]}: {err}") from None
        runs = [r for f in sorted(futures, key=futures.get) for r in f.result()]
    write_report(a, runs, seeds, dense_budgets, budgets)


def run_seed(a, seed, threads, dense_budgets, budgets):
    """Every run of one seed: the dense run, per dense budget the upcycled model(s) and
    arms (a), (b) [, (s)], and one MoE-from-scratch run (c) shared by all dense budgets
    (from scratch, it does not depend on N: each (N, f) is one branch of it)."""
    root = os.path.join(a.out, f"seed{seed}")
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    moe = Moe(a.moe, threads, os.path.join(root, "commands.log"))
    common = ["--data", a.data, "--batch", a.batch, "--seq", a.seq, "--compute", a.compute,
              "--eval-every", 0, "--eval-batches", 1, "--log-every", 100]
    schedule = ["--schedule", "wsd", "--decay-steps", 0, "--lr", a.lr, "--min-lr", a.min_lr, "--warmup", a.warmup]
    carried = a.optimizer == "carried"
    runs = []

    def evaluate(model):
        out = moe("eval", "--model", model, "--data", a.data, "--batches", a.eval_batches, "--batch", a.batch,
                  "--seq", a.seq, "--json")
        return json.loads(out.strip().splitlines()[-1])["loss"]

    def branch(arm_dir, k, start, d, out):
        """The final decay: D steps from the arm's checkpoint at step k (k = 0: `start`)."""
        if k <= 0 and start is None:
            raise ProtocolError(f"{arm_dir} would branch before its first step; use larger budgets")
        src = ckpt(arm_dir, k) if k > 0 else start
        opt = ["--init-optimizer"] if k > 0 or carried else []
        moe("train", *common, "--init", src, "--continue-data", "--continue-schedule", *opt,
            "--steps", d, "--decay-steps", d, "--out", out, "--seed", seed)
        return ckpt(out, d)

    def finish(arm, arm_dir, start, n, q, out, fpt, dense_flops, extra_wall):
        """Branch an arm's stable run into its final decay at budget q; record the result."""
        k = q["steps"][arm] - q["decay"]
        if k < 0:
            raise ProtocolError(f"{arm_dir}: the final decay ({q['decay']} steps) is longer than the arm's "
                                f"{q['steps'][arm]} steps at f = {q['f']:g}; use a smaller --decay or larger budgets")
        final = branch(arm_dir, k, start, q["decay"], out)
        wall = trainer_state(final)["elapsed_seconds"] + extra_wall
        wall += trainer_state(ckpt(arm_dir, k))["elapsed_seconds"] if k > 0 else 0
        flops = (0 if arm == "c" else dense_flops) + (k + q["decay"]) * tokens_per_step * fpt
        runs.append({"seed": seed, "dense_steps": n, "tokens_per_param": n * tokens_per_step / n_params,
                     "f": q["f"], "arm": arm, "branch_at": k, "decay_steps": q["decay"], "steps": k + q["decay"],
                     "val_loss": evaluate(final), "total_flops": flops, "extra_flops": flops - dense_flops,
                     "wall_s": wall, "dir": out})

    model = ["--config", a.config] if a.config else ["--preset", a.preset, "--family", a.family]
    dense = os.path.join(root, "dense")
    stable_run(moe, dense, [*common, *schedule, *model, "--seed", seed], dense_budgets, max(dense_budgets))
    fpt_d = flops_per_token(dense)
    tokens_per_step = tokens_per_step_of(dense)  # B x seq, or for T5 B x (encoder + decoder tokens)
    n_params = json.loads(moe("inspect", ckpt(dense, max(dense_budgets)), "--json"))["params_total"]
    upcycles = {"b": ["--top-k", a.top_k, *a.upcycle_args.split()]}
    if a.switch:
        upcycles["s"] = ["--top-k", 1, "--combine", "raw", "--scale-to-dense"]
    c_plans, moe_config, fpt_c = [], None, None
    for n in dense_budgets:
        base = os.path.join(root, f"N{n}")
        dense_flops = n * tokens_per_step * fpt_d
        dense_wall = trainer_state(ckpt(dense, n))["elapsed_seconds"]
        cont = [*common, "--continue-data", "--continue-schedule", "--seed", seed, *(["--init-optimizer"] if carried else [])]
        starts, fpts = {"a": ckpt(dense, n)}, {"a": fpt_d}
        for arm, args in upcycles.items():
            up = os.path.join(base, "upcycled" if arm == "b" else f"upcycled_{arm}")
            moe("upcycle", "--from", ckpt(dense, n), "--out", up, "--experts", a.experts, "--seed", seed,
                "--check-data", a.data, *(["--carry-optimizer"] if carried else []), *args)
            probe = os.path.join(base, f"probe_{arm}")  # the MoE's FLOPs per token, from one step
            moe("train", *cont, "--init", up, "--steps", 1, "--decay-steps", 0, "--out", probe)
            starts[arm], fpts[arm] = up, flops_per_token(probe)
            shutil.rmtree(probe)
        moe_config = moe_config or os.path.join(base, "upcycled", "config.json")
        fpt_c = fpts["b"]
        plan = []
        for f in budgets:
            extra = f * dense_flops
            steps = {arm: max(1, round(extra / (tokens_per_step * fpt))) for arm, fpt in fpts.items()}
            steps["c"] = max(1, round((dense_flops + extra) / (tokens_per_step * fpt_c)))
            plan.append({"f": f, "steps": steps, "decay": max(1, round(a.decay * steps["b"]))})
        for arm, start in starts.items():
            arm_dir = os.path.join(base, arm)
            stops = [q["steps"][arm] - q["decay"] for q in plan]
            stable_run(moe, arm_dir, [*cont, "--init", start, "--decay-steps", 0], stops, max(max(stops), 1))
            for q in plan:
                finish(arm, arm_dir, start, n, q, os.path.join(base, f"{arm}_f{q['f']:g}"), fpts[arm], dense_flops,
                       dense_wall)
        c_plans += [(n, dense_flops, q) for q in plan]
    c_dir = os.path.join(root, "c")
    stops = [q["steps"]["c"] - q["decay"] for _, _, q in c_plans]
    stable_run(moe, c_dir, [*common, *schedule, "--config", moe_config, "--seed", seed], stops, max(max(stops), 1))
    for n, dense_flops, q in c_plans:
        finish("c", c_dir, None, n, q, os.path.join(root, f"c_N{n}_f{q['f']:g}"), fpt_c, dense_flops, 0)
    return runs


def write_report(a, runs, seeds, dense_budgets, budgets):
    arms = "abc" + ("s" if any(r["arm"] == "s" for r in runs) else "")
    gaps = [("b", "a"), ("b", "c")] + ([("s", "a")] if "s" in arms else [])
    rows = []
    for n in dense_budgets:
        for f in budgets:
            by = {arm: [next(r for r in runs if r["seed"] == s and r["dense_steps"] == n and r["f"] == f
                             and r["arm"] == arm) for s in seeds] for arm in arms}
            loss = {arm: [r["val_loss"] for r in by[arm]] for arm in arms}
            row = {"dense_steps": n, "tokens_per_param": by["a"][0]["tokens_per_param"], "f": f,
                   **{arm: dict(zip(("mean", "std"), mean_std(loss[arm]))) for arm in arms},
                   **{f"wall_{arm}": statistics.fmean(r["wall_s"] for r in by[arm]) for arm in arms}}
            for x, y in gaps:
                g = paired(loss[y], loss[x])
                row[f"{x}_minus_{y}"] = {"mean": g[0], "std": g[1], "beyond_noise": g[2]}
            rows.append(row)
    summary = {"settings": {k: v for k, v in vars(a).items()}, "seeds": seeds, "runs": runs, "table": rows}
    with open(os.path.join(a.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(json_safe(summary), f, indent=1, allow_nan=False)
    pm = lambda m, s: f"{m:.4f} ± {s:.4f}" if not math.isnan(s) else f"{m:.4f}"
    gap = lambda g: pm(g["mean"], g["std"]) + (" *" if g["beyond_noise"] else "")
    names = {"a": "(a) dense", "b": "(b) upcycled", "c": "(c) scratch", "s": "(s) switch"}
    lines = [f"Validation loss (nats), mean ± std over seeds {','.join(map(str, seeds))}; "
             f"f = extra training FLOPs / dense FLOPs; * = the paired gap is beyond its noise (t test, 95%).", "",
             "| dense steps | tokens/param | f | " + " | ".join(names[x] for x in arms) + " | " +
             " | ".join(f"{x} - {y}" for x, y in gaps) + " |",
             "|---|---|---|" + "---|" * (len(arms) + len(gaps))]
    for r in rows:
        lines.append(f"| {r['dense_steps']} | {r['tokens_per_param']:.3g} | {r['f']:g} | " +
                     " | ".join(pm(r[x]["mean"], r[x]["std"]) for x in arms) + " | " +
                     " | ".join(gap(r[f"{x}_minus_{y}"]) for x, y in gaps) + " |")
    lines += ["", "Wall-clock (s, mean over seeds) of each arm at its FLOP-matched budget, "
              "the dense run's seconds included for the continued arms"
              + (f" ({a.jobs} seeds in parallel: they shared the cores, so compare arms, not machines):"
                 if a.jobs > 1 else ":"), "",
              "| dense steps | f | " + " | ".join(names[x] for x in arms) + " |", "|---|---|" + "---|" * len(arms)]
    for r in rows:
        lines.append(f"| {r['dense_steps']} | {r['f']:g} | " + " | ".join(f"{r['wall_' + x]:.0f}" for x in arms) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


def json_safe(x):
    """NaN (the std of one seed) as null: summary.json stays strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return x


if __name__ == "__main__":
    try:
        main()
    except ProtocolError as e:
        sys.exit(f"protocol: {e}")
