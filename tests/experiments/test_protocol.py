#!/usr/bin/env python3
"""The upcycling protocol (experiments/protocol.py) at toy size: its arms' configs,
data order, schedules and compute, read back from their trainer_state.json and
log.jsonl files, are what the protocol specifies.

Run: /usr/bin/python3 tests/experiments/test_protocol.py MOE_BINARY WORK_DIR [COMPUTE]
(COMPUTE: protocol.py --compute, f32 by default as --toy has it; the ISA-tier rerun gives bf16.)
"""
import json
import math
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toy import jsonl, toy_dataset  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "experiments", "protocol.py")
MOE, WORK, COMPUTE = None, None, None
SEEDS, DENSE, BUDGETS, DECAY = [1, 2], [8, 16], [0.5, 1.0], 0.25
B, T, LR, MIN_LR = 4, 32, 1e-3, 1e-4  # protocol.py's --toy sizes and the default rates



def state(ckpt):
    with open(os.path.join(ckpt, "trainer_state.json"), encoding="utf-8") as f:
        return json.load(f)


def step_lrs(run):
    return {j["step"]: j["lr"] for j in jsonl(os.path.join(run, "log.jsonl")) if "lr" in j and "loss" in j}


def fpt(run):
    last = [j for j in jsonl(os.path.join(run, "log.jsonl")) if "flops" in j and "loss" in j][-1]
    return last["flops"] / last["tokens"]


class Protocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        shutil.rmtree(WORK, ignore_errors=True)
        os.makedirs(WORK)
        data, out = toy_dataset(MOE, WORK), os.path.join(WORK, "out")
        subprocess.run([sys.executable, SCRIPT, "--toy", "--moe", MOE, "--data", data, "--out", out, "--threads", "1",
                        "--seeds", ",".join(map(str, SEEDS)), "--dense", ",".join(map(str, DENSE)),
                        "--budgets", ",".join(map(str, BUDGETS)), "--decay", str(DECAY), "--switch", "--jobs", "2"]
                       + (["--compute", COMPUTE] if COMPUTE else []),
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
            cls.summary = json.load(f)
        cls.out = out

    def test_every_arm_budget_and_seed_ran_and_the_table_aggregates_them(self):
        runs = self.summary["runs"]
        self.assertEqual(len(runs), len(SEEDS) * len(DENSE) * len(BUDGETS) * 4)  # a, b, c, s
        for r in runs:
            self.assertTrue(math.isfinite(r["val_loss"]) and 3 < r["val_loss"] < 8, r)
        table = self.summary["table"]
        self.assertEqual(len(table), len(DENSE) * len(BUDGETS))
        for row in table:
            for arm in "abcs":
                losses = [r["val_loss"] for r in runs if r["dense_steps"] == row["dense_steps"] and r["f"] == row["f"]
                          and r["arm"] == arm]
                self.assertAlmostEqual(row[arm]["mean"], sum(losses) / len(losses), places=12)
            gaps = [next(r["val_loss"] for r in runs if r["seed"] == s and r["dense_steps"] == row["dense_steps"]
                         and r["f"] == row["f"] and r["arm"] == "b") -
                    next(r["val_loss"] for r in runs if r["seed"] == s and r["dense_steps"] == row["dense_steps"]
                         and r["f"] == row["f"] and r["arm"] == "a") for s in SEEDS]
            self.assertAlmostEqual(row["b_minus_a"]["mean"], sum(gaps) / len(gaps), places=12)
        with open(os.path.join(self.out, "table.md"), encoding="utf-8") as f:
            # one row per (N, f) in the loss table, and again in the wall-clock table
            self.assertEqual(sum(1 for l in f if l.startswith("| ") and l[2].isdigit()), 2 * len(table))

    def test_branches_continue_their_arm_schedule_data_and_seed(self):
        for r in self.summary["runs"]:
            d, k, n, arm = r["decay_steps"], r["branch_at"], r["dense_steps"], r["arm"]
            st = state(os.path.join(r["dir"], f"checkpoint-{d}"))
            c = st["config"]
            # The schedule: wsd, the final decay over this branch's D steps, continuing the arm.
            self.assertEqual((c["schedule"], c["decay_steps"], c["steps"]), ("wsd", d, d), r)
            offset = k if arm == "c" else n + k
            self.assertEqual(c["schedule_offset"], offset, r)
            arm_dir = os.path.join(os.path.dirname(r["dir"]), arm)
            # (c) is one run per seed, shared by every dense budget: seedS/c, branches seedS/c_N*_f*.
            seed_dir = os.path.join(self.out, f"seed{r['seed']}")
            self.assertEqual(r["dir"], os.path.join(seed_dir, f"c_N{n}_f{r['f']:g}") if arm == "c" else
                             os.path.join(seed_dir, f"N{n}", f"{arm}_f{r['f']:g}"), r)
            start = os.path.join(os.path.dirname(r["dir"]), {"b": "upcycled", "s": "upcycled_s"}[arm]) \
                if arm in "bs" else os.path.join(os.path.dirname(os.path.dirname(r["dir"])), "dense", f"checkpoint-{n}")
            src = os.path.join(arm_dir, f"checkpoint-{k}") if k > 0 else start
            self.assertEqual(os.path.normpath(c["schedule_from"]), os.path.normpath(src), r)
            # The same seed, batch and sequence; the data order continued: every token of the
            # arm (and of the dense run before it) read once, in order.
            self.assertEqual((c["seed"], c["batch"], c["seq"]), (r["seed"], B, T), r)
            self.assertEqual(st["loader"], {"cursor": (offset + d) * B * T, "epoch": 0}, r)
            # The learning rate: lr at the decay's first step, then linearly towards min-lr.
            lrs = step_lrs(r["dir"])
            self.assertEqual(sorted(lrs), list(range(1, d + 1)), r)
            for i, lr in lrs.items():
                self.assertAlmostEqual(lr, LR + (MIN_LR - LR) * (i - 1) / d, delta=1e-9, msg=str(r))
            self.assertEqual(r["steps"], k + d)

    def test_stable_phases_hold_the_peak_rate_without_a_second_warmup(self):
        for s in SEEDS:
            for n in DENSE:
                for arm in "abs":
                    lrs = step_lrs(os.path.join(self.out, f"seed{s}", f"N{n}", arm))
                    self.assertTrue(lrs and all(abs(v - LR) < 1e-9 for v in lrs.values()), (s, n, arm, lrs))
                up = os.path.join(self.out, f"seed{s}", f"N{n}", "upcycled", "upcycling.json")
                with open(up, encoding="utf-8") as f:
                    prov = json.load(f)
                self.assertEqual(prov["seed"], s)  # the router's seed is the run's
                self.assertTrue(prov["from"].endswith(f"dense/checkpoint-{n}"))
                self.assertEqual((prov["top_k"], prov["combine"]), (2, "renorm"))
                with open(os.path.join(os.path.dirname(os.path.dirname(up)), "upcycled_s", "upcycling.json")) as f:
                    sw = json.load(f)  # (s): Switch top-1, raw gates, the dense output scale restored
                self.assertEqual((sw["top_k"], sw["combine"], sw["weight_scale"], sw["seed"]), (1, "raw", 4.0, s))

    def test_every_run_trains_in_the_compute_asked_for(self):
        for r in self.summary["runs"] + [{"dir": os.path.join(self.out, f"seed{s}", "dense")} for s in SEEDS]:
            ckpts = sorted(d for d in os.listdir(r["dir"]) if d.startswith("checkpoint-"))
            self.assertTrue(ckpts, r["dir"])
            self.assertEqual(state(os.path.join(r["dir"], ckpts[-1]))["config"]["compute"], COMPUTE or "f32", r["dir"])

    def test_compute_is_matched(self):
        runs = self.summary["runs"]
        for s in SEEDS:
            dense = os.path.join(self.out, f"seed{s}", "dense")
            fpt_d = fpt(dense)
            for n in DENSE:
                p = n * B * T * fpt_d
                for f in BUDGETS:
                    by = {r["arm"]: r for r in runs if r["seed"] == s and r["dense_steps"] == n and r["f"] == f}
                    fpt_m = fpt(by["b"]["dir"])
                    self.assertLessEqual(abs(by["a"]["extra_flops"] - f * p), B * T * fpt_d / 2 + 1, by["a"])
                    self.assertLessEqual(abs(by["b"]["extra_flops"] - f * p), B * T * fpt_m / 2 + 1, by["b"])
                    self.assertLessEqual(abs(by["c"]["total_flops"] - (1 + f) * p), B * T * fpt_m / 2 + 1, by["c"])
                    fpt_s = fpt(by["s"]["dir"])
                    self.assertLess(fpt_s, fpt_m)  # top-1: fewer active parameters than top-2
                    self.assertLessEqual(abs(by["s"]["extra_flops"] - f * p), B * T * fpt_s / 2 + 1, by["s"])
                    self.assertEqual(len({r["decay_steps"] for r in by.values()}), 1, "one decay length for all arms")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_protocol.py MOE_BINARY WORK_DIR [COMPUTE]")
    MOE, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    COMPUTE = sys.argv[3] if len(sys.argv) > 3 else None
    unittest.main(argv=sys.argv[:1])
