#!/usr/bin/python3
"""PyTorch oracle for whole models: GPT-2, Llama, T5 (HF semantics), Mixtral, MoE T5 and switch_transformers.

  /usr/bin/python3 tests/oracle/model_oracle.py --model DIR --batch FILE --out FILE
      [--steps 10] [--lr 1e-3] [--beta1 0.9] [--beta2 0.95] [--eps 1e-8]
      [--weight-decay 0.1] [--clip 1.0]
  /usr/bin/python3 tests/oracle/model_oracle.py --selftest [--keep DIR]

DIR is a Hugging Face model directory: config.json plus model.safetensors, or
model.safetensors.index.json ("weight_map") and its shards; tensors F32, BF16, F16 or
F64, all loaded as float64. FILE holds "inputs" (B,T) I32 and "targets" (B,T) I32
(-1, or HF's -100, = ignored). Everything is computed in float64 and written as float32:

  logits        (B,T,V)  at the initial weights
  loss          [1]      mean cross-entropy over the non-ignored targets, initial weights
  moe_loss      [1]      MoE models: sum over the MoE layers of aux + z, initial weights
  moe.<l>.choice/kept (N,K), moe.<l>.counts (E), moe.<l>.aux/z [1]: MoE layer l's routing
                         at the initial weights (N = B*T; as floats; kept = admitted pairs;
                         MoE T5: l is a slot, see below)
  grad.<name>            d (loss + moe_loss) / d parameter at the initial weights (before
                         clipping), for every parameter, with its name and layout in the
                         checkpoint (tied embeddings: the wte / embed_tokens grad includes
                         the lm_head part; Mixtral: one per expert tensor, as in the file)
  losses        [steps]  loss (LM part) before each step's update  (only when steps > 0)
  grad_norms    [steps]  global grad L2 norm before clipping, as clip_grad_norm_ returns
  final.<name>           every parameter after the last step       (only when steps > 0)
  losses_drift  [steps]  with --drift-noise X: the losses of the same steps with every gradient
                         perturbed by noise of std X x its tensor's max |entry| (the fixture's
                         sensitivity to per-step gradient errors, for the 10-step tolerance)

T5 (model_type "t5", dense; see T5Model): FILE holds "inputs" (B,Te) I32 encoder ids,
"targets" (B,Td) I32 (-1 / -100 ignored; Te != Td allowed) and optionally "decoder_inputs"
(B,Td) I32; without it the decoder inputs are HF's shift_right(targets) (decoder_start_token_id
first, ignored targets -> pad_token_id). The outputs are as above with T = Td (logits (B,Td,V)),
grad./final. for every parameter under its file name (shared.weight carries the encoder, decoder
and, tied, head parts). A file may also hold encoder/decoder.embed_tokens.weight (HF ties them
to shared.weight): equal copies are ignored with a note (or stand in for a missing
shared.weight), differing ones refused; tied, a stored lm_head.weight is ignored as above.
Relative position buckets are HF's float32 computation (t5_relative_bucket); everything else
is float64 (HF's .float() casts in T5LayerNorm's variance and before the attention softmax,
upcasts meant for fp16, are not reproduced). The tied head's d_model ** -0.5 is rounded to
float32, as HF's float32 model multiplies by it (a Python scalar) in float32.

MoE (model_type "mixtral"): blocks as src/moe/moe_layer.h defines them (see mixtral_moe),
with the training capacity factor moe_capacity_factor; the metadata records the dropped
pairs of every step and the smallest probability gap any routing decision hung on (the
run fails under --min-gap, default 1e-5: fp32 might route differently).

MoE T5 (model_type "t5" with num_experts E > 0; t5_moe_hparams, t5_moe): the MLP sub-layer
(encoder layer.1, decoder layer.2) of the layers in moe_layers (default 1, 3, 5, ...; an index
applies to each stack that has that layer) keeps its layer_norm.weight and holds, instead of
DenseReluDense, mlp.router.classifier.weight (E,C) and per expert j mlp.experts.expert_{j}.wi
(or wi_0, wi_1) / wo, T5's relu or gated-gelu MLP without biases. The router is float64 on the
normed input. The decoder routes tokens-choose (top num_experts_per_tok, default 1, raw gates
unless moe_renormalize, capacity moe_capacity_factor, default 1.25, over all B*Td tokens), the
encoder as moe_routing says: "tokens_choose" (default; the same over its B*Te tokens) or
"expert_choice" (expert_choice_route: each sequence a group, every expert takes the
min(Te, ceil(moe_encoder_capacity_factor * Te / E)) tokens of it with the highest p, weight
raw p; as K = E pairs per token). aux and z as for Mixtral (expert choice: K = E, f_e = 1/E),
summed over both stacks into moe_loss. Slots: encoder layer l is moe.<l>., decoder layer l is
moe.<num_layers + l>.; choice/kept are (B*Te, K or E) or (B*Td, K). Metadata: moe_layers (the
slots), moe_stacks, moe_routing, moe_capacity (per slot: per sequence for expert choice, per
expert over the batch for tokens choose, N*K when dropless), moe_dropped_by_slot (step 0),
moe_dropped / _per_step (totals of unkept pairs: for expert choice the (token, expert) pairs
not taken, as MoeRouting::dropped counts them), moe_min_gap (expert choice: the gap between
the cap-th and (cap+1)-th largest p of each (sequence, expert); --min-gap applies). An expert
no kept pair reaches gets a zero gradient (reported, and stepped by AdamW like the others).

switch_transformers (HF SwitchTransformersForConditionalGeneration; switch_hparams, switch_moe):
T5Model with T5's config fields and names (batch file, shift_right, tied d_model ** -0.5 rescale,
embed_tokens / lm_head copies as for t5), relu only, the dense MLP sub-layers named
...layer.<1|2>.mlp.wi / mlp.wo (HF's SwitchTransformersDenseActDense) and the sparse ones
...mlp.router.classifier.weight (E,C) and mlp.experts.expert_{j}.wi (d_ff,C) / wo (C,d_ff).
Layer i of a stack is sparse when step == 1 or i % step == 1, step = encoder_sparse_step =
decoder_sparse_step (equal; absent: num_layers // num_sparse_encoder_layers, at least 1, or
num_layers when that count is 0; likewise for the decoder). Routing as HF's Top1Router without
jitter or bias: p = softmax(x Wr^T) on the normed input, expert = argmax p (ties: lower id),
gate = max p raw; a token is kept when it is among the first expert_capacity tokens OF ITS
SEQUENCE (token order) routed to that expert; a dropped token's MLP output is 0. Losses ours:
per sparse layer aux = router_aux_loss_coef E sum_e f_e P_e (f_e = tokens choosing e before
dropping / N, P_e = mean_n p[n,e], N = B*T of that stack), z = router_z_loss_coef mean_n lse^2,
summed into moe_loss (defaults 0.001 each, HF's). Slots as MoE T5 (encoder l, decoder L + l);
moe.<slot>.choice / kept (N,1), counts (E) = kept tokens per expert over the batch; metadata as
MoE T5 (moe_routing "top1_per_sequence", moe_capacity = expert_capacity per sequence) plus
moe_sparse_step; moe_min_gap is the smallest top-1 minus second probability (--min-gap applies).

A step: forward, (loss + moe_loss).backward(), torch.nn.utils.clip_grad_norm_(all params, clip)
(skipped when clip <= 0; the norm is still recorded), torch.optim.AdamW step with
weight decay on the parameters with ndim >= 2 and none on the others; constant lr.
The optimizer hyperparameters and the config's eps / rope_theta are rounded to
float32 first (the C++ side holds them as floats). No dropout anywhere.

The model is written as one function per block type (norm, attention, MLP) chosen by
the family table FAMILIES, so a new family (Mixtral's block_sparse_moe) is a new spec
function and an MLP-block function.

Needs Debian's python3-torch (1.13): run with /usr/bin/python3. safetensors I/O is in
st_io.py (json + numpy), shared with ops_oracle.py.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

F64 = torch.float64
IGNORE = -1


def f32(x):
    """A Python float rounded to float32 (the value C++ sees), as a double."""
    return float(np.float32(x))


class OracleError(Exception):
    pass


# ================================================================== config -> hyperparameters

class HP:
    """Normalised hyperparameters of one model (family-independent field names)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "HP(%s)" % ", ".join("%s=%r" % kv for kv in sorted(self.__dict__.items()))


def _get(cfg, key, default=None, required=False):
    v = cfg.get(key)
    if v is None:
        if required:
            raise OracleError("config.json: missing %r" % key)
        return default
    return v


def gpt2_hparams(cfg):
    C = int(_get(cfg, "n_embd", required=True))
    H = int(_get(cfg, "n_head", required=True))
    if C % H:
        raise OracleError("gpt2: n_embd %d not divisible by n_head %d" % (C, H))
    act = _get(cfg, "activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu"):
        raise OracleError("gpt2: activation_function %r not supported" % act)
    if not _get(cfg, "scale_attn_weights", True) or _get(cfg, "scale_attn_by_inverse_layer_idx", False):
        raise OracleError("gpt2: only scale_attn_weights=true, scale_attn_by_inverse_layer_idx=false")
    return HP(family="gpt2", V=int(_get(cfg, "vocab_size", required=True)), C=C, H=H, Hkv=H, D=C // H,
              L=int(_get(cfg, "n_layer", required=True)), F=int(_get(cfg, "n_inner", 4 * C)),
              max_pos=int(_get(cfg, "n_positions", required=True)),
              eps=f32(_get(cfg, "layer_norm_epsilon", 1e-5)), act=act,
              tie=bool(_get(cfg, "tie_word_embeddings", True)))


def llama_hparams(cfg):
    C = int(_get(cfg, "hidden_size", required=True))
    H = int(_get(cfg, "num_attention_heads", required=True))
    Hkv = int(_get(cfg, "num_key_value_heads", H))
    D = int(_get(cfg, "head_dim", C // H))
    if H % Hkv:
        raise OracleError("llama: num_attention_heads %d not a multiple of num_key_value_heads %d" % (H, Hkv))
    if D % 2:
        raise OracleError("llama: head_dim %d must be even for RoPE" % D)
    if _get(cfg, "rope_scaling") is not None:
        raise OracleError("llama: rope_scaling %r not supported" % cfg["rope_scaling"])
    if _get(cfg, "hidden_act", "silu") != "silu":
        raise OracleError("llama: hidden_act %r not supported" % cfg["hidden_act"])
    return HP(family="llama", V=int(_get(cfg, "vocab_size", required=True)), C=C, H=H, Hkv=Hkv, D=D,
              L=int(_get(cfg, "num_hidden_layers", required=True)),
              F=int(_get(cfg, "intermediate_size", required=True)),
              max_pos=int(_get(cfg, "max_position_embeddings", 1 << 30)),
              eps=f32(_get(cfg, "rms_norm_eps", 1e-6)), theta=f32(_get(cfg, "rope_theta", 10000.0)),
              attn_bias=bool(_get(cfg, "attention_bias", False)), mlp_bias=bool(_get(cfg, "mlp_bias", False)),
              tie=bool(_get(cfg, "tie_word_embeddings", False)))


def mixtral_hparams(cfg):
    """Llama's fields plus the MoE keys, with the C++ defaults (src/model/moe_config.cpp)."""
    hp = llama_hparams(cfg)
    if _get(cfg, "sliding_window") is not None:
        raise OracleError("mixtral: sliding_window %r not supported" % cfg["sliding_window"])
    hp.family = "mixtral"
    hp.E = int(_get(cfg, "num_local_experts", 0))
    if hp.E <= 0:
        raise OracleError("mixtral: num_local_experts must be a positive integer")
    hp.K = int(_get(cfg, "num_experts_per_tok", 2))
    if not 1 <= hp.K <= hp.E:
        raise OracleError("mixtral: num_experts_per_tok %d must be in [1, %d]" % (hp.K, hp.E))
    hp.aux_coef = f32(_get(cfg, "router_aux_loss_coef", 0.01))
    hp.z_coef = f32(_get(cfg, "router_z_loss_coef", 1e-3))
    hp.cf = f32(_get(cfg, "moe_capacity_factor", 0.0))  # training capacity factor: what we compare
    hp.renorm = bool(_get(cfg, "moe_renormalize", True))
    if cfg.get("model_type") == "mixtral_raw_gates":  # our label for raw gates (HF's Mixtral renormalises)
        if hp.renorm and "moe_renormalize" in cfg:
            raise OracleError("mixtral_raw_gates: moe_renormalize must be false")
        hp.renorm = False
    layers = _get(cfg, "moe_layers")
    hp.moe_layers = tuple(range(hp.L)) if layers is None else tuple(sorted(set(int(l) for l in layers)))
    if not hp.moe_layers or min(hp.moe_layers) < 0:
        raise OracleError("mixtral: moe_layers %r must be a non-empty list of layer indices" % layers)
    return hp


def t5_hparams(cfg):
    """HF T5Config fields (T5ForConditionalGeneration, dense). Inner attention width H*d_kv
    need not equal d_model. feed_forward_proj "relu" (T5DenseActDense) or "gated-gelu"
    (T5DenseGatedActDense with gelu_new, as HF maps it); a config that also carries
    dense_act_fn / is_gated_act must agree with it. MoE T5: t5_moe_hparams."""
    hp = t5_base_hparams(cfg, "t5")
    t5_moe_hparams(cfg, hp)
    return hp


def t5_base_hparams(cfg, fam):
    """The T5 fields shared by t5 and switch_transformers (fam: the family, also the errors'
    prefix). dense_mlp: the dense MLP sub-layer's module name (T5's DenseReluDense)."""
    C = int(_get(cfg, "d_model", required=True))
    H = int(_get(cfg, "num_heads", required=True))
    L = int(_get(cfg, "num_layers", required=True))
    Ld = int(_get(cfg, "num_decoder_layers", L))
    if L < 1 or Ld < 1:
        raise OracleError(fam + ": num_layers %d and num_decoder_layers %d must be >= 1" % (L, Ld))
    if not _get(cfg, "is_encoder_decoder", True):
        raise OracleError(fam + ": only is_encoder_decoder=true (T5ForConditionalGeneration)")
    proj = _get(cfg, "feed_forward_proj", "relu")
    if proj not in ("relu", "gated-gelu"):
        raise OracleError(fam + ": feed_forward_proj %r not supported (relu or gated-gelu)" % proj)
    gated = proj == "gated-gelu"
    act = "gelu_new" if gated else "relu"
    if _get(cfg, "dense_act_fn", act) != act or bool(_get(cfg, "is_gated_act", gated)) != gated:
        raise OracleError(fam + ": dense_act_fn %r / is_gated_act %r contradict feed_forward_proj %r"
                          % (cfg.get("dense_act_fn"), cfg.get("is_gated_act"), proj))
    nb = int(_get(cfg, "relative_attention_num_buckets", 32))
    md = int(_get(cfg, "relative_attention_max_distance", 128))
    # _relative_position_bucket divides by max_exact and by log(max_distance / max_exact): the
    # encoder's max_exact is nb // 4, the decoder's nb // 2; both must be >= 1 and < max_distance.
    if nb < 4 or md <= nb // 2:
        raise OracleError(fam + ": relative_attention_num_buckets %d must be >= 4 and relative_attention_max_distance "
                          "%d > num_buckets / 2" % (nb, md))
    V = int(_get(cfg, "vocab_size", required=True))
    pad = int(_get(cfg, "pad_token_id", 0))
    start = int(_get(cfg, "decoder_start_token_id", 0))
    if not (0 <= pad < V and 0 <= start < V):
        raise OracleError(fam + ": pad_token_id %d / decoder_start_token_id %d outside [0, %d)" % (pad, start, V))
    return HP(family=fam, V=V, C=C, H=H, D=int(_get(cfg, "d_kv", required=True)),
              F=int(_get(cfg, "d_ff", required=True)), L=L, Ld=Ld, buckets=nb, max_distance=md,
              eps=f32(_get(cfg, "layer_norm_epsilon", 1e-6)), gated=gated, act=act,
              tie=bool(_get(cfg, "tie_word_embeddings", True)), pad=pad, start=start, dense_mlp="DenseReluDense")


def t5_moe_hparams(cfg, hp):
    """MoE T5 (our layout, model_type still "t5"; absent or 0 num_experts: dense). Defaults are
    the C++ ones for families without all-layer MoE (src/model/moe_config.cpp): top-1, training
    capacity factor 1.25, raw gates. moe_routing is the ENCODER's routing (the decoder always
    tokens-choose); moe_layers (default 1, 3, 5, ...) applies to both stacks where the stack
    has that layer. Sets hp.E (0: dense), hp.enc_moe / hp.dec_moe (the MoE layers of each
    stack) and the routing fields."""
    hp.E = int(_get(cfg, "num_experts", 0))
    hp.moe_layers, hp.enc_moe, hp.dec_moe = (), (), ()
    if hp.E < 0:
        raise OracleError("t5: num_experts %d must be >= 0 (0: dense)" % hp.E)
    if hp.E == 0:
        return
    hp.K = int(_get(cfg, "num_experts_per_tok", 1))
    if not 1 <= hp.K <= hp.E:
        raise OracleError("t5: num_experts_per_tok %d must be in [1, %d]" % (hp.K, hp.E))
    routing = _get(cfg, "moe_routing", "tokens_choose")
    if routing not in ("tokens_choose", "expert_choice"):
        raise OracleError('t5: moe_routing %r must be "tokens_choose" or "expert_choice"' % (routing,))
    hp.enc_routing = routing
    hp.cf_enc = f32(_get(cfg, "moe_encoder_capacity_factor", 2.0))  # expert choice's (<= 0: every token)
    hp.cf = f32(_get(cfg, "moe_capacity_factor", 1.25))  # tokens choose, training (<= 0: dropless)
    hp.eval_cf = f32(_get(cfg, "moe_eval_capacity_factor", 2.0))  # unused here
    hp.renorm = bool(_get(cfg, "moe_renormalize", False))
    hp.aux_coef = f32(_get(cfg, "router_aux_loss_coef", 0.01))
    hp.z_coef = f32(_get(cfg, "router_z_loss_coef", 1e-3))
    n = max(hp.L, hp.Ld)
    layers = _get(cfg, "moe_layers")
    hp.moe_layers = tuple(range(1, n, 2)) if layers is None else tuple(sorted(set(int(l) for l in layers)))
    if not hp.moe_layers:
        raise OracleError("t5: moe_layers %r: no MoE layer (the default, every other layer 1, 3, ..., needs a "
                          "stack of 2 layers or more)" % (layers,))
    if min(hp.moe_layers) < 0 or max(hp.moe_layers) >= n:
        raise OracleError("t5: moe_layers %r: indices must be layers of a stack, in [0, %d)" % (layers, n))
    hp.enc_moe = tuple(l for l in hp.moe_layers if l < hp.L)
    hp.dec_moe = tuple(l for l in hp.moe_layers if l < hp.Ld)


def _int_field(cfg, key, default, fam):
    v = _get(cfg, key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
        raise OracleError("%s: %s %r must be an integer" % (fam, key, v))
    return int(v)


def switch_sparse_step(cfg, step_key, count_key, layers, fam):
    """A stack's sparse step: step_key when the config has it, else as HF's config derives it
    from count_key (default 3, HF's): layers // count (at least 1) when count > 0, else layers
    (ours: HF has no sparse layer then)."""
    if _get(cfg, step_key) is not None:
        return _int_field(cfg, step_key, None, fam)
    n = _int_field(cfg, count_key, 3, fam)
    if n < 0:
        raise OracleError("%s: %s %d must be >= 0" % (fam, count_key, n))
    return max(1, layers // n) if n > 0 else layers


def switch_hparams(cfg):
    """HF SwitchTransformersConfig (SwitchTransformersForConditionalGeneration), our semantics
    (switch_moe): T5's fields (t5_base_hparams; relu only: dense_act_fn, and feed_forward_proj /
    is_gated_act if present, must say relu ungated), the dense MLPs named mlp.wi / mlp.wo, plus
    num_experts (default 8), expert_capacity (tokens per expert PER SEQUENCE, default 64),
    encoder_sparse_step / decoder_sparse_step (equal, >= 1; absent: switch_sparse_step from
    num_sparse_encoder_layers / num_sparse_decoder_layers): layer i of a stack is sparse when
    step == 1 or i % step == 1 (at least one layer of either stack must be); router_bias must be
    false and router_dtype float32 (the C++ router's; here everything is float64);
    router_jitter_noise is ignored (no noise here); router_aux_loss_coef / router_z_loss_coef
    default 0.001 (HF's). Sets hp.E, hp.K = 1, hp.capacity, hp.sparse_step, hp.moe_layers (the
    sparse indices of the longer stack), hp.enc_moe / hp.dec_moe."""
    fam = "switch_transformers"
    act, proj, gated = (_get(cfg, "dense_act_fn", "relu"), _get(cfg, "feed_forward_proj", "relu"),
                        _get(cfg, "is_gated_act", False))
    if act != "relu" or proj != "relu" or gated:
        raise OracleError("%s: dense_act_fn %r / feed_forward_proj %r / is_gated_act %r: only relu experts and MLPs "
                          "(ungated)" % (fam, act, proj, gated))
    if _get(cfg, "router_bias", False):
        raise OracleError(fam + ": router_bias must be false")
    if _get(cfg, "router_dtype", "float32") != "float32":
        raise OracleError("%s: router_dtype %r must be \"float32\"" % (fam, cfg.get("router_dtype")))
    hp = t5_base_hparams(cfg, fam)
    hp.dense_mlp = "mlp"
    hp.E = _int_field(cfg, "num_experts", 8, fam)
    if hp.E < 1:
        raise OracleError("%s: num_experts %d must be >= 1" % (fam, hp.E))
    hp.capacity = _int_field(cfg, "expert_capacity", 64, fam)
    if hp.capacity < 1:
        raise OracleError("%s: expert_capacity %d must be >= 1 (tokens per expert per sequence)" % (fam, hp.capacity))
    hp.K, hp.renorm, hp.enc_routing = 1, False, "top1_per_sequence"
    hp.aux_coef = f32(_get(cfg, "router_aux_loss_coef", 0.001))
    hp.z_coef = f32(_get(cfg, "router_z_loss_coef", 0.001))
    es = switch_sparse_step(cfg, "encoder_sparse_step", "num_sparse_encoder_layers", hp.L, fam)
    ds = switch_sparse_step(cfg, "decoder_sparse_step", "num_sparse_decoder_layers", hp.Ld, fam)
    if es != ds or es < 1:
        raise OracleError("%s: encoder / decoder sparse steps %d and %d: one step >= 1 for both stacks" % (fam, es, ds))
    hp.sparse_step = es
    hp.moe_layers = tuple(i for i in range(max(hp.L, hp.Ld)) if es == 1 or i % es == 1)
    if not hp.moe_layers:
        raise OracleError("%s: sparse step %d leaves no sparse layer (%d / %d layers)" % (fam, es, hp.L, hp.Ld))
    hp.enc_moe = tuple(l for l in hp.moe_layers if l < hp.L)
    hp.dec_moe = tuple(l for l in hp.moe_layers if l < hp.Ld)
    return hp


# ================================================================== parameter specs (HF names, layouts)
# Each returns [(name, shape)] in model order; the checkpoint must hold exactly these.

def gpt2_spec(hp):
    C, F_, V = hp.C, hp.F, hp.V
    s = [("transformer.wte.weight", (V, C)), ("transformer.wpe.weight", (hp.max_pos, C))]
    for i in range(hp.L):
        h = "transformer.h.%d." % i
        s += [(h + "ln_1.weight", (C,)), (h + "ln_1.bias", (C,)),
              (h + "attn.c_attn.weight", (C, 3 * C)), (h + "attn.c_attn.bias", (3 * C,)),  # Conv1D: [in, out]
              (h + "attn.c_proj.weight", (C, C)), (h + "attn.c_proj.bias", (C,)),
              (h + "ln_2.weight", (C,)), (h + "ln_2.bias", (C,)),
              (h + "mlp.c_fc.weight", (C, F_)), (h + "mlp.c_fc.bias", (F_,)),
              (h + "mlp.c_proj.weight", (F_, C)), (h + "mlp.c_proj.bias", (C,))]
    s += [("transformer.ln_f.weight", (C,)), ("transformer.ln_f.bias", (C,))]
    if not hp.tie:
        s.append(("lm_head.weight", (V, C)))
    return s


def llama_spec(hp):
    C, F_, V, H, Hkv, D = hp.C, hp.F, hp.V, hp.H, hp.Hkv, hp.D
    s = [("model.embed_tokens.weight", (V, C))]
    for i in range(hp.L):
        h = "model.layers.%d." % i
        s.append((h + "input_layernorm.weight", (C,)))
        for proj, rows, cols in (("q_proj", H * D, C), ("k_proj", Hkv * D, C), ("v_proj", Hkv * D, C),
                                 ("o_proj", C, H * D)):  # nn.Linear: [out, in]
            s.append((h + "self_attn.%s.weight" % proj, (rows, cols)))
            if hp.attn_bias:
                s.append((h + "self_attn.%s.bias" % proj, (rows,)))
        s.append((h + "post_attention_layernorm.weight", (C,)))
        if i in getattr(hp, "moe_layers", ()):
            s += mixtral_moe_spec(hp, h + "block_sparse_moe.")
        else:
            s += llama_mlp_spec(hp, h + "mlp.")
    s.append(("model.norm.weight", (C,)))
    if not hp.tie:
        s.append(("lm_head.weight", (V, C)))
    return s


def llama_mlp_spec(hp, pre):
    s = []
    for proj, shape in (("gate_proj", (hp.F, hp.C)), ("up_proj", (hp.F, hp.C)), ("down_proj", (hp.C, hp.F))):
        s.append((pre + proj + ".weight", shape))
        if hp.mlp_bias:
            s.append((pre + proj + ".bias", shape[:1]))
    return s


def mixtral_moe_spec(hp, pre):
    s = [(pre + "gate.weight", (hp.E, hp.C))]  # router (E,C)
    for e in range(hp.E):
        x = pre + "experts.%d." % e
        s += [(x + "w1.weight", (hp.F, hp.C)), (x + "w3.weight", (hp.F, hp.C)), (x + "w2.weight", (hp.C, hp.F))]
    return s


def t5_attn_spec(hp, pre, rel_bias):
    HD = hp.H * hp.D
    s = [(pre + "q.weight", (HD, hp.C)), (pre + "k.weight", (HD, hp.C)), (pre + "v.weight", (HD, hp.C)),
         (pre + "o.weight", (hp.C, HD))]  # nn.Linear [out, in], no biases
    if rel_bias:  # block 0 of each stack only; nn.Embedding (num_buckets, H)
        s.append((pre + "relative_attention_bias.weight", (hp.buckets, hp.H)))
    return s


def t5_ff_spec(hp, pre):
    wi = ["wi_0", "wi_1"] if hp.gated else ["wi"]
    return [(pre + w + ".weight", (hp.F, hp.C)) for w in wi] + [(pre + "wo.weight", (hp.C, hp.F))]


def t5_moe_spec(hp, pre):
    """An MoE T5 MLP (pre = "...layer.<1|2>.mlp."): router.classifier.weight (E,C), then per
    expert j experts.expert_{j}. + T5's dense MLP names (wi or wi_0/wi_1, wo)."""
    s = [(pre + "router.classifier.weight", (hp.E, hp.C))]
    for j in range(hp.E):
        s += t5_ff_spec(hp, pre + "experts.expert_%d." % j)
    return s


def t5_spec(hp):
    s = [("shared.weight", (hp.V, hp.C))]
    for stack, n in (("encoder", hp.L), ("decoder", hp.Ld)):
        for i in range(n):
            b = "%s.block.%d.layer." % (stack, i)
            s += t5_attn_spec(hp, b + "0.SelfAttention.", i == 0)
            s.append((b + "0.layer_norm.weight", (hp.C,)))
            ff = 1
            if stack == "decoder":
                s += t5_attn_spec(hp, b + "1.EncDecAttention.", False)
                s.append((b + "1.layer_norm.weight", (hp.C,)))
                ff = 2
            if i in (hp.enc_moe if stack == "encoder" else hp.dec_moe):
                s += t5_moe_spec(hp, b + "%d.mlp." % ff)
            else:  # T5's DenseReluDense, switch_transformers' mlp
                s += t5_ff_spec(hp, b + "%d.%s." % (ff, hp.dense_mlp))
            s.append((b + "%d.layer_norm.weight" % ff, (hp.C,)))
        s.append((stack + ".final_layer_norm.weight", (hp.C,)))
    if not hp.tie:
        s.append(("lm_head.weight", (hp.V, hp.C)))
    return s


# ================================================================== blocks (one function per block type)
# P: name -> float64 tensor; x: (B, T, C).

def layernorm(P, pre, x, hp):
    return F.layer_norm(x, (x.shape[-1],), P[pre + "weight"], P[pre + "bias"], hp.eps)


def rmsnorm(P, pre, x, hp):
    # HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then * weight.
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + hp.eps) * P[pre + "weight"]


def conv1d(P, pre, x):
    """HF GPT-2 Conv1D: weight stored [in, out]; y = x @ W + b."""
    return x @ P[pre + "weight"] + P[pre + "bias"]


def linear(P, pre, x, bias=False):
    """nn.Linear: weight stored [out, in]; y = x @ W^T (+ b)."""
    y = x @ P[pre + "weight"].T
    return y + P[pre + "bias"] if bias else y


def causal_attention(q, k, v):
    """q (B,H,T,D), k/v (B,Hkv,T,D) -> (B,T,H*D). repeat_kv for GQA, scale 1/sqrt(D),
    causal mask, softmax in float64 (as HF, no SDPA, no dropout)."""
    B, H, T, D = q.shape
    n_rep = H // k.shape[1]
    if n_rep > 1:  # HF repeat_kv: kv head j serves query heads j*n_rep .. j*n_rep+n_rep-1
        k = k[:, :, None].expand(B, k.shape[1], n_rep, T, D).reshape(B, H, T, D)
        v = v[:, :, None].expand(B, v.shape[1], n_rep, T, D).reshape(B, H, T, D)
    scores = q @ k.transpose(2, 3) / math.sqrt(D)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))  # HF uses finfo.min: same softmax
    return (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * D)


def gelu(x, act):
    if act == "gelu":  # exact erf GELU (HF "gelu"); the tanh forms below are all the same function
        return F.gelu(x)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_attention(P, pre, x, hp, ctx):
    B, T, C = x.shape
    q, k, v = conv1d(P, pre + "c_attn.", x).split(C, dim=-1)
    q, k, v = (z.view(B, T, hp.H, hp.D).transpose(1, 2) for z in (q, k, v))
    return conv1d(P, pre + "c_proj.", causal_attention(q, k, v))


def gpt2_mlp(P, pre, x, hp, ctx):
    return conv1d(P, pre + "c_proj.", gelu(conv1d(P, pre + "c_fc.", x), hp.act))


def rope_tables(hp, T):
    # HF LlamaRotaryEmbedding: inv_freq = 1 / theta^(arange(0, D, 2) / D), angles pos * inv_freq,
    # emb = cat(freqs, freqs). HF forms inv_freq and the angles in float32; we (and our C++)
    # form them in float64, which differs from HF-in-float32 at large positions only.
    inv_freq = 1.0 / (hp.theta ** (torch.arange(0, hp.D, 2, dtype=F64) / hp.D))
    freqs = torch.outer(torch.arange(T, dtype=F64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, D)
    return emb.cos(), emb.sin()


def apply_rope(z, cos, sin):
    """z (B, heads, T, D); rotate_half pairs element i with i + D/2."""
    h = z.shape[-1] // 2
    rot = torch.cat([-z[..., h:], z[..., :h]], dim=-1)
    return z * cos + rot * sin


def llama_attention(P, pre, x, hp, ctx):
    B, T, C = x.shape
    q = linear(P, pre + "q_proj.", x, hp.attn_bias).view(B, T, hp.H, hp.D).transpose(1, 2)
    k = linear(P, pre + "k_proj.", x, hp.attn_bias).view(B, T, hp.Hkv, hp.D).transpose(1, 2)
    v = linear(P, pre + "v_proj.", x, hp.attn_bias).view(B, T, hp.Hkv, hp.D).transpose(1, 2)
    cos, sin = ctx["rope"]
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    return linear(P, pre + "o_proj.", causal_attention(q, k, v), hp.attn_bias)


def llama_mlp(P, pre, x, hp, ctx):
    b = hp.mlp_bias
    return linear(P, pre + "down_proj.", F.silu(linear(P, pre + "gate_proj.", x, b)) * linear(P, pre + "up_proj.", x, b), b)


def tokens_choose_route(pd, K, cf):
    """Tokens choose (src/moe/moe_layer.h) on float64 probabilities pd (N,E) (numpy): top-K
    by p (ties: the lower id), capacity ceil(cf K N / E) per expert (cf <= 0: dropless, N K),
    pairs admitted choice-major in token order. Returns (choice (N,K), kept (N,K) bool,
    counts (E) kept pairs per expert, capacity, min gap): the smallest gap between
    consecutive sorted probabilities that the choice (and its order) hangs on."""
    N, E = pd.shape
    order = np.argsort(-pd, axis=1, kind="stable")  # descending; equal values keep the lower id first
    choice = order[:, :K]
    sv = np.take_along_axis(pd, order, axis=1)
    gap = float((sv[:, :min(K, E - 1)] - sv[:, 1:min(K, E - 1) + 1]).min()) if E > 1 else math.inf
    cap = math.ceil(cf * K * N / E - 1e-9) if cf > 0 else N * K
    kept = np.zeros((N, K), dtype=bool)
    counts = np.zeros(E, dtype=np.int64)
    for k in range(K):  # choice-major, token order
        for n in range(N):
            e = choice[n, k]
            if counts[e] < cap:
                kept[n, k] = True
                counts[e] += 1
    return choice, kept, counts, cap, gap


def expert_choice_route(pd, groups, cf):
    """Expert choice over `groups` equal groups of consecutive tokens (T5's encoder: the
    sequences) on float64 probabilities pd (N,E): in each group of T = N / groups tokens,
    every expert takes the cap = min(T, ceil(cf T / E - 1e-9)) tokens with the highest
    p[n,e] (ties: the lower token index), independently of the other experts (cf <= 0:
    cap = T, as MoeSpec::capacity). As K = E pairs per token: choice[n,k] = k, kept[n,k] =
    expert k took n. Returns (choice, kept, counts (E) = groups * cap, cap, min gap): the
    smallest gap, over (group, expert), between the cap-th and (cap+1)-th largest p."""
    N, E = pd.shape
    T = N // groups
    cap = min(T, math.ceil(cf * T / E - 1e-9)) if cf > 0 else T
    choice = np.tile(np.arange(E), (N, 1))
    kept = np.zeros((N, E), dtype=bool)
    gap = math.inf
    for g in range(groups):
        blk = pd[g * T:(g + 1) * T]
        order = np.argsort(-blk, axis=0, kind="stable")  # per expert, descending; ties: lower token first
        for e in range(E):
            kept[g * T + order[:cap, e], e] = True
        if cap < T:
            sv = np.take_along_axis(blk, order, axis=0)
            gap = min(gap, float((sv[cap - 1] - sv[cap]).min()))
    return choice, kept, kept.sum(axis=0).astype(np.int64), cap, gap


def moe_combine(xs, p, lse, choice, kept, renorm, expert, aux_coef, z_coef):
    """out (N,C) = sum over the kept pairs (n,k) of weight[n,k] * expert(choice[n,k], x[n]),
    weight = p[n, choice] raw or renormalised over the K chosen; aux = aux_coef E sum_e f_e P_e,
    f_e = pairs choosing e (before dropping) / (N K) (a constant), P_e = mean_n p[n,e];
    z = z_coef mean_n lse^2. expert(e, rows (R,C)) -> (R,C). Returns (out, aux, z)."""
    N, K = choice.shape
    E = p.shape[1]
    ch = torch.tensor(choice)
    chosen = p.gather(1, ch)
    weight = chosen / chosen.sum(dim=1, keepdim=True) if renorm else chosen
    out = torch.zeros_like(xs)
    for e in range(E):
        rows, ks = np.nonzero((choice == e) & kept)
        if len(rows) == 0:
            continue
        r, kk = torch.tensor(rows), torch.tensor(ks)
        out = out.index_add(0, r, weight[r, kk][:, None] * expert(e, xs[r]))
    f = torch.tensor(np.bincount(choice.reshape(-1), minlength=E) / (N * K), dtype=F64)
    aux = aux_coef * E * (f * p.mean(dim=0)).sum()
    z = z_coef * (lse * lse).mean()
    return out, aux, z


def mixtral_moe(P, pre, x, hp, ctx):
    """The MoE block of src/moe/moe_layer.h (not HF's MixtralSparseMoeBlock where they differ):
    p = softmax(x Wr^T); top-K by p (ties: lower id); combine weights raw p or p / sum over
    the chosen K; capacity ceil(cf K N / E) per expert (cf <= 0: dropless), pairs admitted
    choice-major in token order, a dropped pair contributes nothing; expert e is
    w2 (silu(w1 x) * (w3 x)). aux = aux_coef E sum_e f_e P_e with f_e = pairs choosing e
    before dropping / (N K) (a constant) and P_e = mean_n p[n,e]; z = z_coef mean_n lse^2.
    The decisions come from the float64 probabilities; ctx["moe"] records them with the
    smallest gap between consecutive sorted probabilities that a decision depends on
    (tokens_choose_route; the combine is moe_combine)."""
    B, T, C = x.shape
    xs = x.reshape(B * T, C)
    logits = xs @ P[pre + "gate.weight"].T
    p = torch.softmax(logits, dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    choice, kept, counts, cap, gap = tokens_choose_route(p.detach().numpy(), hp.K, hp.cf)

    def expert(e, xe):
        ex = pre + "experts.%d." % e
        return linear(P, ex + "w2.", F.silu(linear(P, ex + "w1.", xe)) * linear(P, ex + "w3.", xe))

    out, aux, z = moe_combine(xs, p, lse, choice, kept, hp.renorm, expert, hp.aux_coef, hp.z_coef)
    ctx.setdefault("moe", []).append(dict(layer=int(pre.split(".")[2]), aux=aux, z=z, choice=choice, kept=kept,
                                          counts=counts, capacity=cap, dropped=int((~kept).sum()), min_gap=gap))
    return out.reshape(B, T, C)


# ------------------------------------------------------------------ T5 blocks

def t5_relative_bucket(rel, bidirectional, num_buckets, max_distance):
    """HF T5Attention._relative_position_bucket, op for op in the same dtypes: rel (long)
    = key position - query position -> bucket (long). Bidirectional (encoder): half the
    buckets for rel > 0, |rel| in each half; unidirectional (decoder): -min(rel, 0). Then
    n = buckets in the half (or all), max_exact = n // 2: values < max_exact are their own
    bucket, larger ones max_exact + trunc(log(r / max_exact) / log(max_distance / max_exact)
    * (n - max_exact)) capped at n - 1. That log term is float32 as in HF: r converted to
    float32, divided by max_exact in float32, torch.log in float32, divided by the Python
    double log(max_distance / max_exact) rounded to float32, times (n - max_exact), truncated
    toward zero. (r = 0 gives log 0 = -inf there; torch.where discards it: r < max_exact.)"""
    buckets = torch.zeros_like(rel)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets = buckets + (rel > 0).to(torch.long) * n
        r = rel.abs()
    else:
        r = -torch.min(rel, torch.zeros_like(rel))
    max_exact = n // 2
    scaled = torch.log(r.float() / max_exact) / math.log(max_distance / max_exact) * (n - max_exact)
    large = torch.min(max_exact + scaled.to(torch.long), torch.full_like(r, n - 1))
    return buckets + torch.where(r < max_exact, r, large)


def t5_position_bias(table, Tq, Tk, bidirectional, hp):
    """(1, H, Tq, Tk) float64: table[bucket(key - query)] per head (HF compute_bias)."""
    rel = torch.arange(Tk, dtype=torch.long)[None, :] - torch.arange(Tq, dtype=torch.long)[:, None]
    b = t5_relative_bucket(rel, bidirectional, hp.buckets, hp.max_distance)
    return table[b].permute(2, 0, 1).unsqueeze(0)


def t5_attention(P, pre, x, kv, bias, hp):
    """HF T5Attention: q from x (B,Tq,C), k/v from kv (B,Tk,C) (x itself for self-attention,
    the encoder's final-normed output for EncDecAttention); scores q k^T with NO 1/sqrt(d)
    scaling, plus bias (the position bias with the causal mask folded in, or None = HF's
    zeros for cross-attention), softmax in float64, then o."""
    B, Tq, _ = x.shape
    Tk = kv.shape[1]
    q = linear(P, pre + "q.", x).view(B, Tq, hp.H, hp.D).transpose(1, 2)
    k = linear(P, pre + "k.", kv).view(B, Tk, hp.H, hp.D).transpose(1, 2)
    v = linear(P, pre + "v.", kv).view(B, Tk, hp.H, hp.D).transpose(1, 2)
    scores = q @ k.transpose(2, 3)
    if bias is not None:
        scores = scores + bias
    return linear(P, pre + "o.", (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, Tq, hp.H * hp.D))


def t5_ff(P, pre, x, hp):
    """T5DenseActDense wo(relu(wi x)), or T5DenseGatedActDense wo(gelu_new(wi_0 x) * wi_1 x)."""
    if hp.gated:
        h = gelu(linear(P, pre + "wi_0.", x), "gelu_new") * linear(P, pre + "wi_1.", x)
    else:
        h = F.relu(linear(P, pre + "wi.", x))
    return linear(P, pre + "wo.", h)


def t5_moe(P, pre, x, hp, ctx, slot, expert_choice):
    """An MoE T5 MLP (pre = "...layer.<1|2>.mlp."; x (B,T,C) the layer-normed input) over the
    N = B T tokens of its stack's batch: p = softmax(x Wr^T) (float64), then expert choice
    (expert_choice_route, each sequence a group, hp.cf_enc, raw p) or tokens choose
    (tokens_choose_route, hp.K, hp.cf, hp.renorm); experts are t5_ff with their own weights
    (wo relu(wi x) or wo (gelu_tanh(wi_0 x) * wi_1 x)); moe_combine adds them up and gives aux
    and z. ctx["moe"] gets the record of slot (encoder layer l: l; decoder layer l: L + l)."""
    B, T, C = x.shape
    xs = x.reshape(B * T, C)
    logits = xs @ P[pre + "router.classifier.weight"].T
    p = torch.softmax(logits, dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    pd = p.detach().numpy()
    if expert_choice:
        choice, kept, counts, cap, gap = expert_choice_route(pd, B, hp.cf_enc)
        renorm = False
    else:
        choice, kept, counts, cap, gap = tokens_choose_route(pd, hp.K, hp.cf)
        renorm = hp.renorm
    out, aux, z = moe_combine(xs, p, lse, choice, kept, renorm,
                              lambda e, xe: t5_ff(P, pre + "experts.expert_%d." % e, xe, hp), hp.aux_coef, hp.z_coef)
    ctx.setdefault("moe", []).append(dict(
        layer=slot, stack=pre.split(".")[0], routing="expert_choice" if expert_choice else "tokens_choose", aux=aux,
        z=z, choice=choice, kept=kept, counts=counts, capacity=cap, dropped=int((~kept).sum()), min_gap=gap))
    return out.reshape(B, T, C)


def switch_route(pd, groups, cap):
    """HF SwitchTransformersTop1Router's decisions on float64 probabilities pd (N,E) (numpy) of
    `groups` sequences of T = N / groups consecutive tokens: every token chooses argmax p (ties:
    the lower id); within each sequence, in token order, a token is kept when fewer than cap
    earlier tokens of the same sequence chose its expert (HF: cumsum of the one-hot choices over
    the sequence <= expert_capacity). Returns (choice (N,1), kept (N,1) bool, counts (E) kept
    tokens per expert over the batch, cap, min gap): the smallest top-1 minus second probability
    (the only comparison a decision hangs on)."""
    N, E = pd.shape
    T = N // groups
    order = np.argsort(-pd, axis=1, kind="stable")  # descending; equal values keep the lower id first
    choice = order[:, :1]
    sv = np.take_along_axis(pd, order, axis=1)
    gap = float((sv[:, 0] - sv[:, 1]).min()) if E > 1 else math.inf
    kept = np.zeros((N, 1), dtype=bool)
    counts = np.zeros(E, dtype=np.int64)
    for g in range(groups):
        used = np.zeros(E, dtype=np.int64)  # this sequence's tokens admitted per expert so far
        for n in range(g * T, (g + 1) * T):
            e = choice[n, 0]
            if used[e] < cap:
                kept[n, 0] = True
                used[e] += 1
        counts += used
    return choice, kept, counts, cap, gap


def switch_moe(P, pre, x, hp, ctx, slot):
    """A switch_transformers sparse MLP (pre = "...layer.<1|2>.mlp."; x (B,T,C) the layer-normed
    input): p = softmax(x Wr^T) (float64, no bias, no jitter), top-1 with hp.capacity tokens per
    expert per sequence (switch_route); a kept token's output is p_max * wo relu(wi x) of its
    expert's weights, a dropped token's 0 (HF's SparseMLP starts from zeros). aux = aux_coef E
    sum_e f_e P_e (f_e = tokens choosing e before dropping / N, P_e = mean_n p[n,e], N = B T),
    z = z_coef mean_n lse^2 (moe_combine with K = 1, raw gates). ctx["moe"] gets the record of
    slot (encoder layer l: l; decoder layer l: L + l); capacity is the per-sequence one."""
    B, T, C = x.shape
    xs = x.reshape(B * T, C)
    logits = xs @ P[pre + "router.classifier.weight"].T
    p = torch.softmax(logits, dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    choice, kept, counts, cap, gap = switch_route(p.detach().numpy(), B, hp.capacity)
    out, aux, z = moe_combine(xs, p, lse, choice, kept, False,
                              lambda e, xe: t5_ff(P, pre + "experts.expert_%d." % e, xe, hp), hp.aux_coef, hp.z_coef)
    ctx.setdefault("moe", []).append(dict(
        layer=slot, stack=pre.split(".")[0], routing=hp.enc_routing, aux=aux, z=z, choice=choice, kept=kept,
        counts=counts, capacity=cap, dropped=int((~kept).sum()), min_gap=gap))
    return out.reshape(B, T, C)


# ================================================================== families

class Family:
    """mlp: {checkpoint key: block function}; the first entry serves every layer unless
    moe_mlp is set: then that entry serves the layers in hp.moe_layers. wte_copies: other
    names a file may hold the embedding under (T5's encoder/decoder.embed_tokens.weight,
    which HF ties to shared.weight): equal copies are ignored, differing ones refused.
    seq2seq: the model is T5Model (its own forward; embed/attn/mlp/... unused)."""

    def __init__(self, hparams, spec, embed, norm, attn, mlp, layer_prefix, norm_names, final_norm, wte,
                 aliases=None, buffers=(), moe_mlp=None, wte_copies=(), seq2seq=False):
        self.__dict__.update(locals())
        del self.__dict__["self"]


def gpt2_embed(P, idx, hp):
    T = idx.shape[1]
    if T > hp.max_pos:
        raise OracleError("gpt2: T=%d exceeds n_positions %d" % (T, hp.max_pos))
    return P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][:T], {}


def llama_embed(P, idx, hp):
    return P["model.embed_tokens.weight"][idx], {"rope": rope_tables(hp, idx.shape[1])}


def gpt2_alias(name):
    """Original OpenAI-style GPT-2 files name tensors without "transformer."."""
    return name if name.startswith("transformer.") or name.startswith("lm_head.") else "transformer." + name


FAMILIES = {
    "gpt2": Family(gpt2_hparams, gpt2_spec, gpt2_embed, layernorm, {"attn": gpt2_attention}, {"mlp": gpt2_mlp},
                   "transformer.h.%d.", ("ln_1.", "ln_2."), "transformer.ln_f.", "transformer.wte.weight",
                   aliases=gpt2_alias, buffers=(".attn.bias", ".attn.masked_bias")),
    "llama": Family(llama_hparams, llama_spec, llama_embed, rmsnorm, {"self_attn": llama_attention},
                    {"mlp": llama_mlp}, "model.layers.%d.", ("input_layernorm.", "post_attention_layernorm."),
                    "model.norm.", "model.embed_tokens.weight", buffers=(".rotary_emb.inv_freq",)),
    # Mixtral: llama's parts; the MoE layers (moe_layers; all when absent) use block_sparse_moe
    # (gate.weight (E,C), experts.{e}.w1/w3 (F,C), w2 (C,F)), the others Llama's mlp.
    "mixtral": Family(mixtral_hparams, llama_spec, llama_embed, rmsnorm, {"self_attn": llama_attention},
                      {"mlp": llama_mlp}, "model.layers.%d.", ("input_layernorm.", "post_attention_layernorm."),
                      "model.norm.", "model.embed_tokens.weight", buffers=(".rotary_emb.inv_freq",),
                      moe_mlp=("block_sparse_moe", mixtral_moe)),
    # moe's label for Mixtral with raw top-k gates (moe_renormalize false): the same tensors.
    "mixtral_raw_gates": Family(mixtral_hparams, llama_spec, llama_embed, rmsnorm, {"self_attn": llama_attention},
                                {"mlp": llama_mlp}, "model.layers.%d.",
                                ("input_layernorm.", "post_attention_layernorm."), "model.norm.",
                                "model.embed_tokens.weight", buffers=(".rotary_emb.inv_freq",),
                                moe_mlp=("block_sparse_moe", mixtral_moe)),
    # T5 (T5ForConditionalGeneration): encoder-decoder, see T5Model; the blocks are t5_attention,
    # t5_ff and rmsnorm (T5LayerNorm is the same function: no mean, no bias).
    "t5": Family(t5_hparams, t5_spec, None, rmsnorm, {"SelfAttention": t5_attention}, {"DenseReluDense": t5_ff},
                 None, None, None, "shared.weight",
                 wte_copies=("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"), seq2seq=True),
    # switch_transformers (SwitchTransformersForConditionalGeneration): T5Model with the dense MLPs
    # under mlp (wi, wo) and switch_moe in the sparse layers.
    "switch_transformers": Family(switch_hparams, t5_spec, None, rmsnorm, {"SelfAttention": t5_attention},
                                  {"mlp": t5_ff}, None, None, None, "shared.weight",
                                  wte_copies=("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"),
                                  seq2seq=True),
}


class Model:
    def __init__(self, config, tensors, log=None):
        mt = config.get("model_type")
        if mt not in FAMILIES:
            raise OracleError("model_type %r not supported (have %s)" % (mt, sorted(FAMILIES)))
        self.fam = fam = FAMILIES[mt]
        self.hp = hp = fam.hparams(config)
        spec = fam.spec(hp)
        # Map file names -> canonical names; drop known non-parameter buffers.
        by_canon = {}
        for fname in tensors:
            canon = fam.aliases(fname) if fam.aliases else fname
            if any(canon.endswith(b) for b in fam.buffers) and canon not in dict(spec):
                continue
            if canon in by_canon:
                raise OracleError("tensor %s appears twice (as %s and %s)" % (canon, by_canon[canon], fname))
            by_canon[canon] = fname
        if hp.tie and "lm_head.weight" in by_canon:
            # HF ties lm_head to the embedding whatever the file holds: the stored copy is unused.
            (log or sys.stderr.write)("model_oracle: tie_word_embeddings: ignoring lm_head.weight in the file\n")
            del by_canon["lm_head.weight"]
        for copy in fam.wte_copies:
            if copy not in by_canon:
                continue
            if fam.wte not in by_canon:  # the file holds the embedding only under this name
                by_canon[fam.wte] = by_canon.pop(copy)
                (log or sys.stderr.write)("model_oracle: %s not in the file: using %s\n" % (fam.wte, copy))
                continue
            a, b = tensors[by_canon[copy]], tensors[by_canon[fam.wte]]
            if a.shape != b.shape or not np.array_equal(a, b):
                raise OracleError("%s differs from %s (HF ties them): refusing the checkpoint" % (copy, fam.wte))
            (log or sys.stderr.write)("model_oracle: ignoring %s in the file (equal to %s, tied)\n" % (copy, fam.wte))
            del by_canon[copy]
        want = [n for n, _ in spec]
        missing, extra = sorted(set(want) - set(by_canon)), sorted(set(by_canon) - set(want))
        if missing or extra:
            raise OracleError("checkpoint does not match %s config: missing %s, unexpected %s" % (mt, missing, extra))
        self.file_name = {}
        self.P = {}
        for name, shape in spec:
            a = tensors[by_canon[name]]
            if tuple(a.shape) != tuple(shape):
                raise OracleError("%s: shape %s, config implies %s" % (name, list(a.shape), list(shape)))
            self.P[name] = torch.nn.Parameter(torch.tensor(np.asarray(a, dtype=np.float64), dtype=F64))
            self.file_name[name] = by_canon[name]
        self.names = want  # model order

    def params(self):
        return [self.P[n] for n in self.names]

    def forward(self, idx):
        """Logits; self.moe holds the MoE layers' records of this forward (mixtral_moe)."""
        fam, hp, P = self.fam, self.hp, self.P
        x, ctx = fam.embed(P, idx, hp)
        (attn_key, attn), dense = next(iter(fam.attn.items())), next(iter(fam.mlp.items()))
        for i in range(hp.L):
            pre = fam.layer_prefix % i
            mlp_key, mlp = fam.moe_mlp if fam.moe_mlp and i in hp.moe_layers else dense
            x = x + attn(P, pre + attn_key + ".", fam.norm(P, pre + fam.norm_names[0], x, hp), hp, ctx)
            x = x + mlp(P, pre + mlp_key + ".", fam.norm(P, pre + fam.norm_names[1], x, hp), hp, ctx)
        self.moe = ctx.get("moe", [])
        x = fam.norm(P, fam.final_norm, x, hp)
        head = P[fam.wte] if hp.tie else P["lm_head.weight"]
        return x @ head.T

    def loss(self, idx, targets):
        """(logits, LM loss); the MoE part of the same forward is self.moe_loss()."""
        logits = self.forward(idx)
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)

    def moe_loss(self):
        """Sum over the MoE layers of aux + z of the last forward (0 for a dense model)."""
        return sum((r["aux"] + r["z"] for r in self.moe), torch.zeros((), dtype=F64))

    def objective(self, idx, targets):
        """(logits, LM loss, MoE loss, LM + MoE loss: what training minimises)."""
        logits, lm = self.loss(idx, targets)
        moe = self.moe_loss()
        return logits, lm, moe, lm + moe


class T5Model(Model):
    """T5ForConditionalGeneration (HF semantics, float64, no dropout, no padding masks).
    idx = (encoder ids (B,Te), decoder input ids (B,Td)); forward -> logits (B,Td,V).

    Encoder: x = shared[ids]; per block x += SelfAttention(T5LayerNorm(x)) with the
    bidirectional position bias of encoder block 0's table (shared by every block), then
    x += DenseReluDense(T5LayerNorm(x)); enc = encoder.final_layer_norm(x).
    Decoder: y = shared[dec ids]; per block y += SelfAttention(norm(y)) with decoder block 0's
    unidirectional position bias plus the causal mask, y += EncDecAttention(norm(y), enc) with
    no position bias (HF adds zeros), y += DenseReluDense(norm(y)); y = decoder.final_layer_norm(y).
    MoE layers (hp.enc_moe / hp.dec_moe) use t5_moe instead of DenseReluDense; self.moe gets the
    records, encoder first (slot order).
    Head: tied: (y * f32(d_model ** -0.5)) @ shared^T (HF's Mesh-TF rescale, only when tied);
    untied: y @ lm_head^T."""

    def moe_mlp(self, pre, x, ctx, slot, expert_choice):
        """The MoE MLP of slot: switch_moe (switch_transformers) or t5_moe (MoE T5)."""
        if self.hp.family == "switch_transformers":
            return switch_moe(self.P, pre, x, self.hp, ctx, slot)
        return t5_moe(self.P, pre, x, self.hp, ctx, slot, expert_choice)

    def encode(self, enc_ids, ctx=None):
        hp, P = self.hp, self.P
        ctx = {} if ctx is None else ctx
        x = P["shared.weight"][enc_ids]
        Te = enc_ids.shape[1]
        bias = t5_position_bias(P["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], Te, Te,
                                True, hp)
        for i in range(hp.L):
            b = "encoder.block.%d.layer." % i
            h = rmsnorm(P, b + "0.layer_norm.", x, hp)
            x = x + t5_attention(P, b + "0.SelfAttention.", h, h, bias, hp)
            if i in hp.enc_moe:
                x = x + self.moe_mlp(b + "1.mlp.", rmsnorm(P, b + "1.layer_norm.", x, hp), ctx, i,
                                     hp.enc_routing == "expert_choice")
            else:
                x = x + t5_ff(P, b + "1.%s." % hp.dense_mlp, rmsnorm(P, b + "1.layer_norm.", x, hp), hp)
        return rmsnorm(P, "encoder.final_layer_norm.", x, hp)

    def decode(self, dec_ids, enc, ctx=None):
        hp, P = self.hp, self.P
        ctx = {} if ctx is None else ctx
        y = P["shared.weight"][dec_ids]
        Td = dec_ids.shape[1]
        bias = t5_position_bias(P["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], Td, Td,
                                False, hp)
        causal = torch.ones(Td, Td, dtype=torch.bool).tril()
        bias = bias.masked_fill(~causal, float("-inf"))  # HF adds finfo.min: the same softmax (exact zeros)
        for i in range(hp.Ld):
            b = "decoder.block.%d.layer." % i
            h = rmsnorm(P, b + "0.layer_norm.", y, hp)
            y = y + t5_attention(P, b + "0.SelfAttention.", h, h, bias, hp)
            y = y + t5_attention(P, b + "1.EncDecAttention.", rmsnorm(P, b + "1.layer_norm.", y, hp), enc, None, hp)
            if i in hp.dec_moe:
                y = y + self.moe_mlp(b + "2.mlp.", rmsnorm(P, b + "2.layer_norm.", y, hp), ctx, hp.L + i, False)
            else:
                y = y + t5_ff(P, b + "2.%s." % hp.dense_mlp, rmsnorm(P, b + "2.layer_norm.", y, hp), hp)
        return rmsnorm(P, "decoder.final_layer_norm.", y, hp)

    def forward(self, idx):
        enc_ids, dec_ids = idx
        ctx = {}
        y = self.decode(dec_ids, self.encode(enc_ids, ctx), ctx)
        self.moe = ctx.get("moe", [])  # encoder layers first, then the decoder's: slot order
        if self.hp.tie:
            return (y * f32(self.hp.C ** -0.5)) @ self.P["shared.weight"].T
        return y @ self.P["lm_head.weight"].T


def make_model(config, tensors, log=None):
    fam = FAMILIES.get(config.get("model_type"))
    return (T5Model if fam is not None and fam.seq2seq else Model)(config, tensors, log)


def load_model(model_dir):
    config, tensors, _ = st_io.load_checkpoint(model_dir, floats_as=np.float64)
    return make_model(config, tensors)


def load_batch(path, V):
    b = st_io.read_safetensors(path)
    for k in ("inputs", "targets"):
        if k not in b:
            raise OracleError("%s: no %r tensor" % (path, k))
    inputs, targets = b["inputs"].astype(np.int64), b["targets"].astype(np.int64)
    if inputs.ndim != 2 or inputs.shape != targets.shape:
        raise OracleError("%s: inputs %s and targets %s must both be (B,T)" % (path, inputs.shape, targets.shape))
    if inputs.min() < 0 or inputs.max() >= V:
        raise OracleError("%s: inputs outside [0, %d)" % (path, V))
    targets[targets == -100] = IGNORE  # HF's ignore index, accepted too
    if ((targets < 0) & (targets != IGNORE)).any() or targets.max() >= V:
        raise OracleError("%s: targets must be in [0, %d) or -1" % (path, V))
    if (targets == IGNORE).all():
        raise OracleError("%s: every target is ignored" % path)
    return torch.tensor(inputs), torch.tensor(targets)


def t5_shift_right(targets, hp):
    """HF T5PreTrainedModel._shift_right: decoder_start_token_id, then targets[:, :-1], with
    ignored targets (HF's -100; our -1) replaced by pad_token_id."""
    dec = torch.empty_like(targets)
    dec[:, 0] = hp.start
    dec[:, 1:] = targets[:, :-1]
    return dec.masked_fill(dec == IGNORE, hp.pad)


def load_t5_batch(path, hp):
    """t5: "inputs" (B,Te) I32 encoder ids, "targets" (B,Td) I32 (-1 / -100 ignored) and
    optionally "decoder_inputs" (B,Td) I32 (absent: t5_shift_right(targets)).
    Returns ((enc, dec), targets, whether decoder_inputs came from the file)."""
    b = st_io.read_safetensors(path)
    for k in ("inputs", "targets"):
        if k not in b:
            raise OracleError("%s: no %r tensor" % (path, k))
    V = hp.V
    inputs, targets = b["inputs"].astype(np.int64), b["targets"].astype(np.int64)
    if inputs.ndim != 2 or targets.ndim != 2 or inputs.shape[0] != targets.shape[0]:
        raise OracleError("%s: t5 wants inputs (B,Te) and targets (B,Td), not %s and %s"
                          % (path, inputs.shape, targets.shape))
    if inputs.shape[1] < 1 or targets.shape[1] < 1:
        raise OracleError("%s: empty encoder or decoder sequence" % path)
    if inputs.min() < 0 or inputs.max() >= V:
        raise OracleError("%s: inputs outside [0, %d)" % (path, V))
    targets[targets == -100] = IGNORE  # HF's ignore index, accepted too
    if ((targets < 0) & (targets != IGNORE)).any() or targets.max() >= V:
        raise OracleError("%s: targets must be in [0, %d) or -1" % (path, V))
    if (targets == IGNORE).all():
        raise OracleError("%s: every target is ignored" % path)
    targets = torch.tensor(targets)
    if "decoder_inputs" in b:
        dec = b["decoder_inputs"].astype(np.int64)
        if dec.shape != tuple(targets.shape):
            raise OracleError("%s: decoder_inputs %s must have the targets' shape %s"
                              % (path, dec.shape, tuple(targets.shape)))
        if dec.min() < 0 or dec.max() >= V:
            raise OracleError("%s: decoder_inputs outside [0, %d)" % (path, V))
        dec, given = torch.tensor(dec), True
    else:
        dec, given = t5_shift_right(targets, hp), False
    return (torch.tensor(inputs), dec), targets, given


# ================================================================== training run

def make_optimizer(model, lr, beta1, beta2, eps, wd):
    decay = [p for p in model.params() if p.ndim >= 2]
    no_decay = [p for p in model.params() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(beta1, beta2), eps=eps)


def zero_missing_grads(params):
    """A parameter the objective did not reach (an MoE expert no kept pair went to) gets a zero
    gradient instead of None, so that it is reported, counted in the norm and stepped by AdamW
    (weight decay, moments) like every other parameter, as a trainer that zeroes all gradients
    does; torch's AdamW would skip a None gradient."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


def run(model, idx, targets, steps, lr, beta1, beta2, eps, wd, clip, grad_noise=0.0):
    """Returns {name: float64 ndarray} with the outputs documented at the top (file names).
    grad_noise > 0: every step's gradient gets Gaussian noise of std grad_noise x the largest
    |entry| of its tensor (seeded: the same on any machine), before the clipping."""
    gen = torch.Generator().manual_seed(12345)
    lr, beta1, beta2, eps, wd, clip = (f32(v) for v in (lr, beta1, beta2, eps, wd, clip))
    params = model.params()
    opt = make_optimizer(model, lr, beta1, beta2, eps, wd)
    out, losses, norms = {}, [], []
    model.moe_stats = {"min_gap": math.inf, "dropped": [], "by_slot": []}  # over every step's forward
    for s in range(max(steps, 1)):
        opt.zero_grad(set_to_none=True)
        logits, loss, moe, total = model.objective(idx, targets)
        total.backward()
        zero_missing_grads(params)
        if grad_noise > 0:
            with torch.no_grad():
                for p in params:
                    scale = grad_noise * float(p.grad.abs().max())
                    p.grad += scale * torch.randn(p.grad.shape, generator=gen, dtype=p.grad.dtype)
        for r in model.moe:
            model.moe_stats["min_gap"] = min(model.moe_stats["min_gap"], r["min_gap"])
        model.moe_stats["dropped"].append(sum(r["dropped"] for r in model.moe))
        model.moe_stats["by_slot"].append([r["dropped"] for r in model.moe])
        if s == 0:
            out["logits"] = logits.detach().numpy()
            out["loss"] = np.array([loss.item()])
            if model.moe:
                model.moe_records0 = model.moe
                out["moe_loss"] = np.array([moe.item()])
                for r in model.moe:
                    m = "moe.%d." % r["layer"]
                    out[m + "choice"], out[m + "kept"] = r["choice"].astype(np.float64), r["kept"].astype(np.float64)
                    out[m + "counts"] = r["counts"].astype(np.float64)
                    out[m + "aux"], out[m + "z"] = np.array([r["aux"].item()]), np.array([r["z"].item()])
            for n in model.names:
                out["grad." + model.file_name[n]] = model.P[n].grad.detach().numpy().copy()
        if steps == 0:
            break
        if clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            norm = torch.norm(torch.stack([p.grad.detach().norm(2) for p in params]), 2)
        losses.append(loss.item())
        norms.append(float(norm))
        opt.step()
    if steps > 0:
        out["losses"] = np.array(losses)
        out["grad_norms"] = np.array(norms)
        for n in model.names:
            out["final." + model.file_name[n]] = model.P[n].detach().numpy().copy()
    return out


def oracle(args):
    t0 = time.time()
    model = load_model(args.model)
    if model.fam.seq2seq:
        idx, targets, given = load_t5_batch(args.batch, model.hp)
    else:
        idx, targets = load_batch(args.batch, model.hp.V)
    out = run(model, idx, targets, args.steps, args.lr, args.beta1, args.beta2, args.eps, args.weight_decay, args.clip)
    meta = {"model_type": model.hp.family, "steps": args.steps, "lr": args.lr, "beta1": args.beta1,
            "beta2": args.beta2, "eps": args.eps, "weight_decay": args.weight_decay, "clip": args.clip,
            "torch": torch.__version__, "valid_targets": int((targets != IGNORE).sum())}
    if model.fam.seq2seq:
        meta["decoder_inputs"] = "batch file" if given else "shift_right(targets)"
        msg = "model_oracle: %s B=%d Te=%d Td=%d (decoder inputs: %s) loss %.6f" % (
            model.hp.family, idx[0].shape[0], idx[0].shape[1], idx[1].shape[1], meta["decoder_inputs"], out["loss"][0])
    else:
        msg = "model_oracle: %s B=%d T=%d loss %.6f" % (model.hp.family, idx.shape[0], idx.shape[1], out["loss"][0])
    if "moe_loss" in out:
        st = model.moe_stats
        meta.update({"moe_layers": ",".join(str(l) for l in model.hp.moe_layers), "moe_dropped": st["dropped"][0],
                     "moe_dropped_per_step": ",".join(str(d) for d in st["dropped"]), "moe_min_gap": repr(st["min_gap"])})
        if model.fam.seq2seq:  # slots: encoder layer l -> l, decoder layer l -> L + l
            recs = model.moe_records0
            meta.update({"moe_layers": ",".join(str(r["layer"]) for r in recs),
                         "moe_stacks": ",".join(r["stack"] for r in recs),
                         "moe_routing": ",".join(r["routing"] for r in recs),
                         "moe_capacity": ",".join(str(r["capacity"]) for r in recs),
                         "moe_dropped_by_slot": ",".join(str(d) for d in st["by_slot"][0])})
            if model.hp.family == "switch_transformers":
                meta["moe_sparse_step"] = model.hp.sparse_step
            per = "; ".join("slot %d (%s %s, capacity %d) %s" % (
                r["layer"], r["stack"], r["routing"], r["capacity"], [d[j] for d in st["by_slot"]])
                for j, r in enumerate(recs))
            msg += " moe_loss %.6f; unkept pairs per step: %s; min routing gap %.2e" % (
                out["moe_loss"][0], per, st["min_gap"])
        else:
            msg += " moe_loss %.6f; dropped pairs per step %s; min routing gap %.2e" % (
                out["moe_loss"][0], st["dropped"], st["min_gap"])
        if st["min_gap"] < args.min_gap:
            raise OracleError("a routing decision hangs on a probability gap of %.2e < --min-gap %.1e: fp32 and "
                              "float64 may route differently; choose another seed" % (st["min_gap"], args.min_gap))
    if args.drift_noise > 0 and args.steps > 0:
        # The fixture's own sensitivity: the same steps from the same weights with each
        # step's gradients perturbed by drift_noise of their tensor's scale (the size of an
        # fp32 gradient's error). Ten Adam steps on one batch can amplify such errors into
        # loss differences far above the per-step error; "losses_drift" shows by how much.
        drift = run(load_model(args.model), idx, targets, args.steps, args.lr, args.beta1, args.beta2, args.eps,
                    args.weight_decay, args.clip, grad_noise=args.drift_noise)
        out["losses_drift"] = drift["losses"]
        meta["drift_noise"] = args.drift_noise
        msg += "; drift run (grad noise %.1e): max loss change %.2e" % (
            args.drift_noise, float(np.max(np.abs(drift["losses"] - out["losses"]))))
    st_io.write_safetensors(args.out, {k: v.astype(np.float32) for k, v in out.items()}, meta)
    if args.steps > 0:
        msg += " -> %.6f after %d steps" % (out["losses"][-1], args.steps)
    print(msg + " (%.2fs) -> %s" % (time.time() - t0, args.out))
    return 0


# ================================================================== self-test

# make_model_fixture.py flags of the MoE T5 fixtures that pass this oracle with --steps 10 (clear
# routing margins: min gap over the 10 steps >= 2e-4 with the default clip 1, >= 5e-5 with every clip
# the selftest tries; also stored as BF16 or F16: min gap >= 7e-5), checked by the selftest's [cli]
# part to write exactly its cases of the same names (F32, one file, B 2, Te 16, Td 8).
T5_MOE_FLAGS = {
    # (1) gated-gelu, encoder expert choice cf 2, decoder top-2 renormalised, capacity 1.25 (drops pairs)
    "t5_moe_gated_ec_top2": ["--family", "t5", "--experts", "4", "--ffn-proj", "gated-gelu", "--topk", "2",
                             "--renorm", "1", "--capacity", "1.25", "--encoder-routing", "expert_choice",
                             "--encoder-capacity", "2", "--seed", "4"],
    # (2) relu, encoder expert choice cf 2, decoder Switch top-1 raw gates, capacity 1.0 (drops pairs)
    "t5_moe_relu_ec_switch": ["--family", "t5", "--experts", "4", "--ffn-proj", "relu", "--topk", "1",
                              "--renorm", "0", "--capacity", "1.0", "--encoder-routing", "expert_choice",
                              "--encoder-capacity", "2", "--seed", "10"],
}
# switch_transformers fixtures (HF SwitchTransformersForConditionalGeneration, 4 relu experts; min gap
# over the 10 steps >= 5e-4 with every clip the selftest tries, >= 1e-4 as BF16), checked alike by
# [cli]: switch_tied_relu (tied, 2 + 2 layers, sparse step 2: slots 1 and 3, expert_capacity 3 per
# sequence: drops in both stacks at every step), the same as BF16 in 2 shards (the BF16-rounded
# model), and switch_untied_step1 (untied, 2 + 1 layers, every layer sparse: slots 0, 1, 2, capacity 2).
SWITCH_FLAGS = {
    "switch_tied_relu": ["--family", "switch_transformers", "--experts", "4", "--expert-capacity", "3",
                         "--sparse-step", "2", "--tie", "1", "--seed", "3"],
    "switch_tied_relu_bf16x2": ["--family", "switch_transformers", "--experts", "4", "--expert-capacity", "3",
                                "--sparse-step", "2", "--tie", "1", "--seed", "3", "--dtype", "BF16", "--shards", "2"],
    "switch_untied_step1": ["--family", "switch_transformers", "--experts", "4", "--expert-capacity", "2",
                            "--sparse-step", "1", "--tie", "0", "--d-kv", "12", "--heads", "3", "--layers", "2",
                            "--dec-layers", "1", "--aux-coef", "0.1", "--z-coef", "0.01", "--seed", "3"],
}
CASE_SEEDS = {"t5_moe_gated_ec_top2": 4, "t5_moe_relu_ec_switch": 10, "switch_tied_relu": 3,
              "switch_untied_step1": 3}  # the fixture seed of a selftest case (default 3)


def selftest(keep=None):
    import shutil
    import subprocess
    import tempfile
    import make_model_fixture as fx

    root = keep or tempfile.mkdtemp(prefix="model_oracle_selftest.")
    os.makedirs(root, exist_ok=True)
    ok = True

    def check(cond, what):
        nonlocal ok
        print("  %s %s" % ("ok  " if cond else "FAIL", what))
        ok &= bool(cond)

    B, T, V = 2, 16, 64
    cases = {  # name -> config
        "gpt2": fx.gpt2_config(V, 32, 2, 4, None, 32, True),
        "gpt2_untied": fx.gpt2_config(V, 32, 2, 4, 48, 32, False),
        "llama_gqa": fx.llama_config(V, 32, 2, 4, 2, 80, 32, False),
        "llama_tied_mqa": fx.llama_config(V, 32, 2, 4, 1, 64, 32, True, theta=500000.0),
        "mixtral_top2": fx.mixtral_config(V, 32, 2, 4, 2, 48, 32, False, experts=4, topk=2),
        "mixtral_top1_cap": fx.mixtral_config(V, 32, 2, 4, 2, 48, 32, False, experts=4, topk=1, capacity=1.0,
                                              renorm=False, moe_layers=[1], aux_coef=0.1, z_coef=0.01),
        # T5: gated-gelu untied, H*d_kv = 36 != d_model 32, 3 encoder / 2 decoder layers; relu tied
        # (the fixture default: d_kv 8, 4 heads, 2 / 2 layers); buckets 8, max_distance 20
        "t5_gated_untied": fx.t5_config(V, 32, 12, 48, 3, 2, 3, 8, 20, "gated-gelu", False),
        "t5_relu_tied": fx.t5_config(V, 32, 8, 48, 2, 2, 4, 8, 20, "relu", True),
        # MoE T5 (4 experts; seed 3 as every case: the fixtures of T5_MOE_FLAGS): (1) gated-gelu tied,
        # encoder expert choice cf 2, decoder top-2 renormalised with capacity 1.25 (drops pairs), MoE
        # layer 1 of each stack (the default); (2) relu, expert choice, decoder Switch top-1 raw gates
        # capacity 1.0 (drops pairs); (3) gated-gelu untied, 3 + 2 layers, the encoder tokens-choose
        # too (top-2 raw, capacity 1.25), moe_layers [0, 2] (decoder layer 2 does not exist), larger
        # loss coefficients.
        "t5_moe_gated_ec_top2": fx.t5_config(V, 32, 8, 48, 2, 2, 4, 8, 20, "gated-gelu", True, experts=4, topk=2,
                                             encoder_routing="expert_choice", encoder_capacity=2.0,
                                             capacity=1.25, renorm=True),
        "t5_moe_relu_ec_switch": fx.t5_config(V, 32, 8, 48, 2, 2, 4, 8, 20, "relu", True, experts=4, topk=1,
                                              encoder_routing="expert_choice", encoder_capacity=2.0,
                                              capacity=1.0, renorm=False),
        "t5_moe_tc_untied": fx.t5_config(V, 32, 12, 48, 3, 2, 3, 8, 20, "gated-gelu", False, experts=4, topk=2,
                                         encoder_routing="tokens_choose", capacity=1.25, renorm=False,
                                         moe_layers=[0, 2], aux_coef=0.1, z_coef=0.01),
        # switch_transformers (4 experts, relu): (1) tied, 2 + 2 layers, sparse step 2 (layer 1 of each
        # stack: slots 1, 3), expert_capacity 3 per sequence (drops tokens in both stacks); (2) untied,
        # H*d_kv 36 != d_model, 2 encoder + 1 decoder layers, step 1 (every layer: slots 0, 1, 2),
        # capacity 2, larger loss coefficients
        "switch_tied_relu": fx.switch_config(V, 32, 8, 48, 2, 2, 4, 8, 20, True, experts=4, expert_capacity=3,
                                             sparse_step=2),
        "switch_untied_step1": fx.switch_config(V, 32, 12, 48, 2, 1, 3, 8, 20, False, experts=4, expert_capacity=2,
                                                sparse_step=1, aux_coef=0.1, z_coef=0.01),
    }
    Te, Td = 16, 8  # t5: encoder / decoder lengths
    batches = {}
    for name, cfg in cases.items():
        print("[%s]" % name)
        d = os.path.join(root, name)
        seed = CASE_SEEDS.get(name, 3)
        fx.write_model(d, cfg, seed=seed)
        if cfg["model_type"] in ("t5", "switch_transformers"):
            inp, dec, tgt = fx.make_t5_batch(V, B, Te, Td, seed=seed)
            idx = (torch.tensor(inp.astype(np.int64)), torch.tensor(dec.astype(np.int64)))
        else:
            inp, tgt = fx.make_batch(V, B, T, seed=3)
            idx = torch.tensor(inp.astype(np.int64))
        targets = torch.tensor(tgt.astype(np.int64))
        batches[name] = idx, targets
        m = load_model(d)

        # (a) loss at init ~ ln V
        _, loss, _, total = m.objective(idx, targets)
        check(abs(loss.item() - math.log(V)) < 0.05, "(a) init loss %.5f vs ln V %.5f" % (loss.item(), math.log(V)))

        # (b) autograd vs central finite differences, 3 random entries of every parameter
        # (of LM + MoE loss; the routing must not flip under the +-h probes: min gap >> h);
        # T5's relative-bias tables: every entry (the buckets the lengths reach and those they do not)
        total.backward()
        zero_missing_grads(m.params())
        rng = np.random.default_rng(0)
        h, worst, worst_abs, n = 1e-5, 0.0, 0.0, 0
        base_routing = [(r["choice"].copy(), r["kept"].copy()) for r in m.moe]
        flips = 0

        def same_routing():
            return len(m.moe) == len(base_routing) and all(
                np.array_equal(r["choice"], c) and np.array_equal(r["kept"], k) for r, (c, k) in zip(m.moe, base_routing))
        with torch.no_grad():
            for pn in m.names:
                p = m.P[pn]
                flat = p.view(-1)
                every = pn.endswith("relative_attention_bias.weight")
                if every:
                    used = int((p.grad.abs().sum(dim=1) > 0).sum())
                    print("       %s: %d of %d buckets reached (nonzero grad)" % (pn, used, p.shape[0]))
                for j in (range(flat.numel()) if every else
                          rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False)):
                    x0 = flat[j].item()
                    flat[j] = x0 + h
                    lp = m.objective(idx, targets)[3].item()
                    flips += not same_routing()
                    flat[j] = x0 - h
                    lm = m.objective(idx, targets)[3].item()
                    flips += not same_routing()
                    flat[j] = x0
                    fd, ag = (lp - lm) / (2 * h), p.grad.view(-1)[j].item()
                    worst_abs = max(worst_abs, abs(fd - ag))
                    worst = max(worst, abs(fd - ag) / max(abs(ag), 1e-4))
                    n += 1
        check(worst < 1e-5, "(b) %d grad entries over %d params: max |fd-ag| %.2e, max rel (floor 1e-4) %.2e"
              % (n, len(m.names), worst_abs, worst))
        if base_routing:
            check(flips == 0, "(b) MoE routing (choice, kept) of every layer identical under all %d probes "
                  "(%d differ); initial min routing gap %.2e" % (2 * n, flips, min(r["min_gap"] for r in m.moe)))

        # (c) 10 AdamW steps with clipping: losses fall; torch AdamW groups == hand-written AdamW
        hyper = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, wd=0.1)
        clips = [0.0, None, 0.05]  # None: the median grad norm of the unclipped run (clips some steps only)
        for clip in clips:
            if clip is None:
                clip = float(np.median(N))
            m = load_model(d)
            init = {k: v.detach().clone() for k, v in m.P.items()}
            out = run(m, idx, targets, 10, clip=clip, **hyper)
            L, N = out["losses"], out["grad_norms"]
            if m.moe and cfg["model_type"] in ("t5", "switch_transformers"):
                st = m.moe_stats
                per = {r["layer"]: [d[j] for d in st["by_slot"]] for j, r in enumerate(m.moe_records0)}
                # switch: tokens dropped at step 0 in both stacks
                drops0 = {stk: sum(per[r["layer"]][0] for r in m.moe_records0 if r["stack"] == stk)
                          for stk in ("encoder", "decoder")}
                check(st["min_gap"] >= 1e-5 and (name != "t5_moe_relu_ec_switch" or min(per[3]) > 0)
                      and (cfg["model_type"] != "switch_transformers" or min(drops0.values()) > 0),
                      "(c) clip=%.4g: min routing gap over the 10 steps %.2e >= 1e-5 (the CLI's --min-gap); "
                      "unkept pairs per step by slot %s" % (clip, st["min_gap"], per))
            clipped = int((N > clip).sum()) if clip > 0 else 0
            check(L[-1] < L[0] - 0.01 and (np.diff(L) < 0).all(),
                  "(c) clip=%.4g: losses %.4f -> %.4f, monotone; grad norms %.3f..%.3f (%d/10 clipped)"
                  % (clip, L[0], L[-1], N.min(), N.max(), clipped))
            # hand AdamW from the same start: recompute grads on the hand weights each step
            m2 = load_model(d)
            with torch.no_grad():
                for k in m2.P:
                    m2.P[k].copy_(init[k])
            st = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in m2.P.items()}
            lr, b1, b2, e, wd = (f32(hyper[k]) for k in ("lr", "beta1", "beta2", "eps", "wd"))
            for t in range(1, 11):
                for p in m2.P.values():
                    p.grad = None
                m2.objective(idx, targets)[3].backward()
                zero_missing_grads(m2.params())
                with torch.no_grad():
                    gn = math.sqrt(sum(float((p.grad ** 2).sum()) for p in m2.P.values()))
                    scale = min(1.0, f32(clip) / (gn + 1e-6)) if clip > 0 else 1.0
                    for k, p in m2.P.items():
                        g = p.grad * scale
                        mm, vv = st[k]
                        mm.mul_(b1).add_((1 - b1) * g)
                        vv.mul_(b2).add_((1 - b2) * g * g)
                        p.mul_(1 - lr * (wd if p.ndim >= 2 else 0.0))
                        p.sub_(lr * (mm / (1 - b1 ** t)) / ((vv / (1 - b2 ** t)).sqrt() + e))
            diff = max(float((m2.P[k] - torch.tensor(out["final." + m.file_name[k]])).abs().max()) for k in m2.P)
            check(diff < 1e-12, "(c) clip=%.4g: final params vs hand AdamW (decay on ndim>=2 only): max diff %.1e"
                  % (clip, diff))

    # T5: the bucket function, causality, checkpoint names, the batch file's shift_right
    print("[t5 buckets]")
    rel = torch.arange(-200, 201)

    def bucket64(r, bidirectional, nb, md):
        """float64 re-derivation (numpy): floor instead of trunc (the same on >= 0); also
        returns the float64 log term, to tell where float32 and float64 may round apart."""
        r = np.asarray(r, dtype=np.int64)
        base, n = np.zeros_like(r), nb
        if bidirectional:
            n //= 2
            base, r = base + (r > 0) * n, np.abs(r)
        else:
            r = np.maximum(-r, 0)
        me = n // 2
        with np.errstate(divide="ignore"):
            v = np.log(r / me) / math.log(md / me) * (n - me)
        large = np.minimum(me + np.floor(np.where(r < me, 0.0, v)), n - 1).astype(np.int64)
        return base + np.where(r < me, r, large), np.where((r >= me) & (me + v < n - 1 + 1e-6), v, 0.5)

    def bucket_exact(r, bidirectional, nb, md):
        """Integer arithmetic: me + the largest k <= n - me with (r / me)^(n - me) >= (md / me)^k."""
        out = []
        for x in r:
            base, n = 0, nb
            if bidirectional:
                n //= 2
                base, x = (n if x > 0 else 0), abs(x)
            else:
                x = max(-x, 0)
            me = n // 2
            if x < me:
                out.append(base + x)
                continue
            k = 0
            while k < n - me and x ** (n - me) * me ** (k + 1) >= md ** (k + 1) * me ** (n - me):
                k += 1
            out.append(base + min(me + k, n - 1))
        return np.array(out)

    def bucket_cr32(r, bidirectional, nb, md):
        """The float32 recipe a C++ port would use: (float)r / (float)max_exact, a correctly
        rounded logf, / (float)log((double)md / max_exact), * (float)(n - max_exact), trunc."""
        r = np.asarray(r, dtype=np.int64)
        base, n = np.zeros_like(r), nb
        if bidirectional:
            n //= 2
            base, r = base + (r > 0) * n, np.abs(r)
        else:
            r = np.maximum(-r, 0)
        me = n // 2
        with np.errstate(divide="ignore"):
            q = r.astype(np.float32) / np.float32(me)
            lg = np.log(q.astype(np.float64)).astype(np.float32)  # float64 log rounded: correctly rounded logf
            v = lg / np.float32(math.log(md / me)) * np.float32(n - me)
        large = np.minimum(me + np.trunc(np.where(r < me, np.float32(0), v)).astype(np.int64), n - 1)
        return base + np.where(r < me, r, large)

    # (8, 20): the fixtures; (32, 128): HF's default; (8, 18): float64 lands just below exact
    # boundaries (|rel| = 6 encoder: log 3 / log 9 * 2 = 1 exactly), where float32 gives the exact bucket
    for nb, md in ((8, 20), (32, 128), (8, 18)):
        for bidir in (True, False):
            hf = t5_relative_bucket(rel, bidir, nb, md).numpy()
            b64, v = bucket64(rel.numpy(), bidir, nb, md)
            ex = bucket_exact(rel.tolist(), bidir, nb, md)
            cr = bucket_cr32(rel.numpy(), bidir, nb, md)
            diff = hf != b64
            boundary = np.abs(v - np.round(v)) < 1e-6  # the log term (float64) within 1e-6 of an integer
            check(not (diff & ~boundary).any() and (cr == hf).all() and hf.min() >= 0 and hf.max() < nb,
                  "buckets %d max_distance %d %s, rel in [-200, 200]: %d differ from the float64 re-derivation "
                  "(all at exact-boundary rel %s), %d from exact integer arithmetic; float32 recipe with a "
                  "correctly rounded logf: %d differ; buckets used %d..%d"
                  % (nb, md, "bidirectional" if bidir else "unidirectional", int(diff.sum()),
                     rel.numpy()[diff].tolist(), int((hf != ex).sum()), int((cr != hf).sum()), hf.min(), hf.max()))

    print("[t5 causality]")
    m = load_model(os.path.join(root, "t5_gated_untied"))
    (enc, dec), _ = batches["t5_gated_untied"]
    with torch.no_grad():
        e0 = m.encode(enc)
        enc2 = enc.clone()
        enc2[:, -1] = (enc2[:, -1] + 1) % V
        e1 = m.encode(enc2)
        de = float((e1[:, 0] - e0[:, 0]).abs().max())
        check(de > 1e-6, "encoder output at position 0 moves %.2e when the last encoder token changes" % de)
        l0 = m.forward((enc, dec))
        dl = float((m.forward((enc2, dec)) - l0).abs().amax(dim=(0, 2)).min())
        check(dl > 1e-6, "every decoder position's logits move (min %.2e) when the last encoder token changes" % dl)
        for t in (Td - 1, 3):
            dec2 = dec.clone()
            dec2[:, t] = (dec2[:, t] + 1) % V
            d = (m.forward((enc, dec2)) - l0).abs().amax(dim=(0, 2))
            check(float(d[:t].max()) == 0.0 and float(d[t:].min()) > 1e-6,
                  "decoder token %d changed: logits at positions < %d move %.1e (exactly 0), at >= %d min %.2e"
                  % (t, t, float(d[:t].max()), t, float(d[t:].min())))

    # MoE T5: the blocks against per-token loops from the definitions, expert choice's
    # capacity per sequence, what a token's routing depends on, the decoder's causality,
    # the config keys' checks
    print("[t5 moe]")

    def naive_moe(P, pre, x, hp, expert_choice, cf=None):
        """(out (N,C), kept (N,K) bool, aux, z) by per-token Python loops (no numpy sorts)."""
        Bx, Tx, C = x.shape
        xs = x.reshape(-1, C)
        N_, E = xs.shape[0], hp.E
        logits = xs @ P[pre + "router.classifier.weight"].T
        prob, lse = torch.softmax(logits, -1).tolist(), torch.logsumexp(logits, -1).tolist()
        cf = (hp.cf_enc if expert_choice else hp.cf) if cf is None else cf
        if expert_choice:
            K = E
            cap = min(Tx, math.ceil(cf * Tx / E - 1e-9)) if cf > 0 else Tx
            choice = [list(range(E)) for _ in range(N_)]
            kept = np.zeros((N_, E), dtype=bool)
            for b in range(Bx):
                for e in range(E):
                    for t in sorted(range(Tx), key=lambda t: (-prob[b * Tx + t][e], t))[:cap]:
                        kept[b * Tx + t, e] = True
            weight = [[prob[n][e] for e in range(E)] for n in range(N_)]
        else:
            K = hp.K
            cap = math.ceil(cf * K * N_ / E - 1e-9) if cf > 0 else N_ * K
            choice = [sorted(range(E), key=lambda e: (-prob[n][e], e))[:K] for n in range(N_)]
            kept, count = np.zeros((N_, K), dtype=bool), [0] * E
            for k in range(K):
                for n in range(N_):
                    if count[choice[n][k]] < cap:
                        kept[n, k] = True
                        count[choice[n][k]] += 1
            weight = [[prob[n][e] / (sum(prob[n][c] for c in choice[n]) if hp.renorm else 1.0) for e in choice[n]]
                      for n in range(N_)]
        out = torch.zeros_like(xs)
        for n in range(N_):
            for k in range(K):
                if kept[n, k]:
                    out[n] += weight[n][k] * t5_ff(P, pre + "experts.expert_%d." % choice[n][k], xs[n:n + 1], hp)[0]
        chosen = [sum(c.count(e) for c in choice) / (N_ * K) for e in range(E)]
        aux = hp.aux_coef * E * sum(chosen[e] * sum(prob[n][e] for n in range(N_)) / N_ for e in range(E))
        z = hp.z_coef * sum(v * v for v in lse) / N_
        return out, kept, aux, z

    def moe_blocks(hp):
        """(router prefix, slot, expert choice, tokens per sequence) of every MoE layer."""
        return ([("encoder.block.%d.layer.1.mlp." % l, l, hp.enc_routing == "expert_choice", Te) for l in hp.enc_moe]
                + [("decoder.block.%d.layer.2.mlp." % l, hp.L + l, False, Td) for l in hp.dec_moe])

    moe_cases = [n for n, c in cases.items() if c["model_type"] == "t5" and c.get("num_experts", 0) > 0]
    with torch.no_grad():
        for name in moe_cases:
            m = load_model(os.path.join(root, name))
            hp = m.hp
            m.forward(batches[name][0])
            recs = {r["layer"]: r for r in m.moe}
            blocks = moe_blocks(hp)
            check(sorted(recs) == [b[1] for b in blocks] and all(
                recs[b[1]]["routing"] == ("expert_choice" if b[2] else "tokens_choose") for b in blocks),
                "%s: MoE slots %s (%s)" % (name, sorted(recs), ", ".join("%d %s %s" % (
                    r["layer"], r["stack"], r["routing"]) for r in m.moe)))
            # the blocks on random inputs (and the model's step-0 records) vs the loops
            worst, same = 0.0, True
            for pre, slot, ec, Tx in blocks:
                for seed in range(3):
                    x = torch.tensor(np.random.default_rng(100 + seed).standard_normal((B, Tx, hp.C)))
                    ctx = {}
                    out = t5_moe(m.P, pre, x, hp, ctx, slot, ec).reshape(-1, hp.C)
                    r = ctx["moe"][0]
                    nout, nkept, naux, nz = naive_moe(m.P, pre, x, hp, ec)
                    worst = max(worst, float((out - nout).abs().max()), abs(r["aux"].item() - naux) / naux,
                                abs(r["z"].item() - nz) / nz)
                    same &= np.array_equal(r["kept"], nkept)
            check(same and worst < 1e-12, "%s: every MoE block on random inputs (3 seeds) equals per-token loops from "
                  "the definitions: kept pairs identical, out / relative aux, z max diff %.1e" % (name, worst))
            for pre, slot, ec, Tx in blocks:
                if not ec:
                    continue
                cap = min(Tx, math.ceil(hp.cf_enc * Tx / hp.E - 1e-9))
                per_row = recs[slot]["kept"].reshape(B, Tx, hp.E).sum(axis=1)
                check(recs[slot]["capacity"] == cap and (per_row == cap).all()
                      and (recs[slot]["counts"] == B * cap).all() and (recs[slot]["choice"] == np.arange(hp.E)).all(),
                      "(d) %s slot %d: expert choice: every expert takes exactly cap = min(Te, ceil(%.3g * %d / %d)) "
                      "= %d tokens of each of the %d sequences (taken per row and expert: %s); tokens taken by "
                      "0..E experts: %s" % (name, slot, hp.cf_enc, Tx, hp.E, cap, B, sorted(set(per_row.reshape(-1))),
                                            np.bincount(recs[slot]["kept"].sum(axis=1), minlength=hp.E + 1).tolist()))
                # not causal: a later token of a sequence moves the routing of earlier ones; the other
                # sequence (another group) is untouched
                moved, other_same, worst = 0, True, 0.0
                for seed in range(10):
                    rng = np.random.default_rng(200 + seed)
                    x = torch.tensor(rng.standard_normal((B, Tx, hp.C)))
                    x2 = x.clone()
                    x2[0, Tx - 1] = torch.tensor(rng.standard_normal(hp.C))
                    c1, c2 = {}, {}
                    o1 = t5_moe(m.P, pre, x, hp, c1, slot, True)
                    o2 = t5_moe(m.P, pre, x2, hp, c2, slot, True)
                    k1, k2 = (c["moe"][0]["kept"].reshape(B, Tx, hp.E) for c in (c1, c2))
                    moved += bool((k1[0, :Tx - 1] != k2[0, :Tx - 1]).any())
                    other_same &= np.array_equal(k1[1:], k2[1:])
                    worst = max(worst, float((o1[1:] - o2[1:]).abs().max()))
                check(moved > 0 and other_same and worst < 1e-12,
                      "(d) %s slot %d: changing the LAST token of sequence 0 changes which experts take an earlier "
                      "token of it in %d of 10 seeds (expert choice is not causal); sequence 1's routing identical, "
                      "its output max diff %.1e" % (name, slot, moved, worst))
            for pre, slot, ec, Tx in blocks:
                if ec:
                    continue
                # tokens choose: a token's choices and weights depend on that token only; dropless, its
                # output too; top-1 with capacity: its admission only on the tokens before it
                hp0 = HP(**hp.__dict__)
                hp0.cf = 0.0
                other, drop_same, early_same, early_moved, worst = True, True, True, 0, 0.0
                N_ = B * Tx
                for seed in range(10):
                    rng = np.random.default_rng(300 + seed)
                    x = torch.tensor(rng.standard_normal((B, Tx, hp.C)))
                    j = int(rng.integers(0, N_))
                    x2 = x.clone()
                    x2.view(N_, hp.C)[j] = torch.tensor(rng.standard_normal(hp.C))
                    W = m.P[pre + "router.classifier.weight"]
                    p1, p2 = (torch.softmax(v.reshape(N_, hp.C) @ W.T, -1) for v in (x, x2))
                    rest = torch.arange(N_) != j
                    res = []
                    for h_ in (hp, hp0):
                        c1, c2 = {}, {}
                        o1 = t5_moe(m.P, pre, x, h_, c1, slot, False).reshape(N_, hp.C)
                        o2 = t5_moe(m.P, pre, x2, h_, c2, slot, False).reshape(N_, hp.C)
                        res.append((c1["moe"][0], c2["moe"][0], o1, o2))
                    (r1, r2, _, _), (d1, d2, o1, o2) = res
                    other &= np.array_equal(r1["choice"][rest.numpy()], r2["choice"][rest.numpy()]) and \
                        float((p1[rest] - p2[rest]).abs().max()) == 0.0
                    drop_same &= np.array_equal(d1["kept"][rest.numpy()], d2["kept"][rest.numpy()])
                    worst = max(worst, float((o1[rest] - o2[rest]).abs().max()))
                    if hp.K == 1:
                        early_same &= np.array_equal(r1["kept"][:j], r2["kept"][:j])
                    else:
                        early_moved += not np.array_equal(r1["kept"][:j], r2["kept"][:j])
                how = ("with capacity %.3g (top-1), the admission of the tokens before it too" % hp.cf if hp.K == 1
                       else "(top-%d with capacity %.3g: an earlier token's admission moved in %d of 10 seeds, as "
                            "second choices queue behind every first choice)" % (hp.K, hp.cf, early_moved))
                check(other and drop_same and worst < 1e-12 and early_same,
                      "(d) %s slot %d: tokens choose: changing one token (10 seeds) leaves every other token's "
                      "probabilities (exactly) and choices unchanged; dropless, its kept pairs and outputs too (max "
                      "diff %.1e); %s" % (name, slot, worst, how))
        # the decoder stays causal with dropless tokens-choose experts (a dropless copy of case 1)
        name = "t5_moe_gated_ec_top2"
        cfg0 = dict(cases[name], moe_capacity_factor=0.0)
        _, tens, _ = st_io.load_checkpoint(os.path.join(root, name), floats_as=np.float64)
        for label, mc in (("dropless copy", make_model(cfg0, tens)), ("capacity 1.25", load_model(os.path.join(root, name)))):
            (enc, dec), _ = batches[name]
            l0 = mc.forward((enc, dec))
            for t in (Td - 1, 3):
                dec2 = dec.clone()
                dec2[:, t] = (dec2[:, t] + 1) % V
                d = (mc.forward((enc, dec2)) - l0).abs().amax(dim=(0, 2))
                if label == "dropless copy":
                    check(float(d[:t].max()) < 1e-12 and float(d[t:].min()) > 1e-6,
                          "%s (%s): decoder token %d changed: logits at positions < %d move %.1e, at >= %d min %.2e"
                          % (name, label, t, t, float(d[:t].max()), t, float(d[t:].min())))
                else:
                    print("       %s (%s): decoder token %d changed: logits at positions < %d move %.1e (training-time "
                          "dropping depends on the whole batch)" % (name, label, t, t, float(d[:t].max())))
    # config keys
    base = cases["t5_moe_relu_ec_switch"]
    dense = {k: v for k, v in base.items() if k != "num_experts"}
    check(t5_spec(t5_hparams(dense)) == t5_spec(t5_hparams(cases["t5_relu_tied"]))
          and t5_spec(t5_hparams(dict(base, num_experts=0))) == t5_spec(t5_hparams(cases["t5_relu_tied"])),
          "num_experts absent or 0: the dense T5 (the other MoE keys ignored)")
    hpd = t5_hparams({k: v for k, v in base.items() if not k.startswith(("moe_", "num_experts_", "router_"))})
    check((hpd.K, hpd.enc_routing, hpd.cf_enc, hpd.cf, hpd.renorm, hpd.aux_coef, hpd.z_coef, hpd.moe_layers)
          == (1, "tokens_choose", 2.0, 1.25, False, f32(0.01), f32(1e-3), (1,)),
          "defaults: top-1, encoder tokens_choose, encoder cf 2, cf 1.25, raw gates, aux 0.01, z 1e-3, "
          "moe_layers 1, 3, ...")
    for bad in ({"num_experts_per_tok": 5}, {"num_experts": -1}, {"moe_routing": "expert-choice"}, {"moe_layers": []},
                {"moe_layers": [2]}, {"num_layers": 1, "num_decoder_layers": 1}):
        try:
            t5_hparams(dict(base, **bad))
            check(False, "config %s refused" % bad)
        except OracleError as e:
            check(True, "config %s refused: %s" % (bad, e))

    # switch_transformers: the routing against HF's cumsum formulation, capacity per sequence,
    # token order, the whole model's row independence and decoder causality with dropping, names
    # and config keys
    print("[switch]")

    def cumsum_moe(P, pre, x, hp, cap):
        """HF SwitchTransformersTop1Router + SparseMLP written from its definition with torch ops
        (not switch_route): argmax of the softmax, one_hot, cumsum over the sequence axis, mask
        priority <= cap; out per token by a loop (gate * expert, 0 when masked); aux / z by their
        formulas. Returns (choice (N,), kept (N,) bool, counts (E), out (N,C), aux, z)."""
        Bx, Tx, C = x.shape
        E = hp.E
        logits = x @ P[pre + "router.classifier.weight"].T  # (B,T,E)
        probs = torch.softmax(logits, dim=-1)
        idx = torch.argmax(probs, dim=-1)  # the first maximal index
        onehot = F.one_hot(idx, E)
        mask = onehot * (torch.cumsum(onehot, dim=1) <= cap)
        kept = mask.sum(-1).reshape(-1) > 0
        gate = probs.max(dim=-1).values.reshape(-1)
        xs = x.reshape(-1, C)
        out = torch.zeros_like(xs)
        for n in range(Bx * Tx):
            if kept[n]:
                e = int(idx.reshape(-1)[n])
                out[n] = gate[n] * t5_ff(P, pre + "experts.expert_%d." % e, xs[n:n + 1], hp)[0]
        frac = onehot.to(F64).mean(dim=(0, 1))
        aux = hp.aux_coef * E * float((frac * probs.mean(dim=(0, 1))).sum())
        z = hp.z_coef * float((torch.logsumexp(logits, dim=-1) ** 2).mean())
        return (idx.reshape(-1).numpy(), kept.numpy(), mask.sum(dim=(0, 1)).numpy(), out, aux, z)

    switch_cases = [n for n, c in cases.items() if c["model_type"] == "switch_transformers"]
    with torch.no_grad():
        for name in switch_cases:
            m = load_model(os.path.join(root, name))
            hp = m.hp
            blocks = ([("encoder.block.%d.layer.1.mlp." % l, l, Te) for l in hp.enc_moe]
                      + [("decoder.block.%d.layer.2.mlp." % l, hp.L + l, Td) for l in hp.dec_moe])
            sparse = [l for l in range(max(hp.L, hp.Ld)) if hp.sparse_step == 1 or l % hp.sparse_step == 1]
            dense = [pn for pn in m.names if ".mlp." in pn and ".experts." not in pn and ".router." not in pn]
            check([r[1] for r in blocks] == [l for l in sparse if l < hp.L] + [hp.L + l for l in sparse if l < hp.Ld]
                  and all(pn.endswith(("mlp.wi.weight", "mlp.wo.weight")) for pn in dense)
                  and len(dense) == 2 * (hp.L + hp.Ld - len(blocks))
                  and not any("DenseReluDense" in pn for pn in m.names),
                  "%s: sparse step %d: slots %s; the %d dense MLPs named mlp.wi / mlp.wo"
                  % (name, hp.sparse_step, [r[1] for r in blocks], len(dense) // 2))
            # the model's step-0 blocks on their real inputs, and random inputs at capacities 1, the
            # config's and T (dropless), against cumsum_moe
            seen = {}
            moe_mlp = m.moe_mlp

            def spy(pre, x, ctx, slot, ec, moe_mlp=moe_mlp, seen=seen):
                seen[slot] = x.clone()
                return moe_mlp(pre, x, ctx, slot, ec)
            m.moe_mlp = spy
            m.forward(batches[name][0])
            recs0 = {r["layer"]: r for r in m.moe}
            m.moe_mlp = moe_mlp
            worst, same, n_cmp, dropped = 0.0, True, 0, {}
            for pre, slot, Tx in blocks:
                inputs = [(seen[slot], hp.capacity, True)]
                for seed in range(3):
                    x = torch.tensor(np.random.default_rng(400 + seed).standard_normal((B, Tx, hp.C)))
                    inputs += [(x, cap, False) for cap in (1, hp.capacity, Tx)]
                for x, cap, real in inputs:
                    h_ = HP(**hp.__dict__)
                    h_.capacity = cap
                    ctx = {}
                    out = switch_moe(m.P, pre, x, h_, ctx, slot).reshape(-1, hp.C)
                    r = ctx["moe"][0]
                    c_ch, c_kept, c_counts, c_out, c_aux, c_z = cumsum_moe(m.P, pre, x, h_, cap)
                    same &= (np.array_equal(r["choice"][:, 0], c_ch) and np.array_equal(r["kept"][:, 0], c_kept)
                             and np.array_equal(r["counts"], c_counts))
                    if real:  # the model's own step-0 record of this slot
                        same &= (np.array_equal(recs0[slot]["kept"], r["kept"])
                                 and np.array_equal(recs0[slot]["choice"], r["choice"]))
                        dropped[slot] = int((~c_kept).sum())
                    worst = max(worst, float((out - c_out).abs().max()), abs(r["aux"].item() - c_aux) / c_aux,
                                abs(r["z"].item() - c_z) / c_z)
                    n_cmp += 1
            check(same and worst < 1e-12 and min(dropped.values()) > 0,
                  "(d) %s: routing of every sparse block (%d runs: the model's step-0 inputs, 3 random inputs at "
                  "capacity 1, %d and T) equals HF's formulation (argmax, one_hot, cumsum over the sequence <= "
                  "capacity): choice, kept, counts identical; out / relative aux, z max diff %.1e; tokens dropped at "
                  "step 0 per slot %s" % (name, n_cmp, hp.capacity, worst, dropped))
            # capacity counts per sequence: rewriting row 1 never moves row 0's routing or output;
            # kept per (row, expert) = min(cap, chosen); a batch-wide count would differ; within a row a
            # token's admission depends on the tokens before it only
            row0_same, caps_ok, moved1, batchwide_differs, early_same, later_moved, worst = (
                True, True, 0, 0, True, 0, 0.0)
            for pre, slot, Tx in blocks:
                for seed in range(10):
                    rng = np.random.default_rng(500 + seed)
                    x = torch.tensor(rng.standard_normal((B, Tx, hp.C)))
                    x2 = x.clone()
                    x2[1] = torch.tensor(rng.standard_normal((Tx, hp.C)))
                    c1, c2 = {}, {}
                    o1 = switch_moe(m.P, pre, x, hp, c1, slot)
                    o2 = switch_moe(m.P, pre, x2, hp, c2, slot)
                    r1, r2 = c1["moe"][0], c2["moe"][0]
                    row0_same &= (np.array_equal(r1["choice"][:Tx], r2["choice"][:Tx])
                                  and np.array_equal(r1["kept"][:Tx], r2["kept"][:Tx]))
                    worst = max(worst, float((o1[0] - o2[0]).abs().max()))
                    moved1 += not np.array_equal(r1["kept"][Tx:], r2["kept"][Tx:])
                    for r in (r1, r2):
                        ch, kp = r["choice"][:, 0].reshape(B, Tx), r["kept"][:, 0].reshape(B, Tx)
                        for b in range(B):
                            for e in range(hp.E):
                                caps_ok &= int(kp[b][ch[b] == e].sum()) == min(hp.capacity, int((ch[b] == e).sum()))
                    # batch-wide (capacity B * cap over the flattened batch, in token order)
                    flat, used = np.zeros(B * Tx, dtype=bool), np.zeros(hp.E, dtype=np.int64)
                    for n_ in range(B * Tx):
                        e = r1["choice"][n_, 0]
                        if used[e] < B * hp.capacity:
                            flat[n_], used[e] = True, used[e] + 1
                    batchwide_differs += not np.array_equal(flat, r1["kept"][:, 0])
                    # token j of row 0 rewritten
                    j = int(rng.integers(1, Tx - 1))
                    x3 = x.clone()
                    x3[0, j] = torch.tensor(rng.standard_normal(hp.C))
                    c3 = {}
                    switch_moe(m.P, pre, x3, hp, c3, slot)
                    r3 = c3["moe"][0]
                    early_same &= (np.array_equal(r1["kept"][:j], r3["kept"][:j])
                                   and np.array_equal(r1["choice"][:j], r3["choice"][:j])
                                   and np.array_equal(r1["choice"][j + 1:], r3["choice"][j + 1:]))
                    later_moved += not np.array_equal(r1["kept"][j + 1:Tx], r3["kept"][j + 1:Tx])
            check(row0_same and worst < 1e-12 and caps_ok and moved1 > 0 and batchwide_differs > 0,
                  "(d) %s: capacity per sequence (%d blocks x 10 seeds): rewriting every token of row 1 leaves row "
                  "0's choices and admissions identical (output max diff %.1e; row 1's own admissions moved in %d); "
                  "kept per (row, expert) = min(%d, chosen) everywhere; a batch-wide count in token order would "
                  "admit a different set in %d runs" % (name, len(blocks), worst, moved1, hp.capacity,
                                                       batchwide_differs))
            check(early_same and later_moved > 0,
                  "(d) %s: rewriting token j of row 0 leaves the admissions and choices before j and the choices "
                  "after j identical; admissions after j moved in %d of %d runs (queueing in token order)"
                  % (name, later_moved, 10 * len(blocks)))
            # the whole model: rows independent (routing included); the decoder causal despite dropping
            (enc, dec), _ = batches[name]
            l0 = m.forward((enc, dec))
            recs = [(r["choice"].copy(), r["kept"].copy()) for r in m.moe]
            enc2, dec2 = enc.clone(), dec.clone()
            enc2[1] = (enc2[1] * 7 + 3) % V
            dec2[1, 1:] = (dec2[1, 1:] * 5 + 1) % V
            l1 = m.forward((enc2, dec2))
            rows = [Te if r["stack"] == "encoder" else Td for r in m.moe]
            rec_same = all(np.array_equal(c[:t], r["choice"][:t]) and np.array_equal(k[:t], r["kept"][:t])
                           for (c, k), r, t in zip(recs, m.moe, rows))
            rec_moved = sum(not np.array_equal(k[t:], r["kept"][t:]) for (c, k), r, t in zip(recs, m.moe, rows))
            d0, d1 = float((l1[0] - l0[0]).abs().max()), float((l1[1] - l0[1]).abs().min())
            check(rec_same and d0 < 1e-12 and rec_moved > 0,
                  "(d) %s model: rewriting row 1's encoder and decoder tokens leaves row 0's routing in every slot "
                  "identical and its logits within %.1e (row 1's admissions moved in %d of %d slots)"
                  % (name, d0, rec_moved, len(m.moe)))
            for t in (Td - 1, 3, 1):
                dec3 = dec.clone()
                dec3[:, t] = (dec3[:, t] + 1) % V
                d = (m.forward((enc, dec3)) - l0).abs().amax(dim=(0, 2))
                check(float(d[:t].max()) < 1e-12 and float(d[t:].min()) > 1e-6,
                      "%s: decoder token %d changed: logits at positions < %d move %.1e, at >= %d min %.2e (capacity "
                      "per sequence in token order keeps the decoder causal with dropping)"
                      % (name, t, t, float(d[:t].max()), t, float(d[t:].min())))
    # names: tied copies (embed_tokens, lm_head) as for t5; T5's DenseReluDense names refused
    name = "switch_tied_relu"
    cfg = cases[name]
    ref = load_model(os.path.join(root, name))
    idx, targets = batches[name]
    ref_loss = ref.objective(idx, targets)[1].item()
    p32 = fx.random_params(cfg, seed=CASE_SEEDS[name])
    variants = {
        "copies": dict(p32, **{"encoder.embed_tokens.weight": p32["shared.weight"],
                               "decoder.embed_tokens.weight": p32["shared.weight"],
                               "lm_head.weight": p32["shared.weight"] * np.float32(2)}),
        "t5_names": {k.replace(".mlp.wi.", ".DenseReluDense.wi.").replace(".mlp.wo.", ".DenseReluDense.wo."): a
                     for k, a in p32.items()},
    }
    for vname, tens in variants.items():
        d = os.path.join(root, "switch_names_" + vname)
        st_io.save_checkpoint(d, cfg, tens)
        notes = []
        try:
            config, tensors, _ = st_io.load_checkpoint(d)
            mv = make_model(config, tensors, log=notes.append)
        except OracleError as e:
            check(vname == "t5_names", "%s: refused (%s)" % (vname, str(e)[:150] + "..."))
            continue
        lv = mv.objective(idx, targets)[1].item()
        check(vname == "copies" and mv.names == ref.names and lv == ref_loss,
              "%s: loads as the plain checkpoint (same %d parameters, loss %.6f == %.6f); notes: %s"
              % (vname, len(mv.names), lv, ref_loss,
                 "; ".join(n.strip().replace("model_oracle: ", "") for n in notes)))
    # config keys: HF's defaults, the step derived from the sparse-layer counts, refusals
    base = {k: v for k, v in cases[name].items()
            if k not in ("num_experts", "expert_capacity", "encoder_sparse_step", "decoder_sparse_step",
                         "num_sparse_encoder_layers", "num_sparse_decoder_layers", "router_aux_loss_coef",
                         "router_z_loss_coef")}
    hpd = switch_hparams(base)
    check((hpd.E, hpd.capacity, hpd.K, hpd.aux_coef, hpd.z_coef, hpd.sparse_step, hpd.moe_layers)
          == (8, 64, 1, f32(0.001), f32(0.001), 1, (0, 1)),
          "defaults: num_experts 8, expert_capacity 64, top-1, aux 0.001, z 0.001 (HF's); no step keys: "
          "num_sparse_*_layers default 3: step max(1, 2 // 3) = 1, every layer sparse")
    derived = []
    for extra, want in (({"num_layers": 4, "num_decoder_layers": 4, "num_sparse_encoder_layers": 2,
                          "num_sparse_decoder_layers": 2}, (2, (1, 3))),
                        ({"num_layers": 12, "num_decoder_layers": 12}, (4, (1, 5, 9))),
                        ({"num_layers": 3, "num_decoder_layers": 3, "num_sparse_encoder_layers": 0,
                          "num_sparse_decoder_layers": 0}, (3, (1,))),
                        ({"num_layers": 4, "num_decoder_layers": 2, "num_sparse_encoder_layers": 2,
                          "num_sparse_decoder_layers": 1}, (2, (1, 3))),
                        ({"num_layers": 4, "num_decoder_layers": 4, "num_sparse_encoder_layers": 1,
                          "num_sparse_decoder_layers": 1, "encoder_sparse_step": 2, "decoder_sparse_step": 2},
                         (2, (1, 3)))):
        h_ = switch_hparams(dict(base, **extra))
        derived.append((h_.sparse_step, h_.moe_layers) == want)
        derived[-1] &= h_.dec_moe == tuple(l for l in want[1] if l < h_.Ld)
    check(all(derived), "sparse steps: counts 2 of 4 layers -> step 2 (1, 3); HF's default 3 of 12 -> 4 (1, 5, 9); "
          "count 0 -> step = num_layers (3: layer 1); 2 of 4 / 1 of 2 -> 2 in both; explicit steps win over counts")
    for bad in ({"encoder_sparse_step": 2, "decoder_sparse_step": 1}, {"router_bias": True},
                {"dense_act_fn": "gelu_new"}, {"feed_forward_proj": "gated-gelu"}, {"is_gated_act": True},
                {"expert_capacity": 0}, {"expert_capacity": 2.5}, {"num_experts": 0}, {"router_dtype": "bfloat16"},
                {"encoder_sparse_step": 0, "decoder_sparse_step": 0},
                {"num_layers": 1, "num_decoder_layers": 1, "encoder_sparse_step": 2, "decoder_sparse_step": 2},
                {"num_sparse_encoder_layers": -1}):
        try:
            switch_hparams(dict(base, **bad))
            check(False, "config %s refused" % bad)
        except OracleError as e:
            check(True, "config %s refused: %s" % (bad, e))

    print("[t5 checkpoint names and batch]")
    cfg = cases["t5_relu_tied"]
    ref = load_model(os.path.join(root, "t5_relu_tied"))
    idx, targets = batches["t5_relu_tied"]
    ref_loss = ref.objective(idx, targets)[1].item()
    p32 = fx.random_params(cfg, seed=3)
    variants = {  # name -> (tensors, expected: None = refused)
        "copies": dict(p32, **{"encoder.embed_tokens.weight": p32["shared.weight"],
                               "decoder.embed_tokens.weight": p32["shared.weight"],
                               "lm_head.weight": p32["shared.weight"] * np.float32(2)}),  # tied: lm_head ignored
        "only_copies": dict({k: a for k, a in p32.items() if k != "shared.weight"},
                            **{"encoder.embed_tokens.weight": p32["shared.weight"],
                               "decoder.embed_tokens.weight": p32["shared.weight"]}),
        "differing": dict(p32, **{"decoder.embed_tokens.weight": p32["shared.weight"] + np.float32(1e-3)}),
    }
    for vname, tens in variants.items():
        d = os.path.join(root, "t5_names_" + vname)
        st_io.save_checkpoint(d, cfg, tens)
        notes = []
        try:
            config, tensors, _ = st_io.load_checkpoint(d)
            mv = make_model(config, tensors, log=notes.append)
        except OracleError as e:
            check(vname == "differing", "%s: refused (%s)" % (vname, e))
            continue
        lv = mv.objective(idx, targets)[1].item()
        check(vname != "differing" and mv.names == ref.names and lv == ref_loss,
              "%s: loads as the plain checkpoint (same %d parameters, loss %.6f == %.6f; shared from %s); notes: %s"
              % (vname, len(mv.names), lv, ref_loss, mv.file_name["shared.weight"],
                 "; ".join(n.strip().replace("model_oracle: ", "") for n in notes)))
    for bad in ({"feed_forward_proj": "gated-silu"}, {"feed_forward_proj": "gated-gelu", "is_gated_act": False},
                {"relative_attention_num_buckets": 8, "relative_attention_max_distance": 4}):
        try:
            t5_hparams(dict(cfg, **bad))
            check(False, "config %s refused" % bad)
        except OracleError as e:
            check(True, "config %s refused: %s" % (bad, e))
    bfile = os.path.join(root, "t5_batch_noshift.safetensors")
    inp, dec, tgt = fx.write_t5_batch(bfile, V, B, Te, Td, seed=4, ignore_frac=0.3, decoder_inputs=False)
    (e_l, d_l), t_l, given = load_t5_batch(bfile, ref.hp)
    tgt100 = np.where(tgt == -1, -100, tgt)
    st_io.write_safetensors(bfile, {"inputs": inp, "targets": tgt100})
    (_, d_100), t_100, _ = load_t5_batch(bfile, ref.hp)
    check(not given and np.array_equal(d_l.numpy(), dec) and (d_l[:, 0] == 0).all() and np.array_equal(d_100, d_l)
          and np.array_equal(t_100, t_l) and int((t_l == IGNORE).sum()) > 0
          and bool((d_l[:, 1:][t_l[:, :-1] == IGNORE] == ref.hp.pad).all()),
          "no decoder_inputs: shift_right(targets) (start 0, %d ignored -> pad 0; -100 the same as -1) "
          "equals the fixture's numpy shift_right" % int((t_l[:, :-1] == IGNORE).sum()))

    # (d) sharded / BF16 / F16 checkpoints load to the F32 model up to the dtype rounding
    print("[dtypes and shards]")
    for name in ("gpt2", "llama_gqa", "t5_gated_untied", "switch_tied_relu"):
        cfg = cases[name]
        ref_p = fx.random_params(cfg, seed=5)
        fx.write_model(os.path.join(root, name + "_F32"), cfg, 5)
        base = load_model(os.path.join(root, name + "_F32"))
        check(all(np.array_equal(base.P[k].detach().numpy(), ref_p[k].astype(np.float64)) for k in ref_p),
              "%s F32 loads exactly" % name)
        for dt, sh in (("F32", 3), ("BF16", 1), ("BF16", 4), ("F16", 2)):
            d = os.path.join(root, "%s_%s_x%d" % (name, dt, sh))
            fx.write_model(d, cfg, 5, dt, sh)
            nfiles = len([f for f in os.listdir(d) if f.endswith(".safetensors")])
            m = load_model(d)
            if dt == "F32":
                exp = {k: a.astype(np.float64) for k, a in ref_p.items()}
            elif dt == "BF16":
                exp = {k: st_io.bf16_round(a).astype(np.float64) for k, a in ref_p.items()}
            else:
                exp = {k: a.astype(np.float16).astype(np.float64) for k, a in ref_p.items()}
            exact = all(np.array_equal(m.P[k].detach().numpy(), exp[k]) for k in exp)
            rel = max(float(np.max(np.abs(m.P[k].detach().numpy() - ref_p[k]) / np.maximum(np.abs(ref_p[k]), 1e-3)))
                      for k in ref_p)
            torch_rt = True
            if dt == "BF16":  # our bit rounding == torch's bfloat16 cast
                torch_rt = all(np.array_equal(st_io.bf16_round(a), torch.tensor(a).bfloat16().float().numpy())
                               for a in ref_p.values())
            check(exact and torch_rt and nfiles == sh,
                  "%s %s in %d file(s): equals F32 rounded to %s; max rel change %.2e" % (name, dt, nfiles, dt, rel))

    # end to end: the CLI on a fixture, timed, outputs named and shaped as documented
    print("[cli]")
    here = os.path.dirname(os.path.abspath(__file__))
    t5_flags = ["--ffn-proj", "gated-gelu", "--tie", "0", "--d-kv", "12", "--heads", "3", "--layers", "3",
                "--dec-layers", "2", "--enc-seq", "12", "--seq", "5", "--decoder-inputs", "0"]
    bf16x2 = ["--dtype", "BF16", "--shards", "2"]
    runs = [("gpt2", "gpt2", bf16x2, (2, 16, 64)), ("llama", "llama", bf16x2, (2, 16, 64)),
            ("t5", "t5", bf16x2, (2, 8, 64)), ("t5_gated", "t5", bf16x2 + t5_flags, (2, 5, 64))]
    runs += [(name, "t5", flags[2:], (B, Td, V)) for name, flags in T5_MOE_FLAGS.items()]  # F32, one file
    runs += [(name, flags[1], flags[2:], (B, Td, V)) for name, flags in SWITCH_FLAGS.items()]
    for fam, family, flags, logits_shape in runs:
        d, bfile, ofile = (os.path.join(root, "cli_" + fam + s) for s in ("", "_batch.safetensors", "_out.safetensors"))
        subprocess.run([sys.executable, os.path.join(here, "make_model_fixture.py"), "--family", family, "--out", d,
                        "--batch", bfile] + flags, check=True, stdout=subprocess.DEVNULL)
        t0 = time.time()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--model", d, "--batch", bfile, "--out", ofile,
                        "--steps", "10"], check=True, stdout=subprocess.DEVNULL)
        dt = time.time() - t0
        res, dts = st_io.read_safetensors(ofile, with_dtypes=True)
        _, ck, _ = st_io.load_checkpoint(d)
        want = {"logits": logits_shape, "loss": (1,), "losses": (10,), "grad_norms": (10,)}
        for k, a in ck.items():
            want["grad." + k] = a.shape
            want["final." + k] = a.shape
        moe_ok = True
        if fam in T5_MOE_FLAGS or fam in SWITCH_FLAGS:  # the selftest's case of that name, and its MoE outputs
            case = fam.replace("_bf16x2", "")
            dtype = flags[flags.index("--dtype") + 1] if "--dtype" in flags else "F32"
            with open(os.path.join(d, "config.json")) as f:
                moe_ok = json.load(f) == dict(cases[case], torch_dtype=fx.TORCH_DTYPE[dtype])
            hp = FAMILIES[cases[case]["model_type"]].hparams(cases[case])
            (enc_b, dec_b), tgt_b, _ = load_t5_batch(bfile, hp)
            (enc_s, dec_s), tgt_s = batches[case]
            moe_ok &= bool((enc_b == enc_s).all() and (dec_b == dec_s).all() and (tgt_b == tgt_s).all())
            want["moe_loss"] = (1,)
            slots = [(l, B * Te, hp.E if hp.enc_routing == "expert_choice" else hp.K) for l in hp.enc_moe]
            slots += [(hp.L + l, B * Td, hp.K) for l in hp.dec_moe]
            for slot, n_tok, k in slots:
                m_ = "moe.%d." % slot
                want.update({m_ + "choice": (n_tok, k), m_ + "kept": (n_tok, k), m_ + "counts": (hp.E,),
                             m_ + "aux": (1,), m_ + "z": (1,)})
            meta = st_io.read_metadata(ofile)
            moe_ok &= (meta.get("moe_layers") == ",".join(str(sl[0]) for sl in slots)
                       and float(meta["moe_min_gap"]) >= 1e-4)
            print("       %s: make_model_fixture.py %s; metadata %s" % (fam, " ".join(flags), ", ".join(
                "%s=%s" % (k, v) for k, v in sorted(meta.items()) if k.startswith("moe_"))))
        shapes_ok = moe_ok and set(res) == set(want) and all(tuple(res[k].shape) == tuple(s) for k, s in want.items())
        check(shapes_ok and set(dts.values()) == {"F32"} and abs(res["loss"][0] - res["losses"][0]) < 1e-6,
              "%s: %d output tensors named/shaped as documented, all F32; run took %.2fs" % (fam, len(res), dt))
        check(dt < 3.0, "%s: oracle run under 3 s" % fam)
    if not keep:
        shutil.rmtree(root)
    print("selftest: %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="HF checkpoint directory")
    ap.add_argument("--batch", help="safetensors with inputs/targets (B,T) I32 (t5: inputs (B,Te), targets and "
                                    "optional decoder_inputs (B,Td))")
    ap.add_argument("--out", help="output safetensors file")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0, help="max grad norm; <= 0: no clipping")
    ap.add_argument("--drift-noise", type=float, default=0.0,
                    help="> 0: also write losses_drift, the losses of a second run whose every gradient gets "
                         "Gaussian noise of this std x its tensor's max |entry|")
    ap.add_argument("--min-gap", type=float, default=1e-5,
                    help="MoE: fail when a routing decision (any step) hangs on a smaller probability gap")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: tiny models)")
    ap.add_argument("--selftest", action="store_true", help="check the oracle itself (fixtures in a temp dir)")
    ap.add_argument("--keep", help="with --selftest: write the fixtures here and keep them")
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))
    if args.selftest:
        return selftest(args.keep)
    if not (args.model and args.batch and args.out):
        ap.error("--model, --batch and --out are required (or --selftest)")
    if args.steps < 0:
        ap.error("--steps must be >= 0")
    try:
        return oracle(args)
    except (OracleError, ValueError, FileNotFoundError) as e:
        sys.stderr.write("model_oracle: error: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
