// Run recipes and the Hugging Face extras of a checkpoint (issue 14, item 8): every
// run writes recipe.json, `moe train --recipe` reproduces the run bit for bit, the
// command line overrides a recipe, a bad recipe is a usage error; checkpoints carry
// generation_config.json, tokenizer_config.json, special_tokens_map.json and a model
// card (README.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

nlohmann::json json_of(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

TEST(CliRecipe, EveryRunWritesItsRecipeAndTheRecipeReproducesIt) {
  TempDir t("recipe");
  const std::string a = t / "a", b = t / "b", c = t / "c";
  Proc r = run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(a) +
                   " --preset tiny --family gpt2 --batch 2 --seq 32 --steps 6 --lr 2e-3 --warmup 2 --dropout 0.1"
                   " --eval-every 3 --eval-batches 1 --seed 9 --experts 4 --top-k 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json rec = json_of(a + "/recipe.json");
  // Every training flag of --help is in it, except those about this invocation.
  Proc help = run_moe("train --help");
  std::smatch m;
  std::string rest = help.out;
  const std::regex flag(R"(\n  --([a-z0-9-]+))");
  const std::vector<std::string> not_in = {"help", "out", "resume", "recipe", "stop-at", "allow-tokenizer-mismatch",
                                           "config", "init", "init-optimizer", "continue-data", "continue-schedule",
                                           "plan", "ranks", "expert-parallel", "no-recompute"};
  int n = 0;
  while (std::regex_search(rest, m, flag)) {
    const std::string name = m[1];
    rest = m.suffix();
    if (std::find(not_in.begin(), not_in.end(), name) != not_in.end()) continue;
    n++;
    EXPECT_TRUE(rec.contains(name)) << name << " missing from " << rec.dump();
  }
  EXPECT_GT(n, 30);
  EXPECT_EQ(rec["lr"], 2e-3);  // written as given, not as float noise
  EXPECT_EQ(rec["seq"], 32);
  r = run_moe(kOneThread + "train --recipe " + q(a + "/recipe.json") + " --out " + q(b));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(same_tensors(a + "/checkpoint-6/model.safetensors", b + "/checkpoint-6/model.safetensors"));
  EXPECT_EQ(json_of(b + "/recipe.json"), rec);
  // The command line wins over the recipe.
  r = run_moe(kOneThread + "train --recipe " + q(a + "/recipe.json") + " --out " + q(c) + " --steps 4");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(c + "/checkpoint-4"));
}

TEST(CliRecipe, BadRecipesAreUsageErrors) {
  TempDir t("recipe_bad");
  write_file(t / "typo.json", R"({"stpes": 10})");
  expect_one_line_error(run_moe("train --recipe " + q(t / "typo.json") + " --out " + q(t / "r")), 2,
                        {"typo.json", "\"stpes\"", "did you mean \"steps\"?"}, "a typo in a recipe");
  write_file(t / "range.json", R"({"lr": -1})");
  expect_one_line_error(run_moe("train --recipe " + q(t / "range.json") + " --out " + q(t / "r")), 2,
                        {"range.json", "\"lr\""}, "a bad value in a recipe");
  write_file(t / "out.json", R"({"out": "elsewhere"})");
  expect_one_line_error(run_moe("train --recipe " + q(t / "out.json") + " --out " + q(t / "r")), 2,
                        {"\"out\" is not a flag a recipe can set"}, "--out in a recipe");
  write_file(t / "list.json", R"([1, 2])");
  expect_one_line_error(run_moe("train --recipe " + q(t / "list.json") + " --out " + q(t / "r")), 2,
                        {"not a JSON object"}, "not an object");
  EXPECT_FALSE(fs::exists(t / "r"));
}

// The fixture run's checkpoint: what Hugging Face tools look for beside the weights.
TEST(CliRecipe, CheckpointsCarryHuggingFaceExtras) {
  const std::string ck = run_checkpoint();
  const nlohmann::json gen = json_of(ck + "/generation_config.json");
  EXPECT_EQ(gen["eos_token_id"], 2);
  EXPECT_EQ(gen["bos_token_id"], 1);
  const nlohmann::json tc = json_of(ck + "/tokenizer_config.json");
  EXPECT_EQ(tc["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(tc["add_prefix_space"], false);  // our tokenizer has no dummy prefix
  EXPECT_EQ(tc["eos_token"], "</s>");
  const nlohmann::json sp = json_of(ck + "/special_tokens_map.json");
  EXPECT_EQ(sp["bos_token"], "<s>");
  EXPECT_EQ(sp["unk_token"], "<unk>");
  const std::string card = read_file(ck + "/README.md");
  EXPECT_NE(card.find("## Architecture"), std::string::npos) << card;
  EXPECT_NE(card.find("steps: " + std::to_string(kRunSteps) + " of " + std::to_string(kRunSteps)), std::string::npos)
      << card;
  EXPECT_TRUE(std::regex_search(card, std::regex(R"(final training loss: \d+\.\d{4} \(step 120\))"))) << card;
  EXPECT_TRUE(std::regex_search(card, std::regex(R"(validation loss: \d+\.\d{4} \(step 120\))"))) << card;
  EXPECT_EQ(card.find("## Routing"), std::string::npos) << "a dense model has no routing";
}

TEST(CliRecipe, MoeModelCardHasTheRouting) {
  TempDir t("recipe_card_moe");
  Proc r = run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(t / "m") +
                   " --preset tiny --batch 2 --seq 32 --steps 3 --eval-every 0 --eval-batches 1 --experts 4");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string card = read_file(t / "m/checkpoint-3/README.md");
  EXPECT_NE(card.find("MoE: 4 experts in layers 1"), std::string::npos) << card;
  EXPECT_NE(card.find("## Routing (the last training step)"), std::string::npos) << card;
  EXPECT_TRUE(std::regex_search(card, std::regex(R"(\| 1 \| \d+\.\d\d \| \d+\.\d% \| \d+\.\d{3} \|)"))) << card;
}

}  // namespace
}  // namespace moe::clitest
