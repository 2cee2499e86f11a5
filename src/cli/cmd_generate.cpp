// moe generate: sample text from a checkpoint (KV-cache decoding), streamed.
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/model_open.h"
#include "cli/stop_strings.h"
#include "data/tokenizer.h"
#include "data/tokenizer_id.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "model/arch.h"
#include "model/sample.h"

namespace moe::cli {

namespace {

struct GenOpts {
  std::string model, prompt, tokenizer;
  SampleOptions s;
  std::vector<std::string> stops;
  int samples = 1;
  bool allow_tokenizer_mismatch = false, seed_given = false;
};

// "=== sample k of n (seed S) ===" (greedy: no seed).
void print_sample_header(int k, int n, const SampleOptions& s) {
  if (s.temperature == 0.0f) std::printf("%s=== sample %d of %d ===\n", k ? "\n" : "", k + 1, n);
  else std::printf("%s=== sample %d of %d (seed %llu) ===\n", k ? "\n" : "", k + 1, n, (unsigned long long)s.seed);
}

// The seed a sample is drawn with (drawn at random unless --seed), or that greedy
// decoding (--temperature 0) draws nothing: the first line on stderr.
std::string seed_note(const GenOpts& o, SampleOptions& s) {
  if (s.temperature == 0.0f) return "greedy (--temperature 0: no sampling, no seed)";
  if (!o.seed_given) s.seed = std::random_device{}() | (uint64_t(std::random_device{}()) << 32);
  return "seed " + std::to_string(s.seed) + (o.seed_given ? "" : " (random; --seed repeats a sample)");
}

// Prints one sample as its tokens come (run(on_token) generates it): the decoded text
// of the tokens so far, what is new of it; multi-piece characters and byte-fallback
// sequences come out whole, and text that could be the start of a --stop string waits
// until it is known not to be one. Stops where ended(token) says or at a --stop string.
void stream_sample(const std::function<void(const std::function<bool(int32_t)>&)>& run,
                   const std::function<bool(int32_t)>& ended,
                   const std::function<std::string(const std::vector<int32_t>&)>& text_of,
                   const std::vector<std::string>& stops) {
  std::vector<int32_t> generated;
  std::string shown;  // printed so far
  run([&](int32_t t) {
    if (ended(t)) return false;
    generated.push_back(t);
    const std::string text = text_of(generated);
    const StopCut cut = stop_cut(text, stops);
    // (A partial UTF-8 sequence decodes differently once complete: print only when
    // what was printed is still the text's start.)
    if (cut.printable > shown.size() && text.compare(0, shown.size(), shown) == 0) {
      std::fwrite(text.data() + shown.size(), 1, cut.printable - shown.size(), stdout);
      std::fflush(stdout);
      shown.assign(text, 0, cut.printable);
    }
    return !cut.stop;
  });
  std::printf("\n");
}

void run_generate(const GenOpts& o) {
  OpenedModel opened = open_model(o.model);
  family_require(opened.model->config(), Capability::Generate, opened.dir + ": moe generate");
  const std::string& dir = opened.dir;
  const std::string tok_path = o.tokenizer.empty() ? dir + "/tokenizer.model" : o.tokenizer;
  if (!path_exists(tok_path))
    throw std::runtime_error(tok_path + ": no tokenizer (give --tokenizer PATH to a SentencePiece model)");
  if (!o.tokenizer.empty() && !o.allow_tokenizer_mismatch)
    tokenizer_check(dir, tokenizer_id(o.tokenizer), "--tokenizer " + o.tokenizer,
                    "drop --tokenizer to use the checkpoint's own", "--allow-tokenizer-mismatch");
  Tokenizer tok = Tokenizer::load(tok_path);
  LanguageModel& m = *opened.model;
  std::unique_ptr<TextGenerator> gen = arch_of(m.config()).generator(m, tok, tok_path, dir);
  const std::vector<int32_t> input = gen->input(o.prompt);  // checked before anything is printed
  SampleOptions s = o.s;
  s.stop_token = gen->stop_token();
  std::fprintf(stderr, "moe generate: %s%s\n", seed_note(o, s).c_str(), gen->note(input).c_str());
  for (int k = 0; k < o.samples; k++) {
    if (o.samples > 1) print_sample_header(k, o.samples, s);
    if (gen->echoes_prompt()) {
      std::printf("%s", o.prompt.c_str());
      std::fflush(stdout);
    }
    stream_sample([&](const std::function<bool(int32_t)>& on) { gen->run(input, s, on); },
                  [&](int32_t t) { return gen->ended(t); },
                  [&](const std::vector<int32_t>& ids) { return gen->text_of(ids); }, o.stops);
    s.seed++;
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenOpts>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a checkpoint");
  sub->add_option("--model", o->model, "checkpoint directory (or a run directory: its newest checkpoint)")
      ->required();
  sub->add_option("--prompt", o->prompt, "text to continue (empty: start a new document)")->default_str("\"\"");
  sub->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: the checkpoint's tokenizer.model)");
  sub->add_flag("--allow-tokenizer-mismatch", o->allow_tokenizer_mismatch,
                "use --tokenizer even when it is not the checkpoint's tokenizer.model");
  sub->add_option("--max-tokens", o->s.max_tokens, "tokens to generate")->check(InRange(1, 1 << 20));
  sub->add_option("--temperature", o->s.temperature, "sampling temperature (0: greedy)")->check(InRange(0.0, 100.0));
  sub->add_option("--top-k", o->s.top_k, "sample from the k most likely tokens (0: all)")->check(InRange(0, 1 << 24));
  sub->add_option("--top-p", o->s.top_p, "nucleus sampling mass (1: off)")->check(InRange(0.0, 1.0));
  sub->add_option("--seed", o->s.seed, "sampling seed (printed; sample k of --samples uses seed + k - 1)")
      ->default_str("random");
  sub->add_option("--samples", o->samples, "how many samples to draw")->check(InRange(1, 10000));
  sub->add_option("--stop", o->stops, "stop a sample at this text (not printed); repeatable")->default_str("none");
  sub->add_option("--repetition-penalty", o->s.repetition_penalty,
                  "divide the (positive) logits of tokens already in the text by this (1: off; 1.1-1.3 typical)")
      ->check(InRange(1.0, 10.0));
  sub->callback([o, sub] {
    o->seed_given = sub->get_option("--seed")->count() > 0;
    run_generate(*o);
  });
}

}  // namespace moe::cli
