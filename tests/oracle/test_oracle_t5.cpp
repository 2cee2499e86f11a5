// Whole-model oracle for T5: PyTorch with Hugging Face T5ForConditionalGeneration
// semantics (tests/oracle/model_oracle.py, float64) and our T5Model (fp32) read the
// same checkpoint directory and batch (encoder inputs, decoder inputs, targets);
// logits, loss, every parameter gradient (both relative position bias tables
// included), and the losses and weights after 10 AdamW steps with clipping and weight
// decay must agree. Cases: T5 v1.1 (gated-gelu, untied, H*d_kv != d_model, 3 encoder /
// 2 decoder layers) and the original T5 (relu, tied with the d_model^-0.5 rescale),
// in F32, BF16 and sharded files; MoE T5 (expert choice encoder, top-k decoder); and HF
// switch_transformers (top-1, capacity per sequence in token order).
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "io/safetensors.h"
#include "model/t5/t5.h"
#include "oracle/oracle_check.h"
#include "ops/clip.h"
#include "testutil.h"
#include "train/optimizer.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

struct Case {
  const char* name;
  const char* flags;  // make_model_fixture.py flags after --family t5
};

std::string py(const std::string& script) {
  return std::string(MOE_TORCH_PYTHON) + " " + MOE_TEST_SRC + "/oracle/" + script;
}

void sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "command failed: " << cmd;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// A tensor of our flat buffer by its HF name (experts: oracle_check.h).
std::vector<float> tensor_of(const T5Model& m, const FlatBuffer& buf, const std::string& name) {
  if (auto e = expert_slice(m.layout(), buf, name)) return *e;
  const ParamSpec& s = m.layout().at(name);
  return std::vector<float>(buf.data() + s.offset, buf.data() + s.offset + s.shape.numel());
}

class T5Oracle : public ::testing::TestWithParam<Case> {};

TEST_P(T5Oracle, MatchesTorch) {
  const Case c = GetParam();
  const std::string dir = std::string(MOE_TEST_BIN) + "/t5_oracle/" + c.name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ckpt = dir + "/ckpt", batch = dir + "/batch.safetensors", out = dir + "/torch.safetensors";
  const std::string flags = std::string(c.flags).rfind("--family", 0) == 0 ? c.flags : "--family t5 " + std::string(c.flags);
  ASSERT_NO_FATAL_FAILURE(sh(py("make_model_fixture.py") + " --out " + ckpt + " --batch " + batch + " " + flags));
  const int steps = 10;
  const float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, wd = 0.1f, clip = 1.0f;
  ASSERT_NO_FATAL_FAILURE(sh(py("model_oracle.py") + " --model " + ckpt + " --batch " + batch + " --out " + out +
                             " --steps 10 --lr 0.001 --beta1 0.9 --beta2 0.95 --eps 1e-8 --weight-decay 0.1 --clip 1.0"));
  auto model = t5_load(ckpt);
  T5Model& m = *model;
  auto bf = SafeTensorsFile::open(batch);
  auto enc = bf.read_i32(bf.at("inputs")), dec = bf.read_i32(bf.at("decoder_inputs"));
  auto targets = bf.read_i32(bf.at("targets"));
  const int B = int(bf.at("inputs").shape[0]), Te = int(bf.at("inputs").shape[1]);
  const int Td = int(bf.at("targets").shape[1]);
  ASSERT_NE(Te, Td) << "the fixture should exercise Te != Td";
  auto tf = SafeTensorsFile::open(out);

  // Forward: fp32 through 5 layers of width 32 against float64: a few fp32 roundings per
  // op, ~1e-6 of the logits' size; 2e-5 leaves 10x (as for the decoder families).
  const float loss = m.forward(enc.data(), dec.data(), targets.data(), B, Te, Td);
  auto want_logits = tf.read_f32(tf.at("logits"));
  ASSERT_EQ(want_logits.size(), size_t(B) * Td * m.config().vocab_size);
  std::vector<float> logits(m.logits(), m.logits() + want_logits.size());
  EXPECT_TRUE(all_close(logits, want_logits, 2e-5 * max_abs(want_logits), 1e-5, std::string(c.name) + " logits"));
  const float want_loss = tf.read_f32(tf.at("loss"))[0];
  EXPECT_NEAR(loss, want_loss, 2e-6 * std::fabs(want_loss)) << "loss: a mean of fp32 token losses";

  // MoE: the aux + z losses, and every MoE layer's routing (choices, kept pairs, counts)
  // exactly; slot l is encoder layer l, slot L + l decoder layer l.
  const bool moe = tf.find("moe_loss") != nullptr;
  EXPECT_EQ(moe, m.config().is_moe());
  if (moe) {
    const double want_moe = tf.read_f32(tf.at("moe_loss"))[0];
    EXPECT_NEAR(m.moe_loss(), want_moe, 2e-6 * std::fabs(want_moe)) << c.name << " moe_loss (aux + z)";
    int dropped = 0;
    const int blocks = expect_routing(tf, m, c.name, true, &dropped);
    EXPECT_GT(blocks, 0);
    std::printf("[ %s ] MoE blocks %d, moe_loss %.7g vs %.7g, dropped per step (oracle) %s, min routing gap %s\n",
                c.name, blocks, m.moe_loss(), want_moe, tf.metadata().at("moe_dropped_per_step").c_str(),
                tf.metadata().at("moe_min_gap").c_str());
  }

  // Every gradient against its own scale (2e-5 of the largest entry, as for the others).
  m.grads().zero();
  m.backward();
  const double worst_grad =
      expect_grads(tf, [&](const std::string& n) { return tensor_of(m, m.grads(), n); }, hf_tensor_count(m.layout()),
                   c.name);

  // 10 steps of clip + AdamW on the same batch, from the loaded weights again.
  auto fresh = t5_load(ckpt);
  T5Model& m2 = *fresh;
  TokenBatch tb;
  tb.B = B, tb.T = Te, tb.Td = Td, tb.inputs = enc, tb.dec = dec, tb.targets = targets;
  std::vector<float> losses, norms;
  train_steps(m2, tb, steps, AdamWParams{lr, beta1, beta2, eps, wd}, clip, &losses, &norms);
  // As for the decoder families: 1e-4 relative over 10 steps for losses, 1e-3 for norms;
  // weights as expect_adam_final_close (oracle_check.h) says.
  EXPECT_TRUE(all_close(losses, tf.read_f32(tf.at("losses")), 1e-5, 1e-4, std::string(c.name) + " losses"));
  EXPECT_TRUE(all_close(norms, tf.read_f32(tf.at("grad_norms")), 1e-5, 1e-3, std::string(c.name) + " grad norms"));
  double worst_final = 0;
  int finals = 0;
  for (const STEntry& e : tf.tensors()) {
    if (e.name.rfind("final.", 0) != 0) continue;
    const std::string name = e.name.substr(6);
    auto got = tensor_of(m2, m2.params(), name);
    auto want = tf.read_f32(e);
    const std::string what = std::string(c.name) + " final " + name;
    worst_final = std::max(worst_final, expect_adam_final_close(got, want, steps, lr, what));
    finals++;
  }
  EXPECT_EQ(size_t(finals), hf_tensor_count(m2.layout()));
  auto want_losses = tf.read_f32(tf.at("losses"));
  double worst_loss = 0;
  for (size_t i = 0; i < losses.size() && i < want_losses.size(); i++)
    worst_loss = std::max(worst_loss, std::fabs(double(losses[i]) - want_losses[i]) / std::fabs(want_losses[i]));
  std::printf("[ %s ] max errors: loss rel %.2e, grad (of its tensor's max) %.2e, 10-step losses rel %.2e, "
              "final weights abs %.2e; loss %.5f -> %.5f\n",
              c.name, std::fabs(double(loss) - want_loss) / std::fabs(want_loss), worst_grad, worst_loss, worst_final,
              losses.front(), losses.back());
}

INSTANTIATE_TEST_SUITE_P(
    T5, T5Oracle,
    ::testing::Values(
        // T5 v1.1: gated-gelu, untied, H * d_kv = 4 * 12 != d_model = 32, 3 encoder / 2 decoder layers.
        Case{"t5v11_gated_untied_f32", "--ffn-proj gated-gelu --tie 0 --d-kv 12 --layers 3 --dec-layers 2"},
        Case{"t5v11_gated_untied_bf16_sharded",
             "--ffn-proj gated-gelu --tie 0 --layers 2 --dec-layers 2 --dtype BF16 --shards 3"},
        // The original T5: relu, tied head with the d_model^-0.5 rescale.
        Case{"t5_relu_tied_f32", "--ffn-proj relu --tie 1"},
        Case{"t5_relu_tied_f16", "--ffn-proj relu --tie 1 --dtype F16 --enc-seq 24 --seq 5"},
        // Widths and lengths where every fast path runs threaded; 32 buckets, distance 128.
        Case{"t5v11_wide", "--ffn-proj gated-gelu --tie 0 --hidden 256 --heads 4 --d-kv 64 --ffn 640 --vocab 512 "
                           "--buckets 32 --max-distance 128 --enc-seq 96 --seq 40 --batch-size 2"},
        // MoE T5 (the sparse upcycling paper's routing): expert choice in the encoder (cf 2,
        // each sequence a group), top-2 renormalised in the decoder with capacity 1.25 (drops
        // pairs), gated-GELU experts, layer 1 of each stack.
        Case{"t5moe_ec_top2", "--experts 4 --ffn-proj gated-gelu --topk 2 --renorm 1 --capacity 1.25 "
                              "--encoder-routing expert_choice --encoder-capacity 2 --seed 4"},
        // Switch-style decoder: top-1, raw gates, capacity 1.0 (drops every step), relu experts.
        Case{"t5moe_ec_switch_relu", "--experts 4 --ffn-proj relu --topk 1 --renorm 0 --capacity 1.0 "
                                     "--encoder-routing expert_choice --encoder-capacity 2 --seed 10"},
        // HF switch_transformers: top-1 relu experts, expert_capacity 3 per sequence in token
        // order (drops in both stacks), tied; in BF16 shards; and every layer sparse, untied.
        Case{"switch_tied_f32", "--family switch_transformers --experts 4 --expert-capacity 3 --sparse-step 2 --tie 1 "
                                "--seed 3"},
        Case{"switch_tied_bf16_sharded", "--family switch_transformers --experts 4 --expert-capacity 3 "
                                         "--sparse-step 2 --tie 1 --seed 3 --dtype BF16 --shards 2"},
        Case{"switch_all_layers_untied", "--family switch_transformers --experts 4 --expert-capacity 2 --sparse-step 1 "
                                         "--tie 0 --d-kv 12 --heads 3 --layers 2 --dec-layers 1 --aux-coef 0.1 "
                                         "--z-coef 0.01 --seed 3"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace moe::test
