// The first hour with moe on your own data (issue 14): ~200 KB of the user's own text
// files (Genesis from Debian's bible-kjv, written at test time into four files), then
// the README's commands with only the flags the README shows: data, train with a
// preset, eval, generate, upcycle, the fair a/b (the dense model continued and the MoE,
// both from the dense checkpoint on the same batches) and its report. Also what `moe
// data` chooses for a small corpus (vocabulary, validation spread over the files), its
// warnings and errors, and `make install` into a temporary PREFIX.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "cli/cli_util.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

// Output of a shell command (stdout); fails the test when it exits non-zero.
std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

// The user's texts: Genesis in four files (about 200 KB).
void write_corpus(const std::string& dir) {
  const char* parts[][2] = {{"gen1:1", "gen12:20"}, {"gen13:1", "gen25:34"}, {"gen26:1", "gen37:36"},
                            {"gen38:1", "gen50:26"}};
  int i = 0;
  for (auto& p : parts) {
    std::string text = sh(std::string("bible -l100000 ") + p[0] + "-" + p[1]);
    ASSERT_GT(text.size(), 30000u) << p[0];
    write_file(dir + "/part" + std::to_string(++i) + ".txt", text);
  }
}

std::string corpus_dir() {
  static TempDir* dir = [] {
    auto* d = new TempDir("first_hour_corpus");
    write_corpus(d->str() + "/my-texts");
    return d;
  }();
  return dir->str() + "/my-texts";
}

nlohmann::json meta_of(const std::string& dir) { return nlohmann::json::parse(read_file(dir + "/meta.json")); }

// `moe data` on a small corpus: the vocabulary comes from its size and says so,
// validation is drawn from every file and holds several evaluation batches.
TEST(CliFirstHour, DataFitsASmallCorpus) {
  TempDir t("first_hour_data");
  Proc r = run_moe("data --input " + q(corpus_dir()) + " --out " + q(t / "ds"));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json m = meta_of(t / "ds");
  const uint64_t chars = m["chars"].get<uint64_t>();
  EXPECT_GT(chars, 150000u);
  EXPECT_EQ(m["vocab_size"].get<int>(), vocab_for_corpus(chars));
  EXPECT_EQ(m["vocab_size"].get<int>(), 1024);  // 200K chars / 150 -> 2^10
  EXPECT_NE(r.out.find("vocabulary 1,024 (trained BPE, chosen from the corpus size; --vocab-size sets it)"),
            std::string::npos) << r.out;
  const uint64_t n = m["train"]["tokens"].get<uint64_t>() + m["val"]["tokens"].get<uint64_t>();
  const uint64_t nv = m["val"]["tokens"].get<uint64_t>();
  EXPECT_EQ(nv, std::min<uint64_t>(kValMinTokens, uint64_t(0.1 * double(n))));
  EXPECT_GE(nv, 4u * 8 * 128 + 1) << "fewer than 4 batches of the tiny preset's 8 x 128";
  // Drawn across the files: text of the first and of the last file is in val.bin.
  Tokenizer tok = Tokenizer::load(t / "ds/tokenizer.model");
  TokenShard val = TokenShard::open(t / "ds/val.bin", uint64_t(tok.vocab_size()));
  std::vector<int32_t> ids(val.size());
  val.read(0, val.size(), ids.data());
  const std::string text = tok.decode(ids);
  EXPECT_NE(text.find("Abram"), std::string::npos) << "nothing from part1 (Genesis 1-12) in validation";
  EXPECT_NE(text.find("Joseph"), std::string::npos) << "nothing from part4 (Genesis 38-50) in validation";
  // A second corpus: too small for 4 default batches: a warning that says what to do.
  write_file(t / "small/a.txt", sh("bible -l100000 gen1:1-gen3:24"));
  r = run_moe("data --input " + q(t / "small") + " --out " + q(t / "ds_small"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("moe data: warning: the validation split has"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--val-fraction"), std::string::npos) << r.err;
  // Training on a split smaller than one batch: refused, saying how to fix it.
  expect_one_line_error(run_moe(kOneThread + "train --data " + q(t / "ds_small") + " --out " + q(t / "r") +
                                " --preset tiny --batch 64 --steps 5"),
                        1, {"validation split has", "--batch", "--seq", "--val-fraction"}, "val smaller than a batch");
}

TEST(CliFirstHour, ImpossibleVocabularyIsOurOneLine) {
  TempDir t("first_hour_vocab");
  write_file(t / "a.txt", "A short text of mine, and nothing else.\n");
  Proc r = run_moe("data --input " + q(t / "a.txt") + " --out " + q(t / "ds") + " --vocab-size 4096");
  r.out.clear();  // (moe data's progress lines come before the error)
  expect_one_line_error(r, 2, {"--vocab-size 4096", "too large for this text", "at most"}, "vocabulary too large");
  EXPECT_EQ(r.err.find(".cc("), std::string::npos) << "SentencePiece's internals leak: " << r.err;
  // Without --vocab-size the default adapts to what the text supports (repeated enough to
  // fill one batch per split; one line alone is refused as too small for moe train).
  std::string many;
  for (int i = 0; i < 400; i++) many += "A short text of mine, and nothing else.\n";
  write_file(t / "a.txt", many);
  r = run_moe("data --input " + q(t / "a.txt") + " --out " + q(t / "ds"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(meta_of(t / "ds")["vocab_size"].get<int>(), 512);
}

// `make install PREFIX=tmp` puts moe on PATH.
TEST(CliFirstHour, MakeInstallPutsMoeOnPath) {
  TempDir t("first_hour_install");
  const std::string src = fs::path(MOE_TEST_SRC).parent_path().string();
  const std::string build = fs::path(MOE_BINARY).parent_path().string();
  sh("make -s -C " + q(src) + " install PREFIX=" + q(t / "prefix") + " BUILD=" + q(build) + " JOBS=1 >/dev/null 2>&1");
  ASSERT_TRUE(fs::exists(t / "prefix/bin/moe"));
  const std::string out = sh("PATH=" + q(t / "prefix/bin") + ":\"$PATH\" moe --help");
  EXPECT_NE(out.find("Usage: moe"), std::string::npos) << out;
  EXPECT_NE(out.find("train"), std::string::npos) << out;
}

// The README's "first hour" commands, as written there (only their flags), on the
// user's ~200 KB of text. Each must succeed.
TEST(CliFirstHour, ReadmeCommandsOnYourOwnText) {
  TempDir t("first_hour_readme");
  const std::string text = q(corpus_dir()), ds = q(t / "data/mine"), tiny = q(t / "runs/tiny"),
                    up = q(t / "runs/tiny-moe"), dense = q(t / "runs/tiny-dense-more"),
                    moe = q(t / "runs/tiny-moe-trained"), report = q(t / "runs/report");
  const std::vector<std::string> cmds = {
      "data --input " + text + " --out " + ds,
      "--threads 1 train --data " + ds + " --out " + tiny + " --preset tiny --steps 60 --compute auto",
      "eval --model " + tiny + " --data " + ds,
      "generate --model " + tiny + " --prompt \"In the beginning\"",
      "upcycle --from " + tiny + " --out " + up + " --experts 4",
      "--threads 1 train --data " + ds + " --out " + dense + " --init " + tiny +
          " --continue-data --steps 20 --eval-every 10 --compute auto",
      "--threads 1 train --data " + ds + " --out " + moe + " --init " + up +
          " --continue-data --steps 20 --eval-every 10 --compute auto",
      "report " + tiny + " " + dense + " " + moe + " --out " + report,
      "inspect " + moe,
  };
  for (const std::string& c : cmds) {
    Proc r = run_moe(c);
    ASSERT_EQ(r.code, 0) << "moe " << c << "\n" << r.err;
    if (c.rfind("generate", 0) == 0) {
      EXPECT_EQ(r.out.rfind("In the beginning", 0), 0u) << r.out;
      EXPECT_NE(r.err.find("seed "), std::string::npos) << "the seed is not printed: " << r.err;
    }
    if (c.rfind("eval", 0) == 0) {
      EXPECT_NE(r.out.find("loss"), std::string::npos) << r.out;
    }
    if (c.find("--continue-data") != std::string::npos) {  // both arms read on from the dense run's batches
      EXPECT_NE(r.err.find("data: continuing where"), std::string::npos) << r.err;
    }
    if (c.rfind("report", 0) == 0) {  // 4 loss figures, the shared start, 2 of experts, the step 0
      EXPECT_NE(r.out.find("index.html (8 figures)"), std::string::npos) << r.out;
    }
  }
  EXPECT_TRUE(fs::exists(t / "runs/tiny-dense-more/checkpoint-20/model.safetensors"));
  EXPECT_TRUE(fs::exists(t / "runs/tiny-moe-trained/checkpoint-20/model.safetensors"));
  // The arms share the dense checkpoint-60 as their start: the page compares them there.
  const std::string page = read_file(t / "runs/report/index.html");
  EXPECT_NE(page.find("<table class=\"shared\">"), std::string::npos) << "no shared-start table";
  EXPECT_NE(page.find("checkpoint-60 (step 60)"), std::string::npos);
  EXPECT_NE(page.find("share a start"), std::string::npos) << "no shared-start figure";
}

}  // namespace
}  // namespace moe::clitest
