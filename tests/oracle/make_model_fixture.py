#!/usr/bin/python3
"""Writes a small random Hugging Face checkpoint directory (GPT-2, Llama, Mixtral, T5 or switch_transformers) and,
optionally, a random batch file, so model_oracle.py can be run without the C++ side.

  /usr/bin/python3 tests/oracle/make_model_fixture.py --family gpt2|llama --out DIR
      [--batch FILE] [--dtype F32|BF16|F16] [--shards N] [--seed S]
      [--layers 2] [--hidden 32] [--heads 4] [--kv-heads H] [--ffn F] [--vocab 64]
      [--max-pos 64] [--tie 0|1] [--batch-size 2] [--seq 16] [--ignore-frac 0.125]
      mixtral: [--experts 4] [--topk 2] [--capacity 0] [--eval-capacity 0] [--renorm 0|1]
               [--moe-layers all|1,3] [--aux-coef 0.01] [--z-coef 1e-3]
  /usr/bin/python3 tests/oracle/make_model_fixture.py --family t5 --out DIR [--batch FILE]
      [--dtype ..] [--shards N] [--seed S] [--vocab 64] [--hidden 32 (d_model)] [--d-kv 8]
      [--heads 4] [--ffn 48 (d_ff)] [--layers 2 (encoder)] [--dec-layers = --layers]
      [--ffn-proj relu|gated-gelu] [--tie 0|1 (default 1)] [--buckets 8] [--max-distance 20]
      [--batch-size 2] [--enc-seq 16] [--seq 8 (decoder)] [--ignore-frac 0.125] [--decoder-inputs 0|1]
      MoE T5: [--experts E (0 = dense)] [--topk 1 (decoder)] [--capacity 1.25 (tokens choose)]
              [--eval-capacity 2.0] [--renorm 0|1 (0)] [--encoder-routing expert_choice|tokens_choose]
              [--encoder-capacity 2.0 (expert choice)] [--moe-layers all|1,3 (default: key left out,
              every other layer)] [--aux-coef 0.01] [--z-coef 1e-3]
  /usr/bin/python3 tests/oracle/make_model_fixture.py --family switch_transformers --out DIR [--batch FILE]
      [the t5 flags above except --ffn-proj (relu only) and the MoE T5 ones] [--experts 4]
      [--expert-capacity 3 (tokens per expert per sequence)] [--sparse-step 2] [--aux-coef 0.01] [--z-coef 1e-3]

DIR gets config.json (HF fields, "architectures", "torch_dtype") and model.safetensors
(HF names and layouts), or with --shards N > 1 model-0000i-of-0000N.safetensors plus
model.safetensors.index.json. Values are drawn in float32 from the seed alone, then
stored in --dtype, so the same seed gives the same model in every dtype and shard
count (up to the dtype's rounding). Unlike HF's init, biases and norm weights are
random too (around 0 and 1), so every parameter's gradient is exercised.

FILE gets "inputs" (B,T) I32 in [0,V) and "targets" (B,T) I32 (the next token, or -1
= ignored for about --ignore-frac of the positions; at least one target is kept).

t5 (T5ForConditionalGeneration, dense): config.json has the HF T5Config fields (d_model, d_kv,
d_ff, num_layers, num_decoder_layers, num_heads, relative_attention_num_buckets / _max_distance,
feed_forward_proj, tie_word_embeddings, pad 0, eos 1, decoder_start 0, ...); weights at HF's
projection scales but a small embedding / lm_head (init loss near ln V), norm weights around 1,
relative bias tables N(0, 0.5). FILE gets "inputs" (B,Te) I32 encoder ids (Te = --enc-seq),
"targets" (B,Td) I32 random in [0,V) or -1 (Td = --seq) and, unless --decoder-inputs 0,
"decoder_inputs" (B,Td) I32 = HF's shift_right(targets) (0 first, ignored -> pad 0).

MoE T5 (--experts E > 0; model_type still "t5", see model_oracle.py): config.json adds
num_experts, num_experts_per_tok, moe_routing (the encoder's; default expert_choice here),
moe_encoder_capacity_factor, moe_capacity_factor, moe_eval_capacity_factor, moe_renormalize,
router_aux_loss_coef, router_z_loss_coef and, with --moe-layers, moe_layers; the MoE layers'
MLP is mlp.router.classifier.weight (E, d_model) N(0, d_model^-1/2) and experts
mlp.experts.expert_{j}.wi / wi_0 / wi_1 / wo at the dense MLP's scales. Fixtures that pass
the oracle's routing-margin check with 10 steps: model_oracle.T5_MOE_FLAGS.

switch_transformers (HF SwitchTransformersForConditionalGeneration, relu): config.json has T5's
fields plus num_experts, expert_capacity, encoder_sparse_step = decoder_sparse_step = --sparse-step
(layer i of a stack sparse when step == 1 or i % step == 1), num_sparse_encoder_layers /
num_sparse_decoder_layers (the resulting counts), router_bias false, router_jitter_noise 0 (the
oracle has no noise: a trainer comparing with it must not add jitter), router_dtype float32,
router_aux_loss_coef, router_z_loss_coef; tensors as t5's but the dense MLPs under mlp.wi / mlp.wo
and the sparse ones mlp.router.classifier.weight (std SWITCH_ROUTER_SCALE d_model^-1/2) and
mlp.experts.expert_{j}.wi / wo, drawn in t5's order. The batch is t5's. The defaults (4 experts,
capacity 3, Te 16, Td 8, B 2) drop tokens in both stacks; fixtures that pass the oracle's
routing-margin check with 10 steps: model_oracle.SWITCH_FLAGS.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

TORCH_DTYPE = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
# switch_transformers' router std, times d_model^-1/2 (MoE T5's): logits of order SCALE on the
# normed input, so the top-1 margins stay clear of the oracle's --min-gap over 10 steps.
SWITCH_ROUTER_SCALE = 2.0


def gpt2_config(vocab=64, hidden=32, layers=2, heads=4, ffn=None, max_pos=64, tie=True, dtype="F32"):
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "torch_dtype": TORCH_DTYPE[dtype],
        "vocab_size": vocab, "n_positions": max_pos, "n_ctx": max_pos, "n_embd": hidden, "n_layer": layers,
        "n_head": heads, "n_inner": ffn, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "bos_token_id": vocab - 1, "eos_token_id": vocab - 1, "tie_word_embeddings": bool(tie), "use_cache": True,
    }


def llama_config(vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, ffn=None, max_pos=64, tie=False,
                 dtype="F32", theta=10000.0, eps=1e-5):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": TORCH_DTYPE[dtype],
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": ffn or 3 * hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "hidden_act": "silu", "max_position_embeddings": max_pos, "rms_norm_eps": eps, "rope_theta": theta,
        "rope_scaling": None, "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "initializer_range": 0.02, "tie_word_embeddings": bool(tie), "bos_token_id": 1, "eos_token_id": 2,
        "pretraining_tp": 1, "use_cache": True,
    }


def mixtral_config(vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, ffn=None, max_pos=64, tie=False,
                   dtype="F32", theta=10000.0, eps=1e-5, experts=4, topk=2, capacity=0.0, eval_capacity=0.0,
                   renorm=True, moe_layers=None, aux_coef=0.01, z_coef=1e-3):
    """Llama's fields plus the MoE keys our C++ reads (src/model/moe_config.cpp).
    moe_layers None: every layer (the key is left out, as in a pure Mixtral)."""
    c = llama_config(vocab, hidden, layers, heads, kv_heads, ffn, max_pos, tie, dtype, theta, eps)
    c.update({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "sliding_window": None,
              "num_local_experts": experts, "num_experts_per_tok": topk, "router_aux_loss_coef": aux_coef,
              "router_z_loss_coef": z_coef, "moe_capacity_factor": capacity,
              "moe_eval_capacity_factor": eval_capacity, "moe_renormalize": bool(renorm),
              "output_router_logits": False})
    if not renorm:  # raw gates: HF's Mixtral renormalises, so not its label (src/model/decoder/family_llama.cpp)
        c.update({"architectures": ["MixtralRawGatesForCausalLM"], "model_type": "mixtral_raw_gates"})
    if moe_layers is not None:
        c["moe_layers"] = list(moe_layers)
    return c


def t5_config(vocab=64, d_model=32, d_kv=8, d_ff=48, layers=2, dec_layers=None, heads=4, buckets=8,
              max_distance=20, ffn_proj="relu", tie=True, dtype="F32", eps=1e-6, experts=0, topk=1,
              encoder_routing="expert_choice", encoder_capacity=2.0, capacity=1.25, eval_capacity=2.0,
              renorm=False, moe_layers=None, aux_coef=0.01, z_coef=1e-3):
    """HF T5Config fields of a T5ForConditionalGeneration (dense_act_fn / is_gated_act as
    HF derives them from feed_forward_proj). experts > 0: MoE T5 (our layout, model_type
    still "t5"): num_experts, num_experts_per_tok (the decoder's top-k; also the encoder's
    with tokens_choose), moe_routing (the ENCODER's: expert_choice or tokens_choose),
    moe_encoder_capacity_factor (expert choice), moe_capacity_factor / moe_eval_capacity_factor
    (tokens choose, training / evaluation), moe_renormalize, router_aux_loss_coef,
    router_z_loss_coef, and moe_layers unless None (then left out: every other layer, 1, 3, ...,
    in both stacks)."""
    if ffn_proj not in ("relu", "gated-gelu"):
        raise ValueError("ffn_proj must be relu or gated-gelu, not %r" % ffn_proj)
    c = {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "torch_dtype": TORCH_DTYPE[dtype],
        "vocab_size": vocab, "d_model": d_model, "d_kv": d_kv, "d_ff": d_ff, "num_layers": layers,
        "num_decoder_layers": layers if dec_layers is None else dec_layers, "num_heads": heads,
        "relative_attention_num_buckets": buckets, "relative_attention_max_distance": max_distance,
        "layer_norm_epsilon": eps, "feed_forward_proj": ffn_proj,
        "dense_act_fn": "gelu_new" if ffn_proj == "gated-gelu" else "relu", "is_gated_act": ffn_proj == "gated-gelu",
        "tie_word_embeddings": bool(tie), "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
        "is_encoder_decoder": True, "dropout_rate": 0.0, "initializer_factor": 1.0, "use_cache": True,
    }
    if experts:
        if encoder_routing not in ("expert_choice", "tokens_choose"):
            raise ValueError("encoder_routing must be expert_choice or tokens_choose, not %r" % encoder_routing)
        c.update({"num_experts": experts, "num_experts_per_tok": topk, "moe_routing": encoder_routing,
                  "moe_encoder_capacity_factor": encoder_capacity, "moe_capacity_factor": capacity,
                  "moe_eval_capacity_factor": eval_capacity, "moe_renormalize": bool(renorm),
                  "router_aux_loss_coef": aux_coef, "router_z_loss_coef": z_coef})
        if moe_layers is not None:
            c["moe_layers"] = list(moe_layers)
    return c


def switch_config(vocab=64, d_model=32, d_kv=8, d_ff=48, layers=2, dec_layers=None, heads=4, buckets=8,
                  max_distance=20, tie=True, dtype="F32", eps=1e-6, experts=4, expert_capacity=3, sparse_step=2,
                  aux_coef=0.01, z_coef=1e-3):
    """HF SwitchTransformersConfig fields of a SwitchTransformersForConditionalGeneration (relu):
    T5's plus num_experts, expert_capacity (tokens per expert per sequence), encoder_sparse_step =
    decoder_sparse_step = sparse_step (layer i of a stack sparse when step == 1 or i % step == 1),
    num_sparse_encoder_layers / num_sparse_decoder_layers (the resulting counts, as HF stores
    them; the steps are what the oracle reads), router_bias false, router_jitter_noise 0 (the
    oracle has no noise), router_dtype float32, router_aux_loss_coef, router_z_loss_coef."""
    dec_layers = layers if dec_layers is None else dec_layers
    sparse = [sum(1 for i in range(n) if sparse_step == 1 or i % sparse_step == 1) for n in (layers, dec_layers)]
    return {
        "architectures": ["SwitchTransformersForConditionalGeneration"], "model_type": "switch_transformers",
        "torch_dtype": TORCH_DTYPE[dtype], "vocab_size": vocab, "d_model": d_model, "d_kv": d_kv, "d_ff": d_ff,
        "num_layers": layers, "num_decoder_layers": dec_layers, "num_heads": heads,
        "relative_attention_num_buckets": buckets, "relative_attention_max_distance": max_distance,
        "layer_norm_epsilon": eps, "dense_act_fn": "relu", "tie_word_embeddings": bool(tie),
        "num_experts": experts, "expert_capacity": expert_capacity, "encoder_sparse_step": sparse_step,
        "decoder_sparse_step": sparse_step, "num_sparse_encoder_layers": sparse[0],
        "num_sparse_decoder_layers": sparse[1], "router_bias": False, "router_jitter_noise": 0.0,
        "router_dtype": "float32", "router_ignore_padding_tokens": False, "router_aux_loss_coef": aux_coef,
        "router_z_loss_coef": z_coef, "add_router_probs": False, "pad_token_id": 0, "eos_token_id": 1,
        "decoder_start_token_id": 0, "is_encoder_decoder": True, "dropout_rate": 0.0, "initializer_factor": 1.0,
        "use_cache": True,
    }


def switch_sparse_layer(config, i):
    """Whether layer i (of a stack that has it) is sparse: step == 1 or i % step == 1."""
    step = config["encoder_sparse_step"]
    return step == 1 or i % step == 1


def t5_moe_layer(config, i):
    """Whether layer i (of either stack that has it) is an MoE layer."""
    return config.get("num_experts", 0) > 0 and i in config.get("moe_layers", range(1, i + 1, 2))


def random_params(config, seed):
    """name -> float32 ndarray in HF layout, in model order."""
    rng = np.random.default_rng(seed)
    std = config.get("initializer_range", 0.02)

    def w(*shape):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def bias(n):
        return (rng.standard_normal(n) * 0.02).astype(np.float32)

    def norm(n):
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    p = {}
    if config["model_type"] == "gpt2":
        V, C, L, P = config["vocab_size"], config["n_embd"], config["n_layer"], config["n_positions"]
        F = config.get("n_inner") or 4 * C
        p["transformer.wte.weight"] = w(V, C)
        p["transformer.wpe.weight"] = (rng.standard_normal((P, C)) * 0.01).astype(np.float32)
        for i in range(L):
            h = "transformer.h.%d." % i
            p[h + "ln_1.weight"], p[h + "ln_1.bias"] = norm(C), bias(C)
            p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"] = w(C, 3 * C), bias(3 * C)  # Conv1D [in, out]
            p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"] = w(C, C), bias(C)
            p[h + "ln_2.weight"], p[h + "ln_2.bias"] = norm(C), bias(C)
            p[h + "mlp.c_fc.weight"], p[h + "mlp.c_fc.bias"] = w(C, F), bias(F)
            p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"] = w(F, C), bias(C)
        p["transformer.ln_f.weight"], p["transformer.ln_f.bias"] = norm(C), bias(C)
        if not config.get("tie_word_embeddings", True):
            p["lm_head.weight"] = w(V, C)
    elif config["model_type"] in ("llama", "mixtral", "mixtral_raw_gates"):
        V, C, L = config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]
        F, H = config["intermediate_size"], config["num_attention_heads"]
        Hkv = config.get("num_key_value_heads") or H
        D = config.get("head_dim") or C // H
        p["model.embed_tokens.weight"] = w(V, C)
        for i in range(L):
            h = "model.layers.%d." % i
            p[h + "input_layernorm.weight"] = norm(C)
            p[h + "self_attn.q_proj.weight"] = w(H * D, C)  # nn.Linear [out, in]
            p[h + "self_attn.k_proj.weight"] = w(Hkv * D, C)
            p[h + "self_attn.v_proj.weight"] = w(Hkv * D, C)
            p[h + "self_attn.o_proj.weight"] = w(C, H * D)
            p[h + "post_attention_layernorm.weight"] = norm(C)
            if config["model_type"] != "llama" and i in config.get("moe_layers", range(L)):
                m = h + "block_sparse_moe."
                # router: 5x the init std, so the probabilities are spread (no near-ties) and
                # the routing is skewed enough for a capacity of cf K N / E to drop pairs
                p[m + "gate.weight"] = w(config["num_local_experts"], C) * np.float32(5.0)
                for e in range(config["num_local_experts"]):
                    x = m + "experts.%d." % e
                    p[x + "w1.weight"], p[x + "w3.weight"], p[x + "w2.weight"] = w(F, C), w(F, C), w(C, F)
                continue
            p[h + "mlp.gate_proj.weight"] = w(F, C)
            p[h + "mlp.up_proj.weight"] = w(F, C)
            p[h + "mlp.down_proj.weight"] = w(C, F)
        p["model.norm.weight"] = norm(C)
        if not config.get("tie_word_embeddings", False):
            p["lm_head.weight"] = w(V, C)
    elif config["model_type"] in ("t5", "switch_transformers"):
        # HF's Mesh-TF init scales for the projections (q (d_model d_kv)^-1/2, k/v d_model^-1/2,
        # o (H d_kv)^-1/2, wi d_model^-1/2, wo d_ff^-1/2: unscaled attention scores of order 1),
        # but the embedding at std 0.1 (HF: 1) and lm_head at 0.02 (HF: 1), so the logits are
        # small and the loss at init is near ln V; norm weights around 1, the relative bias
        # tables N(0, 0.5) (HF: d_model^-1/2), so the buckets matter. MoE layers: each expert's
        # wi / wi_0 / wi_1 / wo at the dense MLP's scales, the router N(0, d_model^-1/2) (logits
        # of order 1 on the normed input: spread probabilities, clear routing margins), drawn
        # where the dense MLP would be (router first, then the experts in order).
        V, C, D, F, H = (config[k] for k in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads"))
        nb = config.get("relative_attention_num_buckets", 32)
        gated = config.get("feed_forward_proj", "relu") == "gated-gelu"
        switch = config["model_type"] == "switch_transformers"  # dense MLPs under mlp; sparse by step
        moe_layer = (lambda i: switch_sparse_layer(config, i)) if switch else (lambda i: t5_moe_layer(config, i))
        router_std = C ** -0.5 * (SWITCH_ROUTER_SCALE if switch else 1.0)

        def g(std, *shape):
            return (rng.standard_normal(shape) * std).astype(np.float32)

        def attn(pre, rel_bias):
            p[pre + "q.weight"] = g((C * D) ** -0.5, H * D, C)  # nn.Linear [out, in]
            p[pre + "k.weight"] = g(C ** -0.5, H * D, C)
            p[pre + "v.weight"] = g(C ** -0.5, H * D, C)
            p[pre + "o.weight"] = g((H * D) ** -0.5, C, H * D)
            if rel_bias:
                p[pre + "relative_attention_bias.weight"] = g(0.5, nb, H)

        def ff(pre):
            for wi in (("wi_0", "wi_1") if gated else ("wi",)):
                p[pre + wi + ".weight"] = g(C ** -0.5, F, C)
            p[pre + "wo.weight"] = g(F ** -0.5, C, F)

        p["shared.weight"] = g(0.1, V, C)
        for stack, n in (("encoder", config["num_layers"]), ("decoder", config.get("num_decoder_layers") or
                                                              config["num_layers"])):
            for i in range(n):
                b = "%s.block.%d.layer." % (stack, i)
                attn(b + "0.SelfAttention.", i == 0)
                p[b + "0.layer_norm.weight"] = norm(C)
                k = 1
                if stack == "decoder":
                    attn(b + "1.EncDecAttention.", False)
                    p[b + "1.layer_norm.weight"] = norm(C)
                    k = 2
                if moe_layer(i):
                    m = b + "%d.mlp." % k
                    p[m + "router.classifier.weight"] = g(router_std, config["num_experts"], C)
                    for j in range(config["num_experts"]):
                        ff(m + "experts.expert_%d." % j)
                else:
                    ff(b + "%d.%s." % (k, "mlp" if switch else "DenseReluDense"))
                p[b + "%d.layer_norm.weight" % k] = norm(C)
            p[stack + ".final_layer_norm.weight"] = norm(C)
        if not config.get("tie_word_embeddings", True):
            p["lm_head.weight"] = g(0.02, V, C)
    else:
        raise ValueError("unknown model_type %r" % config["model_type"])
    return p


def encode(params, dtype):
    if dtype == "F32":
        return dict(params)
    if dtype == "BF16":
        return {n: st_io.BF16(a) for n, a in params.items()}
    if dtype == "F16":
        return {n: a.astype(np.float16) for n, a in params.items()}
    raise ValueError("dtype must be F32, BF16 or F16, not %r" % dtype)


def write_model(out_dir, config, seed, dtype="F32", shards=1):
    params = random_params(config, seed)
    st_io.save_checkpoint(out_dir, config, encode(params, dtype), shards=shards)
    return params


def make_batch(V, B, T, seed, ignore_frac=0.125):
    rng = np.random.default_rng(seed + 7919)
    toks = rng.integers(0, V, size=(B, T + 1)).astype(np.int32)
    inputs, targets = toks[:, :-1].copy(), toks[:, 1:].copy()
    ignore = rng.random((B, T)) < ignore_frac
    ignore.flat[0] = False  # keep at least one target
    targets[ignore] = -1
    return inputs, targets


def write_batch(path, V, B, T, seed, ignore_frac=0.125):
    inputs, targets = make_batch(V, B, T, seed, ignore_frac)
    st_io.write_safetensors(path, {"inputs": inputs, "targets": targets}, {"B": B, "T": T, "V": V})
    return inputs, targets


def shift_right(targets, start=0, pad=0):
    """HF T5 _shift_right: start token, then targets[:, :-1]; ignored (-1) -> pad."""
    dec = np.empty_like(targets)
    dec[:, 0] = start
    dec[:, 1:] = targets[:, :-1]
    dec[dec == -1] = pad
    return dec


def make_t5_batch(V, B, Te, Td, seed, ignore_frac=0.125, start=0, pad=0):
    """(inputs (B,Te), decoder_inputs (B,Td) = shift_right(targets), targets (B,Td)), I32;
    targets random in [0,V), about ignore_frac of them -1 (the first one kept)."""
    rng = np.random.default_rng(seed + 7919)
    inputs = rng.integers(0, V, size=(B, Te)).astype(np.int32)
    targets = rng.integers(0, V, size=(B, Td)).astype(np.int32)
    ignore = rng.random((B, Td)) < ignore_frac
    ignore.flat[0] = False  # keep at least one target
    targets[ignore] = -1
    return inputs, shift_right(targets, start, pad), targets


def write_t5_batch(path, V, B, Te, Td, seed, ignore_frac=0.125, decoder_inputs=True):
    inputs, dec, targets = make_t5_batch(V, B, Te, Td, seed, ignore_frac)
    t = {"inputs": inputs, "targets": targets}
    if decoder_inputs:
        t["decoder_inputs"] = dec
    st_io.write_safetensors(path, t, {"B": B, "T": Td, "T_enc": Te, "V": V})
    return inputs, dec, targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["gpt2", "llama", "mixtral", "t5", "switch_transformers"], required=True)
    ap.add_argument("--out", required=True, help="checkpoint directory to write")
    ap.add_argument("--batch", help="batch safetensors file to write (optional)")
    ap.add_argument("--dtype", choices=["F32", "BF16", "F16"], default="F32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", type=int, default=2, help="t5: encoder layers (num_layers)")
    ap.add_argument("--hidden", type=int, default=32, help="t5: d_model")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=None, help="llama only (default heads/2 if even, else heads)")
    ap.add_argument("--ffn", type=int, default=None, help="default 4*hidden (gpt2), 3*hidden (llama), 48 (t5 d_ff)")
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--max-pos", type=int, default=64)
    ap.add_argument("--theta", type=float, default=10000.0, help="llama rope_theta")
    ap.add_argument("--tie", type=int, choices=[0, 1], default=None, help="default 1 (gpt2, t5), 0 (llama)")
    ap.add_argument("--experts", type=int, default=None,
                    help="mixtral: num_local_experts (default 4); t5: num_experts (default 0 = dense)")
    ap.add_argument("--topk", type=int, default=None,
                    help="num_experts_per_tok (mixtral default 2; t5 default 1: the decoder's top-k)")
    ap.add_argument("--capacity", type=float, default=None,
                    help="moe_capacity_factor, <= 0: dropless (mixtral default 0; t5 default 1.25: tokens choose)")
    ap.add_argument("--eval-capacity", type=float, default=None,
                    help="moe_eval_capacity_factor (mixtral default 0; t5 default 2.0)")
    ap.add_argument("--renorm", type=int, choices=[0, 1], default=None,
                    help="moe_renormalize (mixtral default 1; t5 default 0: raw gates)")
    ap.add_argument("--moe-layers", default=None,
                    help='"all" or indices "1,3" (mixtral default all: key left out; t5 default: key left out, '
                         'every other layer 1, 3, ... in both stacks; "all": every layer of both)')
    ap.add_argument("--aux-coef", type=float, default=0.01, help="router_aux_loss_coef (mixtral, t5)")
    ap.add_argument("--z-coef", type=float, default=1e-3, help="router_z_loss_coef (mixtral, t5)")
    ap.add_argument("--encoder-routing", choices=["expert_choice", "tokens_choose"], default="expert_choice",
                    help="t5 with --experts > 0: moe_routing, the encoder's routing (the decoder: tokens choose)")
    ap.add_argument("--encoder-capacity", type=float, default=2.0,
                    help="t5: moe_encoder_capacity_factor (expert choice: each expert takes ceil(cf Te / E) tokens "
                         "of every sequence)")
    ap.add_argument("--expert-capacity", type=int, default=3,
                    help="switch_transformers: expert_capacity, tokens per expert PER SEQUENCE (default 3: with 4 "
                         "experts and the default lengths 16 / 8, some tokens of both stacks are dropped)")
    ap.add_argument("--sparse-step", type=int, default=2,
                    help="switch_transformers: encoder_sparse_step = decoder_sparse_step (layer i sparse when "
                         "step == 1 or i %% step == 1)")
    ap.add_argument("--ffn-proj", choices=["relu", "gated-gelu"], default="relu", help="t5: feed_forward_proj")
    ap.add_argument("--d-kv", type=int, default=8, help="t5: d_kv (head width; H*d_kv need not be hidden)")
    ap.add_argument("--dec-layers", type=int, default=None, help="t5: num_decoder_layers (default --layers)")
    ap.add_argument("--buckets", type=int, default=8, help="t5: relative_attention_num_buckets")
    ap.add_argument("--max-distance", type=int, default=20, help="t5: relative_attention_max_distance")
    ap.add_argument("--enc-seq", type=int, default=16, help="t5: encoder length (--seq: the decoder length)")
    ap.add_argument("--decoder-inputs", type=int, choices=[0, 1], default=1,
                    help="t5: write decoder_inputs (= shift_right(targets)); 0: leave it to the oracle")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seq", type=int, default=None, help="default 16 (t5: 8, the decoder length)")
    ap.add_argument("--ignore-frac", type=float, default=0.125)
    a = ap.parse_args()
    seq2seq = a.family in ("t5", "switch_transformers")
    if a.seq is None:
        a.seq = 8 if seq2seq else 16
    t5 = a.family == "t5"
    for k, mixtral_default, t5_default in (("experts", 4, 0), ("topk", 2, 1), ("capacity", 0.0, 1.25),
                                           ("eval_capacity", 0.0, 2.0), ("renorm", 1, 0)):
        if getattr(a, k) is None:
            setattr(a, k, t5_default if t5 else mixtral_default)
    if a.family == "switch_transformers":
        n = max(a.layers, a.dec_layers or a.layers)
        if a.experts < 1:
            ap.error("--experts must be >= 1 (switch_transformers)")
        if a.expert_capacity < 1 or a.sparse_step < 1:
            ap.error("--expert-capacity and --sparse-step must be >= 1")
        if not any(a.sparse_step == 1 or i % a.sparse_step == 1 for i in range(n)):
            ap.error("--sparse-step %d leaves no sparse layer in stacks of %d layers" % (a.sparse_step, n))
        cfg = switch_config(a.vocab, a.hidden, a.d_kv, a.ffn or 48, a.layers, a.dec_layers, a.heads, a.buckets,
                            a.max_distance, True if a.tie is None else a.tie, a.dtype, experts=a.experts,
                            expert_capacity=a.expert_capacity, sparse_step=a.sparse_step, aux_coef=a.aux_coef,
                            z_coef=a.z_coef)
    elif t5:
        ml, n = None, max(a.layers, a.dec_layers or a.layers)
        if a.experts < 0:
            ap.error("--experts must be >= 0 (0: dense)")
        if a.experts and not 1 <= a.topk <= a.experts:
            ap.error("--topk must be in [1, --experts]")
        if a.moe_layers == "all":
            ml = list(range(n))
        elif a.moe_layers is not None:
            ml = [int(v) for v in a.moe_layers.split(",") if v.strip()]
            if not ml or min(ml) < 0 or max(ml) >= n:
                ap.error("--moe-layers: indices in [0, %d) (a layer of either stack), or all" % n)
        elif a.experts and n < 2:
            ap.error("--experts with 1-layer stacks: the default MoE layers (1, 3, ...) are none; give --moe-layers")
        cfg = t5_config(a.vocab, a.hidden, a.d_kv, a.ffn or 48, a.layers, a.dec_layers, a.heads, a.buckets,
                        a.max_distance, a.ffn_proj, True if a.tie is None else a.tie, a.dtype, experts=a.experts,
                        topk=a.topk, encoder_routing=a.encoder_routing, encoder_capacity=a.encoder_capacity,
                        capacity=a.capacity, eval_capacity=a.eval_capacity, renorm=a.renorm, moe_layers=ml,
                        aux_coef=a.aux_coef, z_coef=a.z_coef)
    elif a.family == "gpt2":
        cfg = gpt2_config(a.vocab, a.hidden, a.layers, a.heads, a.ffn, a.max_pos, True if a.tie is None else a.tie,
                          a.dtype)
    elif a.family == "llama":
        kv = a.kv_heads or (a.heads // 2 if a.heads % 2 == 0 else a.heads)
        cfg = llama_config(a.vocab, a.hidden, a.layers, a.heads, kv, a.ffn, a.max_pos, bool(a.tie), a.dtype, a.theta)
    else:
        kv = a.kv_heads or (a.heads // 2 if a.heads % 2 == 0 else a.heads)
        ml = None if a.moe_layers in (None, "all") else [int(v) for v in a.moe_layers.split(",") if v.strip()]
        if ml is not None and (not ml or min(ml) < 0 or max(ml) >= a.layers):
            ap.error("--moe-layers: indices in [0, %d), or all" % a.layers)
        cfg = mixtral_config(a.vocab, a.hidden, a.layers, a.heads, kv, a.ffn, a.max_pos, bool(a.tie), a.dtype,
                             a.theta, experts=a.experts, topk=a.topk, capacity=a.capacity,
                             eval_capacity=a.eval_capacity, renorm=a.renorm, moe_layers=ml, aux_coef=a.aux_coef,
                             z_coef=a.z_coef)
    params = write_model(a.out, cfg, a.seed, a.dtype, a.shards)
    msg = "make_model_fixture: %s, %d tensors, %d params, %s, %d shard(s) -> %s" % (
        a.family, len(params), sum(x.size for x in params.values()), a.dtype, max(a.shards, 1), a.out)
    if a.batch and seq2seq:
        write_t5_batch(a.batch, a.vocab, a.batch_size, a.enc_seq, a.seq, a.seed, a.ignore_frac, a.decoder_inputs)
        msg += "; batch inputs (%d,%d), %stargets (%d,%d) -> %s" % (
            a.batch_size, a.enc_seq, "decoder_inputs, " if a.decoder_inputs else "", a.batch_size, a.seq, a.batch)
    elif a.batch:
        if a.seq > a.max_pos:
            ap.error("--seq exceeds --max-pos")
        write_batch(a.batch, a.vocab, a.batch_size, a.seq, a.seed, a.ignore_frac)
        msg += "; batch (%d,%d) -> %s" % (a.batch_size, a.seq, a.batch)
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
