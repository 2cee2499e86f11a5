#!/usr/bin/python3
"""PyTorch oracle for the MoE block (src/moe/moe_layer.h).

For each case: seeded random float32 inputs x (N,C), router Wr (E,C) and expert
weights in the header's [E, ...] layouts (Gelu experts with biases b1, b2; SwiGLU
experts with gate W1, up W3, down W2 and no biases). torch computes in float64, as
the header defines it:

  logits = x Wr^T, p = softmax(logits); top-K experts by p (ties: lower id; the
  inputs are checked to have no near-ties, so fp32 and fp64 choose alike);
  combine weights raw p or p / sum over the K chosen; capacity ceil(cf K N / E)
  (cf <= 0: none) with choice-major, token-order admission; out[n] = sum over kept
  pairs of weight * expert(x[n]); aux = aux_coef E sum_e f_e P_e (f = pairs chosen
  before dropping / (N K), a constant), z = z_coef mean_n logsumexp(logits[n])^2.

Gradients by autograd of loss = sum(out * g) + aux + z (g random): dloss_scale 1.
Choices and the kept mask are constants of the forward. One safetensors file per
case: DIR/moe_<case>.safetensors with x, router, w1, [w3], w2, [b1, b2], dout (g),
logits, probs, choice (N,K) I32, kept (N,K) I32, weight (N,K), counts (E) I32
(kept pairs per expert), out, aux [1], z [1] and grad.<input> for every input.
The bf16 case adds bf16.out and bf16.grad.<input>: the same with every expert GEMM
operand rounded to bf16 (the header: "bf16 operands when bf16 weights are given").
Spec in __metadata__: N, C, F, E, K, mlp (gelu|swiglu|relu|geglu), bias, cf, renormalize,
aux_coef, z_coef, capacity (-1: dropless), dropped, bf16 (1: x and the expert
weights are exactly bf16 values, for the bf16 expert path).

Needs Debian's python3-torch (1.13): run with /usr/bin/python3.
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
from st_io import bf16_round, write_safetensors  # noqa: E402

C_DIM, F_DIM = 24, 40

# name: (N, E, K, mlp, bias, cf, renormalize, skew, aux_coef, z_coef, bf16, seed)
#   skew: x gets mean 0.5 in every coordinate and router row e gets skew[e] * u
#   (u = ones / sqrt(C)), so x . u ~ 0.5 sqrt(C) favours the experts with large skew.
CASES = {
    # Switch: top-1, raw gates, cf 1: the favoured experts overflow, tokens are dropped.
    "switch_skew": (64, 4, 1, "swiglu", 0, 1.0, 0, (0.6, 0.2, 0.0, -0.2), 0.01, 1e-3, 0, 1),
    "top1_cf125": (37, 8, 1, "swiglu", 0, 1.25, 0, None, 0.01, 1e-3, 0, 2),
    # Mixtral: top-2 renormalised; larger loss coefficients so the aux and z gradients weigh.
    "top2_renorm": (48, 8, 2, "swiglu", 0, 1.5, 1, (0.8, 0.4, 0, 0, 0, 0, -0.4, -0.8), 0.2, 0.05, 0, 3),
    "top2_dropless": (37, 4, 2, "swiglu", 0, 0.0, 1, (1.2, 0.4, 0.0, -0.4), 0.01, 1e-3, 0, 4),
    # GPT-2 experts (tanh GELU, biases).
    "gelu_top1": (37, 4, 1, "gelu", 1, 1.25, 0, (0.6, 0.2, 0.0, -0.2), 0.01, 1e-3, 0, 5),
    # Raw top-2 with drops among both first and second choices: choice-major priority matters.
    "gelu_top2_skew": (37, 8, 2, "gelu", 1, 1.0, 0, (0.6, 0.4, 0.2, 0, 0, 0, -0.2, -0.4), 0.1, 0.01, 0, 6),
    # K = E: every token goes to every expert (cf 1: capacity N, nothing dropped).
    "all_experts": (37, 4, 4, "swiglu", 0, 1.0, 1, None, 0.01, 1e-3, 0, 7),
    # For the bf16 expert path: x and the expert weights are exact bf16 values.
    "bf16_top2": (37, 4, 2, "swiglu", 0, 1.25, 1, (0.6, 0.2, 0.0, -0.2), 0.01, 1e-3, 1, 8),
    # T5's experts: relu top-1 with raw gates and dropping (Switch), gated-gelu top-2.
    "t5_relu_top1": (45, 4, 1, "relu", 0, 1.0, 0, (0.6, 0.2, 0.0, -0.2), 0.01, 1e-3, 0, 9),
    "t5_geglu_top2": (40, 4, 2, "geglu", 0, 1.25, 1, (0.6, 0.2, 0.0, -0.2), 0.01, 1e-3, 0, 10),
}


def f32(v):
    """A Python float rounded to float32 (what C++ sees), as a double."""
    return float(np.float32(v))


class RoundFwd(torch.autograd.Function):
    """Forward: round to bf16 (a GEMM operand); backward: the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, v):
        return torch.tensor(bf16_round(v.numpy()), dtype=F64)

    @staticmethod
    def backward(ctx, gr):
        return gr


class RoundBwd(torch.autograd.Function):
    """Forward: identity; backward: the gradient is rounded to bf16 (a GEMM operand)."""

    @staticmethod
    def forward(ctx, v):
        return v.clone()

    @staticmethod
    def backward(ctx, gr):
        return torch.tensor(bf16_round(gr.numpy()), dtype=F64)


def gen_case(out_dir, name, N, E, K, mlp, bias, cf, renorm, skew, aux_coef, z_coef, bf, seed):
    C, Fd = C_DIM, F_DIM
    cf, aux_coef, z_coef = f32(cf), f32(aux_coef), f32(z_coef)
    for attempt in range(100):  # reseed until the routing has no near-ties
        rng = np.random.default_rng(seed * 1000 + attempt)

        def randn(*shape, scale=1.0):
            return (rng.standard_normal(shape) * scale).astype(np.float32)

        ins = {}
        ins["x"] = randn(N, C) + np.float32(0.5 if skew else 0.0)
        Wr = randn(E, C, scale=1 / math.sqrt(C))
        if skew:
            Wr += (np.asarray(skew, dtype=np.float64)[:, None] / math.sqrt(C)).astype(np.float32)
        ins["router"] = Wr.astype(np.float32)
        ins["w1"] = randn(E, Fd, C, scale=1 / math.sqrt(C))
        if mlp in ("swiglu", "geglu"):
            ins["w3"] = randn(E, Fd, C, scale=1 / math.sqrt(C))
        ins["w2"] = randn(E, C, Fd, scale=1 / math.sqrt(Fd))
        if bias:
            ins["b1"] = randn(E, Fd, scale=0.1)
            ins["b2"] = randn(E, C, scale=0.1)
        if bf:
            for k in ("x", "w1", "w3", "w2"):
                if k in ins:
                    ins[k] = bf16_round(ins[k])
        g = randn(N, C)
        # Routing in float64 and the margins: fp32 must choose alike.
        logits = torch.tensor(ins["x"], dtype=F64) @ torch.tensor(ins["router"], dtype=F64).T
        p = torch.softmax(logits, -1)
        ps = torch.sort(p, -1, descending=True).values
        gap = (ps[:, :-1] - ps[:, 1:]).min().item() if E > 1 else 1.0
        kgap = (ps[:, K - 1] - ps[:, K]).min().item() if K < E else 1.0
        if gap > 1e-4 and kgap > 1e-4:
            break
    else:
        raise RuntimeError("%s: no seed without near-ties" % name)

    # The routing (constants of the forward), from float64 probabilities.
    logits0 = torch.tensor(ins["x"], dtype=F64) @ torch.tensor(ins["router"], dtype=F64).T
    probs0 = torch.softmax(logits0, -1)
    # top-K, ties to the lower id: a stable descending sort keeps index order among equals
    ch = torch.sort(probs0, dim=-1, descending=True, stable=True).indices[:, :K].numpy()
    cap = math.ceil(cf * K * N / E) if cf > 0 else None
    kept = np.zeros((N, K), dtype=np.int32)
    counts = np.zeros(E, dtype=np.int32)
    for k in range(K):  # choice-major, token order
        for n in range(N):
            e = ch[n, k]
            if cap is None or counts[e] < cap:
                kept[n, k] = 1
                counts[e] += 1

    tm_kept, tm_counts = np.zeros((N, K), dtype=np.int32), np.zeros(E, dtype=np.int32)
    for n in range(N):  # token-major (NOT the header's order): only to report whether it differs
        for k in range(K):
            if cap is None or tm_counts[ch[n, k]] < cap:
                tm_kept[n, k] = 1
                tm_counts[ch[n, k]] += 1
    order_matters = int((tm_kept != kept).any())

    def run(bf16_operands):
        """out, aux, z and the gradients. bf16_operands: every expert GEMM's operands are
        rounded to bf16 (the header's fast path with bf16 weights): the activations a
        before the down projection, and in the backward the gradients arriving at the
        GEMM outputs (dy, dh1, dh3) before they enter the GEMMs; the bias gradients and
        the router stay unrounded. x and the weights are exact bf16 values already."""
        t = {k: torch.tensor(v, dtype=F64, requires_grad=True) for k, v in ins.items()}
        x, Wr = t["x"], t["router"]
        logits = x @ Wr.T
        probs = torch.softmax(logits, -1)
        pc = probs.gather(1, torch.tensor(ch, dtype=torch.int64))  # (N,K)
        weight = pc / pc.sum(-1, keepdim=True) if renorm else pc
        fq = RoundFwd.apply if bf16_operands else (lambda v: v)
        gq = RoundBwd.apply if bf16_operands else (lambda v: v)

        def expert(e, xe):
            h1 = gq(xe @ t["w1"][e].T)
            if mlp == "gelu":
                a = F.gelu(h1 + t["b1"][e], approximate="tanh")
                return gq(fq(a) @ t["w2"][e].T) + t["b2"][e]
            if mlp == "relu":
                return gq(fq(F.relu(h1)) @ t["w2"][e].T)
            if mlp == "geglu":
                a = F.gelu(h1, approximate="tanh") * gq(xe @ t["w3"][e].T)
                return gq(fq(a) @ t["w2"][e].T)
            a = F.silu(h1) * gq(xe @ t["w3"][e].T)
            return gq(fq(a) @ t["w2"][e].T)

        out = torch.zeros(N, C, dtype=F64)
        for e in range(E):
            rows = [(n, k) for n in range(N) for k in range(K) if ch[n, k] == e and kept[n, k]]
            if not rows:
                continue
            ns = torch.tensor([n for n, _ in rows])
            ks = torch.tensor([k for _, k in rows])
            y = expert(e, x[ns])
            out = out.index_add(0, ns, weight[ns, ks].unsqueeze(1) * y)

        f = torch.tensor(np.bincount(ch.reshape(-1), minlength=E) / (N * K), dtype=F64)  # a count: constant
        P = probs.mean(0)
        aux = aux_coef * E * (f * P).sum()
        z = z_coef * (torch.logsumexp(logits, -1) ** 2).mean()
        loss = (out * torch.tensor(g, dtype=F64)).sum() + aux + z
        loss.backward()
        return logits, probs, weight, out, aux, z, {k: v.grad for k, v in t.items()}

    def np32(v):
        return v.detach().numpy().astype(np.float32)

    logits, probs, weight, out, aux, z, grads = run(False)
    tens = dict(ins)
    tens.update({"dout": g, "logits": np32(logits), "probs": np32(probs), "weight": np32(weight),
                 "choice": ch.astype(np.int32), "kept": kept, "counts": counts, "out": np32(out),
                 "aux": np.array([aux.item()], dtype=np.float32), "z": np.array([z.item()], dtype=np.float32)})
    for k, v in grads.items():
        tens["grad." + k] = np32(v)
    if bf:
        _, _, _, out_b, _, _, grads_b = run(True)
        tens["bf16.out"] = np32(out_b)
        for k, v in grads_b.items():
            tens["bf16.grad." + k] = np32(v)
    dropped = int(N * K - kept.sum())
    meta = {"N": N, "C": C, "F": Fd, "E": E, "K": K, "mlp": mlp, "bias": bias, "cf": repr(cf),
            "renormalize": renorm, "aux_coef": repr(aux_coef), "z_coef": repr(z_coef),
            "capacity": -1 if cap is None else cap, "dropped": dropped, "bf16": bf,
            # aux and z in full double precision (the F32 tensors round them)
            "aux64": repr(aux.item()), "z64": repr(z.item())}
    write_safetensors(os.path.join(out_dir, "moe_%s.safetensors" % name), tens,
                      {k: str(v) for k, v in meta.items()})
    return dropped, cap, order_matters


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for moe_*.safetensors")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, spec in CASES.items():
        dropped, cap, order_matters = gen_case(args.out, name, *spec)
        N, E, K = spec[0], spec[1], spec[2]
        print("moe_oracle: %-16s N=%d E=%d K=%d capacity=%s dropped=%d%s" % (
            name, N, E, K, cap, dropped, " (token-major order would keep other pairs)" if order_matters else ""))
    print("moe_oracle: torch %s wrote %d files to %s" % (torch.__version__, len(CASES), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
