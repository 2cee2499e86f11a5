"""Shared by the experiment and report tests: a toy dataset (the licence texts Debian
ships in /usr/share/common-licenses, a 512-piece vocabulary) and reading JSONL logs."""
import json
import os
import shutil
import subprocess


def toy_dataset(moe, work):
    text, data = os.path.join(work, "text"), os.path.join(work, "data")
    os.makedirs(text, exist_ok=True)
    for name in sorted(os.listdir("/usr/share/common-licenses")):
        p = os.path.join("/usr/share/common-licenses", name)
        if os.path.isfile(p) and not os.path.islink(p):
            shutil.copy(p, text)
    subprocess.run([moe, "data", "--out", data, "--input", text, "--vocab-size", "512"], check=True,
                   stdout=subprocess.DEVNULL)
    return data


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]
