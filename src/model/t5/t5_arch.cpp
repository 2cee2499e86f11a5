// The t5 family's Arch (model/arch.h): t5 and switch_transformers. Everything the code
// outside this folder asks of an encoder-decoder goes through this table.
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <regex>
#include <stdexcept>

#include "data/batches.h"
#include "data/dataset.h"
#include "data/span_corruption.h"
#include "data/tokenizer.h"
#include "model/family.h"
#include "model/t5/t5.h"
#include "model/t5/t5_family.h"
#include "model/t5/t5_generate.h"

namespace moe {

namespace {


void t5_fit_dataset(ModelConfig& c, int pad_id) {
  if (pad_id >= 0) c.pad_id = c.bos_id = pad_id;  // the decoder starts with pad
}

void t5_fit_seq(ModelConfig& c, int seq, float capacity_factor) {
  if (t5_is_switch(c))  // HF's expert_capacity: tokens per expert per sequence
    c.switch_capacity = int(std::ceil(double(capacity_factor) * seq / c.n_experts - 1e-9));
}

void t5_fit_moe(ModelConfig& c, bool top_k_other_than_1, bool routing_not_top_k) {
  if (!t5_is_switch(c)) return;
  if (top_k_other_than_1 || routing_not_top_k)
    throw std::invalid_argument("--family switch_transformers routes top-1 (tokens choose): no --top-k or --routing");
  c.moe_renormalize = false;  // HF's raw gates
}

std::unique_ptr<LanguageModel> t5_build(const ModelConfig& c, const BuildArgs& a) {
  return std::make_unique<T5Model>(c, a.trainable);  // no expert split (Capability::ExpertParallel)
}

std::unique_ptr<LanguageModel> t5_load_any(const std::string& dir, const BuildArgs&) { return t5_load(dir); }

void t5_check_dataset(const DatasetInfo& ds, const ModelConfig&) {
  if (ds.sentinels <= 0)
    throw std::invalid_argument("dataset " + ds.dir + ": its tokenizer has no sentinels (<extra_id_N>), which span "
                                "corruption needs: build it with moe data --t5");
}

std::unique_ptr<BatchSource> t5_batches(const DatasetInfo& ds, const ModelConfig& mc, const std::string& shard, int B,
                                        int seq, uint64_t seed) {
  t5_check_dataset(ds, mc);
  SpanCorruptionSpec sp;
  sp.inputs_length = seq, sp.sentinel0 = int32_t(ds.vocab_size - 1), sp.max_sentinels = ds.sentinels;
  sp.eos = mc.eos_id, sp.pad = mc.bos_id, sp.seed = seed;  // bos_id: T5's decoder start (pad)
  return span_batches(shard, B, sp, uint64_t(ds.vocab_size));
}

double t5_row_tokens(int seq) { return span_corruption_lengths(seq).raw; }  // the raw window of a row's inputs
int t5_decoder_tokens(int seq) { return span_corruption_lengths(seq).targets; }

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

void t5_describe(const ModelConfig& c, double params, ConfigText& t) {
  t.train_model = fmt("model: %s, %d encoder + %d decoder layers, C=%d, %d heads of %d, F=%d, V=%d, %.2fM parameters",
                      c.family.c_str(), c.n_layer, c.n_dec_layer, c.n_embd, c.n_head, c.head_dim(), c.n_inner,
                      c.vocab_size, params / 1e6);
  t.inspect_shape = fmt("%d encoder + %d decoder layers, hidden %d, %d heads (head %d), MLP %d, vocab %d, "
                        "%d buckets up to distance %d", c.n_layer, c.n_dec_layer, c.n_embd, c.n_head, c.head_dim(),
                        c.n_inner, c.vocab_size, c.rel_buckets, c.rel_max_distance);
  if (t5_is_switch(c)) {
    t.train_capacity = fmt("expert capacity %d tokens per sequence", c.switch_capacity);
    t.inspect_capacity = fmt("expert capacity %d tokens per sequence (HF switch_transformers); aux %.3g, z %.3g",
                             c.switch_capacity, c.aux_loss_coef, c.z_loss_coef);
  }
  t.train_moe_suffix = c.expert_choice ? "; encoder: expert choice" : "; both stacks";
  t.inspect_routing = fmt("encoder: %s; decoder: tokens choose top-%d",
                          c.expert_choice ? ("expert choice, each expert takes " +
                                             std::to_string(c.enc_capacity_factor).substr(0, 4) + " x T / E tokens of a sequence")
                                                .c_str()
                                          : "tokens choose, as the decoder",
                          c.top_k);
}

void t5_describe_run(int seq, std::string& line) {
  const SpanLengths sl = span_corruption_lengths(seq);
  line = fmt("span corruption: %d raw tokens -> %d encoder inputs, %d decoder targets (%d spans, noise density 0.15, "
             "mean span 3)", sl.raw, sl.inputs, sl.targets, sl.spans);
}

void t5_inspect_json(const ModelConfig& c, nlohmann::ordered_json& j) {
  j["encoder_layers"] = c.n_layer, j["decoder_layers"] = c.n_dec_layer;
}

void t5_hf_generation(const ModelConfig& c, nlohmann::ordered_json& gen) {  // no bos; the decoder starts with pad
  gen.erase("bos_token_id");
  gen["decoder_start_token_id"] = c.bos_id, gen["pad_token_id"] = c.pad_id;
}

// HF's T5Tokenizer: the sentinels above the pieces, <extra_id_0> the last id.
void t5_hf_tokenizer(const ModelConfig& c, int pieces, nlohmann::ordered_json& cfg, nlohmann::ordered_json& special) {
  const int extra = c.vocab_size - pieces;
  nlohmann::ordered_json sentinels = nlohmann::ordered_json::array();
  for (int i = 0; i < extra; i++) sentinels.push_back("<extra_id_" + std::to_string(i) + ">");
  cfg["tokenizer_class"] = "T5Tokenizer", cfg["extra_ids"] = extra, cfg["additional_special_tokens"] = sentinels;
  cfg.erase("add_bos_token"), cfg.erase("add_prefix_space"), cfg.erase("bos_token");
  special.erase("bos_token");
  special["additional_special_tokens"] = sentinels;
}

std::string t5_card_use(const ModelConfig& c) {
  return "\nAn encoder-decoder (" + std::to_string(c.n_layer) + " encoder and " + std::to_string(c.n_dec_layer) +
         " decoder layers) trained on span corruption. Hugging Face: `AutoModelForSeq2SeqLM.from_pretrained(DIR)`.\n";
}

void t5_bench_moe(ModelConfig& c) { c.expert_choice = true; }  // the paper's: expert choice in the encoder

// T5: the text with "<extra_id_N>" marking the spans to fill (T5's sentinels, the ids
// from the top of the vocabulary down), then eos, as T5's inputs end.
std::vector<int32_t> t5_input(const Tokenizer& tok, const std::string& text, int V, int sentinels) {
  static const std::regex sentinel(R"(<extra_id_(\d+)>)");
  std::vector<int32_t> ids;
  auto add_text = [&](const std::string& t) {
    for (int32_t id : tok.encode(t)) ids.push_back(id);
  };
  auto it = std::sregex_iterator(text.begin(), text.end(), sentinel);
  size_t at = 0;
  for (; it != std::sregex_iterator(); ++it) {
    add_text(text.substr(at, size_t(it->position()) - at));
    const long n = std::stol((*it)[1].str());
    if (n >= sentinels)
      throw std::invalid_argument("--prompt: <extra_id_" + std::to_string(n) + ">: the model has " +
                                  std::to_string(sentinels) + " sentinels (<extra_id_0> .. <extra_id_" +
                                  std::to_string(sentinels - 1) + ">)");
    ids.push_back(int32_t(V - 1 - n));
    at = size_t(it->position() + it->length());
  }
  add_text(text.substr(at));
  ids.push_back(tok.eos_id());
  return ids;
}

// The input (encoder) once, then the decoder's tokens; sentinels print as <extra_id_N>.
class T5Generator : public TextGenerator {
 public:
  T5Generator(T5Model& m, const Tokenizer& tok, const std::string& dir) : m_(m), tok_(tok), dir_(dir) {}
  std::vector<int32_t> input(const std::string& prompt) override {
    const ModelConfig& c = m_.config();
    std::vector<int32_t> in = t5_input(tok_, prompt, c.vocab_size, c.vocab_size - tok_.vocab_size());
    if (int64_t(in.size()) > c.n_ctx)
      throw std::invalid_argument("--prompt is " + std::to_string(in.size()) + " tokens (eos included), more than the "
                                  "model's " + std::to_string(c.n_ctx) + " positions (" + dir_ + "/config.json)");
    last_ = t5_last_sentinel(in, c.vocab_size, tok_.vocab_size());
    return in;
  }
  std::string note(const std::vector<int32_t>& in) const override {
    return "; input " + std::to_string(in.size()) + " tokens (eos included)";
  }
  bool echoes_prompt() const override { return false; }
  int stop_token() const override { return m_.config().eos_id; }
  void run(const std::vector<int32_t>& input, const SampleOptions& s,
           const std::function<bool(int32_t)>& on_token) override {
    t5_generate(m_, input, s, on_token);
  }
  bool ended(int32_t t) const override {
    const ModelConfig& c = m_.config();
    return t5_answer_ended(t, c.eos_id, c.pad_id, c.vocab_size, tok_.vocab_size(), last_);
  }
  std::string text_of(const std::vector<int32_t>& ids) const override {
    std::string out;
    std::vector<int32_t> run;
    for (int32_t t : ids) {
      if (t < tok_.vocab_size()) {
        run.push_back(t);
        continue;
      }
      out += tok_.decode(run) + "<extra_id_" + std::to_string(m_.config().vocab_size - 1 - t) + ">";
      run.clear();
    }
    return out + tok_.decode(run);
  }

 private:
  T5Model& m_;
  const Tokenizer& tok_;
  std::string dir_;
  int last_ = -1;
};

}  // namespace

bool t5_family(const ModelConfig& c) { return &arch_of(c) == &t5_arch(); }

std::unique_ptr<TextGenerator> t5_generator(LanguageModel& lm, const Tokenizer& tok, const std::string&,
                                            const std::string& dir) {
  T5Model& m = static_cast<T5Model&>(lm);  // built by t5_build or t5_load_any
  if (m.config().vocab_size - tok.vocab_size() <= 0)
    throw std::invalid_argument(dir + ": the model's vocabulary has no sentinels above the tokenizer's " +
                                std::to_string(tok.vocab_size()) + " pieces");
  return std::make_unique<T5Generator>(m, tok, dir);
}

const Arch& t5_arch() {
  static const Arch a{
      "encoder-decoder",
      // Data parallelism (and ZeRO-1) for training; no expert parallelism, recompute, dropout,
      // carried moments or GGUF.
      cap_bit(Capability::Generate) | cap_bit(Capability::Upcycle),
      t5_fit_dataset,
      t5_fit_seq,
      t5_fit_moe,
      t5_build,
      t5_load_any,
      t5_param_counts,
      t5_batches,
      t5_check_dataset,
      t5_row_tokens,
      t5_decoder_tokens,
      t5_describe,
      t5_describe_run,
      t5_inspect_json,
      t5_hf_generation,
      t5_hf_tokenizer,
      "text2text-generation",
      t5_card_use,
      t5_generator,
      t5_upcycle_run,
      t5_bench_moe,
  };
  return a;
}

}  // namespace moe
