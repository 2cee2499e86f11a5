#include "export/export_gguf.h"

#include "model/arch.h"
#include "model/family.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "data/tokenizer.h"
#include "export/export_source.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"

namespace moe {

namespace {

[[noreturn]] void refuse(const std::string& what) { throw std::runtime_error("export --format gguf: " + what); }

// llama.cpp's tokenizer for tokenizer.ggml.model "llama" is SentencePiece BPE without
// normalisation, with byte fallback for what no piece covers (it aborts on a byte it
// cannot map). Checks that this tokenizer.model is that and returns it with its spec.
struct CheckedTokenizer {
  Tokenizer tok;
  TokenizerSpec spec;
};

CheckedTokenizer checked_tokenizer(const std::string& dir, const ModelConfig& cfg) {
  const std::string path = dir + "/tokenizer.model";
  if (!path_exists(path))
    refuse(path + ": missing: a GGUF file carries the vocabulary (copy in the tokenizer.model of the dataset the model "
                  "was trained on)");
  Tokenizer tok = tokenizer_open_checked(path, dir + "/config.json (vocab_size)", 1, cfg.vocab_size);
  TokenizerSpec s = tok.spec();
  const std::string why = path + ": ";
  if (s.model_type != "bpe")
    refuse(why + "a SentencePiece " + s.model_type + " model; llama.cpp's SentencePiece tokenizer merges BPE-style, "
                 "so only BPE models tokenize the same (moe data trains BPE)");
  if (s.has_charsmap || (!s.normalizer.empty() && s.normalizer != "identity"))
    refuse(why + "normalises text (rule '" + s.normalizer + "'), which llama.cpp does not do; rebuild the dataset "
                 "with moe data (identity normalisation)");
  if (s.remove_extra_whitespaces)
    refuse(why + "removes extra whitespace, which llama.cpp does not do; rebuild the dataset with moe data");
  if (!s.escape_whitespaces) refuse(why + "does not escape whitespace as U+2581, which llama.cpp always does");
  if (int(s.kinds.size()) != tok.vocab_size()) refuse(why + "its piece types do not match its vocabulary");
  int bytes = 0;
  for (int32_t id = 0; id < tok.vocab_size(); id++) bytes += s.kinds[size_t(id)] == PieceKind::Byte;
  if (!s.byte_fallback || bytes != 256)
    refuse(why + "has no byte fallback (" + std::to_string(bytes) + " of 256 byte pieces): llama.cpp aborts on text "
                 "it cannot map to pieces; rebuild the dataset with moe data (its tokenizers fall back to bytes)");
  return {std::move(tok), std::move(s)};
}

void put_vocab(GgufWriter& w, const CheckedTokenizer& checked, const ModelConfig& cfg) {
  const Tokenizer& tok = checked.tok;
  const TokenizerSpec& s = checked.spec;
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < cfg.vocab_size; id++) {
    if (id < tok.vocab_size()) {
      pieces.push_back(tok.piece(id));
      scores.push_back(tok.score(id));
      types.push_back(int32_t(s.kinds[size_t(id)]));
    } else {  // rows of the embedding past the tokenizer: never produced by it
      pieces.push_back("<unused" + std::to_string(id) + ">");
      scores.push_back(-1e9f);
      types.push_back(int32_t(PieceKind::Unused));
    }
  }
  w.kv_str("tokenizer.ggml.model", "llama");
  w.kv_str_array("tokenizer.ggml.tokens", pieces);
  w.kv_f32_array("tokenizer.ggml.scores", scores);
  w.kv_i32_array("tokenizer.ggml.token_type", types);
  w.kv_u32("tokenizer.ggml.unknown_token_id", uint32_t(tok.unk_id()));
  if (tok.bos_id() >= 0) w.kv_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.bos_id()));
  if (tok.eos_id() >= 0) w.kv_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id()));
  if (tok.pad_id() >= 0) w.kv_u32("tokenizer.ggml.padding_token_id", uint32_t(tok.pad_id()));
  // Our datasets join documents with eos and never start with bos: add neither.
  w.kv_bool("tokenizer.ggml.add_bos_token", false);
  w.kv_bool("tokenizer.ggml.add_eos_token", false);
  w.kv_bool("tokenizer.ggml.add_space_prefix", s.add_dummy_prefix);
}

STDType st_type(GGType t) { return t == GGType::F32 ? STDType::F32 : t == GGType::F16 ? STDType::F16 : STDType::BF16; }

// HF's Llama q/k rows are laid out for rotate-half RoPE (pairs i, i + D/2 of a head);
// llama.cpp's rotates adjacent pairs (2j, 2j + 1): row 2j + t of a head takes HF row
// t * D/2 + j (convert_hf_to_gguf.py's permute). `w` holds whole heads of D rows.
void rope_permute(std::vector<float>& w, int64_t D, int64_t cols) {
  std::vector<float> head(size_t(D * cols));
  for (size_t h0 = 0; h0 < w.size(); h0 += head.size()) {
    float* x = w.data() + h0;
    std::copy(x, x + head.size(), head.begin());
    for (int64_t j = 0; j < D / 2; j++)
      for (int64_t t = 0; t < 2; t++) {
        const float* src = head.data() + (t * D / 2 + j) * cols;
        std::copy(src, src + cols, x + (2 * j + t) * cols);
      }
  }
}

class Builder {
 public:
  Builder(const ExportSource& s, GgufWriter& w, GGType dtype, size_t block_floats)
      : s_(s), w_(w), dtype_(dtype), block_floats_(int64_t(std::max<size_t>(1, block_floats))) {}

  const SourceTensor& need(Role r, int layer = -1, int expert = -1) const {
    const SourceTensor* t = s_.find(r, layer, expert);
    if (!t) throw std::logic_error("export: checked source has no tensor for a role");
    return *t;
  }

  // One of our tensors ([out, in] -> ne {in, out}); weight matrices in the export dtype,
  // vectors (norms, biases) and routers in F32 (llama.cpp computes routing in F32; a
  // rounded router could flip near-tied choices). rope_heads > 0: q/k rows permuted for
  // llama.cpp's RoPE.
  void tensor(const std::string& name, const SourceTensor& t, int rope_heads = 0) {
    const GGType ty = t.shape.size() == 1 || t.role == Role::Router ? GGType::F32 : dtype_;
    w_.add(name, ne_of(t.shape), ty, [this, &t, ty, rope_heads](const GgufWriter::Emit& emit) {
      emit_rows(t, ty, rope_heads, emit);
    });
  }

  // The E experts' tensors of a role stacked: ne {in, out, E}, one expert at a time.
  void experts(const std::string& name, Role r, int layer) {
    const SourceTensor& t0 = need(r, layer, 0);
    std::vector<uint64_t> ne = ne_of(t0.shape);
    ne.push_back(uint64_t(s_.cfg.n_experts));
    w_.add(name, ne, dtype_, [this, r, layer](const GgufWriter::Emit& emit) {
      for (int e = 0; e < s_.cfg.n_experts; e++) emit_rows(need(r, layer, e), dtype_, 0, emit);
    });
  }

  // A dense MLP tensor written E times, as the identical experts of an MoE layer.
  void replicated(const std::string& name, const SourceTensor& t) {
    std::vector<uint64_t> ne = ne_of(t.shape);
    ne.push_back(uint64_t(s_.cfg.n_experts));
    w_.add(name, ne, dtype_, [this, &t](const GgufWriter::Emit& emit) {
      for (int e = 0; e < s_.cfg.n_experts; e++) emit_rows(t, dtype_, 0, emit);
    });
  }

  // A zero router (ne {C, E}, F32): every expert's logit 0, uniform gates.
  void zero_router(const std::string& name) {
    const uint64_t C = uint64_t(s_.cfg.n_embd), E = uint64_t(s_.cfg.n_experts);
    w_.add(name, {C, E}, GGType::F32, [C, E](const GgufWriter::Emit& emit) {
      const std::vector<float> z(C * E, 0.0f);
      emit(z.data(), z.size() * sizeof(float));
    });
  }

 private:
  static std::vector<uint64_t> ne_of(const std::vector<int64_t>& shape) {
    return std::vector<uint64_t>(shape.rbegin(), shape.rend());
  }
  // f16 holds at most 65504: a larger weight is refused (the partly written file is
  // removed), naming the tensor and the value's flat index as the checkpoint stores it.
  static void check_f16_range(const std::vector<float>& v, const SourceTensor& t, size_t first) {
    for (size_t i = 0; i < v.size(); i++)
      if (std::fabs(v[i]) > 65504.0f) {
        size_t at = first + i;  // in our [out, in] order; HF's Conv1D stores [in, out]
        if (t.transposed) at = at % size_t(t.shape[1]) * size_t(t.shape[0]) + at / size_t(t.shape[1]);
        throw std::runtime_error("export --format gguf: tensor '" + t.name + "' holds " + std::to_string(v[i]) +
                                 " at flat index " + std::to_string(at) +
                                 ", beyond f16's range of 65504 (give --dtype bf16 or f32)");
      }
  }
  static void emit_as(const std::vector<float>& v, GGType ty, const GgufWriter::Emit& emit) {
    std::vector<char> bytes(v.size() * gg_type_size(ty));
    st_encode_f32(bytes.data(), v.data(), v.size(), st_type(ty));
    emit(bytes.data(), bytes.size());
  }

  // Emits a tensor in `ty` a block of rows at a time (block_floats_ values, whole
  // heads when permuting), so memory stays small whatever the tensor's size. GPT-2's
  // Conv1D weights (stored transposed) are read whole.
  void emit_rows(const SourceTensor& t, GGType ty, int rope_heads, const GgufWriter::Emit& emit) const {
    if (t.transposed) {
      std::vector<float> v = s_.read(t);
      if (ty == GGType::F16) check_f16_range(v, t, 0);
      emit_as(v, ty, emit);
      return;
    }
    const int64_t rows = t.shape[0], cols = t.shape.size() > 1 ? t.shape[1] : 1;
    const int64_t unit = rope_heads > 0 ? rows / rope_heads : 1;  // rows kept together
    const int64_t block = std::max<int64_t>(1, block_floats_ / cols / unit) * unit;
    std::vector<float> v;
    for (int64_t r = 0; r < rows; r += block) {
      const int64_t n = std::min(block, rows - r);
      v.resize(size_t(n * cols));
      s_.read_rows(t, r, n, v.data());
      if (ty == GGType::F16) check_f16_range(v, t, size_t(r * cols));
      if (rope_heads > 0) rope_permute(v, unit, cols);
      emit_as(v, ty, emit);
    }
  }

  const ExportSource& s_;
  GgufWriter& w_;
  GGType dtype_;
  int64_t block_floats_;
};

void llama_tensors(const ExportSource& s, Builder& b, GgufExportResult& r) {
  const ModelConfig& c = s.cfg;
  b.tensor("token_embd.weight", b.need(Role::Embed));
  b.tensor("output_norm.weight", b.need(Role::FinalNorm));
  if (!c.tied) b.tensor("output.weight", b.need(Role::LMHead));  // absent: llama.cpp reuses token_embd
  int dense_as_moe = 0;
  for (int l = 0; l < c.n_layer; l++) {
    const std::string p = "blk." + std::to_string(l) + ".";
    b.tensor(p + "attn_norm.weight", b.need(Role::Norm1, l));
    b.tensor(p + "attn_q.weight", b.need(Role::Q, l), c.n_head);
    b.tensor(p + "attn_k.weight", b.need(Role::K, l), c.n_kv_head);
    b.tensor(p + "attn_v.weight", b.need(Role::V, l));
    b.tensor(p + "attn_output.weight", b.need(Role::O, l));
    b.tensor(p + "ffn_norm.weight", b.need(Role::Norm2, l));
    if (c.is_moe() && c.moe_layer(l)) {
      b.tensor(p + "ffn_gate_inp.weight", b.need(Role::Router, l));
      b.experts(p + "ffn_gate_exps.weight", Role::ExpertW1, l);
      b.experts(p + "ffn_down_exps.weight", Role::ExpertW2, l);
      b.experts(p + "ffn_up_exps.weight", Role::ExpertW3, l);
    } else if (c.is_moe()) {
      b.zero_router(p + "ffn_gate_inp.weight");
      b.replicated(p + "ffn_gate_exps.weight", b.need(Role::Gate, l));
      b.replicated(p + "ffn_down_exps.weight", b.need(Role::Down, l));
      b.replicated(p + "ffn_up_exps.weight", b.need(Role::Up, l));
      dense_as_moe++;
    } else {
      b.tensor(p + "ffn_gate.weight", b.need(Role::Gate, l));
      b.tensor(p + "ffn_down.weight", b.need(Role::Down, l));
      b.tensor(p + "ffn_up.weight", b.need(Role::Up, l));
    }
  }
  if (dense_as_moe > 0)
    r.notes.push_back(std::to_string(dense_as_moe) + " dense layer(s) written as MoE layers of " +
                      std::to_string(c.n_experts) + " identical experts with a zero router (llama.cpp's llama "
                      "architecture has experts in every layer or none; uniform gates renormalised over the top " +
                      std::to_string(c.top_k) + " give back the dense MLP): their MLP weights take " +
                      std::to_string(c.n_experts) + "x the space");
}

void gpt2_tensors(const ExportSource& s, Builder& b) {
  const ModelConfig& c = s.cfg;
  b.tensor("token_embd.weight", b.need(Role::Embed));
  b.tensor("position_embd.weight", b.need(Role::Pos));
  b.tensor("output_norm.weight", b.need(Role::FinalNorm));
  b.tensor("output_norm.bias", b.need(Role::FinalNormBias));
  if (!c.tied) b.tensor("output.weight", b.need(Role::LMHead));  // absent: llama.cpp reuses token_embd
  static const std::pair<const char*, Role> kLayer[] = {
      {"attn_norm.weight", Role::Norm1}, {"attn_norm.bias", Role::Norm1Bias}, {"attn_qkv.weight", Role::QKV},
      {"attn_qkv.bias", Role::QKVBias},  {"attn_output.weight", Role::O},    {"attn_output.bias", Role::OBias},
      {"ffn_norm.weight", Role::Norm2},  {"ffn_norm.bias", Role::Norm2Bias}, {"ffn_up.weight", Role::Up},
      {"ffn_up.bias", Role::UpBias},     {"ffn_down.weight", Role::Down},    {"ffn_down.bias", Role::DownBias}};
  for (int l = 0; l < c.n_layer; l++)
    for (const auto& [name, role] : kLayer) b.tensor("blk." + std::to_string(l) + "." + name, b.need(role, l));
}

bool moe_every_layer(const ModelConfig& c) {
  bool all = c.is_moe();
  for (int l = 0; l < c.n_layer; l++) all = all && c.moe_layer(l);
  return all;
}

void refuse_unsupported(const ModelConfig& c, const std::string& cj) {
  family_require(c, Capability::ExportGguf, cj + "--format gguf");
  if (std::string(family_of(c.family).gguf_arch) == "gpt2" && c.is_moe())
    refuse(cj + "a GPT-2 MoE has no llama.cpp equivalent (its gpt2 architecture has no expert layers); export it "
                "with --format safetensors, or upcycle a Llama-family model");
  if (!c.is_moe()) return;
  if (!c.moe_renormalize)
    refuse(cj + "raw Switch gates (moe_renormalize false) have no llama.cpp equivalent (its llama architecture "
                "renormalises the top-k gates, another function); export with --format safetensors");
  if (c.expert_choice) refuse(cj + "expert-choice routing has no llama.cpp equivalent");
  if (!moe_every_layer(c) && c.expert_inner() != c.n_inner)
    refuse(cj + "experts " + std::to_string(c.expert_inner()) + " wide beside dense layers " +
           std::to_string(c.n_inner) + " wide (granular upcycling of some layers): llama.cpp's llama architecture has "
           "one MLP width for every layer; upcycle every layer (--moe-layers all) or export --format safetensors");
}

void hparams(GgufWriter& w, const ModelConfig& c, const std::string& arch) {
  const std::string a = arch + ".";
  w.kv_u32(a + "vocab_size", uint32_t(c.vocab_size));
  w.kv_u32(a + "context_length", uint32_t(c.n_ctx));
  w.kv_u32(a + "embedding_length", uint32_t(c.n_embd));
  w.kv_u32(a + "block_count", uint32_t(c.n_layer));
  w.kv_u32(a + "attention.head_count", uint32_t(c.n_head));
  if (arch == "gpt2") {
    w.kv_u32(a + "feed_forward_length", uint32_t(c.n_inner));
    w.kv_f32(a + "attention.layer_norm_epsilon", c.norm_eps);
    return;
  }
  // One MLP width for every layer (checked): the experts' when every layer is MoE.
  w.kv_u32(a + "feed_forward_length", uint32_t(moe_every_layer(c) ? c.expert_inner() : c.n_inner));
  w.kv_u32(a + "attention.head_count_kv", uint32_t(c.n_kv_head));
  w.kv_f32(a + "rope.freq_base", c.rope_theta);
  w.kv_u32(a + "rope.dimension_count", uint32_t(c.head_dim()));
  w.kv_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps);
  if (c.is_moe()) {
    w.kv_u32(a + "expert_count", uint32_t(c.n_experts));
    w.kv_u32(a + "expert_used_count", uint32_t(c.top_k));
  }
}

}  // namespace

GgufExportResult export_gguf(const std::string& model, const std::string& out, STDType st_dtype, bool force,
                             size_t block_floats) {
  if (st_dtype != STDType::F32 && st_dtype != STDType::F16 && st_dtype != STDType::BF16)
    throw std::invalid_argument("export: dtype must be f32, bf16 or f16");
  const GGType dtype = st_dtype == STDType::F32 ? GGType::F32 : st_dtype == STDType::F16 ? GGType::F16 : GGType::BF16;
  GgufExportResult r;
  r.dir = resolve_model_dir(model);
  const CheckedTokenizer tok = [&] {  // what llama.cpp cannot compute is refused before any tensor is read
    const ModelConfig c = config_load(r.dir + "/config.json");
    refuse_unsupported(c, r.dir + "/config.json: ");
    return checked_tokenizer(r.dir, c);
  }();
  refuse_overlap(out, r.dir, "the checkpoint");
  if (std::filesystem::is_directory(out)) refuse(out + ": is a directory (give the .gguf file to write)");
  if (path_exists(out) && !force) refuse(out + ": already exists (give --force to replace it)");
  const ExportSource s = export_source_open(r.dir);
  const ModelConfig& c = s.cfg;
  r.arch = family_of(c.family).gguf_arch;
  r.bytes_in = s.bytes;

  GgufWriter w;
  w.kv_str("general.architecture", r.arch);
  w.kv_str("general.name", std::filesystem::path(s.dir).filename().string());
  w.kv_u32("general.file_type", dtype == GGType::F32 ? 0 : dtype == GGType::F16 ? 1 : 32);  // llama_ftype ALL_F32, MOSTLY_F16, MOSTLY_BF16
  hparams(w, c, r.arch);
  put_vocab(w, tok, c);
  Builder b(s, w, dtype, block_floats);
  if (r.arch == "gpt2") gpt2_tensors(s, b);
  else llama_tensors(s, b, r);
  if (c.is_moe() && c.eval_capacity_factor > 0)
    r.notes.push_back("llama.cpp runs the experts without a capacity limit (dropless); moe eval and generate drop "
                      "tokens past capacity factor " + std::to_string(c.eval_capacity_factor).substr(0, 4) +
                      " (moe_eval_capacity_factor in config.json; 0 is dropless)");
  r.tensors = w.tensors();
  r.bytes_out = w.tensor_bytes();
  w.write(out);
  return r;
}

}  // namespace moe
