// moe data: text -> dataset directory (tokenizer.model, train.bin, val.bin, meta.json).
//   moe data --out DIR [--input PATH]... [--tokenizer MODEL | --vocab-size N] [--t5]
//            [--val-fraction F] [--force]
// Without --input the corpus is the Debian one (King James Bible, Jane Austen's
// novels). A second run on the same inputs and options reuses the directory.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "data/dataset.h"

namespace moe::cli {

namespace {

// 1234567 -> "1,234,567"
std::string grouped(uint64_t n) {
  const std::string d = std::to_string(n);
  std::string s;
  for (size_t i = 0; i < d.size(); i++) {
    if (i > 0 && (d.size() - i) % 3 == 0) s += ',';
    s += d[i];
  }
  return s;
}

const CLI::Validator kFraction(
    [](std::string& s) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v) || v <= 0 || v > 0.5)
        return "expected a fraction 0 < F <= 0.5, got '" + s + "'";
      return {};
    },
    "F");

void run_data(const DataOptions& o) {
  DataSummary s = dataset_build(o, [](const std::string& msg) {
    std::printf("moe data: %s\n", msg.c_str());
    std::fflush(stdout);
  });
  if (s.reused) {
    std::printf("moe data: %s is up to date (same inputs and options, input hash %.12s): reused it; --force rebuilds\n",
                o.out.c_str(), s.input_hash.c_str());
  }
  for (const auto& in : s.inputs)
    std::printf("  %-28s %-6s %5s docs %14s chars %12s train + %9s val tokens\n", in.name.c_str(), in.kind.c_str(),
                grouped(in.documents).c_str(), grouped(in.chars).c_str(), grouped(in.train_tokens).c_str(),
                grouped(in.val_tokens).c_str());
  const uint64_t tokens = s.train_tokens + s.val_tokens;
  std::printf("corpus: %s documents, %s chars (%s bytes)\n", grouped(s.documents).c_str(), grouped(s.chars).c_str(),
              grouped(s.bytes).c_str());
  std::printf("tokens: %s train, %s val (%.3f tokens/char); vocabulary %s (%s)\n", grouped(s.train_tokens).c_str(),
              grouped(s.val_tokens).c_str(), double(tokens) / double(s.chars), grouped(uint64_t(s.vocab_size)).c_str(),
              !s.tokenizer_trained ? "given tokenizer"
              : s.vocab_auto       ? "trained BPE, chosen from the corpus size; --vocab-size sets it"
                                   : "trained BPE");
  if (s.sentinels > 0)
    std::printf("sentinels: %d (<extra_id_0> = %lld down to <extra_id_%d> = %lld), for span corruption\n", s.sentinels,
                (long long)s.vocab_size - 1, s.sentinels - 1, (long long)(s.vocab_size - s.sentinels));
  for (const std::string& w : s.warnings) std::fprintf(stderr, "moe data: warning: %s\n", w.c_str());
  if (s.reused)
    std::printf("time: %.1f s (reading and hashing the inputs)\n", s.total_s);
  else
    std::printf("time: %.1f s (read %.1f, tokenizer %.1f, encode %.1f); wrote %s\n", s.total_s, s.read_s, s.tokenizer_s,
                s.encode_s, o.out.c_str());
}

}  // namespace

void register_data(CLI::App& app) {
  auto o = std::make_shared<DataOptions>();
  CLI::App* cmd = app.add_subcommand(
      "data", "Build a dataset directory (tokenizer.model, train.bin, val.bin, meta.json) from text");
  cmd->fallthrough();  // global options (--threads) may follow the subcommand
  cmd->add_option("--out", o->out, "dataset directory to write (created when missing)")->required();
  cmd->add_option("--corpus", o->corpus,
                  "named corpora from Debian packages, comma-separated: kjv, austen, moby, python-docs, perl-docs, "
                  "wordnet; default (kjv,austen) or large (all: about 11M tokens); with --input, both are read")
      ->default_str("default, unless --input is given");
  cmd->add_option("--input", o->inputs,
                  "a UTF-8 text file or a directory of them (recursive); repeatable. Default: the King James Bible "
                  "and Jane Austen's novels from Debian packages")
      ->default_str("the Debian corpus");
  auto* tok = cmd->add_option("--tokenizer", o->tokenizer, "use this SentencePiece tokenizer.model instead of training one")
                  ->default_str("none: train one");
  cmd->add_option("--vocab-size", o->vocab_size, "vocabulary of the trained BPE tokenizer")
      ->check(InRange(260, 1000000))
      ->excludes(tok)
      ->default_str("from the corpus size: the power of 2 nearest chars/150, 512 .. 8192");
  cmd->add_option("--val-fraction", o->val_fraction,
                  "fraction of each input's tokens held out for validation, from 16 places spread over it")
      ->check(kFraction)
      ->default_str("0.01, raised to 8193 tokens (4 batches of 8 x 256), at most 0.1");
  cmd->add_flag("--t5", o->t5,
                "for T5 (span corruption): T5's special ids (pad 0, eos 1, unk 2) and 100 sentinels <extra_id_N> "
                "at the top of the vocabulary (counted in --vocab-size)");
  cmd->add_flag("--force", o->force, "rebuild even when the directory is up to date");
  cmd->callback([o] { run_data(*o); });
}

}  // namespace moe::cli
