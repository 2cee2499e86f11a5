#!/usr/bin/env python3
"""moe report: the page's figures and tables against the logs it was drawn from, and
the page in a real headless browser (Debian's chromium): every figure rendered
(non-blank, the expected count) and nothing loaded from the network.

Run: /usr/bin/python3 tests/report/test_report.py MOE_BINARY WORK_DIR
"""
import html.parser
import json
import os
import shutil
import signal
import subprocess
import time
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "experiments"))
sys.path.insert(0, HERE)
from toy import jsonl, toy_dataset  # noqa: E402

MOE, WORK = None, None



class Tables(html.parser.HTMLParser):
    """Every <table> of a page as (class, rows of cell texts), and the <img class="fig"> count."""

    def __init__(self):
        super().__init__()
        self.tables, self.figures, self.cell = [], 0, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append((a.get("class"), []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "img" and a.get("class") == "fig":
            self.figures += 1
            if not a.get("src", "").startswith("data:image/png;base64,"):
                raise AssertionError(f"a figure not inlined: {a.get('src', '')[:80]}")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def moe(*args):
    r = subprocess.run([MOE, "--threads", "1", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise AssertionError(f"moe {' '.join(map(str, args))} failed: {r.stderr}")
    return r.stdout


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        shutil.rmtree(WORK, ignore_errors=True)
        os.makedirs(WORK)
        data = toy_dataset(MOE, WORK)
        w = lambda *p: os.path.join(WORK, *p)
        small = ["--data", data, "--batch", 4, "--seq", 32, "--eval-batches", 1, "--eval-every", 4]
        moe("train", *small, "--preset", "tiny", "--steps", 12, "--out", w("dense"))
        moe("upcycle", "--from", w("dense"), "--out", w("up"), "--experts", 4, "--top-k", 2, "--check-data", data)
        moe("train", *small, "--init", w("up"), "--continue-data", "--steps", 12, "--out", w("moe"))
        # the fair other arm: the dense model continued as long, on the same batches
        moe("train", *small, "--init", w("dense"), "--continue-data", "--steps", 12, "--out", w("dense_more"))
        subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "protocol.py"), "--toy", "--moe", MOE,
                        "--data", data, "--out", w("proto"), "--threads", "1", "--seeds", "1,2", "--dense", "4,6",
                        "--budgets", "1.0", "--switch"], check=True, stdout=subprocess.DEVNULL)
        cls.out = moe("report", w("dense"), w("moe"), w("proto"), "--out", w("page"), "--title", "test page")
        cls.page = w("page", "index.html")
        cls.parsed = Tables()
        with open(cls.page, encoding="utf-8") as f:
            cls.parsed.feed(f.read())
        cls.w = staticmethod(w)

    def expected_figures(self):
        """4 loss figures (steps, tokens, FLOPs, wall-clock); per MoE run one heatmap per MoE
        layer plus drops/entropy; the step 0 of the upcycled checkpoint the MoE run started
        from; the protocol's losses and gaps."""
        layers = {m["layer"] for j in jsonl(self.w("moe", "log.jsonl")) for m in j.get("moe", [])}
        self.assertEqual(len(layers), 1)  # tiny: 2 layers, every other one upcycled
        return 4 + len(layers) + 1 + 1 + 2

    def test_figure_count_and_the_printed_path(self):
        self.assertEqual(self.parsed.figures, self.expected_figures())
        self.assertIn(self.page, self.out)
        self.assertIn(f"({self.expected_figures()} figures)", self.out)

    def test_continued_run_drawn_from_where_its_source_stood(self):
        """The MoE run continues the upcycled dense checkpoint-12: its origin on every axis is
        that checkpoint's (step, tokens, FLOPs, seconds), found through upcycling.json."""
        sys.path.insert(0, os.path.join(ROOT, "src", "report"))
        from report_runs import load_run
        run = load_run(self.w("moe"), "moe")
        dense = [j for j in jsonl(self.w("dense", "log.jsonl")) if "loss" in j and j["step"] == 12][0]
        start = run["start"]
        self.assertEqual((start["step"], start["tokens"]), (12, dense["tokens"]))
        self.assertEqual(start["flops"], dense["flops"])
        self.assertEqual(start["elapsed"], dense["elapsed"])
        self.assertEqual(os.path.realpath(start["upcycled"]), os.path.realpath(self.w("up")))
        self.assertIsNone(start["missing"])

    def test_run_table_against_the_logs(self):
        runs = next(rows for cls, rows in self.parsed.tables if rows and rows[0][0] == "run")
        for row in runs[1:]:
            log = jsonl(os.path.join(row[0], "log.jsonl"))
            steps = [j for j in log if "loss" in j]
            vals = [j for j in log if "val_loss" in j]
            self.assertEqual(int(row[2]), steps[-1]["step"])
            self.assertEqual(row[5], f"{steps[-1]['loss']:.4f}")
            self.assertEqual(row[6], f"{vals[-1]['val_loss']:.4f}")

    def test_comparison_table_against_the_summary(self):
        with open(self.w("proto", "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        rows = next(rows for cls, rows in self.parsed.tables if cls == "comparison")
        header, body = rows[0], rows[1:]
        self.assertEqual(header, ["dense steps", "tokens/param", "f", "(a) dense continued", "(b) upcycled",
                                  "(c) MoE from scratch", "(s) Switch upcycled", "b - a", "b - c", "s - a"])
        wall = next(rows for cls, rows in self.parsed.tables if cls == "wall")
        for cells, r in zip(wall[1:], summary["table"]):
            self.assertEqual([float(x) for x in cells[2:]], [float(f"{r['wall_' + a]:.3g}") if r["wall_" + a] < 100
                                                             else round(r["wall_" + a]) for a in "abcs"])
        self.assertEqual(len(body), len(summary["table"]))
        arms = {"(a) dense continued": "a", "(b) upcycled": "b", "(c) MoE from scratch": "c",
                "(s) Switch upcycled": "s"}
        for cells, r in zip(body, summary["table"]):
            self.assertEqual(int(cells[0]), r["dense_steps"])
            self.assertEqual(float(cells[2]), r["f"])
            for name, cell in zip(header, cells):
                key = arms.get(name) or (name.replace(" - ", "_minus_") if " - " in name else None)
                if key is None:
                    continue
                m, s = r[key]["mean"], r[key]["std"]
                want = f"{m:.4f} ± {s:.4f}" + (" *" if r[key].get("beyond_noise") else "")
                self.assertEqual(cell, want, (name, r))
            # and the table's mean is the seeds' mean, from the runs themselves
            b = [x["val_loss"] for x in summary["runs"] if x["arm"] == "b" and x["dense_steps"] == r["dense_steps"]
                 and x["f"] == r["f"]]
            self.assertAlmostEqual(r["b"]["mean"], sum(b) / len(b), places=12)

    def test_step0_section_against_step0_json(self):
        with open(self.w("up", "step0.json"), encoding="utf-8") as f:
            s0 = json.load(f)
        with open(self.page, encoding="utf-8") as f:
            text = f.read()
        self.assertIn(f"loss dense {s0['dense_loss']:.6f}, upcycled {s0['moe_loss']:.6f}", text)

    def test_in_a_headless_browser(self):
        from browser import Browser
        from PIL import Image
        b = Browser()
        page_url = "file://" + self.page
        try:
            b.open(page_url)
            height = b.eval("document.documentElement.scrollHeight")
            shot = self.w("screenshot.png")
            b.screenshot(shot, 1200, height)
            boxes = b.eval("""Array.from(document.querySelectorAll('img.fig')).map(i => {
                const r = i.getBoundingClientRect();
                return {ok: i.complete && i.naturalWidth > 0, x: r.left + scrollX, y: r.top + scrollY,
                        w: r.width, h: r.height};})""")
            # Nothing but the page itself and its data: URIs, before or after the load event.
            others = [u for u in b.requests() if u != page_url and not u.startswith("data:")]
            self.assertEqual(others, [], "the page loaded something besides itself")
            # The check is not vacuous: a page with a remote image, or a file beside it, is caught.
            bad = self.w("bad.html")
            with open(bad, "w") as f:
                f.write('<html><body><img src="http://127.0.0.1:9/x.png"><img src="fig.png"></body></html>')
            urls = b.open("file://" + bad)
            self.assertTrue(any(u.startswith("http:") for u in urls), urls)
            self.assertTrue(any(u.endswith("/fig.png") for u in urls), urls)
        finally:
            b.close()
        self.assertEqual(len(boxes), self.expected_figures())
        img = Image.open(shot).convert("L")
        self.assertGreaterEqual(img.size[1], max(bx["y"] + bx["h"] for bx in boxes) - 1)

        def inked(x, y, w, h):
            """The fraction of clearly non-white pixels in a region of the screenshot."""
            px = list(img.crop((int(x), int(y), int(x + w), int(y + h))).getdata())
            return sum(1 for p in px if p < 200) / max(1, len(px))

        for i, bx in enumerate(boxes, 1):
            self.assertTrue(bx["ok"], f"figure {i} did not load")
            self.assertGreater(bx["w"], 200, f"figure {i} has no width")
            self.assertGreater(bx["h"], 100, f"figure {i} has no height")
            self.assertGreater(inked(bx["x"], bx["y"], bx["w"], bx["h"]), 0.02, f"figure {i} is blank")
        # The blank test itself: the margin right of the first figure is white.
        first = boxes[0]
        self.assertLess(inked(first["x"] + first["w"] + 5, first["y"], 40, first["h"]), 0.001)

    def shared_rows(self, page):
        """The rows of a page's shared-start table (None: no such table), and its figure count."""
        parsed = Tables()
        with open(page, encoding="utf-8") as f:
            parsed.feed(f.read())
        rows = [rows for cls, rows in parsed.tables if cls == "shared"]
        return (rows[0][1:] if rows else None), parsed.figures

    def test_no_shared_start_figure_when_no_runs_share_a_start(self):
        """The MoE run starts where the dense run stopped: one curve after the other, nothing
        overlaps, so no difference figure (the figure count above has none either)."""
        rows, _ = self.shared_rows(self.page)
        self.assertIsNone(rows)
        with open(self.page, encoding="utf-8") as f:
            self.assertNotIn("share a start", f.read())

    def test_shared_start_of_the_fair_a_b(self):
        """Issue 21 item 14: the dense model continued and the upcycled MoE, both from the dense
        checkpoint-12 with --continue-data for 12 steps, overlap: the page has the difference
        figure, and its table the MoE's loss minus the dense continuation's, from the logs."""
        out = self.w("ab_page")
        r = self.report_of(self.w("dense"), self.w("dense_more"), self.w("moe"), out=out)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows, figures = self.shared_rows(os.path.join(out, "index.html"))
        self.assertEqual(figures, self.expected_figures() - 2 + 1)  # no protocol; one shared-start figure
        self.assertIn(f"({figures} figures)", r.stdout)
        self.assertEqual(len(rows), 1, rows)
        row = rows[0]
        self.assertEqual(row[:2], [self.w("moe"), self.w("dense_more")])
        self.assertTrue(row[2].endswith(os.path.join("dense", "checkpoint-12") + " (step 12)"), row[2])
        self.assertEqual(row[3], "13-24 (12)")
        log = {k: jsonl(self.w(k, "log.jsonl")) for k in ("moe", "dense_more")}
        train = {k: {j["step"]: j["loss"] for j in v if "loss" in j} for k, v in log.items()}
        val = {k: {j["step"]: j["val_loss"] for j in v if "val_loss" in j} for k, v in log.items()}
        self.assertEqual(sorted(train["moe"]), list(range(1, 13)))
        last = max(val["moe"])
        self.assertEqual(row[4], f"{train['moe'][12] - train['dense_more'][12]:+.4f}")  # the last tenth of 12: 1
        self.assertEqual(row[5], f"{val['moe'][last] - val['dense_more'][last]:+.4f}")
        self.assertEqual(row[6], str(12 + last))
        with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
            self.assertIn(f"{self.w('dense_more')}, {self.w('moe')} share a start", f.read())

    def test_shared_start_values_steps_and_interpolation(self):
        """Synthetic runs: x and y continue s/checkpoint-10, y logging every other step and
        validating between x's validation steps; s itself went on past its checkpoint-10.
        Training loss is compared at the steps both logged, validation loss against the
        reference's interpolated (never extrapolated); the reference is the first run given."""
        root = self.w("synthetic")
        shutil.rmtree(root, ignore_errors=True)

        def run(name, train, val, init_from="", ckpts=()):
            d = os.path.join(root, name)
            os.makedirs(d)
            with open(os.path.join(d, "log.jsonl"), "w") as f:
                for step in sorted(set(train) | set(val)):
                    if step in train:
                        f.write(json.dumps({"step": step, "loss": train[step]}) + "\n")
                    if step in val:
                        f.write(json.dumps({"step": step, "val_loss": val[step]}) + "\n")
            for n in ckpts:
                os.makedirs(os.path.join(d, f"checkpoint-{n}"))
                with open(os.path.join(d, f"checkpoint-{n}", "trainer_state.json"), "w") as f:
                    json.dump({"step": n, "tokens": 64 * n, "init_from": init_from}, f)
            return d

        s = run("s", {k: 6 - 0.05 * k for k in range(1, 41)}, {10: 5.6, 20: 5.2, 40: 4.8}, ckpts=(10, 40))
        src = os.path.join(s, "checkpoint-10")
        x = run("x", {k: 5.5 - 0.04 * k for k in range(1, 31)}, {5: 5.3, 10: 5.1, 20: 4.9, 30: 4.7},
                init_from=src, ckpts=(30,))
        y = run("y", {k: 5.4 - 0.045 * k for k in range(2, 31, 2)}, {8: 5.0, 30: 4.6, 34: 4.5}, init_from=src,
                ckpts=(30,))
        tr = {"x": {k + 10: 5.5 - 0.04 * k for k in range(1, 31)},  # by step from the start of s
              "y": {k + 10: 5.4 - 0.045 * k for k in range(2, 31, 2)}, "s": {k: 6 - 0.05 * k for k in range(1, 41)}}

        def last_tenth(a, b):
            common = sorted(k for k in tr[a] if k in tr[b] and k > 10)
            tail = common[-max(1, len(common) // 10):]
            return common, f"{sum(tr[a][k] - tr[b][k] for k in tail) / len(tail):+.4f}"

        # x and y, x the reference: y's train at its steps 2, 4, ..., 30 (absolute 12..40);
        # y's validation at its step 30 (40) against x's at 40; y's step 34 (44) is past x's last
        # validation (40), so not extrapolated: the last compared is 40
        out = self.w("syn_page1")
        r = self.report_of(x, y, out=out)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows, figures = self.shared_rows(os.path.join(out, "index.html"))
        self.assertEqual(figures, 2)  # loss against steps, and the shared start
        common, mean = last_tenth("y", "x")
        self.assertEqual(len(common), 15)
        shown = src if os.path.relpath(src).startswith("..") else os.path.relpath(src)
        self.assertEqual(rows, [[y, x, f"{shown} (step 10)", "12-40 (15)", mean, f"{4.6 - 4.7:+.4f}", "40"]])
        # s given first: it went on from its checkpoint-10, so it shares the start and is the
        # reference; x's validation at 15 and 20 (absolute) against s's between 10 and 20
        out = self.w("syn_page2")
        r = self.report_of(s, x, y, out=out)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows, figures = self.shared_rows(os.path.join(out, "index.html"))
        self.assertEqual(figures, 2)
        self.assertEqual([row[:2] for row in rows], [[x, s], [y, s]])
        self.assertIn(f"which {s} went on from", rows[0][2])
        common, mean = last_tenth("x", "s")
        self.assertEqual((rows[0][3], rows[0][4]), ("11-40 (30)", mean))
        self.assertEqual(rows[0][4], f"{sum(tr['x'][k] - tr['s'][k] for k in (38, 39, 40)) / 3:+.4f}")
        # x's last validation (its step 30, absolute 40) against s's at 40
        self.assertEqual((rows[0][5], rows[0][6]), (f"{4.7 - 4.8:+.4f}", "40"))
        # y's validation at 44 is past s's last (40): its last compared is at 40, 4.6 - 4.8
        self.assertEqual((rows[1][5], rows[1][6]), (f"{4.6 - 4.8:+.4f}", "40"))
        # and an interpolated one: x's first validation, absolute 15, between s's 5.6 (10) and 5.2 (20)
        x2 = run("x2", {k: 5.5 - 0.04 * k for k in range(1, 6)}, {5: 5.3}, init_from=src, ckpts=(5,))
        out = self.w("syn_page3")
        r = self.report_of(s, x2, out=out)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows, _ = self.shared_rows(os.path.join(out, "index.html"))
        self.assertEqual(rows[0][5:], [f"{5.3 - 5.4:+.4f}", "15"])
        # runs from scratch: the same first step and loss share a start (p, q); another first
        # loss does not (o)
        p = run("p", {1: 7.0, 2: 6.5, 3: 6.0}, {3: 6.2}, ckpts=(3,))
        q = run("q", {1: 7.0, 2: 6.4, 3: 5.8}, {3: 6.1}, ckpts=(3,))
        o = run("o", {1: 7.1, 2: 6.4, 3: 5.8}, {3: 6.1}, ckpts=(3,))
        out = self.w("syn_page4")
        r = self.report_of(p, q, o, out=out)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows, figures = self.shared_rows(os.path.join(out, "index.html"))
        self.assertEqual(figures, 2)
        self.assertEqual(rows, [[q, p, "from scratch with the same first loss (7.000000 at step 1)", "1-3 (3)",
                                 f"{5.8 - 6.0:+.4f}", f"{6.1 - 6.2:+.4f}", "3"]])
        # no two runs sharing a start: no table, no figure
        for dirs in ((p, o), (s,), (x, o), (s, o)):
            out = self.w("syn_none")
            r = self.report_of(*dirs, out=out)
            self.assertEqual(r.returncode, 0, r.stderr)
            rows, figures = self.shared_rows(os.path.join(out, "index.html"))
            self.assertIsNone(rows, dirs)
            self.assertEqual(figures, 1, dirs)

    def test_bad_input_is_one_line(self):
        for args, words in [([self.w("nowhere")], ["nowhere", "not a directory"]),
                            ([self.w("up", "config.json")], ["config.json", "not a directory"]),
                            ([self.w("page")], ["page", "log.jsonl"])]:
            r = subprocess.run([MOE, "report", *args, "--out", self.w("x")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            for word in words:
                self.assertIn(word, r.stderr)
        broken = self.w("broken")
        shutil.copytree(self.w("dense"), broken)
        with open(os.path.join(broken, "log.jsonl"), "a") as f:
            f.write('{"step": 13, "loss": \n')
        r = subprocess.run([MOE, "report", broken, "--out", self.w("x")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("log.jsonl:", r.stderr)
        self.assertIn("malformed JSON", r.stderr)
        r = subprocess.run([MOE, "report", self.w("dense")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--out", r.stderr)

    def report_of(self, *dirs, out=None, **kw):
        return subprocess.run([MOE, "report", *dirs, "--out", out or self.w("x")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, **kw)

    def assert_one_line(self, r, code, *words):
        self.assertEqual(r.returncode, code, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        for word in words:
            self.assertIn(word, r.stderr)

    def test_confused_inputs_full_disk_and_signals_are_one_line(self):
        """Issue 21: type-confused JSON, a full disk and Ctrl-C printed Python tracebacks (and
        left a .tmp file): now one line naming the file, exit 1 (128 + N for a signal), no temp."""
        def copy(name, src):
            d = self.w(name)
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(self.w(src), d)
            return d
        # [] as a checkpoint's trainer_state.json
        d = copy("c_state", "dense")
        ckpt = sorted(n for n in os.listdir(d) if n.startswith("checkpoint-"))[-1]
        with open(os.path.join(d, ckpt, "trainer_state.json"), "w") as f:
            f.write("[]")
        self.assert_one_line(self.report_of(d), 1, "trainer_state.json", "JSON object")
        # a string where the log has numbers, and a line nested deeper than Python parses
        for name, line, words in [("c_flops", '{"step": 99, "loss": 1.0, "flops": "many"}', ['"flops"', "number"]),
                                  ("c_deep", '{"step": 99, "x": ' + "[" * 100000 + "]" * 100000 + "}",
                                   ["log.jsonl:", "malformed"])]:
            d = copy(name, "dense")
            with open(os.path.join(d, "log.jsonl"), "a") as f:
                f.write(line + "\n")
            self.assert_one_line(self.report_of(d), 1, "log.jsonl", *words)
        # a string dense_loss in the step-0 report of an upcycled checkpoint
        d = copy("c_up", "up")
        with open(os.path.join(d, "step0.json")) as f:
            s0 = json.load(f)
        s0["dense_loss"] = "low"
        with open(os.path.join(d, "step0.json"), "w") as f:
            json.dump(s0, f)
        self.assert_one_line(self.report_of(d), 1, "step0.json", "dense_loss")
        # a full disk: the page cannot be written (files limited to 4 KB: EFBIG)
        import resource
        out = self.w("full")
        r = self.report_of(self.w("dense"), out=out,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)))
        self.assert_one_line(r, 1, os.path.join(out, "index.html"), "cannot write")
        self.assertEqual([n for n in os.listdir(out) if ".tmp" in n], [])
        # SIGINT, SIGTERM, SIGHUP while drawing: exit 128 + N, one line, no temp
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            out = self.w(f"sig{int(sig)}")
            p = subprocess.Popen([MOE, "report", self.w("dense"), self.w("moe"), "--out", out],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # once moe has handed over to Python and Python is past its start (its own
            # handlers set), as a user's Ctrl-C in the middle of a report
            for _ in range(600):
                try:
                    with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                        if b"moe_report.py" in f.read():
                            break
                except OSError:
                    break
                time.sleep(0.01)
            time.sleep(0.3)
            p.send_signal(sig)
            _, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 128 + int(sig), err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn("stopped by", err)
            self.assertEqual([n for n in (os.listdir(out) if os.path.isdir(out) else []) if ".tmp" in n], [])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_report.py MOE_BINARY WORK_DIR")
    MOE, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1])
