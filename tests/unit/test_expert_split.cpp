// Expert parallelism in one process: a model holding part of the experts (ExpertSplit)
// lays them out after everything else, draws the full model's initial weights, loads
// only its experts' rows of a checkpoint and of the stacked AdamW moments; a ZeRO-1
// optimizer over several ranges updates each element as the full one does.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "testutil.h"
#include "train/expert_parallel.h"
#include "train/optimizer.h"
#include "train/state.h"

namespace moe {
namespace {

using test::fresh_dir;

ModelConfig moe_config(const std::string& family) {
  ModelConfig c = model_preset(family, "tiny", 96);
  if (family == "llama") c.family = "mixtral";
  c.n_experts = 4, c.top_k = 2, c.capacity_factor = 0;
  c.validate();
  return c;
}

// The rows of the full model's tensor `name` that part `rank` of `ranks` holds.
std::vector<float> rows_of(const Model& full, const std::string& name, int rank, int ranks) {
  const ParamSpec& s = full.layout().at(name);
  const size_t per = size_t(s.shape.numel() / s.shape[0]), E = size_t(s.shape[0]), n = E / size_t(ranks) * per;
  const float* p = full.params().data() + s.offset + size_t(rank) * n;
  return std::vector<float>(p, p + n);
}

TEST(ExpertSplit, PartsLayOutTheirExpertsLastAndDrawTheFullModelsWeights) {
  for (const char* family : {"llama", "gpt2"}) {
    const ModelConfig c = moe_config(family);
    Model full(c);
    full.init_weights(7);
    for (int rank = 0; rank < 2; rank++) {
      Model part(c, true, ExpertSplit{rank, 2});
      part.init_weights(7);
      const size_t begin = experts_begin(part.layout());
      ASSERT_LT(begin, part.layout().numel()) << family;
      for (const ParamSpec& s : part.layout().specs()) {
        const bool expert = s.name.find('*') != std::string::npos;
        EXPECT_EQ(expert, s.offset >= begin) << family << " " << s.name;
        const float* p = part.params().data() + s.offset;
        const std::vector<float> got(p, p + s.shape.numel());
        if (expert) {
          EXPECT_EQ(s.shape[0], 2) << s.name;
          EXPECT_EQ(got, rows_of(full, s.name, rank, 2)) << family << " " << s.name << " rank " << rank;
        } else {
          const ParamSpec& f = full.layout().at(s.name);
          EXPECT_EQ(s.shape.vec(), f.shape.vec()) << s.name;  // the router routes to all 4
          EXPECT_EQ(got, std::vector<float>(full.params().data() + f.offset,
                                            full.params().data() + f.offset + f.shape.numel()))
              << family << " " << s.name;
        }
      }
    }
  }
  EXPECT_THROW(Model(moe_config("llama"), true, ExpertSplit{0, 3}), std::invalid_argument);  // 4 experts over 3
  EXPECT_THROW(Model(model_preset("llama", "tiny", 96), true, ExpertSplit{0, 2}), std::invalid_argument);  // dense
}

TEST(ExpertSplit, PartsLoadTheirRowsOfACheckpointAndOfTheMoments) {
  const ModelConfig c = moe_config("llama");
  Model full(c);
  full.init_weights(11);
  AdamW opt(full.layout());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (size_t i = 0; i < opt.m().numel(); i++) opt.m().data()[i] = u(rng), opt.v().data()[i] = u(rng);
  opt.set_t(5);
  const std::string run = fresh_dir("expert_split_ckpt");
  TrainerState st;
  st.config.out_dir = run;
  const std::string dir = checkpoint_write(run, full, opt, st, "", 1);
  for (int rank = 0; rank < 4; rank++) {
    auto part = model_load(dir, ExpertSplit{rank, 4});
    AdamW po(part->layout());
    optimizer_load(po, *part, dir);
    EXPECT_EQ(po.t(), 5);
    for (const ParamSpec& s : part->layout().specs()) {
      const ParamSpec& f = full.layout().at(s.name);
      const size_t n = size_t(s.shape.numel());
      const size_t from = f.offset + (s.name.find('*') != std::string::npos ? size_t(rank) * n : 0);
      for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(part->params().data()[s.offset + i], full.params().data()[from + i]) << s.name << " rank " << rank;
        ASSERT_EQ(po.m().data()[s.offset + i], opt.m().data()[from + i]) << "exp_avg." << s.name;
        ASSERT_EQ(po.v().data()[s.offset + i], opt.v().data()[from + i]) << "exp_avg_sq." << s.name;
      }
    }
  }
  EXPECT_THROW(model_save(*model_load(dir, ExpertSplit{1, 2}), fresh_dir("expert_split_save")), std::logic_error);
}

// ZeRO-1 under expert parallelism holds two ranges (a shard of the replicated part and
// one of the experts): together, the shards of every rank update each element as the
// full optimizer does, bit for bit.
TEST(ExpertSplit, ShardedAdamWOverSeveralRangesIsTheFullUpdate) {
  const ModelConfig c = moe_config("gpt2");
  Model m(c, true, ExpertSplit{0, 2});
  m.init_weights(2);
  std::mt19937 rng(9);
  std::normal_distribution<float> g(0.0f, 1e-2f);
  for (size_t i = 0; i < m.grads().numel(); i++) m.grads().data()[i] = g(rng);
  const size_t n = m.params().numel(), x = experts_begin(m.layout());
  FlatBuffer p0(m.layout());
  std::copy(m.params().data(), m.params().data() + n, p0.data());
  const AdamWParams hp{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
  AdamW full(m.layout());
  for (int step = 0; step < 3; step++) full.step(m.params(), m.grads(), hp, 1e-3f, 0.5f);
  std::vector<float> want(m.params().data(), m.params().data() + n);
  std::copy(p0.data(), p0.data() + n, m.params().data());
  // Two "ranks": [0, a) + [x, y) and [a, x) + [y, n).
  const size_t a = x / 3, y = x + (n - x) / 2;
  AdamW r0(m.layout(), AdamW::Ranges{{0, a}, {x, y}}), r1(m.layout(), AdamW::Ranges{{a, x}, {y, n}});
  for (int step = 0; step < 3; step++) {
    r0.step_shard(m.params(), m.grads(), hp, 1e-3f, 0.5f);
    r1.step_shard(m.params(), m.grads(), hp, 1e-3f, 0.5f);
  }
  for (size_t i = 0; i < n; i++) ASSERT_EQ(m.params().data()[i], want[i]) << "element " << i;
  EXPECT_THROW(AdamW(m.layout(), AdamW::Ranges{{a, x}, {0, a}}), std::invalid_argument);  // not ascending
}

}  // namespace
}  // namespace moe
