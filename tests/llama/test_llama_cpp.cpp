// moe export --format gguf, checked by the real llama.cpp (node-llama-cpp 3.21.1's
// prebuilt CPU build, driven by llama_check.mjs in a child process) against moe on
// the same checkpoints: tokenization of a held-out text with unusual characters,
// next-token log probabilities on 256 positions, perplexity on the validation
// windows `moe eval` reads, and greedy generation of 32 tokens from 3 prompts.
// Cases: a trained Llama dense, a Mixtral (every layer MoE, top-2), an upcycled
// every-other-layer Mixtral (dense layers written as identical experts) and a GPT-2
// dense, in f32; Llama and Mixtral also in f16 (weights and llama.cpp's KV cache).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/cli_util.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "model/decoder/generate.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

using json = nlohmann::json;

// Held out: not in the training text (Debian's license texts), with accents, CJK,
// emoji, control characters, tabs, CRLF, runs of spaces, digits and piece-like text.
const char* kHeldOut =
    "Paragraph one: the café's naïve façade, Ærøskøbing and Zürich; \"quoted\" text -- and more.\n\n"
    "Paragraph two:\tTabs,  two spaces,   three; CRLF line\r\nnext line. Numbers 1234567890 and 3.14159.\n\n"
    "Emoji 😀🚀👩‍👩‍👧 and CJK 中文字符 and Greek αβγ, Cyrillic жизнь, Arabic مرحبا.\n"
    "Control \x01\x02\x1f\x7f bytes, a bell \a, a form feed \f; pieces <s> </s> <unk> <0x41> ▁ stay text.\n\n"
    "The Licensor grants You a worldwide, royalty-free license to reproduce the Work.   \n";

// Every ASCII code point from 1, then code points across the planes (valid UTF-8 only):
// nothing may crash llama.cpp's tokenizer or split differently.
std::string all_kinds_of_text() {
  std::string s;
  auto utf8 = [&s](uint32_t c) {
    if (c < 0x80) s += char(c);
    else if (c < 0x800) s += char(0xC0 | c >> 6), s += char(0x80 | (c & 0x3F));
    else if (c < 0x10000) s += char(0xE0 | c >> 12), s += char(0x80 | (c >> 6 & 0x3F)), s += char(0x80 | (c & 0x3F));
    else
      s += char(0xF0 | c >> 18), s += char(0x80 | (c >> 12 & 0x3F)), s += char(0x80 | (c >> 6 & 0x3F)),
          s += char(0x80 | (c & 0x3F));
  };
  for (uint32_t c = 1; c < 0x80; c++) utf8(c);
  for (uint32_t c = 0x80; c < 0x110000; c += 0x1F3)
    if (c < 0xD800 || c > 0xDFFF) utf8(c);  // not the surrogates
  utf8(0x10FFFF);
  return s;
}

const char* kPrompts[] = {"The Licensor", "You may", "Copyright (C) 2007 Free Software Foundation"};
constexpr int kGenerate = 32;
constexpr int kWindows = 4, kSeq = 64;  // 4 x 64 = 256 scored positions

std::string node_modules() {
  const char* env = std::getenv("MOE_LLAMA_NODE_MODULES");
  return env && *env ? env : MOE_LLAMA_NODE_MODULES;
}

// Runs llama_check.mjs on a request; its stdout's JSON.
json run_llama(const std::string& dir, const json& request) {
  const std::string req = dir + "/request.json", out = dir + "/llama.json", err = dir + "/llama.err";
  write_file(req, request.dump());
  const std::string cmd = "NODE_PATH=" + q(node_modules()) + " node " + q(std::string(MOE_TEST_SRC) + "/llama/llama_check.mjs") +
                          " " + q(req) + " > " + q(out) + " 2> " + q(err);
  const int rc = std::system(cmd.c_str());
  if (rc != 0) ADD_FAILURE() << "llama.cpp (" << cmd << ") failed: " << read_file(err);
  return rc == 0 ? json::parse(read_file(out)) : json();
}

struct Ours {
  std::vector<std::vector<double>> logprobs;   // per window, per position
  std::vector<std::vector<int32_t>> greedy;    // per prompt
};

// log softmax(logits)[t] in double.
double log_prob(const std::vector<float>& logits, int32_t t) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (float x : logits) s += std::exp(double(x) - mx);
  return double(logits[size_t(t)]) - mx - std::log(s);
}

Ours run_ours(const std::string& ckpt, const std::vector<std::vector<int32_t>>& windows,
              const std::vector<std::vector<int32_t>>& prompts) {
  Ours o;
  std::unique_ptr<Model> m = model_load(ckpt);
  for (const auto& w : windows) {
    Decoder d(*m);
    std::vector<double> lp;
    for (size_t i = 0; i + 1 < w.size(); i++) lp.push_back(log_prob(d.feed({w[i]}), w[i + 1]));
    o.logprobs.push_back(lp);
  }
  SampleOptions s;
  s.max_tokens = kGenerate;
  s.temperature = 0;
  for (const auto& p : prompts) o.greedy.push_back(generate(*m, p, s));
  return o;
}

struct Case {
  std::string name;
  std::vector<std::string> commands;  // moe commands making `ckpt` (relative to the temp dir: {T})
  std::string ckpt;                   // relative to the temp dir
  std::string dtype;                  // export dtype
  std::string kv;                     // llama.cpp's KV cache type: F32 | F16 (its default)
  bool defaults = false;              // llama.cpp's default attention (flash, f16 inside); else f32
  double logprob_tol;                 // max |ln p difference|
};

std::string subst(std::string s, const std::string& dir) {
  for (size_t at; (at = s.find("{T}")) != std::string::npos;) s.replace(at, 3, q(dir));
  return s;
}

void check_case(const Case& c) {
  TempDir t("llama_" + c.name);
  for (const std::string& cmd : c.commands) {
    Proc r = run_moe(kOneThread + subst(cmd, t.str()));
    ASSERT_EQ(r.code, 0) << cmd << ": " << r.err;
  }
  const std::string ckpt = t / c.ckpt, gguf = t / (c.name + ".gguf");
  Proc ex = run_moe("export --format gguf --dtype " + c.dtype + " --model " + q(ckpt) + " --out " + q(gguf));
  ASSERT_EQ(ex.code, 0) << ex.err;
  ASSERT_TRUE(fs::exists(gguf));

  const Tokenizer tok = Tokenizer::load(ckpt + "/tokenizer.model");
  // The windows moe eval --batches 1 --batch 4 --seq 64 scores: consecutive from the start of val.bin.
  const DatasetInfo ds = dataset_open(dataset());
  const TokenShard val = TokenShard::open(ds.val_path);
  std::vector<std::vector<int32_t>> windows(kWindows, std::vector<int32_t>(kSeq + 1));
  for (int b = 0; b < kWindows; b++) val.read(uint64_t(b) * kSeq, kSeq + 1, windows[size_t(b)].data());
  std::vector<std::vector<int32_t>> prompts;
  for (const char* p : kPrompts) prompts.push_back(tok.encode(p));

  json req{{"model", gguf},       {"context", 128},     {"kv_type", c.kv},
           {"texts", {kHeldOut, all_kinds_of_text()}}, {"windows", windows}, {"prompts", prompts},
           {"generate", kGenerate}};
  if (!c.defaults) req["flash_attention"] = false;
  const json got = run_llama(t.str(), req);
  ASSERT_FALSE(got.is_null());

  // Tokenization: token for token, and back to the same text.
  const std::vector<int32_t> ours_tok = tok.encode(kHeldOut);
  const std::vector<int32_t> theirs_tok = got["tokens"][0].get<std::vector<int32_t>>();
  EXPECT_EQ(theirs_tok, ours_tok) << "llama.cpp tokenizes the held-out text differently";
  // Both decode back to the text, except U+2581 (SentencePiece's escaped space: it decodes as ' ').
  std::string back = kHeldOut;
  for (size_t at; (at = back.find("\u2581")) != std::string::npos;) back.replace(at, 3, " ");
  EXPECT_EQ(tok.decode(ours_tok), back);
  EXPECT_EQ(got["detok"][0].get<std::string>(), back);
  const std::string all = all_kinds_of_text();
  EXPECT_EQ(got["tokens"][1].get<std::vector<int32_t>>(), tok.encode(all)) << "every code point's text";
  EXPECT_EQ(got["detok"][1].get<std::string>(), all);

  // Next-token log probabilities.
  const Ours ours = run_ours(ckpt, windows, prompts);
  double max_diff = 0, nll_theirs = 0, nll_ours = 0;
  int n = 0;
  for (int b = 0; b < kWindows; b++) {
    const auto theirs = got["logprobs"][size_t(b)].get<std::vector<double>>();
    ASSERT_EQ(theirs.size(), ours.logprobs[size_t(b)].size());
    for (size_t i = 0; i < theirs.size(); i++) {
      max_diff = std::max(max_diff, std::fabs(theirs[i] - ours.logprobs[size_t(b)][i]));
      nll_theirs -= theirs[i], nll_ours -= ours.logprobs[size_t(b)][i], n++;
    }
  }
  EXPECT_EQ(n, kWindows * kSeq);
  EXPECT_LT(max_diff, c.logprob_tol) << "max |ln p(llama.cpp) - ln p(moe)| over " << n << " positions";

  // Perplexity against moe eval on the same windows.
  Proc ev = run_moe(kOneThread + "eval --model " + q(ckpt) + " --data " + q(dataset()) + " --batches 1 --batch " +
                    std::to_string(kWindows) + " --seq " + std::to_string(kSeq) + " --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  const json e = json::parse(ev.out);
  ASSERT_EQ(e["tokens"].get<int>(), n);
  const double ppl_eval = e["perplexity"].get<double>(), ppl_llama = std::exp(nll_theirs / n);
  EXPECT_LT(std::fabs(ppl_llama / ppl_eval - 1), 0.005) << "perplexity llama.cpp " << ppl_llama << ", moe eval " << ppl_eval;

  // Greedy generation: the same ids, so the same text.
  for (size_t p = 0; p < prompts.size(); p++) {
    const auto theirs = got["greedy"][p].get<std::vector<int32_t>>();
    EXPECT_EQ(theirs, ours.greedy[p]) << "greedy continuation of \"" << kPrompts[p] << "\"";
    EXPECT_EQ(tok.decode(theirs), tok.decode(ours.greedy[p]));
  }
  std::printf("[%s] %s, KV %s, %s attention: tokens %zu equal=%d; max |dlogp| %.3g over %d positions; perplexity llama.cpp %.5f, moe "
              "eval %.5f (ratio-1 %.2e), decoder %.5f; greedy 3 x %d\n",
              c.name.c_str(), c.dtype.c_str(), c.kv.c_str(), c.defaults ? "default (flash)" : "f32", ours_tok.size(), int(theirs_tok == ours_tok), max_diff, n, ppl_llama,
              ppl_eval, ppl_llama / ppl_eval - 1, std::exp(nll_ours / n), kGenerate);
}

const std::string kTrain = "train --data " + q(dataset()) +
                           " --preset tiny --batch 8 --seq 64 --lr 3e-3 --warmup 10 --eval-every 1000 --seed 5 ";

TEST(LlamaCpp, LlamaDenseF32) {
  check_case({"llama", {kTrain + "--steps 60 --family llama --out {T}/run"}, "run/checkpoint-60", "f32", "F32", false, 1e-4});
}

TEST(LlamaCpp, MixtralTop2F32) {
  check_case({"mixtral",
              {kTrain + "--steps 60 --family llama --experts 4 --top-k 2 --moe-layers all --eval-capacity-factor 0 "
                        "--out {T}/run"},
              "run/checkpoint-60", "f32", "F32", false, 1e-4});
}

TEST(LlamaCpp, UpcycledEveryOtherLayerF32) {
  check_case({"upcycled",
              {kTrain + "--steps 40 --family llama --out {T}/dense",
               "upcycle --from {T}/dense --out {T}/up0 --experts 4 --top-k 2 --no-check",
               "train --data " + q(dataset()) + " --init {T}/up0 --batch 8 --seq 64 --steps 20 --lr 1e-3 --warmup 5 "
                   "--eval-every 1000 --seed 6 --out {T}/run"},
              "run/checkpoint-20", "f32", "F32", false, 1e-4});
}

TEST(LlamaCpp, Gpt2DenseF32) {
  // ggml's GELU comes from an f16 lookup table: about 1e-3 relative per activation.
  check_case({"gpt2", {kTrain + "--steps 60 --family gpt2 --out {T}/run"}, "run/checkpoint-60", "f32", "F32", false, 1e-3});
}

// What llama.cpp's defaults add: its f16 KV cache alone; its default attention (flash
// attention, which computes in f16 whatever the cache holds); then f16 weights (ggml
// also rounds the activations to f16 inside their matrix products) with both.
TEST(LlamaCpp, LlamaDenseF16KvCache) {
  check_case({"llama_kv16", {kTrain + "--steps 60 --family llama --out {T}/run"}, "run/checkpoint-60", "f32", "F16",
              false, 1e-2});
}

TEST(LlamaCpp, LlamaDenseDefaultAttention) {
  check_case({"llama_fa", {kTrain + "--steps 60 --family llama --out {T}/run"}, "run/checkpoint-60", "f32", "F32",
              true, 1e-2});
}

TEST(LlamaCpp, LlamaDenseF16) {
  check_case({"llama16", {kTrain + "--steps 60 --family llama --out {T}/run"}, "run/checkpoint-60", "f16", "F16",
              true, 3e-2});
}

TEST(LlamaCpp, MixtralTop2F16) {
  check_case({"mixtral16",
              {kTrain + "--steps 60 --family llama --experts 4 --top-k 2 --moe-layers all --eval-capacity-factor 0 "
                        "--out {T}/run"},
              "run/checkpoint-60", "f16", "F16", true, 3e-2});
}

}  // namespace
}  // namespace moe::clitest
