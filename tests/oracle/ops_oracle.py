#!/usr/bin/python3
"""PyTorch oracle for every op in src/ops/*.h.

For each op case: seeded random float32 inputs, outputs and ALL input/parameter
gradients computed by torch (autograd with a random upstream gradient g, i.e.
loss = sum(out * g)), plus the saved intermediates our C++ API exposes. One
safetensors file per case: DIR/ops_<case>.safetensors. Dimensions and scalars
live in __metadata__ (ints as decimal, floats as the repr of the float32 value
widened to double, so C++ std::stod/stof gets the same float32 back).

Inputs are float32 values; torch computes in float64 on them and the results are
rounded to float32 once. So the reference carries (almost) no error of its own and
the C++ test tolerances measure only our fp32/bf16 error. Hyperparameters (eps,
lr, betas, theta, p) are rounded to float32 first, as the C++ API takes floats.

Needs Debian's python3-torch (1.13): run with /usr/bin/python3. No safetensors
package: files are written by st_io.py (json + numpy).
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # small problems; the machine is shared
F64 = torch.float64


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import write_safetensors  # noqa: E402  (shared with model_oracle.py)


class Case:
    """Collects one case's tensors and metadata."""

    def __init__(self, out_dir, name, seed):
        self.path = os.path.join(out_dir, "ops_%s.safetensors" % name)
        self.rng = np.random.default_rng(seed)
        self.t = {}
        self.meta = {}

    def randn(self, *shape, scale=1.0, shift=0.0):
        return (self.rng.standard_normal(shape) * scale + shift).astype(np.float32)

    def add(self, name, x):
        if isinstance(x, torch.Tensor):
            x = x.detach()
            x = x.numpy().astype(np.int32) if not x.is_floating_point() else x.to(torch.float32).numpy()
        x = np.asarray(x)
        if x.dtype == np.float64:
            x = x.astype(np.float32)  # every stored real is float32, as the C++ side reads it
        self.t[name] = x

    def inp(self, name, arr):
        """Store a float32 input; return it as a float64 leaf tensor needing grad."""
        self.add(name, arr)
        return torch.tensor(arr, dtype=F64, requires_grad=True)

    def set(self, **kw):
        for k, v in kw.items():
            self.meta[k] = repr(float(v)) if isinstance(v, float) else str(v)

    def write(self):
        write_safetensors(self.path, self.t, self.meta)


def f32(x):
    """A Python float rounded to float32 (the value C++ sees), as a double."""
    return float(np.float32(x))


def bf16_round(a):
    """float32 ndarray -> float32 values rounded to bfloat16 (nearest even), via torch."""
    return torch.tensor(a).bfloat16().float().numpy()


def backward(c, out, names_leaves, g_name="dout"):
    """loss = sum(out * g) with g random; stores g and d<name> for each (name, leaf)."""
    g = c.randn(*out.shape)
    c.add(g_name, g)
    (out * torch.tensor(g, dtype=F64)).sum().backward()
    for name, leaf in names_leaves:
        c.add("d" + name, leaf.grad)


# ------------------------------------------------------------------ ops

def matmul_cases(d):
    for tag, (M, N, K, seed) in {"small": (7, 13, 17, 1), "large": (64, 96, 257, 2)}.items():
        for ta in (0, 1):
            for tb in (0, 1):
                for acc in (0, 1):
                    if acc and tag == "large":
                        continue
                    for bf in (0, 1):
                        name = "matmul_%s%s%s_%s%s" % ("bf16_" if bf else "", "t" if ta else "n",
                                                      "t" if tb else "n", tag, "_acc" if acc else "")
                        c = Case(d, name, seed * 100 + ta * 8 + tb * 4 + acc * 2 + bf)
                        A = c.randn(*((K, M) if ta else (M, K)))
                        B = c.randn(*((N, K) if tb else (K, N)))
                        c.add("A", A)
                        c.add("B", B)
                        if bf:  # C++ rounds A and B to bf16 and calls matmul_bf16
                            A, B = bf16_round(A), bf16_round(B)
                        At = torch.tensor(A, dtype=F64)
                        Bt = torch.tensor(B, dtype=F64)
                        Cm = (At.T if ta else At) @ (Bt.T if tb else Bt)
                        if acc:
                            C0 = c.randn(M, N)
                            c.add("C0", C0)
                            Cm = Cm + torch.tensor(C0, dtype=F64)
                        c.add("C", Cm)
                        c.set(M=M, N=N, K=K, transA=ta, transB=tb, accumulate=acc, bf16=bf)
                        c.write()


def linear_cases(d):
    for name, (N, IC, OC, bias, bf, seed) in {
        "small": (7, 17, 13, 1, 0, 10), "nobias": (5, 9, 11, 0, 0, 11), "large": (64, 96, 80, 1, 0, 12),
        "bf16_small": (7, 17, 13, 1, 1, 13), "bf16_large": (64, 96, 80, 1, 1, 14),
    }.items():
        c = Case(d, "linear_" + name, seed)
        inp = c.randn(N, IC)
        W = c.randn(OC, IC, scale=1 / math.sqrt(IC))
        c.add("inp", inp)
        c.add("W", W)
        if bf:
            inp, W = bf16_round(inp), bf16_round(W)
        x = torch.tensor(inp, dtype=F64, requires_grad=True)
        w = torch.tensor(W, dtype=F64, requires_grad=True)
        leaves = [("inp", x), ("W", w)]
        b = None
        if bias:
            b = c.inp("b", c.randn(OC))
            leaves.append(("b", b))
        out = x @ w.T + (b if bias else 0)
        c.add("out", out)
        g = c.randn(N, OC)
        c.add("dout", g)
        g_used = bf16_round(g) if bf else g  # dinp, dW from the bf16 copy of dout
        (out * torch.tensor(g_used, dtype=F64)).sum().backward()
        c.add("dinp", x.grad)
        c.add("dW", w.grad)
        if bias:
            c.add("db", torch.tensor(g, dtype=F64).sum(0))  # db from the fp32 dout
        c.set(N=N, IC=IC, OC=OC, bf16=bf)
        c.write()


def layernorm_cases(d):
    for name, (N, C, bias, shift, seed) in {
        "small": (7, 17, 1, 0.0, 20), "nobias": (5, 33, 0, 0.0, 21), "large": (64, 768, 1, 0.0, 22),
        "offset": (16, 257, 1, 4.0, 23),  # mean 4, std 1: a one-pass variance would cancel
    }.items():
        c = Case(d, "layernorm_" + name, seed)
        eps = f32(1e-5)
        x = c.inp("inp", c.randn(N, C, shift=shift))
        w = c.inp("w", c.randn(C, scale=0.5, shift=1.0))
        leaves = [("inp", x), ("w", w)]
        b = None
        if bias:
            b = c.inp("b", c.randn(C, scale=0.5))
            leaves.append(("b", b))
        out = F.layer_norm(x, (C,), w, b, eps)
        c.add("out", out)
        xd = x.detach()
        c.add("mean", xd.mean(-1))
        c.add("rstd", 1.0 / torch.sqrt(xd.var(-1, unbiased=False) + eps))
        backward(c, out, leaves)
        c.set(N=N, C=C, eps=eps)
        c.write()


def rmsnorm_cases(d):
    for name, (N, C, shift, seed) in {"small": (7, 17, 0.0, 30), "large": (64, 768, 0.0, 31),
                                      "offset": (9, 129, 3.0, 32)}.items():
        c = Case(d, "rmsnorm_" + name, seed)
        eps = f32(1e-6)
        x = c.inp("inp", c.randn(N, C, shift=shift))
        w = c.inp("w", c.randn(C, scale=0.5, shift=1.0))
        # Hugging Face LlamaRMSNorm
        variance = x.pow(2).mean(-1, keepdim=True)
        out = w * (x * torch.rsqrt(variance + eps))
        c.add("out", out)
        c.add("rstd", torch.rsqrt(variance.detach() + eps).squeeze(-1))
        backward(c, out, [("inp", x), ("w", w)])
        c.set(N=N, C=C, eps=eps)
        c.write()


def elementwise_cases(d):
    for n, seed in ((1037, 40), (65536 + 7, 41)):
        tag = "small" if n < 5000 else "large"
        c = Case(d, "gelu_" + tag, seed)
        x = c.inp("inp", c.randn(n, scale=3.0))  # wide range: tanh saturates both sides
        out = F.gelu(x, approximate="tanh")
        c.add("out", out)
        backward(c, out, [("inp", x)])
        c.set(n=n)
        c.write()

        c = Case(d, "silu_" + tag, seed + 10)
        x = c.inp("inp", c.randn(n, scale=4.0))
        out = F.silu(x)
        c.add("out", out)
        backward(c, out, [("inp", x)])
        c.set(n=n)
        c.write()

        c = Case(d, "swiglu_" + tag, seed + 20)
        gate = c.inp("gate", c.randn(n, scale=4.0))
        up = c.inp("up", c.randn(n))
        out = F.silu(gate) * up
        c.add("out", out)
        backward(c, out, [("gate", gate), ("up", up)])
        c.set(n=n)
        c.write()

    c = Case(d, "residual", 50)
    n = 1037
    a = c.inp("a", c.randn(n))
    b = c.inp("b", c.randn(n))
    out = a + b
    c.add("out", out)
    backward(c, out, [("a", a), ("b", b)])
    # The residual backward accumulates: start da, db from these values.
    da0, db0 = c.randn(n), c.randn(n)
    c.add("da0", da0)
    c.add("db0", db0)
    c.add("da_acc", torch.tensor(da0, dtype=F64) + a.grad)
    c.add("db_acc", torch.tensor(db0, dtype=F64) + b.grad)
    c.set(n=n)
    c.write()

    for name, (N, C, seed) in {"small": (7, 17, 51), "large": (256, 96, 52)}.items():
        c = Case(d, "bias_" + name, seed)
        out0 = c.randn(N, C)  # bias_forward adds in place: out += b
        c.add("out0", out0)
        b = c.inp("b", c.randn(C))
        out = torch.tensor(out0, dtype=F64) + b
        c.add("out", out)
        backward(c, out, [("b", b)])
        c.set(N=N, C=C)
        c.write()


def splitmix64(z):
    """Vectorised splitmix64 over np.uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dropout_uniform(seed, n):
    with np.errstate(over="ignore"):
        s = splitmix64(np.array([seed], dtype=np.uint64))[0]
        z = splitmix64(s + np.arange(n, dtype=np.uint64))
    return (z >> np.uint64(40)).astype(np.float64) * 2.0 ** -24  # exact in float32 too


def dropout_cases(d):
    for name, (n, p, seed, cseed) in {
        "p0": (1037, 0.0, 7, 60), "p01": (1037, 0.1, 12345, 61),
        "p05_bigseed": (4099, 0.5, 0xFEDCBA9876543210, 62), "p09": (1037, 0.9, 3, 63),
        "p_boundary": (1037, None, 99, 64),  # p equals some element's uniform: kept (>=)
    }.items():
        c = Case(d, "dropout_" + name, cseed)
        x = c.inp("inp", c.randn(n))
        u = dropout_uniform(seed, n)
        if p is None:
            p = float(u[np.argmin(np.abs(u - 0.3))])  # a 24-bit value: exact in float32
        p = f32(p)
        c.add("uniform", u)
        keep = torch.tensor(u >= p, dtype=F64)  # float32 u vs float32 p, compared exactly
        out = x * keep / (1.0 - p)
        c.add("out", out)
        c.add("mask", keep)
        backward(c, out, [("inp", x)])
        c.set(n=n, p=p, seed=seed)
        c.write()


def embedding_cases(d):
    for name, (B, T, C, V, maxT, pos, seed) in {
        "small": (3, 7, 17, 11, 9, 1, 70),  # V small: tokens repeat, the scatter must add
        "nopos": (2, 5, 8, 6, 0, 0, 71),
        "large": (4, 64, 96, 1000, 64, 1, 72),
    }.items():
        c = Case(d, "embedding_" + name, seed)
        tokens = c.rng.integers(0, V, size=(B, T)).astype(np.int32)
        tokens[0, 0] = V - 1  # both ends of the range
        tokens[-1, -1] = 0
        c.add("tokens", tokens)
        wte = c.inp("wte", c.randn(V, C))
        out = F.embedding(torch.tensor(tokens, dtype=torch.long), wte)
        leaves = [("wte", wte)]
        if pos:
            wpe = c.inp("wpe", c.randn(maxT, C))
            out = out + wpe[:T]
            leaves.append(("wpe", wpe))
        c.add("out", out)
        backward(c, out, leaves)
        c.set(B=B, T=T, C=C, V=V, maxT=maxT)
        c.write()


def crossentropy_cases(d):
    for name, (N, V, scale, seed) in {
        "small": (7, 17, 1.0, 80), "large": (64, 2003, 3.0, 81), "extreme": (6, 513, 40.0, 82),
    }.items():
        c = Case(d, "crossentropy_" + name, seed)
        logits = c.randn(N, V, scale=scale)
        if name == "extreme":
            logits[0, :] += 1000.0  # exp overflows without the max subtraction
            logits[1, 5] = 90.0     # one dominant logit
        targets = c.rng.integers(0, V, size=N).astype(np.int32)
        targets[2] = -1  # ignored positions
        targets[-1] = -100
        targets[0] = V - 1
        if name == "extreme":
            targets[1] = 5
        c.add("targets", targets)
        x = c.inp("logits", logits)
        tt = torch.tensor(targets, dtype=torch.long)
        valid = tt >= 0
        losses = F.cross_entropy(x, tt.clamp(min=0), reduction="none") * valid
        c.add("losses", losses)
        c.add("lse", torch.logsumexp(x.detach(), -1))  # compared on valid rows only
        backward(c, losses, [("logits", x)], g_name="dlosses")
        c.set(N=N, V=V)
        c.write()


def rope_cases(d):
    for name, (B, T, H, D, theta, pos0, seed) in {
        "small": (2, 7, 3, 16, 10000.0, 0, 90),
        "offset": (1, 5, 2, 18, 10000.0, 37, 91),  # D/2 odd
        "llama3": (1, 64, 4, 128, 500000.0, 4000, 92),
    }.items():
        c = Case(d, "rope_" + name, seed)
        theta = f32(theta)
        x = c.inp("inp", c.randn(B, T, H, D))
        # HF Llama: rotate_half with cos/sin of cat(freqs, freqs); the header asks for
        # angles in double (HF forms inv_freq in float32, which drifts at large positions).
        inv_freq = torch.tensor([theta ** (-2.0 * i / D) for i in range(D // 2)], dtype=F64)
        pos = torch.arange(pos0, pos0 + T, dtype=F64)
        freqs = torch.outer(pos, inv_freq)
        emb = torch.cat([freqs, freqs], -1)
        cos = emb.cos()[None, :, None, :]  # (1, T, 1, D) over (B, T, H, D)
        sin = emb.sin()[None, :, None, :]

        def rotate_half(z):
            return torch.cat([-z[..., D // 2:], z[..., : D // 2]], -1)

        out = x * cos + rotate_half(x) * sin
        c.add("out", out)
        backward(c, out, [("inp", x)])
        c.set(B=B, T=T, H=H, D=D, theta=theta, pos0=pos0)
        c.write()


def attention_cases(d):
    for name, (B, T, H, Hkv, D, seed) in {
        "mha": (2, 7, 3, 3, 8, 100), "gqa": (2, 9, 4, 2, 6, 101), "mqa": (1, 5, 4, 1, 10, 102),
        "large": (1, 64, 8, 2, 32, 103),
    }.items():
        c = Case(d, "attention_" + name, seed)
        q = c.inp("q", c.randn(B, T, H, D))
        k = c.inp("k", c.randn(B, T, Hkv, D))
        v = c.inp("v", c.randn(B, T, Hkv, D))
        # Hugging Face style: (B, heads, T, D), repeat_kv, masked softmax, no SDPA (1.13).
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

        def repeat_kv(z, n_rep):
            b, hkv, t, dd = z.shape
            return z[:, :, None, :, :].expand(b, hkv, n_rep, t, dd).reshape(b, hkv * n_rep, t, dd)

        kh, vh = repeat_kv(kh, H // Hkv), repeat_kv(vh, H // Hkv)
        scores = qh @ kh.transpose(2, 3) / math.sqrt(D)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        att = torch.softmax(scores, dim=-1)
        out = (att @ vh).transpose(1, 2).contiguous()  # (B, T, H, D)
        c.add("att", att)
        c.add("out", out)
        backward(c, out, [("q", q), ("k", k), ("v", v)])
        c.set(B=B, T=T, H=H, Hkv=Hkv, D=D)
        c.write()


def t5_activation_cases(d):
    """T5's MLP activations: ReLU (the original T5) and GeGLU (v1.1: gelu_new(wi_0 x) * wi_1 x)."""
    for n, seed in ((1037, 130), (65536 + 7, 131)):
        tag = "small" if n < 5000 else "large"
        c = Case(d, "relu_" + tag, seed)
        x = c.randn(n, scale=2.0)
        x[0], x[1] = 0.0, -0.0  # the kink: torch's derivative there is 0, as ours
        x = c.inp("inp", x)
        out = F.relu(x)
        c.add("out", out)
        backward(c, out, [("inp", x)])
        c.set(n=n)
        c.write()

        c = Case(d, "geglu_" + tag, seed + 10)
        gate = c.inp("gate", c.randn(n, scale=3.0))  # wide range: tanh saturates both sides
        up = c.inp("up", c.randn(n))
        out = F.gelu(gate, approximate="tanh") * up
        c.add("out", out)
        backward(c, out, [("gate", gate), ("up", up)])
        c.set(n=n)
        c.write()


def attention_general_cases(d):
    """softmax(scale q k^T + bias, masked) v, (B, H, T, D) layout as HF's T5Attention; autograd
    gives q, k, v, the bias (shared by the batch: summed over it) and the scores' gradient."""
    for name, (B, Tq, Tk, H, D, scale, causal, has_bias, qscale, seed) in {
        "enc": (2, 9, 9, 3, 8, 1.0, 0, 1, 8 ** -0.5, 140),        # T5 encoder self-attention: no 1/sqrt(D)
        "dec": (2, 7, 7, 4, 6, 1.0, 1, 1, 6 ** -0.5, 141),        # decoder self-attention: causal
        "cross": (2, 5, 11, 3, 8, 1.0, 0, 0, 8 ** -0.5, 142),     # cross-attention: Tq != Tk, no bias
        "cross_bias": (1, 11, 5, 2, 4, 1.0, 0, 1, 1.0, 143),      # Tq > Tk, with a bias
        "scaled": (2, 9, 9, 3, 8, 0.3, 1, 0, 1.0, 144),
        "scaled_bias": (1, 6, 13, 2, 16, 0.3, 0, 1, 1.0, 145),
        "peaked": (1, 17, 17, 2, 64, 1.0, 0, 1, 1.0, 146),        # scores ~ 8: nearly one-hot rows
        "large": (2, 64, 64, 6, 64, 1.0, 1, 1, 64 ** -0.5, 147),  # a T5-small-like decoder layer
    }.items():
        c = Case(d, "attention_general_" + name, seed)
        scale = f32(scale)
        q = c.inp("q", c.randn(B, Tq, H, D, scale=qscale))
        k = c.inp("k", c.randn(B, Tk, H, D))
        v = c.inp("v", c.randn(B, Tk, H, D))
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        scores = scale * (qh @ kh.transpose(2, 3))  # (B, H, Tq, Tk)
        leaves = [("q", q), ("k", k), ("v", v)]
        if has_bias:
            bias = c.inp("bias", c.randn(H, Tq, Tk))
            scores = scores + bias[None]  # HF: scores += position_bias (1, H, Tq, Tk)
            leaves.append(("bias", bias))
        scores.retain_grad()
        if causal:
            keep = torch.ones(Tq, Tk, dtype=torch.bool).tril()
            masked = scores.masked_fill(~keep, float("-inf"))
        else:
            masked = scores
        att = torch.softmax(masked, dim=-1)
        out = (att @ vh).transpose(1, 2).contiguous()  # (B, Tq, H, D)
        c.add("att", att)
        c.add("out", out)
        backward(c, out, leaves)
        c.add("dscores", scores.grad)
        c.set(B=B, Tq=Tq, Tk=Tk, H=H, D=D, scale=scale, causal=causal)
        c.write()


def t5_relative_position_bucket(rel, bidirectional, num_buckets, max_distance, dtype=torch.float32):
    """HF T5Attention._relative_position_bucket's arithmetic, step by step in torch: rel a
    long tensor; the large-distance branch in `dtype` (HF: float32; float64 only to count
    where the two disagree)."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).to(torch.long) * num_buckets
        n = torch.abs(rel)
    else:
        n = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = n < max_exact
    log_part = torch.log(n.to(dtype) / max_exact) / math.log(max_distance / max_exact)
    if_large = max_exact + (log_part * (num_buckets - max_exact)).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return buckets + torch.where(is_small, n, if_large)


# T5's defaults; a small table that saturates early; and two where float64 arithmetic
# gives other buckets than HF's float32 (n = 10, 20, 80 with max_exact 5 and
# max_distance / max_exact = 32: log(n / 5) / log(32) * 5 is an integer in exact
# arithmetic, which float32 reaches and float64 misses by an ulp, truncating to one less).
BUCKET_CONFIGS = ((32, 128), (8, 20), (20, 160), (10, 160))


def relpos_cases(d):
    c = Case(d, "relpos_buckets", 150)
    rel = torch.arange(-300, 301, dtype=torch.long)
    c.add("rel", rel)
    for nb, md in BUCKET_CONFIGS:
        for bi in (1, 0):
            key = "%d_%d_%s" % (nb, md, "bi" if bi else "causal")
            b32 = t5_relative_position_bucket(rel, bool(bi), nb, md)
            b64 = t5_relative_position_bucket(rel, bool(bi), nb, md, torch.float64)
            c.add("buckets_" + key, b32)
            c.set(**{"f64_mismatches_" + key: int((b32 != b64).sum())})
    c.set(configs=",".join("%d_%d" % cfg for cfg in BUCKET_CONFIGS))
    c.write()

    # HF compute_bias: buckets of memory_position - context_position, the (NB, H) table
    # looked up (an Embedding), permuted to (H, Tq, Tk); with a cache (q0 > 0) HF builds
    # the bias for all q0 + Tq rows and keeps the last Tq. The attention adds it to every
    # sequence's scores, so the table's gradient sums dscores over the batch.
    for name, (B, Tq, Tk, H, nb, md, bi, q0, seed) in {
        "enc": (2, 9, 9, 3, 32, 128, 1, 0, 151),
        "dec": (2, 7, 7, 4, 32, 128, 0, 0, 152),
        "dec_cached": (1, 3, 20, 2, 32, 128, 0, 17, 153),    # the last 3 queries of a 20-key cache
        "long": (2, 160, 160, 2, 32, 128, 1, 0, 154),        # |rel| past max_distance: the far buckets fill
        "small_buckets": (2, 45, 45, 3, 8, 20, 1, 0, 155),
    }.items():
        c = Case(d, "relpos_bias_" + name, seed)
        table = c.inp("table", c.randn(nb, H))
        context = torch.arange(q0 + Tq, dtype=torch.long)[:, None]
        memory = torch.arange(Tk, dtype=torch.long)[None, :]
        buckets = t5_relative_position_bucket(memory - context, bool(bi), nb, md)
        bias = F.embedding(buckets, table).permute(2, 0, 1)[:, q0:, :]  # (H, Tq, Tk)
        c.add("bias", bias)
        g = c.randn(B, H, Tq, Tk)
        c.add("dscores", g)
        (bias[None] * torch.tensor(g, dtype=F64)).sum().backward()
        c.add("dtable", table.grad)
        c.set(B=B, Tq=Tq, Tk=Tk, H=H, num_buckets=nb, max_distance=md, bidirectional=bi, q0=q0)
        c.write()


def adamw_cases(d):
    for name, (n, lr, b1, b2, eps, wd, gscale, steps, seed) in {
        "default": (1037, 1e-2, 0.9, 0.999, 1e-8, 0.1, 1.0, 3, 110),
        "llm": (4099, 3e-4, 0.9, 0.95, 1e-8, 0.01, 1e-3, 4, 111),
        "tinygrad": (257, 1e-3, 0.8, 0.99, 1e-6, 0.5, 1e-7, 3, 112),  # eps matters
    }.items():
        c = Case(d, "adamw_" + name, seed)
        lr, b1, b2, eps, wd = f32(lr), f32(b1), f32(b2), f32(eps), f32(wd)
        p0 = c.randn(n)
        c.add("params0", p0)
        p = torch.nn.Parameter(torch.tensor(p0, dtype=F64))
        opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        for t in range(1, steps + 1):
            g = c.randn(n, scale=gscale)
            c.add("grads%d" % t, g)
            p.grad = torch.tensor(g, dtype=F64)
            opt.step()
            c.add("params%d" % t, p)  # after step t
        st = opt.state[p]
        c.add("m", st["exp_avg"])
        c.add("v", st["exp_avg_sq"])
        c.set(n=n, steps=steps, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
        c.write()


def clip_cases(d):
    for name, (n, ratio, seed) in {"clips": (10007, 0.5, 120), "noclip": (10007, 2.0, 121),
                                   "small": (5, 0.25, 122)}.items():
        c = Case(d, "clip_" + name, seed)
        g = c.randn(n, scale=0.1)
        c.add("g", g)
        p = torch.nn.Parameter(torch.zeros(n, dtype=F64))
        p.grad = torch.tensor(g, dtype=F64)
        max_norm = float(np.linalg.norm(g.astype(np.float64))) * ratio
        norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
        c.add("g_clipped", p.grad)
        c.set(n=n, max_norm=max_norm, norm=float(norm), clipped=int(ratio < 1))
        c.write()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for ops_*.safetensors")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for fn in (matmul_cases, linear_cases, layernorm_cases, rmsnorm_cases, elementwise_cases, dropout_cases,
               embedding_cases, crossentropy_cases, rope_cases, attention_cases, t5_activation_cases,
               attention_general_cases, relpos_cases, adamw_cases, clip_cases):
        fn(args.out)
    n = len([f for f in os.listdir(args.out) if f.startswith("ops_") and f.endswith(".safetensors")])
    print("ops_oracle: torch %s wrote %d files to %s" % (torch.__version__, n, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
