// T5 from the command line: `moe data --t5` (T5's special ids and 100 sentinels above
// the tokenizer's pieces), `moe train --family t5` on span corruption (the log's shape,
// exact resume, HF files), `moe eval` giving the trainer's validation loss, and the
// refusals of what T5 does not have yet, each one line.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli/cli_util.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

// A T5 dataset of the license texts (the shared fixture's text), made once per process.
const std::string& t5_dataset() {
  static const std::string dir = [] {
    const std::string d = std::string(MOE_TEST_BIN) + "/cli_t5_data";
    fs::remove_all(d);
    const std::string text = fs::path(dataset()).parent_path().string() + "/text";
    Proc r = run_moe("data --input " + q(text) + " --out " + q(d) + " --vocab-size 612 --t5");
    if (r.code != 0) throw std::runtime_error("moe data --t5 failed: " + r.err);
    return d;
  }();
  return dir;
}

std::string t5_train_args(const std::string& out, int steps = 8) {
  return kOneThread + "train --data " + q(t5_dataset()) + " --out " + q(out) +
         " --family t5 --preset tiny --batch 4 --seq 48 --accum 2 --steps " + std::to_string(steps) +
         " --eval-every 4 --eval-batches 3 --warmup 1 --lr 3e-3 --seed 3";
}

TEST(CliT5, DataReservesTheSentinels) {
  const nlohmann::json m = nlohmann::json::parse(read_file(t5_dataset() + "/meta.json"));
  EXPECT_EQ(m["vocab_size"], 612) << "--vocab-size counts the sentinels";
  EXPECT_EQ(m["sentinels"], 100);
  EXPECT_EQ(m["special_ids"]["pad"], 0);
  EXPECT_EQ(m["special_ids"]["eos"], 1);
  EXPECT_EQ(m["special_ids"]["unk"], 2);
  EXPECT_EQ(m["special_ids"]["bos"], -1);
  // The tokenizer has the other 512 pieces: no text token is a sentinel.
  Proc r = run_moe("data --input " + q(fs::path(dataset()).parent_path().string() + "/text") + " --out " +
                   q(t5_dataset()) + " --vocab-size 612 --t5");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("sentinels: 100 (<extra_id_0> = 611"), std::string::npos) << r.out;
}

TEST(CliT5, TrainsOnSpanCorruptionAndResumesExactly) {
  TempDir tmp("t5_train");
  const std::string a = tmp / "a", b = tmp / "b";
  Proc r = run_moe(t5_train_args(a));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("span corruption: 52 raw tokens -> 48 encoder inputs, 12 decoder targets"), std::string::npos)
      << r.err;
  const std::string ca = a + "/checkpoint-8";
  const nlohmann::json cfg = nlohmann::json::parse(read_file(ca + "/config.json"));
  EXPECT_EQ(cfg["model_type"], "t5");
  EXPECT_EQ(cfg["architectures"][0], "T5ForConditionalGeneration");
  EXPECT_EQ(cfg["vocab_size"], 612);
  EXPECT_EQ(cfg["decoder_start_token_id"], 0);
  EXPECT_EQ(cfg["eos_token_id"], 1);
  const nlohmann::json tok = nlohmann::json::parse(read_file(ca + "/tokenizer_config.json"));
  EXPECT_EQ(tok["tokenizer_class"], "T5Tokenizer");
  EXPECT_EQ(tok["extra_ids"], 100);
  // The log: 8 steps, tokens = encoder + decoder tokens of each micro-batch.
  int steps = 0;
  for (const nlohmann::json& j : read_jsonl(a + "/log.jsonl"))
    if (j.contains("loss")) {
      steps++;
      EXPECT_EQ(j["tokens"], uint64_t(steps) * 2 * 4 * (48 + 12));
      EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
    }
  EXPECT_EQ(steps, 8);
  // Stopped at 4 and resumed: bit-identical weights, moments and losses.
  r = run_moe(t5_train_args(b) + " --stop-at 4");
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(kOneThread + "train --out " + q(b) + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(same_tensors(ca + "/model.safetensors", b + "/checkpoint-8/model.safetensors"));
  EXPECT_TRUE(same_tensors(ca + "/optimizer.safetensors", b + "/checkpoint-8/optimizer.safetensors"));
  // moe eval on the same split and length gives the trainer's last validation loss.
  const nlohmann::json st = nlohmann::json::parse(read_file(ca + "/trainer_state.json"));
  r = run_moe(kOneThread + "eval --model " + q(ca) + " --data " + q(t5_dataset()) +
              " --seq 48 --batch 4 --batches 3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json ev = nlohmann::json::parse(r.out);
  EXPECT_NEAR(ev["loss"].get<double>(), st["val_loss"].get<double>(), 1e-6) << "the same batches and masks";
  EXPECT_LT(ev["loss"].get<double>(), std::log(612.0)) << "8 steps learned something";
  r = run_moe("inspect " + q(ca));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 encoder + 2 decoder layers"), std::string::npos) << r.out;
}

// moe generate on T5: the prompt is the encoder's input, "<extra_id_N>" the spans to
// fill; greedy decoding is repeatable and prints sentinels by name.
TEST(CliT5, GeneratesFromAnEncoderInput) {
  TempDir tmp("t5_generate");
  Proc r = run_moe(t5_train_args(tmp / "g", 8));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string args = kOneThread + "generate --model " + q(tmp / "g") +
                           " --prompt 'the <extra_id_0> of this <extra_id_1> license' --temperature 0 --max-tokens 12";
  Proc a = run_moe(args), b = run_moe(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out) << "greedy decoding is deterministic";
  EXPECT_NE(a.err.find("tokens (eos included)"), std::string::npos) << a.err;
  EXPECT_FALSE(a.out.empty());
}

// MoE T5 from the flags: expert choice in the encoder, top-2 in the decoder, layer 1 of
// each stack; the log's telemetry names both, and the checkpoint reloads for eval.
TEST(CliT5, TrainsAnMoeT5) {
  TempDir tmp("t5_moe");
  Proc r = run_moe(t5_train_args(tmp / "m") +
                   " --experts 4 --routing expert-choice --encoder-capacity-factor 2 --top-k 2 --combine renorm");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json cfg = nlohmann::json::parse(read_file(tmp / "m/checkpoint-8/config.json"));
  EXPECT_EQ(cfg["num_experts"], 4);
  EXPECT_EQ(cfg["moe_routing"], "expert_choice");
  int lines = 0;
  for (const nlohmann::json& j : read_jsonl(tmp / "m/log.jsonl"))
    if (j.contains("moe")) {
      lines++;
      ASSERT_EQ(j["moe"].size(), 2u) << "encoder layer 1 and decoder layer 1";
      EXPECT_EQ(j["moe"][0]["layer"], 1);
      EXPECT_EQ(j["moe"][0]["routing"], "expert_choice");
      EXPECT_EQ(j["moe"][1]["layer"], 2 + 1) << "decoder slots follow the 2 encoder layers";
      EXPECT_FALSE(j["moe"][1].contains("routing"));
      EXPECT_GT(j["moe_loss"].get<double>(), 0);
    }
  EXPECT_EQ(lines, 8);
  r = run_moe(kOneThread + "eval --model " + q(tmp / "m") + " --data " + q(t5_dataset()) + " --seq 48 --batch 4 --batches 2");
  ASSERT_EQ(r.code, 0) << r.err;
}

// moe upcycle on T5, the paper's routing by default: the decoder's renormalised top-2
// layer computes the dense MLP exactly at step 0; the encoder's expert-choice layer does
// not, and the report says by how much and why; the result trains with --init.
TEST(CliT5, UpcyclesWithExpertChoiceAndReportsStep0) {
  TempDir tmp("t5_upcycle");
  Proc r = run_moe(t5_train_args(tmp / "d", 8));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_moe(kOneThread + "upcycle --from " + q(tmp / "d") + " --out " + q(tmp / "u") + " --experts 4 --check-seq 48");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("expert choice is not exact at step 0"), std::string::npos) << r.out;
  const nlohmann::json cfg = nlohmann::json::parse(read_file(tmp / "u/config.json"));
  EXPECT_EQ(cfg["num_experts"], 4);
  EXPECT_EQ(cfg["num_experts_per_tok"], 2);
  EXPECT_EQ(cfg["moe_routing"], "expert_choice");
  EXPECT_EQ(cfg["moe_renormalize"], true);
  const nlohmann::json s0 = nlohmann::json::parse(read_file(tmp / "u/step0.json"));
  int moe_layers = 0;
  for (const auto& L : s0["layers"]) {
    if (!L["moe"].get<bool>()) {
      if (L["layer"].get<int>() == 0) EXPECT_EQ(L["hidden_max_diff"].get<double>(), 0.0) << "before any MoE layer";
      continue;
    }
    moe_layers++;
    const double diff = L["block_max_diff"], scale = L["mlp_max_abs"];
    if (L["layer"].get<int>() < 2) {  // encoder layer 1: expert choice
      EXPECT_GT(diff, 1e-3 * scale) << "expert choice is not exact at step 0";
      EXPECT_LT(L["gate_mass"].get<double>(), 1.0);
      EXPECT_TRUE(L.contains("untaken") && L.contains("note"));
      EXPECT_NEAR(L["scale"].get<double>(), L["gate_mass"].get<double>(), 0.5) << "the block is about m(x) x MLP";
    } else {  // decoder layer 1 (slot 3): renormalised top-2 of copies, dropless at evaluation
      EXPECT_LT(diff, 1e-5 * scale) << "renormalised top-2 of copied experts is the dense MLP";
      EXPECT_NEAR(L["gate_mass"].get<double>(), 1.0, 1e-6);
    }
  }
  EXPECT_EQ(moe_layers, 2);
  r = run_moe(kOneThread + "train --data " + q(t5_dataset()) + " --out " + q(tmp / "t") + " --init " + q(tmp / "u") +
              " --steps 2 --batch 4 --seq 48 --warmup 1 --eval-every 0");
  ASSERT_EQ(r.code, 0) << r.err;
  // Another strategy and the encoder's tokens choosing instead; bad options in one line.
  r = run_moe(kOneThread + "upcycle --from " + q(tmp / "d") + " --out " + q(tmp / "n") +
              " --experts 4 --strategy noise --encoder-routing top-k --no-check");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(tmp / "n/config.json"))["moe_routing"], "tokens_choose");
  expect_one_line_error(run_moe("upcycle --from " + q(tmp / "d") + " --out " + q(tmp / "x") + " --experts 4 --top-k 5"),
                        2, {"--top-k 5"}, "top-k above the experts");
  expect_one_line_error(run_moe("upcycle --from " + q(tmp / "u") + " --out " + q(tmp / "y") + " --experts 4"), 2,
                        {"already an MoE model"}, "upcycling an MoE T5");
  // --out over (or around) the dense run is refused even with --force: the run stays
  const std::string weights = read_file(tmp / "d/checkpoint-8/model.safetensors");
  for (const std::string& out : {tmp / "d", tmp.str()}) {
    Proc o = run_moe("upcycle --from " + q(tmp / "d") + " --out " + q(out) + " --experts 4 --force --no-check");
    EXPECT_EQ(o.code, 1) << o.err;
    EXPECT_NE(o.err.find("overlaps the dense checkpoint"), std::string::npos) << o.err;
    EXPECT_EQ(read_file(tmp / "d/checkpoint-8/model.safetensors"), weights) << out;
  }
}

// moe bench train --family t5: span corruption's shapes (T encoder tokens, its targets),
// tokens/s over encoder + decoder tokens, MFU below 1, the MoE variant with expert choice.
TEST(CliT5, BenchTrainsT5) {
  Proc r = run_moe(kOneThread + "bench train --family t5 --preset tiny --compute f32 --seq 64 --batch 4 "
                                "--min-time 0.05 --experts 4 --top-k 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  int rows = 0;
  for (const std::string& line : lines_of(r.out)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j["kind"] != "train") continue;
    rows++;
    EXPECT_EQ(j["family"], "t5");
    EXPECT_EQ(j["T"], 64);
    EXPECT_EQ(j["Td"], 14) << "70 raw tokens -> 64 inputs, 14 targets (3 sentinels, 10 noise tokens, eos)";
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
    EXPECT_GT(j["mfu"].get<double>(), 0);
    EXPECT_LT(j["mfu"].get<double>(), 1) << "no run beats the measured peak";
  }
  EXPECT_EQ(rows, 2) << "dense and MoE";
}

TEST(CliT5, RefusesWhatItDoesNotHaveYet) {
  TempDir tmp("t5_refusals");
  expect_one_line_error(run_moe(t5_train_args(tmp / "x") + " --recompute"), 2, {"--recompute", "t5"}, "t5 recompute");
  expect_one_line_error(run_moe(t5_train_args(tmp / "y") + " --dropout 0.1"), 2, {"--dropout", "t5"}, "t5 dropout");
  EXPECT_FALSE(fs::exists(tmp / "x")) << "a refused run leaves nothing";
  // A T5 model needs a dataset with sentinels; a decoder-only one a T5 checkpoint refuses.
  expect_one_line_error(run_moe(kOneThread + "train --data " + q(dataset()) + " --out " + q(tmp / "z") +
                                " --family t5 --preset tiny --steps 2 --seq 32 --batch 2"),
                        1, {"sentinels", "moe data --t5"}, "dataset without sentinels");
  Proc r = run_moe(t5_train_args(tmp / "m", 2));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_one_line_error(run_moe("generate --model " + q(tmp / "m") + " --prompt '<extra_id_100> x'"), 2,
                        {"--prompt", "<extra_id_100>", "100 sentinels"}, "a sentinel the model does not have");
  expect_one_line_error(run_moe("upcycle --from " + q(tmp / "m") + " --out " + q(tmp / "u") + " --experts 4 --carry-optimizer"),
                        2, {"--carry-optimizer", "t5"}, "carrying the optimizer into T5 experts");
}

}  // namespace
}  // namespace moe::clitest
