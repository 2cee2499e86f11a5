// The analytic memory model (model/memory.h) against the real parameter layout, and
// the crash-safety file helpers (io/files.h): regular files only, cleanup of dead
// writers' leftovers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/files.h"
#include "io/safetensors.h"
#include "model/flops.h"
#include "model/memory.h"

namespace fs = std::filesystem;

namespace moe {
namespace {

TEST(Memory, ParamCountEqualsTheLayoutForEveryFamilyAndMoeShape) {
  for (const char* family : {"llama", "gpt2"})
    for (const char* preset : {"tiny", "small"}) {
      ModelConfig c = model_preset(family, preset, 1000);
      EXPECT_EQ(model_param_count(c), double(model_param_counts(c).total)) << family << " " << preset;
      c.n_experts = 4, c.top_k = 2;
      if (c.family == "llama") c.family = "mixtral";
      EXPECT_EQ(model_param_count(c), double(model_param_counts(c).total)) << family << " " << preset << " MoE";
      c.moe_inner = c.n_inner / 2, c.moe_all_layers = true;  // granular experts in every layer
      EXPECT_EQ(model_param_count(c), double(model_param_counts(c).total)) << family << " " << preset << " granular";
    }
}

TEST(Memory, EstimateGrowsWithTrainingAndIsRefusedAboveTheMachine) {
  const ModelConfig c = model_preset("llama", "small", 8192);
  const MemoryEstimate inf = model_memory_estimate(c, false, false, 0, 0);
  const MemoryEstimate tr = model_memory_estimate(c, true, true, 8, 256);
  EXPECT_EQ(inf.params, 4 * inf.n_params);
  EXPECT_EQ(tr.grads + tr.moments, 12 * tr.n_params);  // fp32 gradients, two fp32 moments
  EXPECT_GT(tr.activations, 0);
  EXPECT_GT(tr.total(), inf.total());
  EXPECT_NO_THROW(model_check_memory(c, true, true, 8, 256, "small"));
  ::setenv("MOE_MEMORY_LIMIT", "1e6", 1);  // a 1 MB machine
  try {
    model_check_memory(c, true, true, 8, 256, "small");
    ADD_FAILURE() << "not refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("small: this model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("976.6 KiB of memory"), std::string::npos) << e.what();
  }
  ::unsetenv("MOE_MEMORY_LIMIT");
}

class Files : public ::testing::Test {
 protected:
  Files() : dir_(std::string(MOE_TEST_BIN) + "/files_" + std::to_string(::getpid())) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~Files() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(Files, SpecialFilesAreRefusedWithoutBlocking) {
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  for (auto read : {+[](const std::string& p) { file_read(p); }, +[](const std::string& p) { SafeTensorsFile::open(p); }}) {
    try {
      read(fifo);
      ADD_FAILURE() << "a FIFO was read";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(file_read(dir_), std::runtime_error);  // a directory
  std::ofstream(dir_ + "/big") << std::string(100, 'x');
  EXPECT_THROW(file_read(dir_ + "/big", 99), std::runtime_error);
  EXPECT_EQ(file_read(dir_ + "/big", 100).size(), 100u);
}

TEST_F(Files, DeadWritersLeftoversGo) {
  // Leftovers: one of a dead PID, one of a live one (this process), one not ours.
  const std::string dead = dir_ + "/.tmp-checkpoint-6-999999999", live = dir_ + "/.tmp-checkpoint-8-" + std::to_string(::getpid());
  for (const std::string& d : {dead, live, dir_ + "/checkpoint-123"}) fs::create_directories(d);
  EXPECT_TRUE(pid_alive(::getpid()));
  EXPECT_FALSE(pid_alive(999999999));
  const auto removed = remove_stale_temps(dir_, {".tmp-checkpoint-"});
  EXPECT_EQ(removed, std::vector<std::string>{".tmp-checkpoint-6-999999999"});
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(dir_ + "/checkpoint-123"));
}

}  // namespace
}  // namespace moe
