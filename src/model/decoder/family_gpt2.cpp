// The GPT-2 family: LayerNorm, GELU (tanh) MLP, learned positions, biases, one
// fused qkv projection, tied embeddings. HF names of GPT2LMHeadModel; Conv1D
// weights are stored [in, out] by HF.
#include <stdexcept>

#include "model/decoder/decoder.h"
#include "model/family.h"
#include "model/hf_json.h"

namespace moe {

namespace {

std::string gpt2_name(Role r, int l) {
  const std::string p = "transformer.h." + std::to_string(l) + ".";
  switch (r) {
    case Role::Embed: return "transformer.wte.weight";
    case Role::Pos: return "transformer.wpe.weight";
    case Role::FinalNorm: return "transformer.ln_f.weight";
    case Role::FinalNormBias: return "transformer.ln_f.bias";
    case Role::LMHead: return "lm_head.weight";
    case Role::Norm1: return p + "ln_1.weight";
    case Role::Norm1Bias: return p + "ln_1.bias";
    case Role::QKV: return p + "attn.c_attn.weight";
    case Role::QKVBias: return p + "attn.c_attn.bias";
    case Role::O: return p + "attn.c_proj.weight";
    case Role::OBias: return p + "attn.c_proj.bias";
    case Role::Norm2: return p + "ln_2.weight";
    case Role::Norm2Bias: return p + "ln_2.bias";
    case Role::Up: return p + "mlp.c_fc.weight";
    case Role::UpBias: return p + "mlp.c_fc.bias";
    case Role::Down: return p + "mlp.c_proj.weight";
    case Role::DownBias: return p + "mlp.c_proj.bias";
    case Role::Router: return p + "mlp.router.weight";
    case Role::ExpertW1: return p + "mlp.experts.*.c_fc.weight";
    case Role::ExpertB1: return p + "mlp.experts.*.c_fc.bias";
    case Role::ExpertW2: return p + "mlp.experts.*.c_proj.weight";
    case Role::ExpertB2: return p + "mlp.experts.*.c_proj.bias";
    default: throw std::logic_error("gpt2: no tensor for this role");
  }
}

bool gpt2_transposed(Role r) {
  return r == Role::QKV || r == Role::O || r == Role::Up || r == Role::Down || r == Role::ExpertW1 ||
         r == Role::ExpertW2;
}

void gpt2_from_hf(ModelConfig& c, const nlohmann::json& j, const std::string& path) {
  c.vocab_size = hf::req_int(j, "vocab_size", path);
  c.n_ctx = hf::opt_int(j, "n_positions", hf::opt_int(j, "n_ctx", 1024, path), path);
  c.n_embd = hf::req_int(j, "n_embd", path);
  c.n_layer = hf::req_int(j, "n_layer", path);
  c.n_head = hf::req_int(j, "n_head", path);
  c.n_kv_head = c.n_head;
  c.n_inner = hf::opt_int(j, "n_inner", -1, path);
  if (c.n_inner < 0) {  // absent: HF's default 4 * n_embd, in 64 bits (n_embd may be up to 2^30)
    const int64_t inner = 4 * int64_t(c.n_embd);
    if (inner > (int64_t(1) << 30))
      hf::fail(path, "field 'n_inner' is absent and its default 4 * n_embd = " + std::to_string(inner) +
                         " exceeds 2^30");
    c.n_inner = int(inner);
  }
  c.norm_eps = hf::opt_float(j, "layer_norm_epsilon", 1e-5f, path);
  auto act = hf::opt_string(j, "activation_function", path).value_or("gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    hf::fail(path, "field 'activation_function' must be \"gelu_new\" (GELU, tanh form), got \"" + act + "\"");
  c.tied = hf::opt_bool(j, "tie_word_embeddings", true, path);
  c.bos_id = hf::opt_int(j, "bos_token_id", c.bos_id, path);
  c.eos_id = hf::opt_int(j, "eos_token_id", c.eos_id, path);
  moe_from_hf(c, j, path, "n_experts", "n_experts_per_tok", false);
}

void gpt2_to_hf(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["n_positions"] = c.n_ctx;
  j["n_ctx"] = c.n_ctx;
  j["n_embd"] = c.n_embd;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_inner"] = c.n_inner;
  j["layer_norm_epsilon"] = hf::num(c.norm_eps);
  j["activation_function"] = "gelu_new";
  j["tie_word_embeddings"] = c.tied;
  j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = c.eos_id;
  if (c.is_moe()) moe_to_hf(c, j, "n_experts", "n_experts_per_tok", false);
}

void gpt2_parts(ModelConfig& c) {
  c.norm = NormKind::LayerNorm;
  c.mlp = MlpKind::Gelu;
  c.pos = PosKind::Learned;
  c.bias = true;
  c.fused_qkv = true;
}

// Older GPT-2 checkpoints carry the causal mask as buffers: not parameters.
bool gpt2_is_buffer(const std::string& n) {
  auto ends = [&](const char* s) {
    std::string t(s);
    return n.size() >= t.size() && n.compare(n.size() - t.size(), t.size(), t) == 0;
  };
  return n.rfind("transformer.h.", 0) == 0 && (ends(".attn.bias") || ends(".attn.masked_bias"));
}

}  // namespace

namespace {
void gpt2_preset(ModelConfig& c, const std::string&) { c.tied = true; }  // GPT-2 ties its head to the embedding
}  // namespace

const Family& family_gpt2() {
  static const Family f{"gpt2", "GPT2LMHeadModel", gpt2_name, gpt2_transposed, gpt2_from_hf, gpt2_to_hf, gpt2_parts,
                        gpt2_is_buffer, nullptr, nullptr, &decoder_rules(), "decoder", nullptr, nullptr, gpt2_preset, "gpt2", "gpt2"};
  return f;
}

}  // namespace moe
