"""What `moe report` reads: training runs (log.jsonl, trainer_state.json), upcycled
checkpoints (upcycling.json, step0.json) and protocol outputs (summary.json).
Every problem is a ReportError naming the file and what was expected."""
import json
import math
import os


class ReportError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror}); expected {what}") from None
    except (ValueError, RecursionError) as e:
        raise ReportError(f"{path}: not valid JSON ({e}); expected {what}") from None


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_log(run_dir):
    """RUN_DIR/log.jsonl as (train, val): lists of records by step (a resumed run's
    repeated steps: the last line wins)."""
    path = os.path.join(run_dir, "log.jsonl")
    train, val = {}, {}
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror}); expected the run's training log") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than Python parses
                raise ReportError(f"{path}:{lineno}: malformed JSON line ({e.__class__.__name__}: {e})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                raise ReportError(f"{path}:{lineno}: expected a JSON object with an integer \"step\"")
            for k in ("loss", "val_loss", "tokens", "flops", "elapsed", "lr"):  # drawn as numbers (null: NaN)
                if rec.get(k) is not None and not is_number(rec[k]):
                    raise ReportError(f"{path}:{lineno}: \"{k}\" is {json.dumps(rec[k])[:40]} (expected a number)")
            if "val_loss" in rec:
                if finite(rec["val_loss"]):  # a diverged run's NaN is written as null
                    val[rec["step"]] = rec
            elif "loss" in rec:
                if not finite(rec["loss"]):
                    continue
                train[rec["step"]] = rec
    if not train and not val:
        raise ReportError(f"{path}: no training or validation line (expected lines with \"loss\" or \"val_loss\")")
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def newest_checkpoint(run_dir):
    steps = []
    for name in os.listdir(run_dir):
        if name.startswith("checkpoint-") and name[11:].isdigit() and \
                os.path.isfile(os.path.join(run_dir, name, "trainer_state.json")):
            steps.append(int(name[11:]))
    return os.path.join(run_dir, f"checkpoint-{max(steps)}") if steps else None


def locate(path):
    """A source path as recorded by moe (relative to where that command ran): as given,
    else its longest tail that exists from here (the report may run from elsewhere)."""
    if not path or os.path.isdir(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    for i in range(1, len(parts)):
        tail = os.path.join(*parts[i:])
        if os.path.isdir(tail):
            return tail
    return None


def origin(init_from, depth=0):
    """Where a continued run starts: (step, tokens, flops, elapsed, upcycled dir or None)
    of the checkpoint it was initialised from (through an upcycled checkpoint to its
    dense source), so curves can be drawn on the total compute. "missing" names a source
    that could not be found (the run is then drawn from 0, and the page says so)."""
    zero = {"step": 0, "tokens": 0, "flops": 0.0, "elapsed": 0.0, "upcycled": None, "missing": None}
    if not init_from or depth > 8:
        return zero
    found = locate(init_from)
    if not found:
        return {**zero, "missing": init_from}
    init_from = found
    up = os.path.join(init_from, "upcycling.json")
    if os.path.isfile(up):
        o = origin(read_json(up, "the upcycling provenance").get("from"), depth + 1)
        return {**o, "upcycled": init_from}
    st_path = os.path.join(init_from, "trainer_state.json")
    if not os.path.isfile(st_path):
        return zero
    st = read_json(st_path, "a checkpoint's trainer state")
    step, run = st.get("step", 0), os.path.dirname(os.path.normpath(init_from))
    o = {**zero, "step": step, "tokens": st.get("tokens", 0), "elapsed": st.get("elapsed_seconds", 0.0)}
    if os.path.isfile(os.path.join(run, "log.jsonl")):
        train, _ = read_log(run)
        at = [r for r in train if r["step"] == step]
        if at and "flops" in at[0]:
            o["flops"] = at[0]["flops"]
        if at and "elapsed" in at[0]:
            o["elapsed"] = at[0]["elapsed"]
    parent = origin(st.get("init_from"), depth + 1)  # a continuation of a continuation
    for k in ("tokens", "flops", "elapsed"):
        o[k] += parent[k]
    o["step"] += parent["step"]
    o["upcycled"], o["missing"] = parent["upcycled"], parent["missing"]
    return o


def load_run(path, name):
    """A training run directory: its steps, validation points, MoE telemetry and where it started."""
    train, val = read_log(path)
    ckpt = newest_checkpoint(path)
    st = read_json(os.path.join(ckpt, "trainer_state.json"), "a checkpoint's trainer state") if ckpt else {}
    if not isinstance(st, dict):
        raise ReportError(f"{os.path.join(ckpt, 'trainer_state.json')}: expected a JSON object (a checkpoint's "
                          f"trainer state)")
    start = origin(st.get("init_from"))
    layers = {}
    for r in train:
        for m in r.get("moe", []):
            if not isinstance(m, dict) or not isinstance(m.get("layer"), int) or not m.get("load"):
                raise ReportError(f"{path}/log.jsonl: step {r['step']}: an MoE entry without \"layer\" and "
                                  f"\"load\" (expected one object per MoE layer, docs/logs.md)")
            layers.setdefault(m["layer"], []).append((r["step"], m["load"], m.get("drop", 0.0),
                                                      m.get("entropy", float("nan"))))
    return {"name": name, "path": path, "train": train, "val": val, "state": st, "start": start, "moe": layers,
            "experts": max((len(v[0][1]) for v in layers.values()), default=0)}


def classify(path):
    """run | protocol | upcycled, or a ReportError saying what was expected."""
    if not os.path.isdir(path):
        raise ReportError(f"{path}: not a directory (expected a run directory, an upcycled checkpoint or a "
                          f"protocol output)")
    if os.path.isfile(os.path.join(path, "log.jsonl")):
        return "run"
    if os.path.isfile(os.path.join(path, "summary.json")):
        return "protocol"
    if os.path.isfile(os.path.join(path, "upcycling.json")):
        return "upcycled"
    raise ReportError(f"{path}: no log.jsonl, summary.json or upcycling.json (expected a run directory from "
                      f"`moe train`, a protocol output from experiments/protocol.py or an upcycled checkpoint)")


def load_upcycled(path):
    prov = read_json(os.path.join(path, "upcycling.json"), "the upcycling provenance")
    s0 = os.path.join(path, "step0.json")
    step0 = read_json(s0, "the step-0 check of `moe upcycle`") if os.path.isfile(s0) else None
    if step0 is not None and (not isinstance(step0, dict) or
                              any(k not in step0 for k in ("layers", "dense_loss", "moe_loss", "B", "T"))):
        raise ReportError(f"{s0}: no layers, dense_loss, moe_loss, B or T (expected `moe upcycle`'s step-0 check)")
    for k in ("dense_loss", "moe_loss"):
        if step0 is not None and not is_number(step0[k]):
            raise ReportError(f"{s0}: \"{k}\" is {json.dumps(step0[k])[:40]} (expected a number)")
    if not isinstance(prov, dict):
        raise ReportError(f"{path}/upcycling.json: expected a JSON object")
    return {"path": path, "prov": prov, "step0": step0}


def load_protocol(path):
    s = read_json(os.path.join(path, "summary.json"), "experiments/protocol.py's summary")
    if not isinstance(s, dict) or any(k not in s for k in ("table", "runs", "seeds", "settings")):
        raise ReportError(f"{path}/summary.json: no table, runs, seeds or settings (expected experiments/protocol.py's "
                          f"summary)")
    need = ("dense_steps", "tokens_per_param", "f", "a", "b", "c")
    for i, row in enumerate(s["table"]):
        if not isinstance(row, dict) or any(k not in row for k in need):
            raise ReportError(f"{path}/summary.json: table row {i} lacks one of {', '.join(need)}")
    return {"path": path, "summary": s}
