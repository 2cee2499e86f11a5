// The decoder family's Arch (model/arch.h): gpt2, llama and mixtral. Everything the
// code outside this folder asks of a decoder-only model goes through this table.
#include <cstdio>
#include <stdexcept>

#include "data/batches.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "model/decoder/decoder.h"
#include "model/decoder/generate.h"
#include "model/decoder/model.h"

namespace moe {

namespace {


void decoder_fit_dataset(ModelConfig&, int) {}
void decoder_fit_seq(ModelConfig&, int, float) {}
void decoder_fit_moe(ModelConfig&, bool, bool) {}

std::unique_ptr<LanguageModel> decoder_build(const ModelConfig& c, const BuildArgs& a) {
  return std::make_unique<Model>(c, a.trainable, a.split);
}

std::unique_ptr<LanguageModel> decoder_load(const std::string& dir, const BuildArgs& a) {
  return model_load(dir, a.split);
}

std::unique_ptr<BatchSource> decoder_batches(const DatasetInfo& ds, const ModelConfig&, const std::string& shard, int B,
                                             int seq, uint64_t) {
  return lm_batches(shard, B, seq, uint64_t(ds.vocab_size));
}

void decoder_check_dataset(const DatasetInfo&, const ModelConfig&) {}
double decoder_row_tokens(int seq) { return seq; }
int decoder_tokens(int) { return 0; }

// The prompt continued by KV-cached decoding (generate.h); the prompt is printed first.
class DecoderGenerator : public TextGenerator {
 public:
  DecoderGenerator(Model& m, const Tokenizer& tok, const std::string& dir) : m_(m), tok_(tok), dir_(dir) {}
  std::vector<int32_t> input(const std::string& prompt) override {
    std::vector<int32_t> ids = tok_.encode(prompt);
    if (ids.empty()) ids.push_back(tok_.eos_id() >= 0 ? tok_.eos_id() : 0);  // start of a document
    // Checked before anything is printed, and named as the user's flag.
    if (int64_t(ids.size()) > m_.config().n_ctx)
      throw std::invalid_argument("--prompt is " + std::to_string(ids.size()) + " tokens, more than the model's " +
                                  std::to_string(m_.config().n_ctx) + " positions (" + dir_ + "/config.json)");
    return ids;
  }
  int stop_token() const override { return tok_.eos_id(); }
  void run(const std::vector<int32_t>& input, const SampleOptions& s,
           const std::function<bool(int32_t)>& on_token) override {
    generate(m_, input, s, on_token);
  }
  bool ended(int32_t t) const override { return t == tok_.eos_id(); }
  std::string text_of(const std::vector<int32_t>& ids) const override { return tok_.decode(ids); }

 private:
  Model& m_;
  const Tokenizer& tok_;
  std::string dir_;
};

// The model card's paragraph on how to use it.
std::string decoder_card_use(const ModelConfig& c) {
  if (std::string(family_to_write(c).model_type) == kMixtralRawGates)
    return std::string("\nUse: `moe generate --model DIR`. Its model_type `") + kMixtralRawGates +
           "` is moe's own: the tensors and fields are Mixtral's, but the gates are raw top-k probabilities, which "
           "HF's `MixtralForCausalLM` (always renormalising) does not compute, so transformers refuses it rather than "
           "compute another function.\n";
  return std::string("\nUse: `moe generate --model DIR`; Hugging Face: `AutoModelForCausalLM.from_pretrained(DIR)`") +
         (c.is_moe() && !c.moe_all_layers && c.family == "mixtral" ? " (not for a mix of dense and MoE layers).\n"
                                                                   : ".\n");
}

}  // namespace

std::unique_ptr<TextGenerator> decoder_generator(LanguageModel& lm, const Tokenizer& tok, const std::string& tok_path,
                                                 const std::string& dir) {
  Model& m = static_cast<Model&>(lm);  // built by decoder_build or decoder_load
  if (tok.vocab_size() > m.config().vocab_size)
    throw std::invalid_argument(tok_path + ": tokenizer has " + std::to_string(tok.vocab_size()) +
                                " tokens but the model's vocabulary is " + std::to_string(m.config().vocab_size));
  return std::make_unique<DecoderGenerator>(m, tok, dir);
}

const Arch& decoder_arch() {
  static const Arch a{
      "decoder-only",
      cap_bit(Capability::ExpertParallel) | cap_bit(Capability::Recompute) | cap_bit(Capability::Dropout) |
          cap_bit(Capability::CarryOptimizer) | cap_bit(Capability::ScaleToDense) | cap_bit(Capability::ExportGguf) |
          cap_bit(Capability::Generate) | cap_bit(Capability::Upcycle),
      decoder_fit_dataset,
      decoder_fit_seq,
      decoder_fit_moe,
      decoder_build,
      decoder_load,
      decoder_param_counts,
      decoder_batches,
      decoder_check_dataset,
      decoder_row_tokens,
      decoder_tokens,
      nullptr,  // describe: describe_config's wording is the decoder's
      nullptr,  // describe_rows: plain windows
      nullptr,  // inspect_json
      nullptr,  // hf_generation
      nullptr,  // hf_tokenizer
      "text-generation",
      decoder_card_use,
      decoder_generator,
      decoder_upcycle,
      nullptr,  // bench_moe
  };
  return a;
}

}  // namespace moe
