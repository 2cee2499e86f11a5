#!/usr/bin/env python3
"""Tests for experiments/upcycle_report.py (stdlib only).

Run: /usr/bin/python3 tests/experiments/test_upcycle_report.py
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "experiments", "upcycle_report.py")
SVG = "{http://www.w3.org/2000/svg}"
LABELS = ["dense pretraining", "(a) dense continued", "(b) upcycled MoE", "(c) MoE from scratch"]


def write_log(run_dir, records, raw_lines=()):
    """Write records (dicts) as JSONL into run_dir/log.jsonl, then any raw extra lines."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "log.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        for line in raw_lines:
            f.write(line + "\n")


def read(path):
    """Return the text of a file."""
    with open(path, encoding="utf-8") as f:
        return f.read()


def train_lines(last_step, flops_per_step, every=10):
    """Training step lines every `every` steps; 1000 tokens per step."""
    return [{"step": s, "loss": 9.0 - s / 100, "tokens": s * 1000, "flops": s * flops_per_step, "lr": 1e-3}
            for s in range(every, last_step + 1, every)]


def val(step, loss, flops_per_step=None):
    """Validation line; with flops_per_step it also carries tokens/flops."""
    r = {"step": step, "val_loss": loss, "val_ppl": 2.718 ** loss, "val_tokens": 16384}
    if flops_per_step is not None:
        r.update(tokens=step * 1000, flops=step * flops_per_step)
    return r


def make_experiment(root):
    """Synthetic experiment with a hand-computable answer.

    dense: 100 steps at 1e10 FLOPs/step -> P = 1e12 FLOPs, 1e5 tokens; val 5.0 @50, 4.0 @100.
    a: 50 steps at 1e10 -> extra 5e11; val 3.8 @25 (2.5e11), 3.6 @50 (5e11).
    b: 40 steps at 1.5e10 -> extra 6e11; val 3.5 @20 (3e11), 3.2 @40 (6e11).
    c: 140 steps at 1.5e10 -> total 2.1e12; val 4.2 @70 (1.05e12), 3.4 @140 (2.1e12).
    """
    dense = train_lines(100, 1e10)
    # A stale duplicate of step 100 (before a resume) and a stale val line: last line must win.
    dense.insert(5, {"step": 100, "loss": 1.0, "tokens": 7, "flops": 7e11})
    dense.insert(6, val(100, 9.9))
    dense += [val(50, 5.0, 1e10), val(100, 4.0),  # old-style val line: tokens/flops from step line
              {"step": 100, "checkpoint": "dense/checkpoint-100"}]
    write_log(os.path.join(root, "dense"), dense)
    write_log(os.path.join(root, "a"), train_lines(50, 1e10) + [val(25, 3.8, 1e10), val(50, 3.6, 1e10)])
    write_log(os.path.join(root, "b"), train_lines(40, 1.5e10) + [val(20, 3.5, 1.5e10), val(40, 3.2, 1.5e10)])
    # Step 75 has no training line and no tokens/flops: that val point must be skipped.
    write_log(os.path.join(root, "c"), train_lines(140, 1.5e10) + [val(70, 4.2, 1.5e10), val(75, 0.1),
                                                                   val(140, 3.4, 1.5e10)])


def run_report(root, out, **override):
    """Run the script as a subprocess; returns CompletedProcess."""
    dirs = {n: os.path.join(root, n) for n in ("dense", "a", "b", "c")}
    dirs.update(override)
    cmd = ["/usr/bin/python3", SCRIPT, "--out", out, "--title", "Test <upcycle> & co"]
    for n, d in dirs.items():
        cmd += ["--" + n, d]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


class UpcycleReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.out = os.path.join(self.root, "out")
        make_experiment(self.root)

    def tearDown(self):
        self.tmp.cleanup()

    def test_report(self):
        p = run_report(self.root, self.out)
        self.assertEqual(p.returncode, 0, p.stderr)
        table = read(os.path.join(self.out, "table.md"))
        self.assertEqual(p.stdout, table)
        for label in LABELS:
            self.assertIn(f"| {label} |", table)
        self.assertIn("| (a) dense continued | 50 | 50,000 | 5e11 | 1.5e12 | 3.6000 |", table)
        self.assertIn("-> b beats a", table)
        self.assertIn("-> b beats c", table)

        s = json.loads(read(os.path.join(self.out, "summary.json")))
        self.assertEqual(s["P_flops"], 1e12)  # last duplicate of step 100 won
        self.assertEqual(s["P_tokens"], 1e5)
        runs = s["runs"]
        self.assertEqual(runs["dense"]["final_val_loss"], 4.0)  # stale 9.9 val line overridden
        self.assertEqual(runs["c"]["val_points"], 2)  # val @75 without tokens/flops skipped
        self.assertEqual([runs[n]["steps"] for n in "abc"], [50, 40, 140])
        self.assertAlmostEqual(runs["b"]["extra_flops"], 6e11, delta=1e-3)
        self.assertAlmostEqual(runs["b"]["total_flops"], 1.6e12, delta=1e-3)
        self.assertAlmostEqual(runs["c"]["extra_flops"], 1.1e12, delta=1e-3)
        self.assertAlmostEqual(runs["a"]["extra_tokens"], 5e4, delta=1e-6)

        ba = s["b_vs_a_equal_extra_flops"]
        self.assertEqual(ba["x_extra_flops"], 5e11)
        self.assertAlmostEqual(ba["loss_a"], 3.6, delta=1e-9)
        self.assertAlmostEqual(ba["loss_b"], 3.5 + (3.2 - 3.5) * (5e11 - 3e11) / 3e11, delta=1e-9)  # 3.3
        self.assertAlmostEqual(ba["diff"], 3.3 - 3.6, delta=1e-9)
        self.assertEqual(ba["winner"], "b")

        bc = s["b_vs_c_equal_total_flops"]
        self.assertAlmostEqual(bc["x_total_flops"], 1.6e12, delta=1e-3)
        self.assertAlmostEqual(bc["loss_b"], 3.2, delta=1e-9)
        self.assertAlmostEqual(bc["loss_c"], 4.2 - 0.8 * 0.55 / 1.05, delta=1e-9)
        self.assertEqual(bc["winner"], "b")
        self.assertEqual((bc["final_val_loss_b"], bc["final_val_loss_c"]), (3.2, 3.4))

        for fname in ("curves.svg", "curves_tokens.svg"):
            svg = ET.parse(os.path.join(self.out, fname)).getroot()
            self.assertEqual(svg.tag, SVG + "svg")
            self.assertEqual(len(svg.findall(f".//{SVG}polyline")), 4)
            texts = [t.text for t in svg.iter(SVG + "text")]
            for label in LABELS + ["upcycle", "Test <upcycle> & co"]:
                self.assertIn(label, texts)
            self.assertTrue(any(t and "e" in t and t[0].isdigit() for t in texts), texts)  # e.g. "5e11"
        # a and b start from the dense run's final val point (4 markers each side of P).
        svg = ET.parse(os.path.join(self.out, "curves.svg")).getroot()
        npts = [len(pl.get("points").split()) for pl in svg.findall(f".//{SVG}polyline")]
        self.assertEqual(npts, [2, 3, 3, 2])

    def test_b_curve_before_p_uses_dense(self):
        # c shorter than b: Y falls inside c's range and b's total curve is evaluated on the dense part.
        write_log(os.path.join(self.root, "c"), train_lines(40, 1.5e10) + [val(20, 6.0, 1.5e10), val(40, 5.0, 1.5e10)])
        p = run_report(self.root, self.out)
        self.assertEqual(p.returncode, 0, p.stderr)
        bc = json.loads(read(os.path.join(self.out, "summary.json")))["b_vs_c_equal_total_flops"]
        self.assertAlmostEqual(bc["x_total_flops"], 6e11, delta=1e-3)
        # b's total curve before P is the dense curve: 5.0 @5e11 -> 4.0 @1e12, so 4.8 at 6e11.
        self.assertAlmostEqual(bc["loss_b"], 5.0 + (4.0 - 5.0) * (6e11 - 5e11) / 5e11, delta=1e-9)
        self.assertAlmostEqual(bc["loss_c"], 5.0, delta=1e-9)
        self.assertEqual(bc["winner"], "b")

    def test_interp_unit(self):
        spec = importlib.util.spec_from_file_location("upcycle_report", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        curve = [(0.0, 4.0), (2.0, 3.0), (4.0, 1.0)]
        self.assertAlmostEqual(mod.interp(curve, 1.0), 3.5, delta=1e-12)
        self.assertAlmostEqual(mod.interp(curve, 3.0), 2.0, delta=1e-12)
        self.assertIsNone(mod.interp(curve, 5.0))
        self.assertEqual(mod.fmt_sci(1.234e15), "1.23e15")
        self.assertEqual(mod.fmt_sci(2e14), "2e14")

    def assert_error(self, p, *needles):
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_missing_log(self):
        empty = os.path.join(self.root, "empty")
        os.makedirs(empty)
        self.assert_error(run_report(self.root, self.out, c=empty), os.path.join(empty, "log.jsonl"))
        self.assert_error(run_report(self.root, self.out, a=os.path.join(self.root, "nope")), "nope")

    def test_bad_json_line(self):
        write_log(os.path.join(self.root, "a"), train_lines(20, 1e10), ['{"step": 30, "loss": '])
        self.assert_error(run_report(self.root, self.out), os.path.join(self.root, "a", "log.jsonl") + ":3:")

    def test_no_val_points(self):
        write_log(os.path.join(self.root, "b"), train_lines(40, 1.5e10))
        self.assert_error(run_report(self.root, self.out), os.path.join(self.root, "b", "log.jsonl"), "val_loss")


if __name__ == "__main__":
    unittest.main(verbosity=2)
