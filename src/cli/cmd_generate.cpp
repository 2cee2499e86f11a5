// moe generate: sample text from a checkpoint (KV-cache decoding), streamed.
#include <cstdio>
#include <stdexcept>

#include "cli/commands.h"
#include "data/tokenizer.h"
#include "data/tokenizer_id.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "model/generate.h"

namespace moe::cli {

namespace {

struct GenOpts {
  std::string model, prompt, tokenizer;
  SampleOptions s;
  bool allow_tokenizer_mismatch = false;
};

void run_generate(const GenOpts& o) {
  const std::string dir = resolve_model_dir(o.model);
  auto m = model_load(dir);
  const std::string tok_path = o.tokenizer.empty() ? dir + "/tokenizer.model" : o.tokenizer;
  if (!path_exists(tok_path))
    throw std::runtime_error(tok_path + ": no tokenizer (give --tokenizer PATH to a SentencePiece model)");
  if (!o.tokenizer.empty() && !o.allow_tokenizer_mismatch)
    tokenizer_check(dir, tokenizer_id(o.tokenizer), "--tokenizer " + o.tokenizer,
                    "drop --tokenizer to use the checkpoint's own", "--allow-tokenizer-mismatch");
  Tokenizer tok = Tokenizer::load(tok_path);
  if (tok.vocab_size() > m->config().vocab_size)
    throw std::invalid_argument(tok_path + ": tokenizer has " + std::to_string(tok.vocab_size()) +
                                " tokens but the model's vocabulary is " + std::to_string(m->config().vocab_size));
  std::vector<int32_t> prompt = tok.encode(o.prompt);
  if (prompt.empty()) prompt.push_back(tok.eos_id() >= 0 ? tok.eos_id() : 0);  // start of a document
  // Checked before anything is printed, and named as the user's flag.
  if (int64_t(prompt.size()) > m->config().n_ctx)
    throw std::invalid_argument("--prompt is " + std::to_string(prompt.size()) + " tokens, more than the model's " +
                                std::to_string(m->config().n_ctx) + " positions (" + dir + "/config.json)");
  SampleOptions s = o.s;
  s.stop_token = tok.eos_id();
  std::printf("%s", o.prompt.c_str());
  std::fflush(stdout);
  // Decode the growing sequence and print what is new, so multi-piece characters
  // and byte-fallback sequences come out whole.
  std::vector<int32_t> generated;
  std::string shown;
  generate(*m, prompt, s, [&](int32_t t) {
    if (t == s.stop_token) return false;
    generated.push_back(t);
    std::string text = tok.decode(generated);
    if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) {
      std::fwrite(text.data() + shown.size(), 1, text.size() - shown.size(), stdout);
      std::fflush(stdout);
      shown = text;
    }
    return true;
  });
  std::printf("\n");
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenOpts>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a checkpoint");
  sub->add_option("--model", o->model, "checkpoint directory (or a run directory: its newest checkpoint)")
      ->required();
  sub->add_option("--prompt", o->prompt, "text to continue (empty: start a new document)");
  sub->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: the checkpoint's tokenizer.model)");
  sub->add_flag("--allow-tokenizer-mismatch", o->allow_tokenizer_mismatch,
                "use --tokenizer even when it is not the checkpoint's tokenizer.model");
  sub->add_option("--max-tokens", o->s.max_tokens, "tokens to generate")->check(CLI::Range(1, 1 << 20));
  sub->add_option("--temperature", o->s.temperature, "sampling temperature (0: greedy)")->check(CLI::Range(0.0, 100.0));
  sub->add_option("--top-k", o->s.top_k, "sample from the k most likely tokens (0: all)")->check(CLI::Range(0, 1 << 24));
  sub->add_option("--top-p", o->s.top_p, "nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o->s.seed, "sampling seed");
  sub->callback([o] { run_generate(*o); });
}

}  // namespace moe::cli
